//! What one `temporal.worker` entry runs, read from the registry: its workflows (for the Lua
//! engine), its activity functions, and Core's worker configuration.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use sha2::{Digest, Sha256};

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

    /// The build ID the worker reports: the versioned one, else `build_id`, else [`Self::code_build_id`].
    pub fn build_id(&self) -> String {
        match (&self.options.versioning, &self.options.build_id) {
            (Some(v), _) => v.build_id.clone(),
            (None, Some(id)) => id.clone(),
            (None, None) => self.code_build_id(),
        }
    }

    /// `tempest-` and 16 hex digits of a SHA-256 over this Tempest version and the code the worker
    /// runs: its workflows and activity functions (sources, methods, modules) and the activities
    /// its workflows call (types, queues, option defaults). It changes exactly when that code does,
    /// like the official SDKs' default (a checksum of the loaded code or of the binary).
    ///
    /// A worker never goes without one: the server does measurably more work per workflow task for
    /// a worker that reports an empty build ID.
    pub fn code_build_id(&self) -> String {
        fn field(hash: &mut Sha256, bytes: &[u8]) {
            hash.update((bytes.len() as u64).to_le_bytes());
            hash.update(bytes);
        }
        let mut hash = Sha256::new();
        field(&mut hash, env!("CARGO_PKG_VERSION").as_bytes());
        let mut workflows: Vec<&WorkflowCode> = self.engine.workflows.iter().collect();
        workflows.sort_by(|a, b| a.type_name.cmp(&b.type_name));
        for w in workflows {
            for part in [&w.type_name, &w.entry_id, &w.method, &w.source].into_iter().chain(&w.modules) {
                field(&mut hash, part.as_bytes());
            }
        }
        let mut functions: Vec<&FunctionCode> = self.functions.iter().collect();
        functions.sort_by(|a, b| a.entry_id.cmp(&b.entry_id));
        for f in functions {
            for part in [&f.entry_id, &f.method, &f.source].into_iter().chain(&f.modules) {
                field(&mut hash, part.as_bytes());
            }
        }
        let mut targets: Vec<(&String, &ActivityTarget)> = self.engine.activities.iter().collect();
        targets.sort_by(|a, b| a.0.cmp(b.0));
        for (name, target) in targets {
            field(&mut hash, name.as_bytes());
            field(&mut hash, target.type_name.as_bytes());
            field(&mut hash, &[u8::from(target.local)]);
            field(&mut hash, target.task_queue.as_deref().unwrap_or_default().as_bytes());
            for (key, value) in &target.defaults {
                field(&mut hash, key.as_bytes());
                field(&mut hash, value.to_string().as_bytes());
            }
        }
        let digest = hash.finalize();
        let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        format!("tempest-{hex}")
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
        None => WorkerVersioningStrategy::None { build_id: plan.build_id() },
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

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(workflow_source: &str) -> WorkerPlan {
        let workflow = WorkflowCode {
            type_name: "Orders".into(),
            entry_id: "app:orders".into(),
            chunk_name: "orders.lua".into(),
            source: workflow_source.into(),
            method: "main".into(),
            modules: vec!["funcs".into()],
        };
        let echo = ActivityTarget { type_name: "app:echo".into(), ..ActivityTarget::default() };
        WorkerPlan {
            id: EntryId::new("app", "worker"),
            client: EntryId::new("app", "client"),
            namespace: "default".into(),
            task_queue: "orders".into(),
            options: WorkerOptions::default(),
            engine: EngineConfig {
                workflows: vec![workflow],
                activities: HashMap::from([("app:echo".to_owned(), echo)]),
                deadlock_timeout: std::time::Duration::from_secs(1),
                pid_host: "app:client@app:worker".into(),
            },
            functions: Vec::new(),
        }
    }

    #[test]
    fn without_build_id_the_worker_reports_a_hash_of_its_code() {
        let id = plan("return { main = function() return 1 end }").build_id();
        assert!(id.starts_with("tempest-") && id.len() == "tempest-".len() + 16, "{id}");
        assert_eq!(id, plan("return { main = function() return 1 end }").build_id(), "stable for the same code");
        assert_ne!(id, plan("return { main = function() return 2 end }").build_id(), "changes with the code");

        let mut other_default = plan("return { main = function() return 1 end }");
        let echo = other_default.engine.activities.get_mut("app:echo").expect("echo target");
        echo.defaults.insert("activity.start_to_close_timeout".into(), "5s".into());
        assert_ne!(id, other_default.build_id(), "changes with an activity's option defaults");
    }

    #[test]
    fn a_configured_build_id_wins() {
        let mut named = plan("return {}");
        named.options.build_id = Some("release-7".into());
        assert_eq!(named.build_id(), "release-7");
        let config = core_config(&named).expect("config");
        assert_eq!(config.versioning_strategy.build_id(), "release-7");
        assert!(
            core_config(&plan("return {}")).expect("config").versioning_strategy.build_id().starts_with("tempest-")
        );
    }
}
