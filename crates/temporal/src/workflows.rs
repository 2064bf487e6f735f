//! The workflow half of a worker: one thread owns the Lua engine (Lua states are not `Send`) and
//! runs the worker's workflow poll loop, so an activation is processed where it was polled,
//! without a hand-off. On a current-thread runtime (`tempest run`) that is the runtime's own
//! thread; on a multi-thread runtime the loop gets a dedicated thread with a single-threaded
//! runtime. Replay drives the engine through [`WorkflowHost`] instead. Polling is serial,
//! completion is concurrent, as Core requires.

use std::sync::Arc;
use std::sync::mpsc;
use std::thread;

use tempest_lua::workflow::{Completion, EngineConfig, TaskFailure, WorkflowEngine};
use temporalio_common::protos::coresdk::workflow_activation::{
    WorkflowActivation, remove_from_cache::EvictionReason, workflow_activation_job::Variant as JobVariant,
};
use temporalio_common::protos::coresdk::workflow_completion::WorkflowActivationCompletion;
use temporalio_common::protos::temporal::api::failure::v1::Failure as ProtoFailure;
use temporalio_sdk_core::{PollError, Worker};
use tokio::sync::oneshot;

use crate::activation::{RunContext, Translated, commands, translate};
use crate::completer::{Activations, Completer};
use crate::parking::{JobKeys, Parking, Wake};
use crate::stats::LuaStats;

/// The completion, and for a nondeterminism eviction the Lua lines of the diverging run's last
/// commands.
pub type Outcome = (WorkflowActivationCompletion, Option<String>);

type Reply = oneshot::Sender<Outcome>;

/// Handle to the thread running the Lua workflow engine.
#[derive(Debug, Clone)]
pub struct WorkflowHost {
    sender: mpsc::Sender<(WorkflowActivation, Reply)>,
}

impl WorkflowHost {
    /// Starts the engine thread; fails if a workflow source does not compile.
    pub fn start(name: &str, config: EngineConfig, context: RunContext, stats: Arc<LuaStats>) -> Result<Self, String> {
        let (sender, receiver) = mpsc::channel::<(WorkflowActivation, Reply)>();
        spawn_engine_thread(name, config, Ok, move |mut engine| {
            let mut parking = Parking::new(0);
            while let Ok((activation, reply)) = receiver.recv() {
                let _ = reply.send(process_measured(&mut engine, &mut parking, activation, &context, &stats));
            }
        })?;
        Ok(WorkflowHost { sender })
    }

    /// Runs one activation on the engine thread.
    pub async fn activate(&self, activation: WorkflowActivation) -> Outcome {
        let run_id = activation.run_id.clone();
        let stopped = |run_id| (task_failure(run_id, "the workflow engine thread has stopped".into()), None);
        let (reply, response) = oneshot::channel();
        if self.sender.send((activation, reply)).is_err() {
            return stopped(run_id);
        }
        response.await.unwrap_or_else(|_| stopped(run_id))
    }
}

fn task_failure(run_id: String, message: String) -> WorkflowActivationCompletion {
    WorkflowActivationCompletion::fail(run_id, ProtoFailure::application_failure(message, false), None)
}

/// [`process`], with its time and the VM's memory recorded in `stats`.
fn process_measured(
    engine: &mut WorkflowEngine,
    parking: &mut Parking,
    activation: WorkflowActivation,
    context: &RunContext,
    stats: &LuaStats,
) -> Outcome {
    let began = std::time::Instant::now();
    let outcome = process(engine, parking, activation, context);
    stats.record_activation(began.elapsed());
    stats.record_workflow_memory(engine.used_memory(), engine.cached_runs());
    if parking.enabled() {
        stats.record_parking(parking.stats, parking.parked_runs());
    }
    outcome
}

fn process(
    engine: &mut WorkflowEngine,
    parking: &mut Parking,
    mut activation: WorkflowActivation,
    context: &RunContext,
) -> Outcome {
    // Kept for the completion; everything before it borrows the ID.
    let run_id = std::mem::take(&mut activation.run_id);
    let jobs = parking.enabled().then(|| parking.job_keys(&activation));
    let completion = complete(engine, parking, run_id, activation, jobs.as_ref(), context);
    if let Some(jobs) = jobs {
        parking.recycle(jobs);
    }
    completion
}

