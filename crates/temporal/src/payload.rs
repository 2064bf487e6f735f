//! Lua data <-> Temporal payloads (SPEC §7): `binary/null`, `json/plain`, `binary/plain`, the
//! encodings every Temporal SDK and the CLI understand.

use std::collections::HashMap;

use tempest_lua::convert::Data;
use temporalio_common::protos::temporal::api::common::v1::{Payload, Payloads};

const ENCODING: &str = "encoding";
const JSON_PLAIN: &[u8] = b"json/plain";
const BINARY_NULL: &[u8] = b"binary/null";
const BINARY_PLAIN: &[u8] = b"binary/plain";

/// A payload Tempest cannot turn into a Lua value. Not retryable: the same bytes fail again.
#[derive(Debug, thiserror::Error, PartialEq)]
#[non_exhaustive]
pub enum PayloadError {
    #[error("payload has no `encoding` metadata")]
    MissingEncoding,
    #[error("unsupported payload encoding `{0}` (Tempest reads json/plain, binary/plain and binary/null)")]
    Unsupported(String),
    #[error("json/plain payload is not valid JSON: {0}")]
    InvalidJson(String),
}

pub fn to_payload(data: &Data) -> Payload {
    let (encoding, bytes) = match data {
        Data::Nil => (BINARY_NULL, Vec::new()),
        Data::Json(value) => (JSON_PLAIN, serde_json::to_vec(value).unwrap_or_default()),
        Data::Bytes(bytes) => (BINARY_PLAIN, bytes.clone()),
    };
    Payload { metadata: HashMap::from([(ENCODING.to_owned(), encoding.to_vec())]), data: bytes, ..Default::default() }
}

pub fn to_payloads(data: &[Data]) -> Vec<Payload> {
    data.iter().map(to_payload).collect()
}

pub fn from_payload(payload: &Payload) -> Result<Data, PayloadError> {
    match payload.metadata.get(ENCODING).map(Vec::as_slice) {
        Some(JSON_PLAIN) => {
            serde_json::from_slice(&payload.data).map(Data::Json).map_err(|e| PayloadError::InvalidJson(e.to_string()))
        }
        Some(BINARY_NULL) => Ok(Data::Nil),
        Some(BINARY_PLAIN) => Ok(Data::Bytes(payload.data.clone())),
        Some(other) => Err(PayloadError::Unsupported(String::from_utf8_lossy(other).into_owned())),
        None => Err(PayloadError::MissingEncoding),
    }
}

/// Decodes every payload, naming the position of the first one that fails (`argument 2: ...`).
pub fn from_payloads(payloads: &[Payload], what: &str) -> Result<Vec<Data>, String> {
    payloads.iter().enumerate().map(|(i, p)| from_payload(p).map_err(|e| format!("{what} {}: {e}", i + 1))).collect()
}

/// The header that carries context values (`with_context`, `ctx.get`) between Temporal calls.
pub const CONTEXT_HEADER: &str = "wippy-context";

/// Context values from a `wippy-context` header; a malformed header is logged and ignored.
pub fn context_from_headers(headers: &HashMap<String, Payload>) -> Option<serde_json::Map<String, serde_json::Value>> {
    match from_payload(headers.get(CONTEXT_HEADER)?) {
        Ok(Data::Json(serde_json::Value::Object(map))) => Some(map),
        Ok(_) => {
            tracing::warn!("ignoring a `{CONTEXT_HEADER}` header that is not a JSON object");
            None
        }
        Err(e) => {
            tracing::warn!("ignoring an unreadable `{CONTEXT_HEADER}` header: {e}");
            None
        }
    }
}

/// A `wippy-context` header for `context`, or no headers when there is none.
pub fn context_headers(context: Option<&serde_json::Map<String, serde_json::Value>>) -> HashMap<String, Payload> {
    match context {
        Some(map) if !map.is_empty() => HashMap::from([(
            CONTEXT_HEADER.to_owned(),
            to_payload(&Data::Json(serde_json::Value::Object(map.clone()))),
        )]),
        _ => HashMap::new(),
    }
}

/// The first payload of an optional `Payloads`, for results and failure details.
pub fn first(payloads: Option<&Payloads>) -> Option<&Payload> {
    payloads.and_then(|p| p.payloads.first())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trips() {
        for data in [Data::Nil, Data::Json(json!({"a": [1, 2.5, "x"]})), Data::Bytes(vec![0, 159, 255])] {
            assert_eq!(from_payload(&to_payload(&data)), Ok(data));
        }
        assert_eq!(to_payload(&Data::Json(json!("hi"))).data, b"\"hi\"");
    }

    #[test]
    fn foreign_encodings_are_named() {
        let mut p = to_payload(&Data::Nil);
        p.metadata.insert(ENCODING.into(), b"json/protobuf".to_vec());
        assert_eq!(
            from_payloads(&[to_payload(&Data::Nil), p], "argument").unwrap_err(),
            "argument 2: unsupported payload encoding `json/protobuf` (Tempest reads json/plain, binary/plain and binary/null)"
        );
    }
}
