//! The state of one workflow run that Lua callbacks touch: tasks and the ready queue, sequence
//! numbers, pending timers and activities, buffered signals, and the commands issued so far.
//!
//! While an activation runs, the engine installs the run as the VM's [`ActiveRun`] app data; every
//! workflow API function finds its run there. Borrows never span a Lua call.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use std::time::{Instant, SystemTime};

use mlua::{Lua, MultiValue, Thread};

use super::FastMap;

use super::channel::Channel;
use super::random::DeterministicRng;
use super::{ActivityTarget, Command, WorkflowInfo};
use crate::failure::Failure;

pub(crate) type TaskId = usize;

/// The run whose activation is executing, and the activation's time (Unix nanoseconds). The
/// VM's app data holds one slot from start-up on (as do its entropy and clock sources): an
/// activation only fills it and empties it, without allocating.
#[derive(Clone, Default)]
pub(crate) struct ActiveRun(Rc<RefCell<Option<Activating>>>);

/// The executing run and the activation's time in Unix nanoseconds.
type Activating = (Rc<RefCell<RunCore>>, i128);

impl ActiveRun {
    pub(crate) fn run(&self) -> Option<Rc<RefCell<RunCore>>> {
        self.0.borrow().as_ref().map(|(run, _)| run.clone())
    }

    pub(crate) fn now_nanos(&self) -> Option<i128> {
        self.0.borrow().as_ref().map(|(_, now)| *now)
    }

    pub(crate) fn set(&self, active: Option<(Rc<RefCell<RunCore>>, i128)>) {
        *self.0.borrow_mut() = active;
    }
}

/// Where the command being issued comes from, for nondeterminism reports. Only a replaying run
/// can diverge from its history, so a run executing new code pays nothing for it.
pub(crate) fn command_site(lua: &Lua, replaying: bool) -> Option<String> {
    if replaying { call_site(lua) } else { None }
}

/// The innermost user Lua frame on the stack (`file.lua:12`), skipping Tempest's own frames.
pub(crate) fn call_site(lua: &Lua) -> Option<String> {
    for level in 0..16 {
        let frame = lua.inspect_stack(level, |debug| {
            let src = debug.source().short_src.map(|s| s.into_owned()).unwrap_or_default();
            (src, debug.current_line())
        })?;
        let (src, line) = frame;
        if src.starts_with("[C]") || src.starts_with("tempest:") || src.starts_with("[tempest") || src.is_empty() {
            continue;
        }
        return Some(match line {
            Some(line) => format!("{src}:{line}"),
            None => src,
        });
    }
    None
}

/// Returns the run whose activation is executing, or an error for calls made outside one.
pub(crate) fn active_run(lua: &Lua) -> mlua::Result<Rc<RefCell<RunCore>>> {
    lua.app_data_ref::<ActiveRun>()
        .and_then(|active| active.run())
        .ok_or_else(|| mlua::Error::runtime("workflow API called outside of a workflow activation"))
}

pub(crate) struct Task {
    pub(crate) thread: Thread,
    /// Arguments for the first resume; `None` once started.
    pub(crate) start_args: Option<MultiValue>,
    /// The key of the blocking activity call the task waits in (`funcs.call`): the scheduler
    /// resumes it with the call's outcome once that is in.
    pub(crate) awaiting: Option<u32>,
}

/// How the scheduler resumes a task.
pub(crate) enum Resume {
    /// The first time, with the task's arguments.
    Start(MultiValue),
    /// With the outcome of the blocking activity call it waits in: `key, value, failure`.
    Outcome(u32, Result<crate::convert::Data, Failure>),
    /// Without values: the task looks for itself why it was woken.
    Wake,
}

/// A pending activity, as seen by its future.
#[derive(Debug, Default)]
pub(crate) struct FutureState {
    pub(crate) seq: u32,
    pub(crate) local: bool,
    pub(crate) outcome: Option<Result<crate::convert::Data, Failure>>,
    pub(crate) cancel_requested: bool,
    pub(crate) channel: Option<Channel>,
    /// `funcs.call` (no future, no channel): the task blocked on it, and the call's key in
    /// [`RunCore::call_results`] (its first sequence number; a local activity's backoff
    /// reschedules it under new ones).
    pub(crate) waiter: Option<(TaskId, u32)>,
    /// Local activities: the schedule to issue again after a backoff.
    pub(crate) schedule: Option<super::ScheduleActivity>,
}

/// What a fired timer feeds.
pub(crate) enum TimerTarget {
    /// `time.after`, `time.timer`: deliver once.
    Once(Channel),
    /// `time.sleep`: wake the sleeping task.
    Wake(TaskId),
    /// `time.ticker`: deliver and re-arm with the same period (nanoseconds).
    Ticker { channel: Channel, period: std::time::Duration, ticker: Rc<RefCell<TickerState>> },
    /// A local activity's backoff: when it fires, schedule the activity again.
    LocalBackoff { future: Rc<RefCell<FutureState>>, attempt: u32, original_schedule_time: Option<SystemTime> },
}

