//! Tempest errors <-> Temporal failures (SPEC §8). Outgoing errors become ApplicationFailures
//! whose details carry the whole error chain; incoming failures are rebuilt from that chain when
//! present, else from the failure's type, with the activity's identity added to the details.

use serde_json::{Map, Value as Json, json};
use tempest_lua::convert::Data;
use tempest_lua::failure::{Failure, Kind};
use temporalio_common::protos::temporal::api::common::v1::Payloads;
use temporalio_common::protos::temporal::api::enums::v1::{RetryState, TimeoutType};
use temporalio_common::protos::temporal::api::failure::v1::{
    ApplicationFailureInfo, Failure as ProtoFailure, failure::FailureInfo,
};

use crate::payload::{first, from_payload, to_payload};

const SOURCE: &str = "Tempest";

/// A Tempest error as a Temporal ApplicationFailure.
pub fn to_proto(failure: &Failure) -> ProtoFailure {
    ProtoFailure {
        message: failure.message.clone(),
        source: SOURCE.to_owned(),
        stack_trace: failure.stack.clone().unwrap_or_default(),
        cause: failure.cause.as_deref().map(|cause| Box::new(to_proto(cause))),
        failure_info: Some(FailureInfo::ApplicationFailureInfo(ApplicationFailureInfo {
            r#type: failure.failure_type().to_owned(),
            non_retryable: failure.retryable == Some(false),
            details: Some(Payloads { payloads: vec![to_payload(&Data::Json(failure.to_chain()))] }),
            ..Default::default()
        })),
        ..Default::default()
    }
}

/// Kind for a failure type written by another SDK or by Temporal itself.
fn kind_from_type(failure_type: &str) -> Kind {
    match failure_type {
        "ActivityNotRegisteredError" | "WorkflowNotRegisteredError" | "NotFoundError" => Kind::NOT_FOUND,
        other => Kind::known(other).unwrap_or(Kind::UNKNOWN),
    }
}

fn timeout_name(timeout_type: i32) -> &'static str {
    match TimeoutType::try_from(timeout_type).unwrap_or(TimeoutType::Unspecified) {
        TimeoutType::StartToClose => "StartToClose",
        TimeoutType::ScheduleToStart => "ScheduleToStart",
        TimeoutType::ScheduleToClose => "ScheduleToClose",
        TimeoutType::Heartbeat => "Heartbeat",
        TimeoutType::Unspecified => "Unspecified",
    }
}

fn retry_state_name(retry_state: i32) -> &'static str {
    match RetryState::try_from(retry_state).unwrap_or(RetryState::Unspecified) {
        RetryState::InProgress => "InProgress",
        RetryState::NonRetryableFailure => "NonRetryableFailure",
        RetryState::Timeout => "Timeout",
        RetryState::MaximumAttemptsReached => "MaximumAttemptsReached",
        RetryState::RetryPolicyNotSet => "RetryPolicyNotSet",
        RetryState::InternalServerError => "InternalServerError",
        RetryState::CancelRequested => "CancelRequested",
        RetryState::Unspecified => "Unspecified",
    }
}

/// A Temporal failure as a Tempest error; wrapper failures (activity) are unwrapped to their
/// cause, and what the wrapper said is added to the details.
pub fn from_proto(failure: &ProtoFailure) -> Failure {
    match &failure.failure_info {
        Some(FailureInfo::ActivityFailureInfo(info)) => {
            let mut inner = failure.cause.as_deref().map(from_proto).unwrap_or_else(|| leaf(failure));
            add_details(
                &mut inner,
                [
                    ("_wrapper", json!("activity")),
                    ("_activity_id", json!(info.activity_id)),
                    ("_activity_type", json!(info.activity_type.as_ref().map(|t| t.name.as_str()))),
                    ("_retry_state", json!(retry_state_name(info.retry_state))),
                ],
            );
            inner
        }
        Some(FailureInfo::ChildWorkflowExecutionFailureInfo(info)) => {
            let mut inner = failure.cause.as_deref().map(from_proto).unwrap_or_else(|| leaf(failure));
            let execution = info.workflow_execution.as_ref();
            add_details(
                &mut inner,
                [
                    ("_wrapper", json!("child_workflow")),
                    ("_workflow_id", json!(execution.map(|e| e.workflow_id.as_str()))),
                    ("_run_id", json!(execution.map(|e| e.run_id.as_str()))),
                    ("_workflow_type", json!(info.workflow_type.as_ref().map(|t| t.name.as_str()))),
                    ("_retry_state", json!(retry_state_name(info.retry_state))),
                ],
            );
            inner
        }
        _ => leaf(failure),
    }
}

