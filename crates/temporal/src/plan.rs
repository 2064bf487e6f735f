//! What one `temporal.worker` entry runs, read from the registry: its workflows (for the Lua
//! engine), its activity functions, and Core's worker configuration.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use tempest_lua::activity::{FunctionCatalog, FunctionCode};
use tempest_lua::workflow::{ActivityTarget, EngineConfig, WorkflowCode};
use tempest_registry::{EntryId, LuaEntry, Registration, Registry, Value, VersioningBehavior, WorkerOptions};
use temporalio_common::worker::{
    VersioningBehavior as CoreBehavior, WorkerDeploymentOptions, WorkerDeploymentVersion, WorkerTaskTypes,
};
use temporalio_sdk_core::{PollerBehavior, WorkerConfig, WorkerVersioningStrategy};

/// Everything needed to start one worker.
#[derive(Debug, Clone)]
pub struct WorkerPlan {
    pub id: EntryId,
    pub client: EntryId,
    pub namespace: String,
    pub task_queue: String,
    pub options: WorkerOptions,
    pub engine: EngineConfig,
    pub functions: Vec<FunctionCode>,
}

impl WorkerPlan {
    pub fn catalog(&self) -> Arc<FunctionCatalog> {
        FunctionCatalog::new(self.functions.clone())
    }

    pub fn has_workflows(&self) -> bool {
        !self.engine.workflows.is_empty()
    }
}

fn to_json(value: &Value) -> serde_json::Value {
    match value {
        Value::Null => serde_json::Value::Null,
        Value::Bool(b) => (*b).into(),
        Value::Integer(i) => (*i).into(),
        Value::Float(f) => serde_json::Number::from_f64(*f).map_or(serde_json::Value::Null, Into::into),
        Value::String(s) => s.clone().into(),
        Value::List(items) => items.iter().map(to_json).collect(),
        Value::Map(map) => map.iter().map(|(k, v)| (k.clone(), to_json(v))).collect::<serde_json::Map<_, _>>().into(),
    }
}

fn chunk_name(entry: &LuaEntry) -> String {
    entry.source.chunk_name.display().to_string()
}

/// Reads the plan of worker `id` from the registry.
pub fn worker_plan(registry: &Registry, id: &EntryId) -> Option<WorkerPlan> {
    let worker = registry.worker(id)?;
    let client = registry.client(&worker.client)?;
    let task_queue = registry.task_queue(id)?;
    let mut workflows = Vec::new();
    let mut functions = Vec::new();
    let mut activities = HashMap::new();
    for (entry_id, entry) in registry.lua_entries() {
        match &entry.registration {
            Some(Registration::Workflow { worker: owner, .. }) if owner == id => workflows.push(WorkflowCode {
                type_name: registry.workflow_type(entry_id).unwrap_or_else(|| entry_id.to_string()),
                entry_id: entry_id.to_string(),
                chunk_name: chunk_name(entry),
                source: entry.source.text.clone(),
                method: entry.method.clone().unwrap_or_else(|| "main".into()),
                modules: entry.modules.clone(),
            }),
            Some(Registration::Activity { worker: owner, local }) => {
                // Any workflow may call any registered activity; it runs on its own worker's queue.
                let defaults: BTreeMap<String, serde_json::Value> =
                    entry.options.iter().map(|(k, v)| (k.clone(), to_json(v))).collect();
                activities.insert(
                    entry_id.to_string(),
                    ActivityTarget {
                        type_name: entry_id.to_string(),
                        local: *local,
                        defaults,
                        task_queue: registry.task_queue(owner),
                    },
                );
                if owner == id {
                    functions.push(FunctionCode {
                        entry_id: entry_id.to_string(),
                        chunk_name: chunk_name(entry),
                        source: entry.source.text.clone(),
                        method: entry.method.clone().unwrap_or_else(|| "main".into()),
                        modules: entry.modules.clone(),
                    });
                }
            }
            _ => {}
        }
    }
    Some(WorkerPlan {
        id: id.clone(),
        client: worker.client.clone(),
        namespace: client.namespace.clone(),
        task_queue,
        options: worker.options.clone(),
        engine: EngineConfig {
            workflows,
            activities,
            deadlock_timeout: worker.options.deadlock_detection_timeout,
            pid_host: format!("{}@{}", worker.client, id),
        },
        functions,
    })
}

/// The worker's identity: `worker_options.identity`, else `pid@host`.
pub fn identity(options: &WorkerOptions) -> String {
    options.identity.clone().unwrap_or_else(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_else(|_| "localhost".into());
        format!("{}@{host}", std::process::id())
    })
}

/// Core's configuration for the plan.
pub fn core_config(plan: &WorkerPlan) -> Result<WorkerConfig, String> {
    let o = &plan.options;
    let task_types = if o.disable_workflow_worker {
        WorkerTaskTypes::activity_only()
    } else if o.local_activity_worker_only {
        WorkerTaskTypes {
            enable_workflows: true,
            enable_local_activities: true,
            enable_remote_activities: false,
            enable_nexus: false,
        }
    } else {
        WorkerTaskTypes {
            enable_workflows: true,
            enable_local_activities: true,
            enable_remote_activities: true,
            enable_nexus: false,
        }
    };
    let versioning = match &o.versioning {
        Some(v) => WorkerVersioningStrategy::WorkerDeploymentBased(
            WorkerDeploymentOptions::new(
                WorkerDeploymentVersion::builder()
                    .deployment_name(v.deployment_name.clone())
                    .build_id(v.build_id.clone())
                    .build(),
            )
            .use_worker_versioning(true)
            .default_versioning_behavior(match v.default_behavior {
                VersioningBehavior::Pinned => CoreBehavior::Pinned,
                VersioningBehavior::AutoUpgrade => CoreBehavior::AutoUpgrade,
            })
            .build(),
        ),
        None => WorkerVersioningStrategy::None { build_id: o.build_id.clone().unwrap_or_default() },
    };
    let positive = |rate: f64| (rate > 0.0).then_some(rate);
    WorkerConfig::builder()
        .namespace(plan.namespace.clone())
        .task_queue(plan.task_queue.clone())
        .task_types(task_types)
        .versioning_strategy(versioning)
        .client_identity_override(identity(o))
        .max_cached_workflows(o.max_cached_workflows)
        .max_outstanding_workflow_tasks(o.max_concurrent_workflow_task_execution_size)
        .max_outstanding_activities(o.max_concurrent_activity_execution_size)
        .max_outstanding_local_activities(o.max_concurrent_local_activity_execution_size)
        .workflow_task_poller_behavior(PollerBehavior::SimpleMaximum(o.max_concurrent_workflow_task_pollers))
        .activity_task_poller_behavior(PollerBehavior::SimpleMaximum(o.max_concurrent_activity_task_pollers))
        .sticky_queue_schedule_to_start_timeout(o.sticky_schedule_to_start_timeout)
        .maybe_max_worker_activities_per_second(positive(o.worker_activities_per_second))
        .maybe_max_task_queue_activities_per_second(positive(o.task_queue_activities_per_second))
        .max_eager_activity_reservations_per_workflow_task(if o.disable_eager_activities { 0 } else { 3 })
        .maybe_graceful_shutdown_period((!o.worker_stop_timeout.is_zero()).then_some(o.worker_stop_timeout))
        .maybe_max_heartbeat_throttle_interval(o.max_heartbeat_throttle_interval)
        .maybe_default_heartbeat_throttle_interval(o.default_heartbeat_throttle_interval)
        .build()
}
