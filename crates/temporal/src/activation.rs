//! Core's activations and commands <-> the Lua engine's plain types. Everything protobuf-shaped
//! about a workflow run passes through here.

use std::time::{Duration, SystemTime};

use tempest_lua::failure::Failure;
use tempest_lua::workflow::{
    Activation, ActivityOptions, ActivityOutcome, Command, Job, RetryPolicy as LuaRetryPolicy, WorkflowInfo,
};
use temporalio_common::protos::coresdk::activity_result::activity_resolution::Status as Resolution;
use temporalio_common::protos::coresdk::workflow_activation::{
    WorkflowActivation, remove_from_cache::EvictionReason, workflow_activation_job::Variant as JobVariant,
};
use temporalio_common::protos::coresdk::workflow_commands::{
    ActivityCancellationType, CancelTimer, CompleteWorkflowExecution, FailWorkflowExecution, QueryResult, QuerySuccess,
    RequestCancelActivity, RequestCancelLocalActivity, ScheduleActivity, ScheduleLocalActivity, StartTimer,
    query_result, workflow_command::Variant as CommandVariant,
};
use temporalio_common::protos::temporal::api::common::v1::RetryPolicy;

use crate::failure::{from_proto, to_proto};
use crate::payload::{context_from_headers, context_headers, from_payload, from_payloads, to_payload, to_payloads};

/// What the worker knows about every run it hosts.
#[derive(Debug, Clone)]
pub struct RunContext {
    pub namespace: String,
    pub task_queue: String,
}

/// The result of translating one activation.
pub enum Translated {
    /// Feed this to the engine.
    Run(Activation),
    /// Core evicted the run, for `reason` (`message` says more); answer with an empty completion.
    Evict {
        reason: EvictionReason,
        message: String,
    },
    /// Answer without running Lua: these commands (e.g. a failed start), or a task failure.
    Immediate(Vec<CommandVariant>),
    TaskFailure(String),
}

fn system_time(ts: Option<&prost_wkt_types::Timestamp>) -> SystemTime {
    match ts {
        Some(ts) if ts.seconds >= 0 => {
            SystemTime::UNIX_EPOCH + Duration::new(ts.seconds as u64, ts.nanos.clamp(0, 999_999_999) as u32)
        }
        _ => SystemTime::UNIX_EPOCH,
    }
}

fn proto_duration(duration: Duration) -> Option<prost_wkt_types::Duration> {
    duration.try_into().ok()
}