fn leaf(failure: &ProtoFailure) -> Failure {
    match &failure.failure_info {
        Some(FailureInfo::ApplicationFailureInfo(info)) => {
            let chain = first(info.details.as_ref()).and_then(|p| match from_payload(p) {
                Ok(Data::Json(json)) => Failure::from_chain(&json),
                _ => None,
            });
            chain.unwrap_or_else(|| {
                Failure::new(kind_from_type(&info.r#type), failure.message.clone())
                    .with_retryable(Some(!info.non_retryable))
                    .with_stack(non_empty(&failure.stack_trace))
            })
        }
        Some(FailureInfo::TimeoutFailureInfo(info)) => Failure::new(Kind::TIMEOUT, failure.message.clone())
            .with_retryable(Some(false))
            .with_details(Some(json!({ "timeout_type": timeout_name(info.timeout_type) }))),
        Some(FailureInfo::CanceledFailureInfo(_)) => {
            Failure::new(Kind::CANCELED, non_empty(&failure.message).unwrap_or_else(|| "canceled".into()))
                .with_retryable(Some(false))
        }
        Some(FailureInfo::TerminatedFailureInfo(_)) => {
            Failure::new(Kind::CANCELED, "workflow terminated").with_retryable(Some(false))
        }
        Some(FailureInfo::ServerFailureInfo(info)) => {
            Failure::new(Kind::INTERNAL, failure.message.clone()).with_retryable(Some(!info.non_retryable))
        }
        _ => match failure.cause.as_deref() {
            Some(cause) => from_proto(cause).wrap(&failure.message),
            None => Failure::new(Kind::UNKNOWN, failure.message.clone()),
        },
    }
}

fn non_empty(text: &str) -> Option<String> {
    (!text.is_empty()).then(|| text.to_owned())
}

fn add_details<const N: usize>(failure: &mut Failure, fields: [(&str, Json); N]) {
    let mut map = match failure.details.take() {
        Some(Json::Object(map)) => map,
        Some(other) => Map::from_iter([("value".to_owned(), other)]),
        None => Map::new(),
    };
    for (key, value) in fields {
        map.insert(key.to_owned(), value);
    }
    failure.details = Some(Json::Object(map));
}

#[cfg(test)]
mod tests {
    use super::*;
    use temporalio_common::protos::temporal::api::common::v1::ActivityType;
    use temporalio_common::protos::temporal::api::failure::v1::{ActivityFailureInfo, TimeoutFailureInfo};

    fn activity_wrapper(cause: ProtoFailure) -> ProtoFailure {
        ProtoFailure {
            message: "Activity task failed".into(),
            cause: Some(Box::new(cause)),
            failure_info: Some(FailureInfo::ActivityFailureInfo(ActivityFailureInfo {
                activity_id: "1".into(),
                activity_type: Some(ActivityType { name: "app:charge".into() }),
                retry_state: RetryState::NonRetryableFailure as i32,
                ..Default::default()
            })),
            ..Default::default()
        }
    }

    #[test]
    fn chain_round_trips_through_an_activity_failure() {
        let original = Failure::new(Kind::NOT_FOUND, "order missing").with_retryable(Some(false));
        let back = from_proto(&activity_wrapper(to_proto(&original)));
        assert_eq!(
            (back.kind.as_str(), back.message.as_str(), back.retryable),
            ("NotFound", "order missing", Some(false))
        );
        let details = back.details.unwrap();
        assert_eq!(details["_wrapper"], "activity");
        assert_eq!(details["_activity_id"], "1");
        assert_eq!(details["_retry_state"], "NonRetryableFailure");
    }

    #[test]
    fn foreign_failures_map_by_type() {
        let foreign = ProtoFailure {
            message: "no such activity".into(),
            failure_info: Some(FailureInfo::ApplicationFailureInfo(ApplicationFailureInfo {
                r#type: "ActivityNotRegisteredError".into(),
                non_retryable: true,
                ..Default::default()
            })),
            ..Default::default()
        };
        let f = from_proto(&foreign);
        assert_eq!((f.kind.as_str(), f.retryable), ("NotFound", Some(false)));
    }

    #[test]
    fn timeouts_say_which() {
        let timeout = ProtoFailure {
            message: "activity StartToClose timeout".into(),
            failure_info: Some(FailureInfo::TimeoutFailureInfo(TimeoutFailureInfo {
                timeout_type: TimeoutType::StartToClose as i32,
                ..Default::default()
            })),
            ..Default::default()
        };
        let f = from_proto(&activity_wrapper(timeout));
        assert_eq!((f.kind.as_str(), f.retryable), ("Timeout", Some(false)));
        assert_eq!(f.details.unwrap()["timeout_type"], "StartToClose");
    }
}