#[derive(Debug, Default)]
pub(crate) struct TickerState {
    pub(crate) current_seq: u32,
    pub(crate) stopped: bool,
}

/// Routing of incoming signals to `process.listen` channels, the inbox, or a holding queue.
#[derive(Default)]
pub(crate) struct Signals {
    pub(crate) listeners: HashMap<String, (Channel, bool)>,
    pub(crate) inbox: Option<Channel>,
    pub(crate) held: VecDeque<(String, Vec<crate::convert::Data>)>,
}

/// What a run takes from its workflow's definition and the engine: shared, never copied.
pub(crate) struct RunSetting {
    pub(crate) entry_id: Rc<str>,
    pub(crate) namespace_of_entry: Rc<str>,
    pub(crate) modules: Rc<[String]>,
    pub(crate) activity_targets: Rc<HashMap<String, ActivityTarget>>,
    pub(crate) pid_host: Rc<str>,
}

pub(crate) struct RunCore {
    pub(crate) info: WorkflowInfo,
    pub(crate) now: SystemTime,
    pub(crate) start_time: SystemTime,
    pub(crate) replaying: bool,
    pub(crate) history_length: u32,
    pub(crate) history_size: u64,
    pub(crate) rng: DeterministicRng,
    pub(crate) tasks: Vec<Option<Task>>,
    queued: Vec<bool>,
    pub(crate) ready: VecDeque<TaskId>,
    pub(crate) current: Option<TaskId>,
    pub(crate) next_timer_seq: u32,
    pub(crate) next_activity_seq: u32,
    pub(crate) timers: FastMap<u32, TimerTarget>,
    pub(crate) activities: FastMap<u32, Rc<RefCell<FutureState>>>,
    /// Outcomes of `funcs.call`s, by call key, until the blocked task takes them.
    pub(crate) call_results: FastMap<u32, Result<crate::convert::Data, Failure>>,
    pub(crate) commands: Vec<Command>,
    /// Where in the Lua code each of `commands` was issued (`file.lua:12`), when known.
    pub(crate) sites: Vec<Option<String>>,
    /// The previous activation's commands, described, with their sites (for nondeterminism
    /// reports: Core names the diverging command, this says which Lua line issued it).
    pub(crate) last_issued: Vec<(super::engine::Issued, Option<String>)>,
    pub(crate) signals: Signals,
    pub(crate) events: Option<Channel>,
    pub(crate) held_events: Vec<(String, String)>,
    pub(crate) cancel_reason: Option<String>,
    pub(crate) deadline: Option<Instant>,
    pub(crate) deadlock_timeout: std::time::Duration,
    pub(crate) deadlocked: bool,
    pub(crate) finished: bool,
    /// The main task's coroutine once it returned: the engine reuses it for a later run when this
    /// one is evicted (nothing of this run executes after that).
    pub(crate) finished_main: Option<Thread>,
    /// `modules:` of the workflow entry.
    pub(crate) modules: Rc<[String]>,
    pub(crate) entry_id: Rc<str>,
    pub(crate) activity_targets: Rc<HashMap<String, ActivityTarget>>,
    pub(crate) namespace_of_entry: Rc<str>,
    /// Handlers registered with `workflow.on_query`.
    pub(crate) query_handlers: HashMap<String, mlua::Function>,
    /// Where each blocked task is waiting, collected by the last `__stack_trace` query.
    pub(crate) park_traces: HashMap<TaskId, String>,
    /// `client@worker`, the host part of this run's PID.
    pub(crate) pid_host: Rc<str>,
    /// Context values the run was started with.
    pub(crate) context: Option<Rc<crate::modules::ctx::ContextMap>>,
}

impl RunCore {
    pub(crate) fn new(info: WorkflowInfo, seed: u64, now: SystemTime, setting: RunSetting) -> Self {
        let RunSetting { entry_id, namespace_of_entry, modules, activity_targets, pid_host } = setting;
        RunCore {
            info,
            now,
            start_time: now,
            replaying: false,
            history_length: 0,
            history_size: 0,
            rng: DeterministicRng::new(seed),
            tasks: Vec::new(),
            queued: Vec::new(),
            ready: VecDeque::new(),
            current: None,
            next_timer_seq: 1,
            next_activity_seq: 1,
            timers: FastMap::default(),
            activities: FastMap::default(),
            call_results: FastMap::default(),
            commands: Vec::new(),
            sites: Vec::new(),
            last_issued: Vec::new(),
            signals: Signals::default(),
            events: None,
            held_events: Vec::new(),
            cancel_reason: None,
            deadline: None,
            deadlock_timeout: std::time::Duration::from_secs(1),
            deadlocked: false,
            finished: false,
            finished_main: None,
            modules,
            entry_id,
            activity_targets,
            namespace_of_entry,
            context: None,
            query_handlers: HashMap::new(),
            park_traces: HashMap::new(),
            pid_host,
        }
    }

