//! Lua <-> data conversion, the one place that does it: Lua values to what a payload carries
//! (nothing, JSON or raw bytes) and back, with the rules of SPEC §7, plus the `Bytes` userdata.
//!
//! Lua → JSON: a table whose keys are exactly `1..n` is an array, one with only string keys an
//! object (keys emitted in sorted order), an empty table `[]`. Mixed or sparse keys, cycles, nesting
//! deeper than [`MAX_DEPTH`], functions, threads and foreign userdata are an [`EncodeError`] naming
//! the path (`result.items[3]`). NaN and ±Inf become `null`; floats stay floats (`1.0` → `1.0`).
//! Strings that are not UTF-8 are replaced lossily (U+FFFD), as the reference does: binary data
//! belongs in [`Bytes`]. A [`Bytes`] value converts only at the top level ([`Data::Bytes`]); inside a
//! table it is an error, because JSON has no bytes (encode it with `base64` first). An error object
//! ([`Failure`]) inside a table encodes as its message string, as in the reference.
//!
//! JSON → Lua: `null` → nil, objects → string-keyed tables, arrays → 1-based tables, JSON integers →
//! Lua integers (a `u64` beyond `i64` → float), other numbers → floats (`1.0` stays a float).

use std::fmt;

use mlua::{AnyUserData, Lua, MetaMethod, UserData, UserDataMethods, Value};
use serde_json::{Map, Number};

use crate::failure::Failure;

/// Deepest table nesting that encodes; one more level is an [`EncodeError`].
pub const MAX_DEPTH: usize = 128;

/// What a payload carries: `binary/null`, `json/plain` or `binary/plain`.
#[derive(Debug, Clone, PartialEq)]
pub enum Data {
    Nil,
    Json(serde_json::Value),
    Bytes(Vec<u8>),
}

/// Raw bytes as a Lua value (`crypto.random.bytes`, ciphertexts, `binary/plain` payloads).
///
/// In Lua: `#b`, `tostring(b)` (the raw bytes as a string), `b == c`, `b .. s`, `b:len()`,
/// `b:string()` / `b:to_string()`, `b:hex()`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Bytes(pub Vec<u8>);

impl UserData for Bytes {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_method("len", |_, this, ()| Ok(this.0.len()));
        methods.add_method("string", |lua, this, ()| lua.create_string(&this.0));
        methods.add_method("to_string", |lua, this, ()| lua.create_string(&this.0));
        methods.add_method("hex", |_, this, ()| Ok(hex(&this.0)));
        methods.add_meta_method(MetaMethod::Len, |_, this, ()| Ok(this.0.len()));
        methods.add_meta_method(MetaMethod::ToString, |lua, this, ()| lua.create_string(&this.0));
        methods.add_meta_function(MetaMethod::Eq, |_, (a, b): (AnyUserData, AnyUserData)| {
            Ok(match (a.borrow::<Bytes>(), b.borrow::<Bytes>()) {
                (Ok(a), Ok(b)) => a.0 == b.0,
                _ => false,
            })
        });
        methods.add_meta_function(MetaMethod::Concat, |lua, (a, b): (Value, Value)| {
            let (Some(mut a), Some(b)) = (bytes_or_string(&a), bytes_or_string(&b)) else {
                return Err(mlua::Error::runtime("attempt to concatenate bytes with a non-string"));
            };
            a.extend_from_slice(&b);
            lua.create_string(a)
        });
    }
}

/// The bytes of a Lua string or [`Bytes`] value (the inputs hashing and ciphers accept).
pub fn bytes_or_string(value: &Value) -> Option<Vec<u8>> {
    match value {
        Value::String(s) => Some(s.as_bytes().to_vec()),
        Value::UserData(ud) => ud.borrow::<Bytes>().ok().map(|b| b.0.clone()),
        _ => None,
    }
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0x0f)] as char);
    }
    out
}

/// A Lua value that cannot become JSON, with the path to it.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodeError {
    root: String,
    /// Innermost segment first: segments are added while the error travels outwards.
    segments: Vec<Segment>,
    pub reason: EncodeReason,
}

