//! The activity half of a worker: each activity task runs its Lua function on a blocking thread
//! (Lua code may block on I/O), with one Lua VM per thread and worker. Cancellation requests (from
//! the server, or at worker shutdown after `worker_stop_timeout`) set the call's flag, which
//! `activity.cancelled()` reads and `http_client` obeys.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tempest_lua::modules::activity::{ActivityCall, ActivityInfo};
use temporalio_common::protos::coresdk::ActivityHeartbeat;

use tempest_lua::activity::{ActivityVm, CatalogFunction, FunctionCatalog};
use tempest_lua::failure::{Failure, Kind};
use temporalio_common::protos::coresdk::ActivityTaskCompletion;
use temporalio_common::protos::coresdk::activity_result::ActivityExecutionResult;
use temporalio_common::protos::coresdk::activity_task::activity_task::Variant as TaskVariant;
use temporalio_sdk_core::{PollError, Worker};

use crate::completer::{ActivityTasks, Completer};
use crate::failure::to_proto;
use crate::payload::{context_from_headers, from_payloads, to_payload};
use crate::stats::LuaStats;

thread_local! {
    /// Activity VMs of this thread, each with the address of its worker's catalog (one catalog per
    /// worker, and rarely more than one worker per process: a short list beats hashing).
    static VMS: RefCell<Vec<(usize, ActivityVm)>> = const { RefCell::new(Vec::new()) };
}

type Start = temporalio_common::protos::coresdk::activity_task::Start;

/// Cancellation flags of running activities, by task token.
type Running = Arc<Mutex<HashMap<Vec<u8>, Arc<AtomicBool>>>>;

fn unix_seconds(ts: Option<&prost_wkt_types::Timestamp>) -> Option<f64> {
    ts.map(|t| t.seconds as f64 + f64::from(t.nanos) / 1e9)
}

fn activity_info(start: &Start, task_queue: &str) -> ActivityInfo {
    let execution = start.workflow_execution.as_ref();
    let deadline = start
        .start_to_close_timeout
        .and_then(|d| std::time::Duration::try_from(d).ok())
        .zip(unix_seconds(start.started_time.as_ref()))
        .map(|(timeout, started)| started + timeout.as_secs_f64());
    ActivityInfo {
        activity_id: start.activity_id.clone(),
        activity_type: start.activity_type.clone(),
        attempt: start.attempt,
        workflow_id: execution.map(|e| e.workflow_id.clone()).unwrap_or_default(),
        run_id: execution.map(|e| e.run_id.clone()).unwrap_or_default(),
        workflow_type: start.workflow_type.clone(),
        task_queue: task_queue.to_owned(),
        heartbeat_details: start.heartbeat_details.first().and_then(|p| crate::payload::from_payload(p).ok()),
        scheduled_time: unix_seconds(start.scheduled_time.as_ref()),
        deadline,
    }
}

/// Runs the task's Lua function on this thread's VM; its time goes into `stats`.
fn run_on_this_thread(
    catalog: &Arc<FunctionCatalog>,
    function: Option<CatalogFunction<'_>>,
    start: &Start,
    call: Option<ActivityCall>,
    stats: &LuaStats,
) -> Result<tempest_lua::convert::Data, Failure> {
    let began = std::time::Instant::now();
    let outcome = match function {
        Some(function) => call_function(catalog, function, start, call, stats),
        None => Err(not_registered(catalog, &start.activity_type)),
    };
    stats.record_activity(began.elapsed());
    outcome
}

fn not_registered(catalog: &FunctionCatalog, activity_type: &str) -> Failure {
    let mut known: Vec<&str> = catalog.ids().collect();
    known.sort_unstable();
    Failure::new(
        Kind::NOT_FOUND,
        format!("activity type `{activity_type}` is not registered on this worker (registered: {})", known.join(", ")),
    )
    .with_retryable(Some(false))
}

