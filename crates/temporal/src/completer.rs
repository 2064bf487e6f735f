//! Sends completions to Core from a pool of long-lived tasks instead of a new task each.
//!
//! Core's completion futures are large: about 9 KB for a workflow activation's, 3.7 KB for an
//! activity task's (each holds a whole gRPC call). Spawned as a task of its own, such a future is
//! copied several times over its life: into the new task, into the task's heap cell, out of its
//! stage when it finishes and is joined. On the benchmark those copies were a seventh of the
//! worker's instructions. A completer task awaits one completion after another in its own state,
//! so nothing is spawned or allocated per completion.
//!
//! Completions never wait for each other: when every completer is busy, one more is started, and
//! the pool keeps it (it grows to the most completions ever in flight at once). The completer that
//! went idle last is woken first: its state is the likeliest to still be in the CPU's cache.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::pin;
use std::sync::{Arc, Mutex, PoisonError};

use temporalio_common::protos::coresdk::ActivityTaskCompletion;
use temporalio_common::protos::coresdk::workflow_completion::WorkflowActivationCompletion;
use temporalio_sdk_core::Worker;
use tokio::sync::Notify;
use tokio::task::JoinSet;

/// One kind of completion, and how Core takes it.
pub trait Deliver: Clone + Send + Sync + 'static {
    type Completion: Send + 'static;
    type Error: std::fmt::Display;
    /// What failed, for the warning: "completing a workflow activation".
    const WHAT: &'static str;

    /// Core's own future, returned as it is: a completer awaits it in place. Wrapped in an
    /// `async fn`, the whole future (kilobytes) would be copied once more per completion.
    fn deliver(&self, completion: Self::Completion) -> impl Future<Output = Result<(), Self::Error>> + Send;
}

/// Workflow activation completions.
#[derive(Clone)]
pub struct Activations(pub Arc<Worker>);

impl Deliver for Activations {
    type Completion = WorkflowActivationCompletion;
    type Error = temporalio_sdk_core::CompleteWfError;
    const WHAT: &'static str = "completing a workflow activation";

    fn deliver(
        &self,
        completion: WorkflowActivationCompletion,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send {
        self.0.complete_workflow_activation(completion)
    }
}

/// Activity task completions.
#[derive(Clone)]
pub struct ActivityTasks(pub Arc<Worker>);

impl Deliver for ActivityTasks {
    type Completion = ActivityTaskCompletion;
    type Error = temporalio_sdk_core::CompleteActivityError;
    const WHAT: &'static str = "completing an activity task";

    fn deliver(&self, completion: ActivityTaskCompletion) -> impl Future<Output = Result<(), Self::Error>> + Send {
        self.0.complete_activity_task(completion)
    }
}

/// Delivers one completion, and logs its failure.
pub async fn deliver_one<D: Deliver>(deliver: &D, completion: D::Completion) {
    report::<D>(deliver.deliver(completion).await);
}

/// Logs a failed delivery (a warning, as before the pool: nothing else can be done with it).
fn report<D: Deliver>(delivered: Result<(), D::Error>) {
    if let Err(e) = delivered {
        tracing::warn!("{} failed: {e}", D::WHAT);
    }
}

struct Queue<T> {
    waiting: VecDeque<T>,
    /// Completers waiting for work that no `send` has claimed yet.
    idle: usize,
    closed: bool,
}

struct Shared<T> {
    queue: Mutex<Queue<T>>,
    wake: Notify,
}

impl<T> Shared<T> {
    fn queue(&self) -> std::sync::MutexGuard<'_, Queue<T>> {
        // The lock is never held across code that can panic.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The pool, owned by the poll loop that produces the completions.
pub struct Completer<D: Deliver> {
    deliver: D,
    shared: Arc<Shared<D::Completion>>,
    tasks: JoinSet<()>,
    /// Completers are local tasks (the caller runs inside a `LocalSet`), beside the poll loop.
    local: bool,
}

impl<D: Deliver> Completer<D> {
    pub fn new(deliver: D) -> Self {
        let queue = Queue { waiting: VecDeque::new(), idle: 0, closed: false };
        let shared = Arc::new(Shared { queue: Mutex::new(queue), wake: Notify::new() });
        Completer { deliver, shared, tasks: JoinSet::new(), local: false }
    }

    /// A pool whose completers are local tasks: the caller runs inside a `LocalSet`.
    pub fn local(deliver: D) -> Self {
        Completer { local: true, ..Completer::new(deliver) }
    }