/// Translates Core's activation of run `run_id` into the engine's jobs (the engine's activation
/// leaves its `run_id` empty: the caller keeps the ID). Returns also query answers that could be
/// given without the engine (a query whose arguments cannot be decoded fails here).
pub fn translate(
    run_id: &str,
    activation: WorkflowActivation,
    context: &RunContext,
) -> (Translated, Vec<CommandVariant>) {
    let mut jobs = Vec::with_capacity(activation.jobs.len());
    let mut query_answers = Vec::new();
    for job in activation.jobs {
        let Some(variant) = job.variant else { continue };
        match variant {
            JobVariant::RemoveFromCache(evict) => {
                return (Translated::Evict { reason: evict.reason(), message: evict.message }, vec![]);
            }
            JobVariant::InitializeWorkflow(init) => {
                let args = match from_payloads(&init.arguments, "argument") {
                    Ok(args) => args,
                    Err(message) => {
                        let failure = Failure::invalid(format!("workflow {}: {message}", init.workflow_type));
                        let fail = CommandVariant::FailWorkflowExecution(FailWorkflowExecution {
                            failure: Some(to_proto(&failure)),
                        });
                        return (Translated::Immediate(vec![fail]), vec![]);
                    }
                };
                let values = context_from_headers(&init.headers);
                let parent = init.parent_workflow_info.as_ref();
                jobs.push(Job::Initialize {
                    info: WorkflowInfo {
                        workflow_id: init.workflow_id,
                        run_id: run_id.to_owned(),
                        workflow_type: init.workflow_type,
                        task_queue: context.task_queue.clone(),
                        namespace: context.namespace.clone(),
                        attempt: init.attempt.max(1) as u32,
                        continued_run_id: (!init.continued_from_execution_run_id.is_empty())
                            .then_some(init.continued_from_execution_run_id),
                        parent_workflow_id: parent.map(|p| p.workflow_id.clone()),
                        parent_run_id: parent.map(|p| p.run_id.clone()),
                        cron_schedule: (!init.cron_schedule.is_empty()).then_some(init.cron_schedule),
                    },
                    args,
                    randomness_seed: init.randomness_seed,
                    context: values,
                });
            }
            JobVariant::FireTimer(timer) => jobs.push(Job::FireTimer { seq: timer.seq }),
            JobVariant::UpdateRandomSeed(seed) => jobs.push(Job::UpdateRandomSeed { seed: seed.randomness_seed }),
            JobVariant::ResolveActivity(resolve) => {
                let outcome = match resolve.result.and_then(|r| r.status) {
                    Some(Resolution::Completed(success)) => match success.result.as_ref().map(from_payload) {
                        None => ActivityOutcome::Completed(tempest_lua::convert::Data::Nil),
                        Some(Ok(data)) => ActivityOutcome::Completed(data),
                        Some(Err(e)) => ActivityOutcome::Failed(Failure::invalid(format!("activity result: {e}"))),
                    },
                    Some(Resolution::Failed(failed)) => ActivityOutcome::Failed(
                        failed
                            .failure
                            .as_ref()
                            .map(from_proto)
                            .unwrap_or_else(|| Failure::internal("activity failed without a failure")),
                    ),
                    Some(Resolution::Cancelled(cancelled)) => {
                        ActivityOutcome::Cancelled(
                            cancelled.failure.as_ref().map(from_proto).unwrap_or_else(|| {
                                Failure::new(tempest_lua::failure::Kind::CANCELED, "activity canceled")
                            }),
                        )
                    }
                    Some(Resolution::Backoff(backoff)) => ActivityOutcome::Backoff {
                        attempt: backoff.attempt,
                        backoff: backoff
                            .backoff_duration
                            .and_then(|d| Duration::try_from(d).ok())
                            .unwrap_or(Duration::from_secs(1)),
                        original_schedule_time: backoff.original_schedule_time.as_ref().map(|t| system_time(Some(t))),
                    },
                    None => ActivityOutcome::Failed(Failure::internal("activity resolved without a status")),
                };
                jobs.push(Job::ResolveActivity { seq: resolve.seq, outcome });
            }
            JobVariant::SignalWorkflow(signal) => match from_payloads(&signal.input, "signal argument") {
                Ok(args) => jobs.push(Job::Signal { name: signal.signal_name, args }),
                Err(message) => {
                    tracing::error!(run_id, signal = %signal.signal_name, "dropping signal: {message}");
                }
            },
            JobVariant::CancelWorkflow(cancel) => jobs.push(Job::Cancel { reason: cancel.reason }),
            JobVariant::NotifyHasPatch(_) => {}
            JobVariant::QueryWorkflow(query) => match from_payloads(&query.arguments, "query argument") {
                Ok(args) => jobs.push(Job::Query { query_id: query.query_id, name: query.query_type, args }),
                Err(message) => query_answers.push(CommandVariant::RespondToQuery(QueryResult {
                    query_id: query.query_id,
                    variant: Some(query_result::Variant::Failed(to_proto(&Failure::invalid(message)))),
                })),
            },
            other => {
                return (
                    Translated::TaskFailure(format!("activation job not supported by Tempest yet: {other}")),
                    vec![],
                );
            }
        }
    }
    if jobs.is_empty() && !query_answers.is_empty() {
        return (Translated::Immediate(query_answers), vec![]);
    }
    let run = Activation {
        run_id: String::new(),
        timestamp: system_time(activation.timestamp.as_ref()),
        is_replaying: activation.is_replaying,
        history_length: activation.history_length,
        history_size: activation.history_size_bytes,
        jobs,
    };
    (Translated::Run(run), query_answers)
}

fn retry_policy(policy: &LuaRetryPolicy) -> RetryPolicy {
    RetryPolicy {
        initial_interval: policy.initial_interval.and_then(proto_duration),
        backoff_coefficient: policy.backoff_coefficient.unwrap_or(0.0),
        maximum_interval: policy.maximum_interval.and_then(proto_duration),
        maximum_attempts: policy.maximum_attempts,
        non_retryable_error_types: policy.non_retryable_error_types.clone(),
    }
}