fn call_function(
    catalog: &Arc<FunctionCatalog>,
    function: CatalogFunction<'_>,
    start: &Start,
    call: Option<ActivityCall>,
    stats: &LuaStats,
) -> Result<tempest_lua::convert::Data, Failure> {
    let args = from_payloads(&start.input, "argument").map_err(Failure::invalid)?;
    let context = context_from_headers(&start.header_fields);
    let key = Arc::as_ptr(catalog) as usize;
    VMS.with(|vms| {
        let mut vms = vms.borrow_mut();
        let at = match vms.iter().position(|(of, _)| *of == key) {
            Some(at) => at,
            None => {
                stats.record_activity_vm();
                let vm = ActivityVm::new(catalog.clone())
                    .map_err(|e| Failure::internal(format!("cannot start the activity Lua VM: {e}")))?;
                vms.push((key, vm));
                vms.len() - 1
            }
        };
        vms[at].1.call_function(function, &args, context, call)
    })
}

/// Starts the activity poll loop: on a current-thread runtime as a local task (the caller must be
/// inside a `LocalSet`), beside the workflow loop, with local completers; else as a task of the
/// runtime. The task ends with the loop, after every completion was sent.
pub fn spawn_poll_loop(
    worker: Arc<Worker>,
    catalog: Arc<FunctionCatalog>,
    stats: Arc<LuaStats>,
    task_queue: Arc<str>,
) -> tokio::task::JoinHandle<Result<(), PollError>> {
    if crate::on_current_thread_runtime() {
        let completer = Completer::local(ActivityTasks(worker.clone()));
        tokio::task::spawn_local(poll_loop(worker, catalog, stats, task_queue, completer))
    } else {
        let completer = Completer::new(ActivityTasks(worker.clone()));
        tokio::spawn(poll_loop(worker, catalog, stats, task_queue, completer))
    }
}

/// Polls activity tasks until Core reports shutdown.
async fn poll_loop(
    worker: Arc<Worker>,
    catalog: Arc<FunctionCatalog>,
    stats: Arc<LuaStats>,
    task_queue: Arc<str>,
    mut completer: Completer<ActivityTasks>,
) -> Result<(), PollError> {
    let running: Running = Arc::default();
    // Pure Lua activities run to completion before the next poll, so no cancellation can reach
    // them while they run: they share one flag that stays down.
    let never_cancelled = Arc::new(AtomicBool::new(false));
    let result = loop {
        let task = match worker.poll_activity_task().await {
            Ok(task) => task,
            Err(PollError::ShutDown) => break Ok(()),
            Err(e) => break Err(e),
        };
        let task_token = task.task_token;
        match task.variant {
            // Pure Lua (no module that can wait) runs right here: a task or the blocking pool
            // would cost more than the call. Only the completion waits for the server.
            Some(TaskVariant::Start(start))
                if let Some(function) = catalog.get(&start.activity_type).filter(|f| !f.may_block()) =>
            {
                let (task_token, outcome) =
                    run_inline(&worker, &catalog, function, &stats, &task_queue, task_token, start, &never_cancelled);
                completer.send(completion(task_token, outcome, false));
            }
            Some(TaskVariant::Start(start)) => {
                let cancelled = Arc::new(AtomicBool::new(false));
                if let Ok(mut map) = running.lock() {
                    map.insert(task_token.clone(), cancelled.clone());
                }
                let job = Job {
                    worker: worker.clone(),
                    catalog: catalog.clone(),
                    stats: stats.clone(),
                    running: running.clone(),
                    task_queue: task_queue.clone(),
                };
                tokio::spawn(execute(job, task_token, start, cancelled));
            }
            // Lua cannot be preempted: the flag tells the code (and aborts its HTTP calls); the call
            // still completes itself.
            Some(TaskVariant::Cancel(cancel)) => {
                tracing::debug!(reason = ?cancel.reason(), "activity cancellation requested");
                if let Some(flag) = running.lock().ok().and_then(|map| map.get(&task_token).cloned()) {
                    flag.store(true, Ordering::Relaxed);
                }
            }
            None => {}
        }
    };
    completer.close().await;
    result
}

