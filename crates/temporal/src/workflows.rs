//! The workflow half of a worker: a dedicated OS thread owns the Lua engine (Lua states are not
//! `Send`), and the poll loop hands it activations over a channel. Polling is serial, completion
//! is concurrent, as Core requires.

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
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
        thread::Builder::new()
            .name(format!("lua-workflows-{name}"))
            .spawn(move || {
                let mut engine = match WorkflowEngine::new(config) {
                    Ok(engine) => {
                        let _ = ready_tx.send(Ok(()));
                        engine
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.to_string()));
                        return;
                    }
                };
                while let Ok((activation, reply)) = receiver.recv() {
                    let began = std::time::Instant::now();
                    let completion = process(&mut engine, activation, &context);
                    stats.record_activation(began.elapsed());
                    stats.record_workflow_memory(engine.used_memory(), engine.cached_runs());
                    let _ = reply.send(completion);
                }
            })
            .map_err(|e| format!("cannot start the workflow thread: {e}"))?;
        ready_rx.recv().map_err(|_| "the workflow thread stopped while starting".to_owned())??;
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

/// Polls workflow activations until Core reports shutdown.
pub async fn poll_loop(worker: Arc<Worker>, host: WorkflowHost) -> Result<(), PollError> {
    loop {
        let activation = match worker.poll_workflow_activation().await {
            Ok(activation) => activation,
            Err(PollError::ShutDown) => return Ok(()),
            Err(e) => return Err(e),
        };
        let worker = worker.clone();
        let host = host.clone();
        let polled = std::time::Instant::now();
        tokio::spawn(async move {
            let (completion, _) = host.activate(activation).await;
            let answered = polled.elapsed();
            if let Err(e) = worker.complete_workflow_activation(completion).await {
                tracing::warn!("completing a workflow activation failed: {e}");
            }
            tracing::debug!(answered_us = answered.as_micros() as u64, completed_us = polled.elapsed().as_micros() as u64, "activation");
        });
    }
}