    pub(crate) fn add_task(&mut self, thread: Thread, start_args: MultiValue) -> TaskId {
        let id = self.tasks.len();
        self.tasks.push(Some(Task { thread, start_args: Some(start_args), awaiting: None }));
        self.queued.push(false);
        self.wake(id);
        id
    }

    pub(crate) fn wake(&mut self, task: TaskId) {
        if let (Some(Some(_)), Some(queued)) = (self.tasks.get(task), self.queued.get_mut(task))
            && !*queued
        {
            *queued = true;
            self.ready.push_back(task);
        }
    }

    /// Wakes every task in `waiters` and empties it, except the running task, which stays
    /// registered (it is re-registering as it parks).
    pub(crate) fn wake_all(&mut self, waiters: &mut Vec<TaskId>) {
        let current = self.current;
        let mut keep = false;
        for task in waiters.drain(..) {
            if Some(task) == current {
                keep = true;
            } else {
                self.wake(task);
            }
        }
        if let (true, Some(task)) = (keep, current) {
            waiters.push(task);
        }
    }

    /// Takes the next ready task, returning its thread and how to resume it: with its arguments
    /// the first time, with the outcome of the blocking call it waits in once that is in.
    pub(crate) fn next_ready(&mut self) -> Option<(TaskId, Thread, Resume)> {
        while let Some(id) = self.ready.pop_front() {
            self.queued[id] = false;
            if let Some(Some(task)) = self.tasks.get_mut(id) {
                let resume = if let Some(args) = task.start_args.take() {
                    Resume::Start(args)
                } else if let Some(key) = task.awaiting
                    && let Some(outcome) = self.call_results.remove(&key)
                {
                    task.awaiting = None;
                    Resume::Outcome(key, outcome)
                } else {
                    Resume::Wake
                };
                return Some((id, task.thread.clone(), resume));
            }
        }
        None
    }

    /// The running task waits in the blocking activity call `key`.
    pub(crate) fn await_call(&mut self, key: u32) {
        if let Some(task) = self.current
            && let Some(Some(task)) = self.tasks.get_mut(task)
        {
            task.awaiting = Some(key);
        }
    }

    /// Drops a task whose coroutine returned; returns its coroutine.
    pub(crate) fn finish_task(&mut self, task: TaskId) -> Option<Thread> {
        self.park_traces.remove(&task);
        self.tasks.get_mut(task).and_then(Option::take).map(|task| task.thread)
    }

    /// Records where the running task blocks, for the `__stack_trace` query (called from inside
    /// the task, when the query resumes it with TRACE).
    pub(crate) fn record_trace(&mut self, lua: &Lua) {
        if let (Some(task), Ok(trace)) = (self.current, lua.traceback(None, 1)) {
            let trace = trace.to_string_lossy();
            let lines: Vec<&str> = trace
                .lines()
                .filter(|line| !line.contains("[C]") && !line.contains("tempest:") && !line.contains("[tempest"))
                .collect();
            self.park_traces.insert(task, lines.join("\n"));
        }
    }

    /// The PID of this run: `{client@worker|workflow_id}`.
    pub(crate) fn pid(&self) -> String {
        format!("{{{}|{}}}", self.pid_host, self.info.workflow_id)
    }

    pub(crate) fn current_task(&self) -> mlua::Result<TaskId> {
        self.current.ok_or_else(|| mlua::Error::runtime("blocking call outside of a workflow coroutine"))
    }

    /// Records a command and the Lua location that issued it.
    pub(crate) fn issue(&mut self, command: Command, site: Option<String>) {
        self.commands.push(command);
        self.sites.push(site);
    }

    pub(crate) fn next_timer(&mut self) -> u32 {
        let seq = self.next_timer_seq;
        self.next_timer_seq += 1;
        seq
    }

    pub(crate) fn next_activity(&mut self) -> u32 {
        let seq = self.next_activity_seq;
        self.next_activity_seq += 1;
        seq
    }

    /// Unix time of the activation in nanoseconds.
    pub(crate) fn now_nanos(&self) -> i128 {
        match self.now.duration_since(SystemTime::UNIX_EPOCH) {
            Ok(d) => d.as_nanos() as i128,
            Err(e) => -(e.duration().as_nanos() as i128),
        }
    }

    /// Routes a signal to its listener, the inbox, or holds it until one appears.
    pub(crate) fn deliver_signal(
        &mut self,
        lua: &Lua,
        name: String,
        args: Vec<crate::convert::Data>,
    ) -> mlua::Result<()> {
        if let Some((channel, as_message)) = self.signals.listeners.get(&name).cloned() {
            let value = if as_message {
                super::api::message_value(lua, &name, args)?
            } else {
                super::api::signal_value(lua, &args)?
            };
            channel.push(self, value);
            return Ok(());
        }
        if let Some(inbox) = self.signals.inbox.clone() {
            let value = super::api::message_value(lua, &name, args)?;
            inbox.push(self, value);
            return Ok(());
        }
        self.signals.held.push_back((name, args));
        Ok(())
    }
}