/// Why a value cannot be encoded.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum EncodeReason {
    /// A value of a type JSON has no form for (the Lua type name).
    Unsupported(&'static str),
    /// A table key that is neither a string nor an integer (the Lua type name).
    InvalidKey(&'static str),
    MixedKeys,
    SparseArray,
    Cycle,
    TooDeep,
    NestedBytes,
}

#[derive(Debug, Clone, PartialEq)]
enum Segment {
    Key(String),
    Index(i64),
}

impl EncodeError {
    fn new(reason: EncodeReason) -> Self {
        EncodeError { root: String::from("value"), segments: Vec::new(), reason }
    }

    fn within(mut self, segment: Segment) -> Self {
        self.segments.push(segment);
        self
    }

    /// Names the root of the path (`result`, `arg1`); the default is `value`.
    #[must_use]
    pub fn with_root(mut self, root: impl Into<String>) -> Self {
        self.root = root.into();
        self
    }

    /// The path to the offending value, e.g. `result.items[3]`.
    pub fn path(&self) -> String {
        let mut path = self.root.clone();
        for segment in self.segments.iter().rev() {
            match segment {
                Segment::Index(i) => path.push_str(&format!("[{i}]")),
                Segment::Key(k) if is_identifier(k) => {
                    path.push('.');
                    path.push_str(k);
                }
                Segment::Key(k) => path.push_str(&format!("[{k:?}]")),
            }
        }
        path
    }
}

fn is_identifier(key: &str) -> bool {
    let mut chars = key.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path(), self.reason)
    }
}

impl std::error::Error for EncodeError {}

impl fmt::Display for EncodeReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeReason::Unsupported(ty) => write!(f, "cannot encode a {ty} as JSON"),
            EncodeReason::InvalidKey(ty) => {
                write!(f, "table key of type {ty} cannot be encoded (keys must be strings or 1..n)")
            }
            EncodeReason::MixedKeys => f.write_str("table mixes integer and string keys"),
            EncodeReason::SparseArray => f.write_str("table has integer keys that are not exactly 1..n (sparse array)"),
            EncodeReason::Cycle => f.write_str("table contains itself (reference cycle)"),
            EncodeReason::TooDeep => write!(f, "tables nested deeper than {MAX_DEPTH} levels"),
            EncodeReason::NestedBytes => f.write_str(
                "bytes inside a table cannot be JSON-encoded (pass them as a top-level value or \
                 base64.encode them)",
            ),
        }
    }
}

/// Converts a Lua value into what a payload carries.
pub fn to_data(value: &Value) -> Result<Data, EncodeError> {
    match value {
        Value::Nil => Ok(Data::Nil),
        Value::UserData(ud) => match ud.borrow::<Bytes>() {
            Ok(bytes) => Ok(Data::Bytes(bytes.0.clone())),
            Err(_) => to_json(value).map(Data::Json),
        },
        _ => to_json(value).map(Data::Json),
    }
}

/// Converts payload data into a Lua value.
pub fn from_data(lua: &Lua, data: &Data) -> mlua::Result<Value> {
    match data {
        Data::Nil => Ok(Value::Nil),
        Data::Json(json) => json_to_lua(lua, json),
        Data::Bytes(bytes) => lua.create_userdata(Bytes(bytes.clone())).map(Value::UserData),
    }
}

/// Converts a Lua value into JSON (a top-level [`Bytes`] is an error here: see [`to_data`]).
pub fn to_json(value: &Value) -> Result<serde_json::Value, EncodeError> {
    let mut visiting = Vec::new();
    encode(value, &mut visiting)
}

fn encode(value: &Value, visiting: &mut Vec<*const std::ffi::c_void>) -> Result<serde_json::Value, EncodeError> {
    Ok(match value {
        Value::Nil => serde_json::Value::Null,
        Value::Boolean(b) => serde_json::Value::Bool(*b),
        Value::Integer(i) => serde_json::Value::Number(Number::from(*i)),
        Value::Number(n) => Number::from_f64(*n).map_or(serde_json::Value::Null, serde_json::Value::Number),
        Value::String(s) => serde_json::Value::String(lossy(&s.as_bytes())),
        Value::Table(table) => return encode_table(table, visiting),
        Value::LightUserData(p) if p.0.is_null() => serde_json::Value::Null,
        Value::UserData(ud) => {
            if ud.is::<Bytes>() {
                return Err(EncodeError::new(EncodeReason::NestedBytes));
            }
            match ud.borrow::<Failure>() {
                Ok(failure) => serde_json::Value::String(failure.to_string()),
                Err(_) => return Err(EncodeError::new(EncodeReason::Unsupported("userdata"))),
            }
        }
        other => {
            return Err(EncodeError::new(EncodeReason::Unsupported(other.type_name())));
        }
    })
}

fn lossy(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_owned(),
        Err(_) => String::from_utf8_lossy(bytes).into_owned(),
    }
}

fn encode_table(
    table: &mlua::Table,
    visiting: &mut Vec<*const std::ffi::c_void>,
) -> Result<serde_json::Value, EncodeError> {
    let pointer = table.to_pointer();
    if visiting.contains(&pointer) {
        return Err(EncodeError::new(EncodeReason::Cycle));
    }
    if visiting.len() >= MAX_DEPTH {
        return Err(EncodeError::new(EncodeReason::TooDeep));
    }
    visiting.push(pointer);
    let result = encode_entries(table, visiting);
    visiting.pop();
    result
}