/// Runs a pure Lua activity on this thread; returns the task token with the outcome.
#[allow(clippy::too_many_arguments)]
fn run_inline(
    worker: &Arc<Worker>,
    catalog: &Arc<FunctionCatalog>,
    function: CatalogFunction<'_>,
    stats: &LuaStats,
    task_queue: &Arc<str>,
    task_token: Vec<u8>,
    start: Start,
    never_cancelled: &Arc<AtomicBool>,
) -> (Vec<u8>, Result<tempest_lua::convert::Data, Failure>) {
    // Most functions never look at their call (no `activity` or `http_client` module): they get
    // none, and the task is not moved to the heap for one (it is over a kilobyte).
    if !function.reads_call() {
        let outcome = run_on_this_thread(catalog, Some(function), &start, None, stats);
        log_failure(&start.activity_type, &outcome);
        return (task_token, outcome);
    }
    let start = Rc::new(start);
    // Shared with the heartbeat function, and whole again once the call (and its app data) is gone.
    let token = Rc::new(task_token);
    let call = activity_call(worker.clone(), start.clone(), task_queue.clone(), token.clone(), never_cancelled.clone());
    let outcome = run_on_this_thread(catalog, Some(function), &start, Some(call), stats);
    log_failure(&start.activity_type, &outcome);
    let token = Rc::try_unwrap(token).unwrap_or_else(|shared| shared.to_vec());
    (token, outcome)
}

fn log_failure(activity_type: &str, outcome: &Result<tempest_lua::convert::Data, Failure>) {
    if let Err(failure) = outcome {
        tracing::debug!(activity_type, "activity failed: {}", failure.message);
    }
}

/// What the `activity` module reads for one task: its facts (built when asked), heartbeats sent
/// to Core, and its cancellation flag.
fn activity_call(
    worker: Arc<Worker>,
    start: Rc<Start>,
    task_queue: Arc<str>,
    task_token: Rc<Vec<u8>>,
    cancelled: Arc<AtomicBool>,
) -> ActivityCall {
    ActivityCall {
        info: Rc::new(move || activity_info(&start, &task_queue)),
        heartbeat: Rc::new(move |details: Option<tempest_lua::convert::Data>| {
            worker.record_activity_heartbeat(ActivityHeartbeat {
                task_token: task_token.to_vec(),
                details: details.iter().map(to_payload).collect(),
            });
        }),
        cancelled,
    }
}

fn completion(
    task_token: Vec<u8>,
    outcome: Result<tempest_lua::convert::Data, Failure>,
    cancelled: bool,
) -> ActivityTaskCompletion {
    let result = match outcome {
        Ok(data) => ActivityExecutionResult::ok(to_payload(&data)),
        Err(failure) if cancelled && failure.kind == Kind::CANCELED => {
            ActivityExecutionResult::cancel(to_proto(&failure))
        }
        Err(failure) => ActivityExecutionResult::fail(to_proto(&failure)),
    };
    ActivityTaskCompletion { task_token, result: Some(result) }
}

/// What every activity task of a worker shares.
struct Job {
    worker: Arc<Worker>,
    catalog: Arc<FunctionCatalog>,
    stats: Arc<LuaStats>,
    running: Running,
    task_queue: Arc<str>,
}

/// Runs one activity task whose Lua code may block on the blocking pool, and completes it.
async fn execute(job: Job, task_token: Vec<u8>, start: Start, cancelled: Arc<AtomicBool>) {
    let Job { worker, catalog, stats, running, task_queue } = job;
    let activity_type = start.activity_type.clone();
    let call_worker = worker.clone();
    let call_token = task_token.clone();
    let flag = cancelled.clone();
    let run = move || {
        let start = Rc::new(start);
        let call = activity_call(call_worker, start.clone(), task_queue, Rc::new(call_token), flag);
        run_on_this_thread(&catalog, catalog.get(&start.activity_type), &start, Some(call), &stats)
    };
    let outcome = tokio::task::spawn_blocking(run)
        .await
        .unwrap_or_else(|e| Err(Failure::internal(format!("activity thread panicked: {e}"))));
    if let Ok(mut map) = running.lock() {
        map.remove(&task_token);
    }
    log_failure(&activity_type, &outcome);
    let completion = completion(task_token, outcome, cancelled.load(Ordering::Relaxed));
    crate::completer::deliver_one(&ActivityTasks(worker), completion).await;
}
