//! The deadlock check without a per-instruction cost: a watchdog thread signals the engine's
//! thread when an activation runs past its deadline, and the signal handler arms the Lua hook of
//! the coroutine that is running, the way the `lua` interpreter stops a script on Ctrl-C.
//!
//! A count hook installed all the time would cost every Lua instruction a trap into
//! `luaG_traceexec` (Lua 5.4 checks count hooks per instruction) and every return a visit to the
//! returning function's prototype. Here the engine only publishes, per activation, its thread and
//! deadline (a few atomic stores) and, per resume, the coroutine it resumes (a thread-local). The
//! hook that the handler installs is mlua's global hook procedure, so the engine's Rust callback
//! does the rest as before: it raises `TMPRL1101` once and yields if that error was caught.
//!
//! `lua_sethook` is documented as callable from a signal handler; the handler runs on the engine's
//! own thread, so it never races with the coroutine it hooks. Coroutines that workflow code
//! creates itself cannot be followed this way (the engine does not resume them); they keep a
//! count hook of their own (see `engine.rs`).
//!
//! This module and `heap` are the crate's only unsafe code: signals, the raw Lua hook API and
//! Lua's allocation function cannot be used without it.
#![allow(unsafe_code)]

use std::cell::Cell;
use std::os::raw::c_int;
use std::ptr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use mlua::ffi;

use super::engine::DEADLOCK_CHECK_INSTRUCTIONS;

thread_local! {
    /// The coroutine the engine of this thread is resuming, or null.
    static RUNNING: Cell<*mut ffi::lua_State> = const { Cell::new(ptr::null_mut()) };
    /// Whether the handler armed [`RUNNING`]'s hook during the current resume.
    static ARMED: Cell<bool> = const { Cell::new(false) };
}

/// mlua's global hook procedure (the engine's callback runs through it), as a `lua_Hook`.
static HOOK: AtomicUsize = AtomicUsize::new(0);

/// Time zero of the deadlines below (monotonic).
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn nanos_since_epoch(at: Instant) -> u64 {
    at.saturating_duration_since(epoch()).as_nanos().min(u64::MAX as u128) as u64
}

/// The signal the watchdog sends: a real-time one, which nothing else in the process uses.
fn signal_number() -> c_int {
    libc::SIGRTMIN() + 7
}

extern "C" fn on_signal(_: c_int) {
    let hook = HOOK.load(Ordering::Relaxed);
    let state = RUNNING.with(Cell::get);
    if hook == 0 || state.is_null() {
        return; // between two resumes: the next look (a `late_tick` later) catches the next one
    }
    // SAFETY: `hook` was read from `lua_gethook` (a `lua_Hook`); `state` is the coroutine this
    // thread is resuming right now, and `lua_sethook` may be called from a signal handler.
    unsafe {
        let hook = std::mem::transmute::<usize, ffi::lua_Hook>(hook);
        ffi::lua_sethook(state, Some(hook), ffi::LUA_MASKCOUNT, DEADLOCK_CHECK_INSTRUCTIONS as c_int);
    }
    ARMED.with(|armed| armed.set(true));
}

/// Starts the watchdog thread and installs the signal handler, once per process, and remembers
/// the hook procedure that mlua installed on `lua`'s main thread (its global hook). False if any
/// of them is missing: the engine then keeps a count hook on every thread instead.
pub(crate) fn install(lua: &mlua::Lua) -> bool {
    static INSTALLED: OnceLock<bool> = OnceLock::new();
    // SAFETY: the main thread's state is valid while `lua` is; reading its hook has no side effect.
    let hook = unsafe { ffi::lua_gethook(lua.current_thread().state()) };
    let Some(hook) = hook else { return false };
    if watchdog().is_none() {
        return false;
    }
    HOOK.store(hook as usize, Ordering::Relaxed);
    *INSTALLED.get_or_init(|| {
        // SAFETY: a plain handler (no SA_SIGINFO) for a real-time signal nothing else uses; the
        // handler only reads thread-locals and calls `lua_sethook`.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as extern "C" fn(c_int) as libc::sighandler_t;
            action.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(signal_number(), &action, ptr::null_mut()) == 0
        }
    })
}

/// Resumes a coroutine with its state published for the handler, and takes back a hook the
/// handler armed during the resume (the coroutine may be resumed again in a later activation).
pub(crate) fn resuming<R>(state: *mut ffi::lua_State, resume: impl FnOnce() -> R) -> R {
    let outer = RUNNING.with(|running| running.replace(state));
    let result = resume();
    RUNNING.with(|running| running.set(outer));
    if ARMED.with(|armed| armed.replace(false)) {
        // SAFETY: `state` is a live coroutine of this thread's VM (the caller holds it), and no
        // Lua code runs on it now.
        unsafe { ffi::lua_sethook(state, None, 0, 0) };
    }
    result
}

/// One engine's activation as the watchdog sees it.
#[derive(Debug)]
pub(crate) struct Watch {
    /// The engine's thread (`pthread_t`) while an activation runs, else 0.
    thread: AtomicU64,
    deadline: AtomicU64,
    /// The deadlock timeout: how long the watchdog sleeps while this engine is idle. An activation
    /// that starts during that sleep has its deadline at most one timeout later, so the watchdog
    /// still wakes in time to sleep until exactly that deadline.
    timeout: Duration,
    /// How often a late activation is signalled again until it ends (a signal between two resumes
    /// arms nothing): a fraction of the timeout.
    late_tick: Duration,
}