fn encode_entries(
    table: &mlua::Table,
    visiting: &mut Vec<*const std::ffi::c_void>,
) -> Result<serde_json::Value, EncodeError> {
    let mut items: Vec<(i64, serde_json::Value)> = Vec::with_capacity(table.raw_len());
    let mut fields: Vec<(String, serde_json::Value)> = Vec::new();
    for pair in table.pairs::<Value, Value>() {
        // Iteration over a live table only fails on Lua-level errors we cannot attribute.
        let (key, value) = pair.map_err(|_| EncodeError::new(EncodeReason::Unsupported("table")))?;
        match key {
            Value::Integer(i) => {
                if !fields.is_empty() {
                    return Err(EncodeError::new(EncodeReason::MixedKeys));
                }
                let json = encode(&value, visiting).map_err(|e| e.within(Segment::Index(i)))?;
                items.push((i, json));
            }
            Value::String(s) => {
                if !items.is_empty() {
                    return Err(EncodeError::new(EncodeReason::MixedKeys));
                }
                let key = lossy(&s.as_bytes());
                match encode(&value, visiting) {
                    Ok(json) => fields.push((key, json)),
                    Err(e) => return Err(e.within(Segment::Key(key))),
                }
            }
            other => {
                return Err(EncodeError::new(EncodeReason::InvalidKey(other.type_name())));
            }
        }
    }
    if !fields.is_empty() {
        // Sorting here keeps the bytes sorted even if serde_json's `preserve_order` gets enabled
        // by some other crate in the build.
        fields.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        return Ok(serde_json::Value::Object(fields.into_iter().collect::<Map<_, _>>()));
    }
    if !items.is_sorted_by_key(|(i, _)| *i) {
        items.sort_unstable_by_key(|(i, _)| *i);
    }
    for (position, (key, _)) in items.iter().enumerate() {
        if usize::try_from(*key).ok() != Some(position + 1) {
            return Err(EncodeError::new(EncodeReason::SparseArray));
        }
    }
    Ok(serde_json::Value::Array(items.into_iter().map(|(_, v)| v).collect()))
}

