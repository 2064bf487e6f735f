//! `temporal.worker` entries (SPEC §5): the client and task queue a worker polls, and every
//! `worker_options` setting with its default and limits.

use std::time::Duration;

use super::lifecycle::{self, Lifecycle};
use crate::id::EntryId;
use crate::reference::{Expect, References};
use crate::walk::{Fields, Walker};

/// A validated `temporal.worker` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerConfig {
    /// The `temporal.client` this worker polls through.
    pub client: EntryId,
    /// The task queue as written; the effective queue is the client's `tq_prefix` + this.
    pub task_queue: String,
    pub options: WorkerOptions,
    pub lifecycle: Lifecycle,
}

/// `worker_options`, defaults applied.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerOptions {
    /// `None` = `pid@host`, computed when the worker starts.
    pub identity: Option<String>,
    pub max_concurrent_activity_execution_size: usize,
    pub max_concurrent_workflow_task_execution_size: usize,
    pub max_concurrent_local_activity_execution_size: usize,
    pub max_concurrent_activity_task_pollers: usize,
    pub max_concurrent_workflow_task_pollers: usize,
    /// 0 = unlimited.
    pub worker_activities_per_second: f64,
    /// 0 = unlimited; enforced by Tempest before dispatching local activities.
    pub worker_local_activities_per_second: f64,
    /// 0 = unlimited; a server-side limit.
    pub task_queue_activities_per_second: f64,
    pub sticky_schedule_to_start_timeout: Duration,
    /// Graceful period for running activities at shutdown.
    pub worker_stop_timeout: Duration,
    /// How long one workflow activation's Lua code may run (written 0 = 1s).
    pub deadlock_detection_timeout: Duration,
    /// `None` = Core's default.
    pub max_heartbeat_throttle_interval: Option<Duration>,
    /// `None` = Core's default.
    pub default_heartbeat_throttle_interval: Option<Duration>,
    pub enable_logging_in_replay: bool,
    pub disable_workflow_worker: bool,
    pub local_activity_worker_only: bool,
    pub disable_eager_activities: bool,
    /// Sticky workflow cache size (Tempest extension).
    pub max_cached_workflows: usize,
    /// Idle runs evicted from the workflow cache whose Lua state is kept (Tempest extension;
    /// 0 = none).
    pub max_parked_workflows: usize,
    /// Worker deployment versioning; `None` unless `use_versioning: true`.
    pub versioning: Option<Versioning>,
    /// `build_id` (or `build_id_env`) without versioning: identifies the worker only.
    pub build_id: Option<String>,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        WorkerOptions {
            identity: None,
            max_concurrent_activity_execution_size: 1000,
            max_concurrent_workflow_task_execution_size: 1000,
            max_concurrent_local_activity_execution_size: 1000,
            max_concurrent_activity_task_pollers: 20,
            max_concurrent_workflow_task_pollers: 20,
            worker_activities_per_second: 0.0,
            worker_local_activities_per_second: 0.0,
            task_queue_activities_per_second: 0.0,
            sticky_schedule_to_start_timeout: Duration::from_secs(5),
            worker_stop_timeout: Duration::ZERO,
            deadlock_detection_timeout: Duration::from_secs(1),
            max_heartbeat_throttle_interval: None,
            default_heartbeat_throttle_interval: None,
            enable_logging_in_replay: false,
            disable_workflow_worker: false,
            local_activity_worker_only: false,
            disable_eager_activities: false,
            max_cached_workflows: 1000,
            max_parked_workflows: 0,
            versioning: None,
            build_id: None,
        }
    }
}

/// Worker deployment versioning settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Versioning {
    pub deployment_name: String,
    pub build_id: String,
    pub default_behavior: VersioningBehavior,
}

/// What new workflows on a versioned worker do when a newer version appears.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersioningBehavior {
    Pinned,
    AutoUpgrade,
}

pub(crate) fn parse(
    walker: &mut Walker<'_>,
    fields: &mut Fields<'_>,
    references: &mut References,
) -> Option<WorkerConfig> {
    let client = match walker.take_string(fields, "client") {
        Some(text) => references.add(walker, &text, "client", Expect::Kind("temporal.client"), true),
        None => {
            if !fields.has("client") {
                walker.missing("client", "the ID of a temporal.client entry, e.g. `client: app:temporal_client`");
            }
            None
        }
    };
    let task_queue = walker.take_string(fields, "task_queue");
    match &task_queue {
        Some(queue) if queue.value.trim().is_empty() => {
            walker.error(queue.at, "task_queue", "is empty (expected a task queue name)");
        }
        None if !fields.has("task_queue") => {
            walker.missing("task_queue", "a task queue name, e.g. `task_queue: orders`")
        }
        _ => {}
    }
    let options = match fields.take("worker_options") {
        Some(node) => parse_options(walker, node),
        None => WorkerOptions::default(),
    };
    let lifecycle = lifecycle::parse(walker, fields, references);
    Some(WorkerConfig { client: client?, task_queue: task_queue?.value, options, lifecycle })
}

