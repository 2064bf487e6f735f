//! tempest-temporal: the only crate that touches the Temporal crates. Connects clients, runs
//! workers on Core (workflow activations -> the Lua engine, activity tasks -> Lua functions),
//! maps payloads and failures, and replays histories.
//!
//! [`start`] brings up every `auto_start` worker of a registry; [`Running::shutdown`] drains them.

mod activation;
mod activities;
mod completer;
mod connection;
mod failure;
pub mod history_file;
mod parking;
mod payload;
mod plan;
pub mod replay;
mod stats;
mod workflows;

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use tempest_registry::{EntryId, Registry};
use temporalio_client::Connection;
use temporalio_common::telemetry::TelemetryOptions;
use temporalio_sdk_core::{CoreRuntime, RuntimeOptions, Worker, init_worker};
use tokio::task::JoinHandle;

pub use connection::{ConnectError, is_loopback};
pub use parking::ParkingStats;
pub use plan::{WorkerPlan, worker_plan};
pub use stats::ParkingSnapshot;

use activation::RunContext;

/// Whether the current tokio runtime is single-threaded. `tempest run` drives everything from one
/// such runtime inside a `LocalSet`, so the poll loops and their completers start as local tasks.
fn on_current_thread_runtime() -> bool {
    tokio::runtime::Handle::current().runtime_flavor() == tokio::runtime::RuntimeFlavor::CurrentThread
}

/// Why Tempest could not start or run. All variants are fatal for the command that hit them.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error("worker `{worker}`: {message}")]
    Worker { worker: String, message: String },
    #[error("cannot start Temporal Core: {0}")]
    Core(String),
}

struct RunningWorker {
    id: EntryId,
    stats: Arc<stats::LuaStats>,
    worker: Arc<Worker>,
    loops: Vec<JoinHandle<Result<(), temporalio_sdk_core::PollError>>>,
}

/// Workers started by [`start`]; stop them with [`Running::shutdown`].
pub struct Running {
    _core: CoreRuntime,
    workers: Vec<RunningWorker>,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running").field("workers", &self.workers.len()).finish_non_exhaustive()
    }
}

/// Connects the clients and starts every `auto_start` worker, in the registry's start order.
/// Must be called inside a tokio runtime; on a current-thread runtime, inside a `LocalSet` (the
/// workflow engines then run on that thread).
pub async fn start(registry: &Registry) -> Result<Running, RunError> {
    let core = CoreRuntime::new_assume_tokio(
        RuntimeOptions::builder()
            .telemetry_options(TelemetryOptions::builder().build())
            .build()
            .map_err(RunError::Core)?,
    )
    .map_err(|e| RunError::Core(e.to_string()))?;
    let mut connections: HashMap<EntryId, Connection> = HashMap::new();
    let mut workers = Vec::new();
    for id in registry.start_order() {
        let Some(config) = registry.worker(id) else { continue };
        if !config.lifecycle.auto_start {
            continue;
        }
        let plan = worker_plan(registry, id)
            .ok_or_else(|| RunError::Worker { worker: id.to_string(), message: "incomplete worker entry".into() })?;
        let connection = match connections.get(&plan.client) {
            Some(connection) => connection.clone(),
            None => {
                let client = registry.client(&plan.client).ok_or_else(|| RunError::Worker {
                    worker: id.to_string(),
                    message: format!("client `{}` not found", plan.client),
                })?;
                let connection =
                    connection::connect_with_retry(&plan.client.to_string(), client, &plan::identity(&plan.options))
                        .await?;
                tracing::info!(client = %plan.client, address = %client.address, "connected");
                connections.insert(plan.client.clone(), connection.clone());
                connection
            }
        };
        workers.push(start_worker(&core, plan, connection).await?);
    }
    Ok(Running { _core: core, workers })
}