/// [`process`] once the run ID is taken out of `activation` and its job keys are read (if the
/// worker parks runs).
fn complete(
    engine: &mut WorkflowEngine,
    parking: &mut Parking,
    run_id: String,
    activation: WorkflowActivation,
    jobs: Option<&JobKeys>,
    context: &RunContext,
) -> Outcome {
    if let Some(jobs) = jobs
        && !is_eviction(&activation)
    {
        match parking.before(&run_id, &activation, jobs) {
            Wake::Pass => {}
            Wake::Answer(commands) => return (WorkflowActivationCompletion::from_cmds(run_id, commands), None),
            Wake::Rebuild(seen) => {
                // Replayed through a fresh run, exactly as if the run had never been parked; the
                // answers were given already, from the log.
                engine.evict(&run_id);
                for replayed in seen {
                    process(engine, parking, replayed, context);
                }
            }
        }
    }
    let (translated, mut query_answers) = translate(&run_id, activation, context);
    let completion = match translated {
        Translated::Evict { reason, message } => {
            let (parked, dropped) = parking.evict(&run_id, reason == EvictionReason::CacheFull);
            for id in dropped {
                engine.evict(&id);
            }
            if parked {
                tracing::debug!(run_id = %run_id, "workflow run parked: {reason:?}: {message}");
                return (WorkflowActivationCompletion::empty(run_id), None);
            }
            let issued = engine.evict(&run_id);
            if reason == EvictionReason::Nondeterminism {
                let diagnosis = format!(
                    "workflow code diverged from its history: {reason:?}: {message}; the current code issued: {}",
                    if issued.is_empty() { "no commands".to_owned() } else { issued.to_string() }
                );
                tracing::error!(run_id = %run_id, "{diagnosis}");
                return (WorkflowActivationCompletion::empty(run_id), Some(diagnosis));
            }
            tracing::debug!(run_id = %run_id, "workflow run evicted: {reason:?}: {message}");
            WorkflowActivationCompletion::empty(run_id)
        }
        Translated::Immediate(commands) => WorkflowActivationCompletion::from_cmds(run_id, commands),
        Translated::TaskFailure(message) => {
            tracing::error!(run_id = %run_id, "workflow task failed: {message}");
            task_failure(run_id, message)
        }
        Translated::Run(activation) => match engine.activate_run(&run_id, activation) {
            Completion::Commands(issued) => {
                let mut all = commands(issued, context);
                if let Some(jobs) = jobs {
                    parking.record(&run_id, jobs, &all);
                }
                all.append(&mut query_answers);
                WorkflowActivationCompletion::from_cmds(run_id, all)
            }
            Completion::Failed(TaskFailure::Deadlock { message })
            | Completion::Failed(TaskFailure::Other { message }) => {
                tracing::error!(run_id = %run_id, "workflow task failed: {message}");
                task_failure(run_id, message)
            }
        },
    };
    (completion, None)
}

fn is_eviction(activation: &WorkflowActivation) -> bool {
    activation.jobs.iter().any(|job| matches!(job.variant, Some(JobVariant::RemoveFromCache(_))))
}

/// Starts the engine and the workflow poll loop of a live worker: as a local task when the current
/// runtime is single-threaded (the caller must be inside a `LocalSet`), else on a thread of its
/// own. The returned task ends with the loop (at shutdown, after every completion was sent).
/// Fails if a workflow source does not compile or the thread cannot start.
pub fn spawn_poll_loop(
    name: &str,
    worker: Arc<Worker>,
    config: EngineConfig,
    max_parked: usize,
    context: RunContext,
    stats: Arc<LuaStats>,
) -> Result<tokio::task::JoinHandle<Result<(), PollError>>, String> {
    if crate::on_current_thread_runtime() {
        let engine = WorkflowEngine::new(config).map_err(|e| e.to_string())?;
        return Ok(tokio::task::spawn_local(local_poll_loop(worker, engine, Parking::new(max_parked), context, stats)));
    }
    let (done_tx, done_rx) = oneshot::channel::<Result<(), PollError>>();
    let with_runtime = |engine| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the workflow thread's runtime: {e}"))?;
        Ok((engine, runtime))
    };
    spawn_engine_thread(name, config, with_runtime, move |(engine, runtime)| {
        let local = tokio::task::LocalSet::new();
        let result =
            local.block_on(&runtime, local_poll_loop(worker, engine, Parking::new(max_parked), context, stats));
        let _ = done_tx.send(result);
    })?;
    Ok(tokio::spawn(async move { done_rx.await.unwrap_or(Ok(())) }))
}

