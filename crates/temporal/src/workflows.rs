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
use temporalio_common::protos::coresdk::workflow_activation::WorkflowActivation;
use temporalio_common::protos::coresdk::workflow_completion::WorkflowActivationCompletion;
use temporalio_common::protos::temporal::api::failure::v1::Failure as ProtoFailure;
use temporalio_sdk_core::{PollError, Worker};
use tokio::sync::oneshot;

use crate::activation::{RunContext, Translated, commands, translate};
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
            while let Ok((activation, reply)) = receiver.recv() {
                let _ = reply.send(process_measured(&mut engine, activation, &context, &stats));
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
    activation: WorkflowActivation,
    context: &RunContext,
    stats: &LuaStats,
) -> Outcome {
    let began = std::time::Instant::now();
    let outcome = process(engine, activation, context);
    stats.record_activation(began.elapsed());
    stats.record_workflow_memory(engine.used_memory(), engine.cached_runs());
    outcome
}

fn process(engine: &mut WorkflowEngine, activation: WorkflowActivation, context: &RunContext) -> Outcome {
    let run_id = activation.run_id.clone();
    let (translated, mut query_answers) = translate(activation, context);
    let completion = match translated {
        Translated::Evict { reason } => {
            let issued = engine.evict(&run_id);
            if reason.starts_with("Nondeterminism") {
                let diagnosis = format!(
                    "workflow code diverged from its history: {reason}; the current code issued: {}",
                    if issued.is_empty() { "no commands".to_owned() } else { issued.join("; ") }
                );
                tracing::error!(run_id = %run_id, "{diagnosis}");
                return (WorkflowActivationCompletion::empty(run_id), Some(diagnosis));
            }
            tracing::debug!(run_id = %run_id, "workflow run evicted: {reason}");
            WorkflowActivationCompletion::empty(run_id)
        }
        Translated::Immediate(commands) => WorkflowActivationCompletion::from_cmds(run_id, commands),
        Translated::TaskFailure(message) => {
            tracing::error!(run_id = %run_id, "workflow task failed: {message}");
            task_failure(run_id, message)
        }
        Translated::Run(activation) => match engine.activate(activation) {
            Completion::Commands(issued) => {
                let mut all = commands(issued, context);
                all.append(&mut query_answers);
                WorkflowActivationCompletion::from_cmds(run_id, all)
            }
            Completion::Failed(TaskFailure::Deadlock { message }) | Completion::Failed(TaskFailure::Other { message }) => {
                tracing::error!(run_id = %run_id, "workflow task failed: {message}");
                task_failure(run_id, message)
            }
        },
    };
    (completion, None)
}

/// Starts the engine and the workflow poll loop of a live worker: as a local task when the current
/// runtime is single-threaded (the caller must be inside a `LocalSet`), else on a thread of its
/// own. The returned task ends with the loop (at shutdown, after every completion was sent).
/// Fails if a workflow source does not compile or the thread cannot start.
pub fn spawn_poll_loop(
    name: &str,
    worker: Arc<Worker>,
    config: EngineConfig,
    context: RunContext,
    stats: Arc<LuaStats>,
) -> Result<tokio::task::JoinHandle<Result<(), PollError>>, String> {
    if tokio::runtime::Handle::current().runtime_flavor() == tokio::runtime::RuntimeFlavor::CurrentThread {
        let engine = WorkflowEngine::new(config).map_err(|e| e.to_string())?;
        return Ok(tokio::task::spawn_local(local_poll_loop(worker, engine, context, stats)));
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
        let result = local.block_on(&runtime, local_poll_loop(worker, engine, context, stats));
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
    context: RunContext,
    stats: Arc<LuaStats>,
) -> Result<(), PollError> {
    let mut completions = tokio::task::JoinSet::new();
    let result = loop {
        let activation = match worker.poll_workflow_activation().await {
            Ok(activation) => activation,
            Err(PollError::ShutDown) => break Ok(()),
            Err(e) => break Err(e),
        };
        let (completion, _) = process_measured(&mut engine, activation, &context, &stats);
        let worker = worker.clone();
        completions.spawn_local(async move {
            if let Err(e) = worker.complete_workflow_activation(completion).await {
                tracing::warn!("completing a workflow activation failed: {e}");
            }
        });
        while completions.try_join_next().is_some() {}
    };
    while completions.join_next().await.is_some() {}
    result
}