async fn start_worker(
    core: &CoreRuntime,
    mut plan: WorkerPlan,
    connection: Connection,
) -> Result<RunningWorker, RunError> {
    let worker_error = |message: String| RunError::Worker { worker: plan.id.to_string(), message };
    // A worker with no workflows must not take workflow tasks meant for other workers.
    if !plan.has_workflows() {
        plan.options.disable_workflow_worker = true;
        plan.options.local_activity_worker_only = false;
    }
    let context = RunContext { namespace: plan.namespace.clone(), task_queue: plan.task_queue.clone() };
    let stats = Arc::new(stats::LuaStats::default());
    let config = plan::core_config(&plan).map_err(worker_error)?;
    let build_id = config.versioning_strategy.build_id().to_owned();
    let worker = Arc::new(init_worker(core, config, connection).map_err(|e| worker_error(e.to_string()))?);
    worker.validate().await.map_err(|e| worker_error(format!("namespace `{}`: {e}", plan.namespace)))?;
    let mut loops = Vec::new();
    if plan.has_workflows() {
        let name = plan.id.name();
        let poll = workflows::spawn_poll_loop(
            name,
            worker.clone(),
            plan.engine.clone(),
            plan.options.max_parked_workflows,
            context,
            stats.clone(),
        )
        .map_err(worker_error)?;
        loops.push(poll);
    }
    if !plan.options.local_activity_worker_only {
        let task_queue: Arc<str> = plan.task_queue.as_str().into();
        loops.push(activities::spawn_poll_loop(worker.clone(), plan.catalog(), stats.clone(), task_queue));
    }
    tracing::info!(
        worker = %plan.id,
        task_queue = %plan.task_queue,
        workflows = plan.engine.workflows.len(),
        activities = plan.functions.len(),
        build_id = %build_id,
        "worker started"
    );
    Ok(RunningWorker { id: plan.id, stats, worker, loops })
}

impl Running {
    /// Parked runs and what parking did so far, per worker (`max_parked_workflows`).
    pub fn parking(&self) -> Vec<(EntryId, ParkingSnapshot)> {
        self.workers.iter().map(|w| (w.id.clone(), w.stats.parking())).collect()
    }

    /// Stops polling, lets in-flight tasks finish, and releases the workers (reverse start order).
    pub async fn shutdown(self) {
        for running in self.workers.iter().rev() {
            running.worker.initiate_shutdown();
        }
        for running in self.workers.into_iter().rev() {
            for handle in running.loops {
                match handle.await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::error!(worker = %running.id, "poll loop failed: {e}"),
                    Err(e) => tracing::error!(worker = %running.id, "poll loop panicked: {e}"),
                }
            }
            running.worker.shutdown().await;
            match Arc::try_unwrap(running.worker) {
                Ok(worker) => worker.finalize_shutdown().await,
                Err(_) => tracing::warn!(worker = %running.id, "worker still referenced after shutdown"),
            }
            let (activations, workflow_time, calls, activity_time) = running.stats.snapshot();
            let (lua_heap, cached_runs) = running.stats.workflow_memory();
            let parked = running.stats.parking();
            tracing::info!(
                worker = %running.id,
                activations,
                workflow_lua_ms = workflow_time.as_secs_f64() * 1e3,
                activity_calls = calls,
                activity_lua_ms = activity_time.as_secs_f64() * 1e3,
                workflow_lua_heap_kb = lua_heap / 1024,
                activity_vms = running.stats.activity_vms(),
                cached_runs,
                parked_runs = parked.runs,
                parked = parked.stats.parked,
                woken = parked.stats.woken,
                rebuilt = parked.stats.rebuilt,
                "worker stopped"
            );
        }
    }
}

/// Runs until `stop` resolves, then shuts down gracefully.
pub async fn run(registry: &Registry, stop: impl Future<Output = ()>) -> Result<(), RunError> {
    let running = start(registry).await?;
    stop.await;
    running.shutdown().await;
    Ok(())
}