    /// Hands `completion` to an idle completer, or to a new one if none is idle.
    pub fn send(&mut self, completion: D::Completion) {
        let claimed = {
            let mut queue = self.shared.queue();
            queue.waiting.push_back(completion);
            let claimed = queue.idle > 0;
            if claimed {
                queue.idle -= 1;
            }
            claimed
        };
        if claimed {
            self.shared.wake.notify_last();
        } else {
            let completer = run(self.deliver.clone(), self.shared.clone());
            if self.local {
                self.tasks.spawn_local(completer);
            } else {
                self.tasks.spawn(completer);
            }
        }
    }

    /// Waits until every completion sent so far has been delivered, and stops the completers.
    pub async fn close(mut self) {
        self.shared.queue().closed = true;
        self.shared.wake.notify_waiters();
        while self.tasks.join_next().await.is_some() {}
    }
}

/// One completer: delivers the oldest waiting completion, until the pool is closed.
async fn run<D: Deliver>(deliver: D, shared: Arc<Shared<D::Completion>>) {
    let mut slot = Slot::empty();
    loop {
        let mut wake = pin!(shared.wake.notified());
        let next = {
            let mut queue = shared.queue();
            let next = queue.waiting.pop_front();
            if next.is_none() {
                if queue.closed {
                    return;
                }
                queue.idle += 1;
                // Registered before the lock is released, so no `send` can miss this completer.
                wake.as_mut().enable();
            }
            next
        };
        match next {
            Some(completion) => {
                slot.put(deliver.deliver(completion));
                report::<D>(slot.finish().await);
            }
            None => wake.await,
        }
    }
}

/// Where a completer keeps the future it awaits: one heap cell per completer, reused for every
/// completion. The future is polled where it lies and dropped there.
///
/// Core's completion futures are kilobytes, most of it room for states they reach later. Awaited
/// directly, each lived in the completer task's own state. Kept in this cell instead, they cost
/// the worker about 940 fewer cache misses per workflow, 3% of all (cachegrind through
/// `bench/profile`, bench/RESULTS.md), although each is now built on the stack and copied into the cell.
#[allow(unsafe_code)]
mod slot {
    use std::future::Future;
    use std::mem::MaybeUninit;
    use std::pin::Pin;

    pub struct Slot<F: Future> {
        cell: Option<Box<MaybeUninit<F>>>,
        /// The cell holds a future that was not dropped yet.
        full: bool,
    }

    impl<F: Future> Slot<F> {
        pub fn empty() -> Self {
            Slot { cell: None, full: false }
        }

        /// Stores `future` in the cell.
        pub fn put(&mut self, future: F) {
            // A future left over from a cancelled `finish` is dropped first.
            self.clear();
            self.cell.get_or_insert_with(Box::new_uninit).write(future);
            self.full = true;
        }

        /// Awaits the future in the cell, then drops it there.
        pub async fn finish(&mut self) -> F::Output {
            let output = std::future::poll_fn(|cx| {
                let Some(cell) = self.cell.as_mut().filter(|_| self.full) else {
                    panic!("Slot::finish without a future");
                };
                // SAFETY: the cell holds an initialized future (written by `put`, not yet dropped:
                // `full`), and it is never moved out of its heap cell: it is only polled in place
                // here, then dropped in place by `clear`, before `put` writes the cell again.
                let future = unsafe { Pin::new_unchecked(cell.assume_init_mut()) };
                future.poll(cx)
            })
            .await;
            self.clear();
            output
        }

        fn clear(&mut self) {
            if let Some(cell) = self.cell.as_mut()
                && self.full
            {
                self.full = false;
                // SAFETY: `full` says the cell holds an initialized future that was not dropped.
                unsafe { cell.assume_init_drop() };
            }
        }
    }

    impl<F: Future> Drop for Slot<F> {
        fn drop(&mut self) {
            self.clear();
        }
    }
}

use slot::Slot;

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use tokio::sync::Semaphore;

    use super::*;

    /// Delivers numbers once a permit is released, and records them.
    #[derive(Clone)]
    struct Gate {
        started: Arc<AtomicUsize>,
        release: Arc<Semaphore>,
        delivered: Arc<Mutex<Vec<u32>>>,
    }

    impl Deliver for Gate {
        type Completion = u32;
        type Error = std::convert::Infallible;
        const WHAT: &'static str = "delivering a number";

        async fn deliver(&self, completion: u32) -> Result<(), Self::Error> {
            self.started.fetch_add(1, Ordering::SeqCst);
            self.release.acquire().await.expect("gate open").forget();
            self.delivered.lock().expect("not poisoned").push(completion);
            Ok(())
        }
    }