impl Watch {
    /// Registers a watch with the process's watchdog thread (started on first use).
    pub(crate) fn new(timeout: Duration) -> Arc<Watch> {
        let watch = Arc::new(Watch::unregistered(timeout));
        // `install` succeeded before any watch is made, so the thread runs.
        let Some(dog) = watchdog() else { return watch };
        dog.watches.lock().unwrap_or_else(|e| e.into_inner()).push(Arc::downgrade(&watch));
        dog.wake.notify_one();
        watch
    }

    /// A watch no watchdog looks at yet.
    fn unregistered(timeout: Duration) -> Watch {
        let late_tick = (timeout / 8).clamp(Duration::from_millis(5), Duration::from_millis(100));
        Watch { thread: AtomicU64::new(0), deadline: AtomicU64::new(0), timeout, late_tick }
    }

    /// An activation starts on this thread and must not run past `deadline`.
    pub(crate) fn arm(&self, deadline: Instant) {
        self.deadline.store(nanos_since_epoch(deadline), Ordering::Relaxed);
        // SAFETY: pthread_self has no preconditions.
        let me = unsafe { libc::pthread_self() } as u64;
        self.thread.store(me, Ordering::Release);
    }

    /// The activation is over.
    pub(crate) fn disarm(&self) {
        self.thread.store(0, Ordering::Release);
    }
}

struct Watchdog {
    watches: Mutex<Vec<Weak<Watch>>>,
    wake: Condvar,
}

/// The process's watchdog, its thread started on first use; `None` if the thread cannot start.
fn watchdog() -> Option<&'static Watchdog> {
    static DOG: OnceLock<Option<&'static Watchdog>> = OnceLock::new();
    *DOG.get_or_init(|| {
        let dog: &'static Watchdog =
            Box::leak(Box::new(Watchdog { watches: Mutex::new(Vec::new()), wake: Condvar::new() }));
        match std::thread::Builder::new().name("lua-watchdog".into()).spawn(move || patrol(dog)) {
            Ok(_) => Some(dog),
            Err(e) => {
                tracing::warn!("cannot start the workflow deadlock watchdog ({e}); Lua counts instructions instead");
                None
            }
        }
    })
}

/// The watchdog thread. It sleeps until the deadline of the activation it finds running, and a
/// whole timeout while none runs, so it wakes about once per timeout, busy or idle; an activation
/// still running past its deadline is signalled, and again every `late_tick` until it ends.
fn patrol(dog: &'static Watchdog) {
    let mut watches = dog.watches.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        watches.retain(|watch| watch.strong_count() > 0);
        if watches.is_empty() {
            watches = dog.wake.wait(watches).unwrap_or_else(|e| e.into_inner());
            continue;
        }
        let now = nanos_since_epoch(Instant::now());
        let mut sleep = Duration::MAX;
        for watch in watches.iter().filter_map(Weak::upgrade) {
            sleep = sleep.min(next_look(&watch, now));
        }
        watches = dog.wake.wait_timeout(watches, sleep).unwrap_or_else(|e| e.into_inner()).0;
    }
}

/// Signals `watch`'s engine if its activation is late; returns how long the watchdog may sleep
/// before it must look at `watch` again.
fn next_look(watch: &Watch, now: u64) -> Duration {
    let thread = watch.thread.load(Ordering::Acquire);
    if thread == 0 {
        return watch.timeout;
    }
    // Read after the thread: at least as new as the activation that published it (a later one
    // only has a later deadline, which the next look checks).
    let deadline = watch.deadline.load(Ordering::Relaxed);
    if now <= deadline {
        return Duration::from_nanos(deadline - now) + Duration::from_millis(1);
    }
    // SAFETY: `thread` is the engine's thread, alive while its activation runs; a thread that
    // ended in between makes pthread_kill fail, not misbehave, as long as its ID was not reused,
    // and the engine clears it before its thread can end.
    unsafe { libc::pthread_kill(thread as libc::pthread_t, signal_number()) };
    watch.late_tick
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_idle_engine_is_looked_at_once_per_timeout() {
        let watch = Watch::unregistered(Duration::from_secs(1));
        assert_eq!(next_look(&watch, nanos_since_epoch(Instant::now())), Duration::from_secs(1));
    }

    #[test]
    fn a_running_activation_is_looked_at_again_just_after_its_deadline() {
        let watch = Watch::unregistered(Duration::from_secs(1));
        let now = Instant::now();
        watch.arm(now + Duration::from_millis(300));
        let sleep = next_look(&watch, nanos_since_epoch(now));
        assert!(
            sleep > Duration::from_millis(300) && sleep <= Duration::from_millis(302),
            "sleeps until the deadline: {sleep:?}"
        );
        watch.disarm();
        assert_eq!(next_look(&watch, nanos_since_epoch(now)), Duration::from_secs(1), "idle again");
    }
}