/// Converts JSON into a Lua value.
pub fn json_to_lua(lua: &Lua, json: &serde_json::Value) -> mlua::Result<Value> {
    Ok(match json {
        serde_json::Value::Null => Value::Nil,
        serde_json::Value::Bool(b) => Value::Boolean(*b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Value::Integer(i),
            None => Value::Number(n.as_f64().unwrap_or(f64::NAN)),
        },
        serde_json::Value::String(s) => Value::String(lua.create_string(s)?),
        serde_json::Value::Array(items) => {
            let table = lua.create_table_with_capacity(items.len(), 0)?;
            for (index, item) in items.iter().enumerate() {
                table.raw_set(index + 1, json_to_lua(lua, item)?)?;
            }
            Value::Table(table)
        }
        serde_json::Value::Object(fields) => {
            let table = lua.create_table_with_capacity(0, fields.len())?;
            for (key, item) in fields {
                table.raw_set(key.as_str(), json_to_lua(lua, item)?)?;
            }
            Value::Table(table)
        }
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn eval(lua: &Lua, code: &str) -> Value {
        lua.load(code).eval().unwrap()
    }

    fn encode_str(code: &str) -> Result<String, String> {
        let lua = Lua::new();
        let value = eval(&lua, code);
        to_json(&value).map(|v| v.to_string()).map_err(|e| e.with_root("result").to_string())
    }

    #[test]
    fn scalars() {
        assert_eq!(encode_str("return nil").unwrap(), "null");
        assert_eq!(encode_str("return true").unwrap(), "true");
        assert_eq!(encode_str("return 42").unwrap(), "42");
        assert_eq!(encode_str("return 1.5").unwrap(), "1.5");
        assert_eq!(encode_str("return 1.0").unwrap(), "1.0");
        assert_eq!(encode_str("return 0/0").unwrap(), "null");
        assert_eq!(encode_str("return math.huge").unwrap(), "null");
        assert_eq!(encode_str("return -math.huge").unwrap(), "null");
        assert_eq!(encode_str("return 'hé\"'").unwrap(), r#""hé\"""#);
        assert_eq!(encode_str("return '\\xff'").unwrap(), "\"\u{fffd}\"");
    }

    #[test]
    fn tables() {
        assert_eq!(encode_str("return {}").unwrap(), "[]");
        assert_eq!(encode_str("return {1, 'a', true}").unwrap(), r#"[1,"a",true]"#);
        assert_eq!(encode_str("return {b = 1, a = {2, 3}, c = {}}").unwrap(), r#"{"a":[2,3],"b":1,"c":[]}"#);
        assert_eq!(encode_str("local t = {} t[2] = 'b' t[1] = 'a' return t").unwrap(), r#"["a","b"]"#);
        assert_eq!(encode_str("return {['1'] = 'x'}").unwrap(), r#"{"1":"x"}"#);
    }

    #[test]
    fn errors_name_the_path() {
        assert_eq!(
            encode_str("return {items = {1, 2, print}}").unwrap_err(),
            "result.items[3]: cannot encode a function as JSON"
        );
        assert_eq!(
            encode_str("return {a = {b = {1, x = 2}}}").unwrap_err(),
            "result.a.b: table mixes integer and string keys"
        );
        assert_eq!(
            encode_str("return {[1] = 1, [3] = 3}").unwrap_err(),
            "result: table has integer keys that are not exactly 1..n (sparse array)"
        );
        assert!(encode_str("return {[0] = 1}").unwrap_err().contains("sparse"));
        assert!(encode_str("return {[true] = 1}").unwrap_err().contains("key of type boolean"));
        assert!(encode_str("return {[1.5] = 1}").unwrap_err().contains("key of type number"));
        assert_eq!(
            encode_str("local t = {} t.self = t return {x = t}").unwrap_err(),
            "result.x.self: table contains itself (reference cycle)"
        );
        assert_eq!(
            encode_str("return {['a b'] = {coroutine.create(print)}}").unwrap_err(),
            "result[\"a b\"][1]: cannot encode a thread as JSON"
        );
    }

    #[test]
    fn depth_limit() {
        let ok = format!("return {}{}", "{".repeat(MAX_DEPTH), "}".repeat(MAX_DEPTH));
        assert!(encode_str(&ok).is_ok());
        let deep = format!("return {}{}", "{".repeat(MAX_DEPTH + 1), "}".repeat(MAX_DEPTH + 1));
        assert!(encode_str(&deep).unwrap_err().contains("deeper than 128"));
    }

    #[test]
    fn bytes_top_level_and_nested() {
        let lua = Lua::new();
        let bytes = lua.create_userdata(Bytes(vec![0, 255])).unwrap();
        assert_eq!(to_data(&Value::UserData(bytes.clone())).unwrap(), Data::Bytes(vec![0, 255]));
        lua.globals().set("b", bytes).unwrap();
        let nested = eval(&lua, "return {data = b}");
        let err = to_json(&nested).unwrap_err().with_root("arg1");
        assert_eq!(err.reason, EncodeReason::NestedBytes);
        assert!(err.to_string().starts_with("arg1.data: bytes inside a table"));
        assert_eq!(to_data(&Value::Nil).unwrap(), Data::Nil);
        assert_eq!(to_data(&Value::Integer(1)).unwrap(), Data::Json(json!(1)));
    }

    #[test]
    fn bytes_userdata_methods() {
        let lua = Lua::new();
        lua.globals().set("b", Bytes(b"hi\0".to_vec())).unwrap();
        lua.globals().set("c", Bytes(b"hi\0".to_vec())).unwrap();
        let ok: bool = eval(
            &lua,
            r#"return #b == 3 and b:len() == 3 and tostring(b) == "hi\0"
            and b:string() == "hi\0" and b:to_string() == "hi\0" and b:hex() == "686900"
            and b == c and (b .. "!") == "hi\0!""#,
        )
        .as_boolean()
        .unwrap();
        assert!(ok);
    }

    #[test]
    fn failure_inside_table_is_its_message() {
        let lua = Lua::new();
        lua.globals().set("e", Failure::internal("boom")).unwrap();
        assert_eq!(to_json(&eval(&lua, "return {err = e}")).unwrap(), json!({"err": "boom"}));
    }

    #[test]
    fn json_to_lua_rules() {
        let lua = Lua::new();
        let value = json!({"a": [1, 2.5, null, "s"], "big": u64::MAX, "f": 1.0, "n": null, "t": true});
        let lua_value = json_to_lua(&lua, &value).unwrap();
        lua.globals().set("v", lua_value).unwrap();
        let ok: bool = eval(
            &lua,
            r#"return math.type(v.a[1]) == "integer" and v.a[2] == 2.5
            and v.a[3] == nil and v.a[4] == "s" and math.type(v.big) == "float"
            and math.type(v.f) == "float" and v.n == nil and v.t == true"#,
        )
        .as_boolean()
        .unwrap();
        assert!(ok);
        assert!(matches!(from_data(&lua, &Data::Nil).unwrap(), Value::Nil));
        let bytes = from_data(&lua, &Data::Bytes(vec![1, 2])).unwrap();
        assert_eq!(to_data(&bytes).unwrap(), Data::Bytes(vec![1, 2]));
    }

    #[test]
    fn round_trip() {
        let lua = Lua::new();
        let value = json!({"list": [1, 2, {"x": -3}], "name": "n", "pi": 3.25, "one": 1.0, "e": []});
        let back = to_json(&json_to_lua(&lua, &value).unwrap()).unwrap();
        assert_eq!(back, value);
    }
}
