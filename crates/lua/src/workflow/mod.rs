//! Workflow runtime: runs each workflow run as a set of Lua coroutines on a shared, sandboxed VM
//! and turns what the code blocks on into commands.
//!
//! The boundary with the Temporal side is plain data: an [`Activation`] (jobs from history) goes
//! in, a [`Completion`] (commands, or a task failure) comes out. Nothing here knows about
//! protobufs; `tempest-temporal` translates both ways.

mod api;
mod channel;
mod engine;
mod query;
mod random;
mod run;
mod time_api;
mod watchdog;

pub use engine::{EngineConfig, LastIssued, WorkflowEngine};

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use crate::convert::Data;
use crate::failure::Failure;

/// The engine's maps keyed by run IDs and sequence numbers, which every activation looks up:
/// hashed with foldhash (the keys come from the server and the engine, not from an attacker).
type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// One workflow definition: a `workflow.lua` entry.
#[derive(Debug, Clone)]
pub struct WorkflowCode {
    /// Workflow type as registered with Temporal (entry ID or `meta.temporal.workflow.name`).
    pub type_name: String,
    /// Entry ID, for messages.
    pub entry_id: String,
    /// Chunk name shown in tracebacks, e.g. `examples/orders/order_workflow.lua`.
    pub chunk_name: String,
    pub source: String,
    pub method: String,
    /// The `modules:` allow-list.
    pub modules: Vec<String>,
}

/// What `funcs.call(id)` resolves to for an entry registered as an activity.
#[derive(Debug, Clone, Default)]
pub struct ActivityTarget {
    /// Activity type name (the entry ID).
    pub type_name: String,
    /// `meta.temporal.activity.local`.
    pub local: bool,
    /// Default options from the entry's `meta.options` (keys as in `with_options`).
    pub defaults: BTreeMap<String, serde_json::Value>,
    /// Task queue of the worker the activity is registered on (`None`: the workflow's own).
    pub task_queue: Option<String>,
}

/// Facts about the run that Lua can read through `workflow.info()`.
#[derive(Debug, Clone, Default)]
pub struct WorkflowInfo {
    pub workflow_id: String,
    pub run_id: String,
    pub workflow_type: String,
    pub task_queue: String,
    pub namespace: String,
    pub attempt: u32,
    pub continued_run_id: Option<String>,
    pub parent_workflow_id: Option<String>,
    pub parent_run_id: Option<String>,
    pub cron_schedule: Option<String>,
}

/// A batch of jobs for one run, as delivered by Core.
#[derive(Debug)]
pub struct Activation {
    pub run_id: String,
    /// The deterministic "now" of this activation.
    pub timestamp: SystemTime,
    pub is_replaying: bool,
    pub history_length: u32,
    pub history_size: u64,
    pub jobs: Vec<Job>,
}

#[derive(Debug)]
pub enum Job {
    Initialize {
        info: WorkflowInfo,
        args: Vec<Data>,
        randomness_seed: u64,
        /// Context values from the start request's `wippy-context` header.
        context: Option<crate::modules::ctx::ContextMap>,
    },
    FireTimer {
        seq: u32,
    },
    ResolveActivity {
        seq: u32,
        outcome: ActivityOutcome,
    },
    Signal {
        name: String,
        args: Vec<Data>,
    },
    Cancel {
        reason: String,
    },
    UpdateRandomSeed {
        seed: u64,
    },
    /// A query: answered after the other jobs, without changing the run.
    Query {
        query_id: String,
        name: String,
        args: Vec<Data>,
    },
}

#[derive(Debug)]
pub enum ActivityOutcome {
    Completed(Data),
    Failed(Failure),
    Cancelled(Failure),
    /// A local activity failed and will be retried: wait `backoff` (a durable timer), then
    /// schedule it again as `attempt`.
    Backoff {
        attempt: u32,
        backoff: Duration,
        original_schedule_time: Option<SystemTime>,
    },
}

/// Options of one activity call, validated.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ActivityOptions {
    pub activity_id: Option<String>,
    pub task_queue: Option<String>,
    pub start_to_close: Option<Duration>,
    pub schedule_to_close: Option<Duration>,
    pub schedule_to_start: Option<Duration>,
    pub heartbeat: Option<Duration>,
    pub wait_for_cancellation: bool,
    pub disable_eager_execution: bool,
    pub retry_policy: Option<RetryPolicy>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct RetryPolicy {
    pub initial_interval: Option<Duration>,
    pub backoff_coefficient: Option<f64>,
    pub maximum_interval: Option<Duration>,
    pub maximum_attempts: i32,
    pub non_retryable_error_types: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct ScheduleActivity {
    pub seq: u32,
    pub activity_type: String,
    pub args: Vec<Data>,
    pub options: ActivityOptions,
    pub local: bool,
    /// Local activities only: the attempt this schedule is (1 first, more after a backoff)
    /// and when the first attempt was scheduled.
    pub attempt: u32,
    pub original_schedule_time: Option<SystemTime>,
    /// Context for the activity: the run's, overlaid with the caller's `with_context` values.
    pub context: Option<crate::modules::ctx::ContextMap>,
}

/// A command for the server, in the order the Lua code issued it.
#[derive(Debug)]
pub enum Command {
    StartTimer {
        seq: u32,
        duration: Duration,
    },
    CancelTimer {
        seq: u32,
    },
    ScheduleActivity(Box<ScheduleActivity>),
    RequestCancelActivity {
        seq: u32,
        local: bool,
    },
    CompleteWorkflow(Data),
    FailWorkflow(Failure),
    /// The answer to a query; a failure fails the query, not the workflow.
    RespondToQuery {
        query_id: String,
        result: Result<Data, Failure>,
    },
}

/// Why an activation could not produce commands; the workflow task fails and is retried.
#[derive(Debug)]
pub enum TaskFailure {
    /// The Lua code ran past the deadlock timeout (TMPRL1101); carries the Lua traceback.
    Deadlock { message: String },
    /// Anything else (unknown workflow type, bad job order, engine bug).
    Other { message: String },
}

#[derive(Debug)]
pub enum Completion {
    Commands(Vec<Command>),
    Failed(TaskFailure),
}

#[cfg(test)]
mod tests;