/// Starts the thread `lua-workflows-<name>`, which builds the engine, prepares it with `setup`
/// and then runs `body`; returns once `setup` is done, with its error if the engine or the setup
/// failed.
fn spawn_engine_thread<S>(
    name: &str,
    config: EngineConfig,
    setup: impl FnOnce(WorkflowEngine) -> Result<S, String> + Send + 'static,
    body: impl FnOnce(S) + Send + 'static,
) -> Result<(), String> {
    let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
    thread::Builder::new()
        .name(format!("lua-workflows-{name}"))
        .spawn(move || match WorkflowEngine::new(config).map_err(|e| e.to_string()).and_then(setup) {
            Ok(prepared) => {
                let _ = ready_tx.send(Ok(()));
                body(prepared);
            }
            Err(e) => {
                let _ = ready_tx.send(Err(e));
            }
        })
        .map_err(|e| format!("cannot start the workflow thread: {e}"))?;
    ready_rx.recv().map_err(|_| "the workflow thread stopped while starting".to_owned())?
}

async fn local_poll_loop(
    worker: Arc<Worker>,
    mut engine: WorkflowEngine,
    mut parking: Parking,
    context: RunContext,
    stats: Arc<LuaStats>,
) -> Result<(), PollError> {
    let mut completer = Completer::local(Activations(worker.clone()));
    let result = loop {
        let activation = match worker.poll_workflow_activation().await {
            Ok(activation) => activation,
            Err(PollError::ShutDown) => break Ok(()),
            Err(e) => break Err(e),
        };
        let (completion, _) = process_measured(&mut engine, &mut parking, activation, &context, &stats);
        completer.send(completion);
    };
    completer.close().await;
    result
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tempest_lua::workflow::WorkflowCode;
    use temporalio_common::protos::coresdk::workflow_activation::{
        InitializeWorkflow, RemoveFromCache, SignalWorkflow, WorkflowActivationJob, remove_from_cache::EvictionReason,
    };
    use temporalio_common::protos::coresdk::workflow_commands::workflow_command::Variant as CommandVariant;
    use temporalio_common::protos::coresdk::workflow_completion::workflow_activation_completion::Status;
    use temporalio_common::protos::temporal::api::common::v1::Payload;

    use super::*;

    const TWO_SIGNALS: &str = r#"
return { main = function()
  local a = process.listen("a"):receive()
  local b = process.listen("b"):receive()
  return a .. b
end }
"#;

    fn engine() -> WorkflowEngine {
        WorkflowEngine::new(EngineConfig {
            workflows: vec![WorkflowCode {
                type_name: "test:wf".into(),
                entry_id: "test:wf".into(),
                chunk_name: "wf.lua".into(),
                source: TWO_SIGNALS.into(),
                method: "main".into(),
                modules: vec![],
            }],
            activities: Default::default(),
            deadlock_timeout: Duration::from_secs(1),
            pid_host: "c@w".into(),
        })
        .expect("engine")
    }

    fn activation(replaying: bool, jobs: Vec<JobVariant>) -> WorkflowActivation {
        WorkflowActivation {
            run_id: "run".into(),
            is_replaying: replaying,
            jobs: jobs.into_iter().map(|variant| WorkflowActivationJob { variant: Some(variant) }).collect(),
            ..Default::default()
        }
    }

    fn init() -> JobVariant {
        JobVariant::InitializeWorkflow(InitializeWorkflow {
            workflow_type: "test:wf".into(),
            workflow_id: "wf".into(),
            ..Default::default()
        })
    }

    fn signal(name: &str, value: &str) -> JobVariant {
        JobVariant::SignalWorkflow(SignalWorkflow {
            signal_name: name.into(),
            input: vec![Payload {
                metadata: [("encoding".to_owned(), b"json/plain".to_vec())].into(),
                data: serde_json::to_vec(value).expect("json"),
                ..Default::default()
            }],
            ..Default::default()
        })
    }

    fn evict_for_room() -> JobVariant {
        JobVariant::RemoveFromCache(RemoveFromCache {
            reason: EvictionReason::CacheFull.into(),
            message: "full".into(),
        })
    }

    fn commands(outcome: Outcome) -> Vec<CommandVariant> {
        match outcome.0.status {
            Some(Status::Successful(success)) => success.commands.into_iter().filter_map(|c| c.variant).collect(),
            other => panic!("expected commands, got {other:?}"),
        }
    }

    fn result(commands: &[CommandVariant]) -> String {
        match commands {
            [CommandVariant::CompleteWorkflowExecution(done)] => {
                serde_json::from_slice(&done.result.as_ref().expect("result").data).expect("json")
            }
            other => panic!("expected the workflow to complete, got {other:?}"),
        }
    }

    /// Starts the run, delivers signal `a`, and lets Core evict it to make room.
    fn parked_after_a(engine: &mut WorkflowEngine, parking: &mut Parking, context: &RunContext) {
        assert!(commands(process(engine, parking, activation(false, vec![init()]), context)).is_empty());
        assert!(commands(process(engine, parking, activation(false, vec![signal("a", "x")]), context)).is_empty());
        assert!(commands(process(engine, parking, activation(false, vec![evict_for_room()]), context)).is_empty());
        assert_eq!((parking.parked_runs(), engine.cached_runs()), (1, 1), "the Lua state stays, parked");
    }

    fn context() -> RunContext {
        RunContext { namespace: "default".into(), task_queue: "q".into() }
    }

    #[test]
    fn a_parked_run_wakes_without_running_its_history_again() {
        let (mut engine, mut parking, context) = (engine(), Parking::new(10), context());
        parked_after_a(&mut engine, &mut parking, &context);
        assert!(commands(process(&mut engine, &mut parking, activation(true, vec![init()]), &context)).is_empty());
        let replayed = activation(true, vec![signal("a", "x")]);
        assert!(commands(process(&mut engine, &mut parking, replayed, &context)).is_empty());
        let done = commands(process(&mut engine, &mut parking, activation(false, vec![signal("b", "y")]), &context));
        assert_eq!(result(&done), "xy");
        assert_eq!((parking.stats.woken, parking.stats.rebuilt), (1, 0));
    }

    #[test]
    fn a_parked_run_whose_replay_differs_is_rebuilt_through_lua() {
        let (mut engine, mut parking, context) = (engine(), Parking::new(10), context());
        parked_after_a(&mut engine, &mut parking, &context);
        assert!(commands(process(&mut engine, &mut parking, activation(true, vec![init()]), &context)).is_empty());
        // Both signals in one activation: not how the parked state saw them, so a fresh Lua run
        // replays the initialization and then takes this activation.
        let merged = activation(false, vec![signal("a", "x"), signal("b", "y")]);
        let done = commands(process(&mut engine, &mut parking, merged, &context));
        assert_eq!(result(&done), "xy");
        assert_eq!((parking.stats.woken, parking.stats.rebuilt), (1, 1));
    }

    #[test]
    fn without_parking_an_eviction_drops_the_run() {
        let (mut engine, mut parking, context) = (engine(), Parking::new(0), context());
        assert!(commands(process(&mut engine, &mut parking, activation(false, vec![init()]), &context)).is_empty());
        assert!(
            commands(process(&mut engine, &mut parking, activation(false, vec![evict_for_room()]), &context))
                .is_empty()
        );
        assert_eq!(engine.cached_runs(), 0);
    }
}