fn schedule_activity(schedule: tempest_lua::workflow::ScheduleActivity, context: &RunContext) -> ScheduleActivity {
    let options = &schedule.options;
    ScheduleActivity {
        seq: schedule.seq,
        activity_id: options.activity_id.clone().unwrap_or_else(|| schedule.seq.to_string()),
        task_queue: options.task_queue.clone().unwrap_or_else(|| context.task_queue.clone()),
        headers: context_headers(schedule.context.as_ref()),
        arguments: to_payloads(&schedule.args),
        schedule_to_close_timeout: options.schedule_to_close.and_then(proto_duration),
        schedule_to_start_timeout: options.schedule_to_start.and_then(proto_duration),
        start_to_close_timeout: options.start_to_close.and_then(proto_duration),
        heartbeat_timeout: options.heartbeat.and_then(proto_duration),
        retry_policy: options.retry_policy.as_ref().map(retry_policy),
        cancellation_type: cancellation_type(options),
        do_not_eagerly_execute: options.disable_eager_execution,
        activity_type: schedule.activity_type,
        ..Default::default()
    }
}

fn cancellation_type(options: &ActivityOptions) -> i32 {
    let kind = if options.wait_for_cancellation {
        ActivityCancellationType::WaitCancellationCompleted
    } else {
        ActivityCancellationType::TryCancel
    };
    kind as i32
}

fn schedule_local_activity(schedule: &tempest_lua::workflow::ScheduleActivity) -> ScheduleLocalActivity {
    let options = &schedule.options;
    ScheduleLocalActivity {
        seq: schedule.seq,
        activity_id: options.activity_id.clone().unwrap_or_else(|| schedule.seq.to_string()),
        activity_type: schedule.activity_type.clone(),
        attempt: schedule.attempt,
        original_schedule_time: schedule.original_schedule_time.map(Into::into),
        headers: context_headers(schedule.context.as_ref()),
        arguments: to_payloads(&schedule.args),
        schedule_to_close_timeout: options.schedule_to_close.and_then(proto_duration),
        schedule_to_start_timeout: options.schedule_to_start.and_then(proto_duration),
        start_to_close_timeout: options.start_to_close.and_then(proto_duration),
        retry_policy: options.retry_policy.as_ref().map(retry_policy),
        cancellation_type: cancellation_type(options),
        ..Default::default()
    }
}

/// The engine's commands as Core commands.
pub fn commands(commands: Vec<Command>, context: &RunContext) -> Vec<CommandVariant> {
    commands
        .into_iter()
        .map(|command| match command {
            Command::StartTimer { seq, duration } => {
                CommandVariant::StartTimer(StartTimer { seq, start_to_fire_timeout: proto_duration(duration) })
            }
            Command::CancelTimer { seq } => CommandVariant::CancelTimer(CancelTimer { seq }),
            Command::ScheduleActivity(schedule) if schedule.local => {
                CommandVariant::ScheduleLocalActivity(schedule_local_activity(&schedule))
            }
            Command::ScheduleActivity(schedule) => {
                CommandVariant::ScheduleActivity(schedule_activity(*schedule, context))
            }
            Command::RequestCancelActivity { seq, local: true } => {
                CommandVariant::RequestCancelLocalActivity(RequestCancelLocalActivity { seq })
            }
            Command::RequestCancelActivity { seq, local: false } => {
                CommandVariant::RequestCancelActivity(RequestCancelActivity { seq })
            }
            Command::CompleteWorkflow(data) => {
                CommandVariant::CompleteWorkflowExecution(CompleteWorkflowExecution { result: Some(to_payload(&data)) })
            }
            Command::FailWorkflow(failure) => {
                CommandVariant::FailWorkflowExecution(FailWorkflowExecution { failure: Some(to_proto(&failure)) })
            }
            Command::RespondToQuery { query_id, result } => CommandVariant::RespondToQuery(QueryResult {
                query_id,
                variant: Some(match result {
                    Ok(data) => query_result::Variant::Succeeded(QuerySuccess { response: Some(to_payload(&data)) }),
                    Err(failure) => query_result::Variant::Failed(to_proto(&failure)),
                }),
            }),
        })
        .collect()
}
