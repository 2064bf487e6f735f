//! Replaying recorded histories through Core's replay worker and the same Lua engine that runs
//! them live: a mismatch between the code and the history shows up as a nondeterminism eviction.

use std::sync::Arc;

use tempest_lua::workflow::EngineConfig;
use temporalio_common::protos::coresdk::workflow_activation::{
    remove_from_cache::EvictionReason, workflow_activation_job::Variant as JobVariant,
};
use temporalio_common::protos::temporal::api::history::v1::History;
use temporalio_common::worker::WorkerTaskTypes;
use temporalio_sdk_core::replay::{HistoryForReplay, ReplayWorkerInput};
use temporalio_sdk_core::{PollError, WorkerConfig, WorkerVersioningStrategy, init_replay_worker};

use crate::activation::RunContext;
use crate::workflows::WorkflowHost;

/// One history that did not replay cleanly.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplayFailure {
    pub run_id: String,
    /// Core's reason and message, e.g. `Nondeterminism: [TMPRL1100] ...`.
    pub message: String,
}

/// Why replay could not run at all (fatal).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayError {
    #[error("cannot start the replay worker: {0}")]
    Start(String),
    #[error("replay polling failed: {0}")]
    Poll(String),
}

/// Replays `histories` (workflow ID, history) with `engine`; returns the runs that diverged.
pub async fn replay(
    engine: EngineConfig,
    histories: Vec<(String, History)>,
) -> Result<Vec<ReplayFailure>, ReplayError> {
    let context = RunContext { namespace: "replay".into(), task_queue: "replay".into() };
    let host = WorkflowHost::start("replay", engine, context, Default::default()).map_err(ReplayError::Start)?;
    let config = WorkerConfig::builder()
        .namespace("replay")
        .task_queue("replay")
        .task_types(WorkerTaskTypes::workflow_only())
        .versioning_strategy(WorkerVersioningStrategy::None { build_id: "replay".into() })
        .max_outstanding_workflow_tasks(2_usize)
        .build()
        .map_err(ReplayError::Start)?;
    let stream = futures::stream::iter(histories.into_iter().map(|(id, history)| HistoryForReplay::new(history, id)));
    let worker = Arc::new(
        init_replay_worker(ReplayWorkerInput::new(config, stream)).map_err(|e| ReplayError::Start(e.to_string()))?,
    );
    let mut failures = Vec::new();
    loop {
        let activation = match worker.poll_workflow_activation().await {
            Ok(activation) => activation,
            Err(PollError::ShutDown) => break,
            Err(e) => return Err(ReplayError::Poll(e.to_string())),
        };
        let failed = match activation.jobs.as_slice() {
            [job] => match &job.variant {
                Some(JobVariant::RemoveFromCache(evict))
                    if !matches!(evict.reason(), EvictionReason::LangRequested | EvictionReason::CacheFull) =>
                {
                    Some(format!("{:?}: {}", evict.reason(), evict.message))
                }
                _ => None,
            },
            _ => None,
        };
        let run_id = activation.run_id.clone();
        let (completion, diagnosis) = host.activate(activation).await;
        if let Some(message) = failed {
            failures.push(ReplayFailure { run_id, message: diagnosis.unwrap_or(message) });
        }
        if let Err(e) = worker.complete_workflow_activation(completion).await {
            tracing::debug!("replay completion: {e}");
        }
    }
    worker.shutdown().await;
    if let Ok(worker) = Arc::try_unwrap(worker) {
        worker.finalize_shutdown().await;
    }
    Ok(failures)
}
