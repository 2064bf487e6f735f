//! Reading recorded workflow histories from files: the proto-JSON that `temporal workflow show
//! --output json` and the Web UI's download produce, and Core's binary protobuf `History`.
//!
//! Proto-JSON (camelCase fields, enum names, base64 bytes, int64 as strings) is not what the
//! generated serde impls read, so JSON goes through prost-reflect with the descriptor set
//! `temporalio-protos` compiles (copied into OUT_DIR by `build.rs`) and is re-encoded as protobuf.

use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use prost::Message;
use prost_reflect::{DescriptorPool, DeserializeOptions, DynamicMessage, Kind, MessageDescriptor};
use serde_json::Value;
use temporalio_common::protos::temporal::api::enums::v1::EventType;
pub use temporalio_common::protos::temporal::api::history::v1::History;
use temporalio_common::protos::temporal::api::history::v1::history_event::Attributes;
use temporalio_sdk_core::replay::HistoryInfo;

const DESCRIPTORS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/temporal_descriptors.bin"));
const HISTORY_MESSAGE: &str = "temporal.api.history.v1.History";

static HISTORY_DESCRIPTOR: LazyLock<Result<MessageDescriptor, String>> = LazyLock::new(|| {
    let pool = DescriptorPool::decode(DESCRIPTORS).map_err(|e| format!("bad built-in descriptors: {e}"))?;
    pool.get_message_by_name(HISTORY_MESSAGE).ok_or_else(|| format!("built-in descriptors lack {HISTORY_MESSAGE}"))
});

/// Why a history file could not be read. Fatal for that file; other files are unaffected.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HistoryFileError {
    #[error("{}: cannot read: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    /// Wraps any other variant with the file it came from.
    #[error("{}: {problem}", path.display())]
    InFile { path: PathBuf, problem: Box<HistoryFileError> },
    #[error("not valid JSON ({0})")]
    NotJson(String),
    #[error(
        "not a workflow history: expected a JSON object with an `events` array, as printed by `temporal workflow show --output json`"
    )]
    MissingEvents,
    #[error("not a workflow history: {0}")]
    NotHistory(String),
    #[error("neither JSON nor a binary protobuf History ({0})")]
    NotProtobuf(String),
    #[error("the history has no events")]
    NoEvents,
    #[error("the history starts with {0}, not WorkflowExecutionStarted")]
    NotStarted(String),
    #[error("the WorkflowExecutionStarted event has no originalExecutionRunId")]
    NoRunId,
    /// Core's replay worker would reject (panic on) this history.
    #[error("cannot be replayed: {0}")]
    Unreplayable(String),
    /// An internal error: the descriptors compiled into Tempest are unusable.
    #[error("{0}")]
    Descriptors(String),
}

/// Reads the history in `path`; errors name the file.
pub fn read_history_file(path: &Path) -> Result<(Option<String>, History), HistoryFileError> {
    let bytes = std::fs::read(path).map_err(|source| HistoryFileError::Read { path: path.to_owned(), source })?;
    read_history(&bytes)
        .map_err(|problem| HistoryFileError::InFile { path: path.to_owned(), problem: Box::new(problem) })
}

/// Parses a history in proto-JSON or binary protobuf; returns the workflow ID when the
/// WorkflowExecutionStarted event records it.
pub fn read_history(bytes: &[u8]) -> Result<(Option<String>, History), HistoryFileError> {
    let text = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let history = match text.iter().find(|b| !b.is_ascii_whitespace()) {
        // `{` is an end-group tag on wire, which a binary History never starts with.
        Some(b'{' | b'[') => from_json(text)?,
        _ => History::decode(bytes).map_err(|e| HistoryFileError::NotProtobuf(e.to_string()))?,
    };
    let first = history.events.first().ok_or(HistoryFileError::NoEvents)?;
    match &first.attributes {
        Some(Attributes::WorkflowExecutionStartedEventAttributes(started)) => {
            if started.original_execution_run_id.is_empty() {
                return Err(HistoryFileError::NoRunId);
            }
            HistoryInfo::new_from_history(&history, None).map_err(|e| HistoryFileError::Unreplayable(e.to_string()))?;
            let id = Some(started.workflow_id.clone()).filter(|id| !id.is_empty());
            Ok((id, history))
        }
        _ => Err(HistoryFileError::NotStarted(event_type_name(first.event_type))),
    }
}

/// The run ID recorded in the history's first event, which [`crate::replay::ReplayFailure`]
/// reports; empty for histories [`read_history`] would reject.
pub fn run_id(history: &History) -> &str {
    match history.events.first().and_then(|e| e.attributes.as_ref()) {
        Some(Attributes::WorkflowExecutionStartedEventAttributes(started)) => &started.original_execution_run_id,
        _ => "",
    }
}

fn event_type_name(event_type: i32) -> String {
    EventType::try_from(event_type).map_or_else(|_| format!("event type {event_type}"), |t| format!("{t:?}"))
}