fn parse_options(walker: &mut Walker<'_>, node: &crate::walk::Node<'_>) -> WorkerOptions {
    let mut options = WorkerOptions::default();
    let Some(mut fields) = walker.fields(node, "worker_options") else {
        return options;
    };
    options.identity = walker.take_string(&mut fields, "identity").map(|s| s.value).filter(|s| !s.is_empty());

    let mut count = |name, min, slot: &mut usize| {
        if let Some(value) = walker.take_integer(&mut fields, name, min) {
            *slot = usize::try_from(value.value).unwrap_or(usize::MAX);
        }
    };
    count("max_concurrent_activity_execution_size", 1, &mut options.max_concurrent_activity_execution_size);
    count("max_concurrent_workflow_task_execution_size", 2, &mut options.max_concurrent_workflow_task_execution_size);
    count("max_concurrent_local_activity_execution_size", 1, &mut options.max_concurrent_local_activity_execution_size);
    count("max_concurrent_activity_task_pollers", 1, &mut options.max_concurrent_activity_task_pollers);
    count("max_concurrent_workflow_task_pollers", 2, &mut options.max_concurrent_workflow_task_pollers);
    count("max_cached_workflows", 0, &mut options.max_cached_workflows);
    count("max_parked_workflows", 0, &mut options.max_parked_workflows);

    for (name, slot) in [
        ("worker_activities_per_second", &mut options.worker_activities_per_second),
        ("worker_local_activities_per_second", &mut options.worker_local_activities_per_second),
        ("task_queue_activities_per_second", &mut options.task_queue_activities_per_second),
    ] {
        if let Some(value) = walker.take_number(&mut fields, name, 0.0, f64::INFINITY) {
            *slot = value;
        }
    }
    let mut duration = |name| walker.take_duration(&mut fields, name).map(|d| d.value);
    if let Some(value) = duration("sticky_schedule_to_start_timeout") {
        options.sticky_schedule_to_start_timeout = value;
    }
    if let Some(value) = duration("worker_stop_timeout") {
        options.worker_stop_timeout = value;
    }
    if let Some(value) = duration("deadlock_detection_timeout").filter(|d| !d.is_zero()) {
        options.deadlock_detection_timeout = value;
    }
    options.max_heartbeat_throttle_interval = duration("max_heartbeat_throttle_interval");
    options.default_heartbeat_throttle_interval = duration("default_heartbeat_throttle_interval");

    let mut flag = |name| walker.take_bool_at(&mut fields, name);
    options.enable_logging_in_replay = flag("enable_logging_in_replay").is_some_and(|f| f.value);
    options.disable_eager_activities = flag("disable_eager_activities").is_some_and(|f| f.value);
    let disable_workflow_worker = flag("disable_workflow_worker");
    let local_only = flag("local_activity_worker_only");
    options.disable_workflow_worker = disable_workflow_worker.as_ref().is_some_and(|f| f.value);
    options.local_activity_worker_only = local_only.as_ref().is_some_and(|f| f.value);
    if let (Some(_), Some(local)) = (&disable_workflow_worker, &local_only)
        && options.disable_workflow_worker
        && options.local_activity_worker_only
    {
        walker.error(
            local.at,
            "worker_options.local_activity_worker_only",
            "cannot be combined with `disable_workflow_worker: true`: local activities run inside workflows (expected at most one of them)",
        );
    }
    parse_no_effect(walker, &mut fields);
    parse_versioning(walker, &mut fields, &mut options);
    walker.finish(fields);
    options
}

/// Reference options Tempest accepts but cannot honour: warn so projects still load.
fn parse_no_effect(walker: &mut Walker<'_>, fields: &mut Fields<'_>) {
    for (name, why) in [
        ("max_concurrent_session_execution_size", "Temporal Core has no sessions"),
        ("enable_session_worker", "Temporal Core has no sessions"),
        ("max_concurrent_eager_activity_execution_size", "Core sizes eager activities from the activity slots"),
        ("disable_registration_aliasing", "Tempest registers types by entry ID only"),
    ] {
        if let Some(node) = fields.take(name) {
            let at = crate::walk::Position::of(node);
            walker.warn(at, &fields.path(name), format!("is accepted but has no effect ({why})"));
        }
    }
}

fn parse_versioning(walker: &mut Walker<'_>, fields: &mut Fields<'_>, options: &mut WorkerOptions) {
    let use_versioning = walker.take_bool_at(fields, "use_versioning").filter(|flag| flag.value);
    let deployment_name = walker.take_string(fields, "deployment_name");
    let mut build_id = walker.take_string(fields, "build_id").map(|s| s.value).filter(|s| !s.is_empty());
    if let Some(variable) = walker.take_string(fields, "build_id_env")
        && build_id.is_none()
    {
        // As in the reference, an unset `build_id_env` is not an error.
        build_id = walker.env_value(variable.value.trim());
    }
    let behavior =
        walker.take_string(fields, "default_versioning_behavior").and_then(|text| match text.value.as_str() {
            "pinned" => Some(VersioningBehavior::Pinned),
            "auto_upgrade" => Some(VersioningBehavior::AutoUpgrade),
            other => {
                walker.error(
                    text.at,
                    "worker_options.default_versioning_behavior",
                    format!("unknown versioning behavior `{other}` (expected pinned or auto_upgrade)"),
                );
                None
            }
        });
    if let Some(flag) = use_versioning {
        if build_id.is_none() {
            walker.error(
                flag.at,
                "worker_options.use_versioning",
                "needs a build ID (expected `build_id`, or `build_id_env` naming a variable that is set)",
            );
        }
        options.versioning = Some(Versioning {
            deployment_name: deployment_name.map(|s| s.value).unwrap_or_default(),
            build_id: build_id.clone().unwrap_or_default(),
            default_behavior: behavior.unwrap_or(VersioningBehavior::Pinned),
        });
    }
    options.build_id = build_id;
}