    impl Default for Gate {
        fn default() -> Self {
            Gate { started: Arc::default(), release: Arc::new(Semaphore::new(0)), delivered: Arc::default() }
        }
    }

    impl Gate {
        fn delivered(&self) -> Vec<u32> {
            self.delivered.lock().expect("not poisoned").clone()
        }
    }

    async fn until(what: &str, condition: impl Fn() -> bool) {
        tokio::time::timeout(Duration::from_secs(5), async {
            while !condition() {
                tokio::task::yield_now().await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("timed out waiting until {what}"));
    }

    fn on_local_set(test: impl Future<Output = ()>) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        tokio::task::LocalSet::new().block_on(&runtime, test);
    }

    /// Pending on its first poll, ready on its second; records where it was polled and counts
    /// its drops.
    struct Probe {
        polled_at: Arc<Mutex<Vec<usize>>>,
        drops: Arc<AtomicUsize>,
    }

    impl Future for Probe {
        type Output = usize;

        fn poll(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<usize> {
            let mut polled_at = self.polled_at.lock().expect("not poisoned");
            polled_at.push(&*self as *const Probe as usize);
            if polled_at.len() == 1 {
                cx.waker().wake_by_ref();
                std::task::Poll::Pending
            } else {
                std::task::Poll::Ready(polled_at.len())
            }
        }
    }

    impl Drop for Probe {
        fn drop(&mut self) {
            self.drops.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn probe() -> (Probe, Arc<Mutex<Vec<usize>>>, Arc<AtomicUsize>) {
        let (polled_at, drops) = (Arc::default(), Arc::default());
        (Probe { polled_at: Arc::clone(&polled_at), drops: Arc::clone(&drops) }, polled_at, drops)
    }

    #[test]
    fn a_slot_polls_its_future_in_place_and_drops_it_once() {
        on_local_set(async {
            let mut slot = Slot::empty();
            for _ in 0..2 {
                let (future, polled_at, drops) = probe();
                slot.put(future);
                assert_eq!(slot.finish().await, 2);
                let polled_at = polled_at.lock().expect("not poisoned").clone();
                assert_eq!(polled_at.len(), 2);
                assert_eq!(polled_at[0], polled_at[1], "the future never moved between polls");
                assert_eq!(drops.load(Ordering::SeqCst), 1);
            }
        });
    }

    #[test]
    fn a_slot_dropped_while_its_future_waits_drops_the_future() {
        on_local_set(async {
            let (future, polled_at, drops) = probe();
            let mut slot = Slot::empty();
            slot.put(future);
            assert!(futures::poll!(std::pin::pin!(slot.finish())).is_pending());
            assert_eq!(polled_at.lock().expect("not poisoned").len(), 1);
            assert_eq!(drops.load(Ordering::SeqCst), 0);
            drop(slot);
            assert_eq!(drops.load(Ordering::SeqCst), 1);
        });
    }

    #[test]
    fn a_completion_never_waits_for_another() {
        on_local_set(async {
            let gate = Gate::default();
            let mut completer = Completer::local(gate.clone());
            for n in 1..=3 {
                completer.send(n);
            }
            until("all three are being delivered at once", || gate.started.load(Ordering::SeqCst) == 3).await;
            assert_eq!(completer.tasks.len(), 3);
            gate.release.add_permits(3);
            completer.close().await;
            let mut delivered = gate.delivered();
            delivered.sort_unstable();
            assert_eq!(delivered, [1, 2, 3]);
        });
    }

    #[test]
    fn an_idle_completer_is_reused() {
        on_local_set(async {
            let gate = Gate::default();
            gate.release.add_permits(10);
            let mut completer = Completer::local(gate.clone());
            for n in 1..=10 {
                completer.send(n);
                until("the completion is delivered", || gate.delivered().len() == n as usize).await;
            }
            assert_eq!(completer.tasks.len(), 1, "one completer is enough for one completion at a time");
            completer.close().await;
            assert_eq!(gate.delivered(), (1..=10).collect::<Vec<_>>());
        });
    }

    #[test]
    fn close_delivers_every_queued_completion_on_a_multi_thread_runtime() {
        let runtime =
            tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
        runtime.block_on(async {
            let gate = Gate::default();
            let mut completer = Completer::new(gate.clone());
            for n in 1..=5 {
                completer.send(n);
            }
            gate.release.add_permits(5);
            completer.close().await;
            let mut delivered = gate.delivered();
            delivered.sort_unstable();
            assert_eq!(delivered, [1, 2, 3, 4, 5]);
        });
    }
}