fn from_json(text: &[u8]) -> Result<History, HistoryFileError> {
    let mut value: Value = serde_json::from_slice(text).map_err(|e| HistoryFileError::NotJson(e.to_string()))?;
    // A GetWorkflowExecutionHistory response wraps the history in `history`.
    if value.get("events").is_none()
        && let Some(inner) = value.get_mut("history")
    {
        value = inner.take();
    }
    if !value.get("events").is_some_and(Value::is_array) {
        return Err(HistoryFileError::MissingEvents);
    }
    let descriptor = HISTORY_DESCRIPTOR.as_ref().map_err(|e| HistoryFileError::Descriptors(e.clone()))?;
    expand_short_enums(&mut value, descriptor);
    let options = DeserializeOptions::new().deny_unknown_fields(false);
    let message = DynamicMessage::deserialize_with_options(descriptor.clone(), value, &options)
        .map_err(|e| HistoryFileError::NotHistory(e.to_string()))?;
    History::decode(message.encode_to_vec().as_slice()).map_err(|e| HistoryFileError::NotHistory(e.to_string()))
}

/// Rewrites enum values some exporters (older Web UI and SDK versions) write in short form,
/// `WorkflowExecutionStarted`, into the proto name `EVENT_TYPE_WORKFLOW_EXECUTION_STARTED`.
fn expand_short_enums(value: &mut Value, message: &MessageDescriptor) {
    let Value::Object(object) = value else { return };
    for (key, field_value) in object.iter_mut() {
        let Some(field) = message.get_field_by_json_name(key).or_else(|| message.get_field_by_name(key)) else {
            continue;
        };
        let kind = if field.is_map() {
            match field.kind() {
                Kind::Message(entry) => entry.map_entry_value_field().kind(),
                _ => continue,
            }
        } else {
            field.kind()
        };
        let items: Vec<&mut Value> = match field_value {
            Value::Array(items) if field.is_list() => items.iter_mut().collect(),
            Value::Object(entries) if field.is_map() => entries.values_mut().collect(),
            other => vec![other],
        };
        for item in items {
            match &kind {
                Kind::Message(inner) => expand_short_enums(item, inner),
                Kind::Enum(enumeration) => {
                    if let Value::String(name) = item
                        && enumeration.get_value_by_name(name).is_none()
                    {
                        let prefix = enum_prefix(enumeration.name());
                        let long = format!("{prefix}{}", screaming_snake(name));
                        if enumeration.get_value_by_name(&long).is_some() {
                            *name = long;
                        }
                    }
                }
                _ => {}
            }
        }
    }
}

/// `EventType` → `EVENT_TYPE_`: Temporal's enum values are all prefixed with their type's name.
fn enum_prefix(enum_name: &str) -> String {
    format!("{}_", screaming_snake(enum_name))
}

fn screaming_snake(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 8);
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAPTURED: &str = include_str!("../../cli/tests/replay/captured.json");

    #[test]
    fn reads_a_cli_export() {
        let (id, history) = read_history(CAPTURED.as_bytes()).expect("history");
        assert_eq!(id.as_deref(), Some("replay-fixture"));
        assert!(history.events.len() > 5);
        assert_eq!(history.events[0].event_id, 1);
        assert_eq!(history.events[0].event_type, EventType::WorkflowExecutionStarted as i32);
        assert!(history.events.iter().any(|e| e.event_type == EventType::ActivityTaskCompleted as i32));
        assert!(history.events.iter().any(|e| e.event_type == EventType::TimerFired as i32));
    }

    #[test]
    fn binary_round_trip() {
        let (_, history) = read_history(CAPTURED.as_bytes()).expect("history");
        let (id, again) = read_history(&history.encode_to_vec()).expect("binary history");
        assert_eq!(again, history);
        assert_eq!(id.as_deref(), Some("replay-fixture"));
    }

    #[test]
    fn short_enum_names_are_expanded() {
        let short = CAPTURED.replace("EVENT_TYPE_WORKFLOW_EXECUTION_STARTED", "WorkflowExecutionStarted");
        assert_ne!(short, CAPTURED);
        let (_, history) = read_history(short.as_bytes()).expect("history");
        assert_eq!(history.events[0].event_type, EventType::WorkflowExecutionStarted as i32);
    }

    #[test]
    fn a_wrapped_response_is_accepted() {
        let wrapped = format!("{{\"history\": {CAPTURED}}}");
        assert!(read_history(wrapped.as_bytes()).is_ok());
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let message = |bytes: &[u8]| read_history(bytes).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(message(b"{ not json").starts_with("not valid JSON (key must be a string at line 1 column 3)"));
        assert_eq!(
            message(b"{\"workflows\": []}"),
            "not a workflow history: expected a JSON object with an `events` array, as printed by `temporal workflow show --output json`"
        );
        assert!(message(b"this is not a history").starts_with("neither JSON nor a binary protobuf History ("));
        assert_eq!(message(b"{\"events\": []}"), "the history has no events");
        assert_eq!(message(b""), "the history has no events");
        assert!(message(b"{\"events\": [{\"eventId\": \"x\"}]}").starts_with("not a workflow history: "));
        assert_eq!(
            message(b"{\"events\": [{\"eventId\": \"1\", \"eventType\": \"EVENT_TYPE_TIMER_FIRED\"}]}"),
            "the history starts with TimerFired, not WorkflowExecutionStarted"
        );
    }

    #[test]
    fn file_errors_name_the_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("junk.json");
        std::fs::write(&path, "[1, 2]").expect("write");
        let error = read_history_file(&path).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(error.starts_with(&format!("{}: not a workflow history", path.display())), "{error}");
        let missing =
            read_history_file(&dir.path().join("missing.json")).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(missing.contains("missing.json: cannot read: "), "{missing}");
    }
}
