//! Tempest's error value (SPEC §8): a kind, a message, retryability, JSON details, a cause and a
//! Lua stack; the userdata Lua code sees as `err`, and its conversions from raised Lua errors,
//! from the `value, err` return convention and to/from the wire error chain.
//!
//! `tostring(err)` and [`Display`](fmt::Display) give the message alone, as Go's `err.Error()` does
//! in the reference; a wrapped error's message already reads `context: inner`.

use std::borrow::Cow;
use std::fmt;

use mlua::{Function, IntoLua, Lua, MetaMethod, UserData, UserDataMethods, Value};
use serde_json::json;

use crate::convert;

/// An error kind: one of the constants below, or any other string a script chose.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Kind(Cow<'static, str>);

impl Kind {
    pub const NOT_FOUND: Kind = Kind(Cow::Borrowed("NotFound"));
    pub const ALREADY_EXISTS: Kind = Kind(Cow::Borrowed("AlreadyExists"));
    pub const INVALID: Kind = Kind(Cow::Borrowed("Invalid"));
    pub const PERMISSION_DENIED: Kind = Kind(Cow::Borrowed("PermissionDenied"));
    pub const UNAVAILABLE: Kind = Kind(Cow::Borrowed("Unavailable"));
    pub const INTERNAL: Kind = Kind(Cow::Borrowed("Internal"));
    pub const CANCELED: Kind = Kind(Cow::Borrowed("Canceled"));
    pub const CONFLICT: Kind = Kind(Cow::Borrowed("Conflict"));
    pub const TIMEOUT: Kind = Kind(Cow::Borrowed("Timeout"));
    pub const RATE_LIMITED: Kind = Kind(Cow::Borrowed("RateLimited"));
    pub const UNKNOWN: Kind = Kind(Cow::Borrowed("Unknown"));

    /// Every predefined kind with its Lua constant name (`errors.NOT_FOUND`, ...).
    pub const ALL: [(&'static str, Kind); 11] = [
        ("NOT_FOUND", Kind::NOT_FOUND),
        ("ALREADY_EXISTS", Kind::ALREADY_EXISTS),
        ("INVALID", Kind::INVALID),
        ("PERMISSION_DENIED", Kind::PERMISSION_DENIED),
        ("UNAVAILABLE", Kind::UNAVAILABLE),
        ("INTERNAL", Kind::INTERNAL),
        ("CANCELED", Kind::CANCELED),
        ("CONFLICT", Kind::CONFLICT),
        ("TIMEOUT", Kind::TIMEOUT),
        ("RATE_LIMITED", Kind::RATE_LIMITED),
        ("UNKNOWN", Kind::UNKNOWN),
    ];

    /// A kind from its string; an empty string is [`Kind::UNKNOWN`].
    pub fn new(name: &str) -> Kind {
        match Kind::known(name) {
            Some(kind) => kind,
            None if name.is_empty() => Kind::UNKNOWN,
            None => Kind(Cow::Owned(name.to_owned())),
        }
    }

    /// The predefined kind with this string value, if there is one.
    pub fn known(name: &str) -> Option<Kind> {
        Kind::ALL.iter().find(|(_, kind)| kind.as_str() == name).map(|(_, kind)| kind.clone())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An error as Lua code and the wire see it.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub kind: Kind,
    /// The whole message; for a wrapped error `context: inner message`.
    pub message: String,
    /// `None` when unspecified (the reference's `nil`).
    pub retryable: Option<bool>,
    pub details: Option<serde_json::Value>,
    /// The wrapped error, if this one was made by `errors.wrap`.
    pub cause: Option<Box<Failure>>,
    /// A Lua traceback, when known.
    pub stack: Option<String>,
}

impl Failure {
    pub fn new(kind: Kind, message: impl Into<String>) -> Failure {
        Failure { kind, message: message.into(), retryable: None, details: None, cause: None, stack: None }
    }

    /// Kind Internal, non-retryable: what a raised error or a returned string becomes.
    pub fn internal(message: impl Into<String>) -> Failure {
        Failure::new(Kind::INTERNAL, message).with_retryable(Some(false))
    }

    /// Kind Invalid, non-retryable: what a module returns for bad input.
    pub fn invalid(message: impl Into<String>) -> Failure {
        Failure::new(Kind::INVALID, message).with_retryable(Some(false))
    }

    #[must_use]
    pub fn with_retryable(mut self, retryable: Option<bool>) -> Failure {
        self.retryable = retryable;
        self
    }

    #[must_use]
    pub fn with_details(mut self, details: Option<serde_json::Value>) -> Failure {
        self.details = details;
        self
    }

    #[must_use]
    pub fn with_stack(mut self, stack: Option<String>) -> Failure {
        self.stack = stack;
        self
    }

    /// Wraps `self` under `context`, Go style: the message becomes `context: inner`, and kind,
    /// retryability, details and stack are inherited.
    #[must_use]
    pub fn wrap(self, context: &str) -> Failure {
        Failure {
            kind: self.kind.clone(),
            message: format!("{context}: {}", self.message),
            retryable: self.retryable,
            details: self.details.clone(),
            stack: self.stack.clone(),
            cause: Some(Box::new(self)),
        }
    }

    /// This error, then its causes, outermost first.
    pub fn chain(&self) -> impl Iterator<Item = &Failure> {
        std::iter::successors(Some(self), |f| f.cause.as_deref())
    }

    /// Whether this error or any cause has `kind`.
    pub fn is(&self, kind: &Kind) -> bool {
        self.chain().any(|f| &f.kind == kind)
    }

    /// The Temporal ApplicationFailure type for this error: its kind, `Internal` when Unknown.
    pub fn failure_type(&self) -> &str {
        if self.kind == Kind::UNKNOWN { Kind::INTERNAL.0.as_ref() } else { self.kind.as_str() }
    }

    /// The error a raised Lua error stands for. A [`Failure`] raised with `error(err)` comes back
    /// as itself when the call went through [`protect`] (or a Rust callback returned it as
    /// `mlua::Error::external`); anything else is kind Internal, non-retryable, with Lua's message
    /// (position prefix kept) and the Lua traceback as stack.
    pub fn from_lua_error(error: &mlua::Error) -> Failure {
        match error {
            mlua::Error::CallbackError { traceback, cause } => {
                let failure = Failure::from_lua_error(cause);
                if failure.stack.is_some() { failure } else { failure.with_stack(Some(traceback.clone())) }
            }
            mlua::Error::WithContext { context, cause } => Failure::from_lua_error(cause).wrap(context),
            mlua::Error::ExternalError(external) => match external.downcast_ref::<Failure>() {
                Some(failure) => failure.clone(),
                None => Failure::internal(external.to_string()),
            },
            mlua::Error::RuntimeError(text) | mlua::Error::SyntaxError { message: text, .. } => {
                let (message, stack) = split_traceback(text);
                Failure::internal(message).with_stack(stack)
            }
            mlua::Error::MemoryError(text) => Failure::internal(format!("out of memory: {text}")),
            other => Failure::internal(other.to_string()),
        }
    }

    /// The second-return-value convention: a Failure → it; a string → Internal, non-retryable;
    /// nil/false → no error; anything else → Internal "unexpected error value of type X".
    pub fn from_return(value: &Value) -> Option<Failure> {
        match value {
            Value::Nil | Value::Boolean(false) => None,
            Value::String(s) => Some(Failure::internal(s.to_string_lossy())),
            Value::Error(error) => Some(Failure::from_lua_error(error)),
            other => {
                Some(Failure::from_value(other).unwrap_or_else(|| {
                    Failure::internal(format!("unexpected error value of type {}", other.type_name()))
                }))
            }
        }
    }

    /// A copy of the Failure inside a Lua value, if it is one.
    pub fn from_value(value: &Value) -> Option<Failure> {
        match value {
            Value::UserData(ud) => ud.borrow::<Failure>().ok().map(|f| f.clone()),
            _ => None,
        }
    }

    /// Hands the error to Lua as userdata.
    pub fn push(self, lua: &Lua) -> mlua::Result<Value> {
        lua.create_userdata(self).map(Value::UserData)
    }

    /// The wire chain `{"errors":[{"msg","kind","retry","details"[,"stack"]}...]}`, outermost
    /// first; `retry` and `details` are `null` when unspecified, `stack` only when known.
    pub fn to_chain(&self) -> serde_json::Value {
        let errors: Vec<serde_json::Value> = self
            .chain()
            .map(|f| {
                let mut level = json!({
                    "msg": f.message,
                    "kind": f.kind.as_str(),
                    "retry": f.retryable,
                    "details": f.details,
                });
                if let (Some(stack), Some(map)) = (&f.stack, level.as_object_mut()) {
                    map.insert("stack".to_owned(), json!(stack));
                }
                level
            })
            .collect();
        json!({ "errors": errors })
    }

    /// Rebuilds an error from [`Failure::to_chain`]'s form (or the reference's, where `kind` and
    /// `retry` may be absent). `None` unless it holds at least one level with a string `msg`.
    pub fn from_chain(chain: &serde_json::Value) -> Option<Failure> {
        let levels = chain.get("errors")?.as_array()?;
        let mut failure: Option<Failure> = None;
        for level in levels.iter().rev() {
            let message = level.get("msg")?.as_str()?;
            let kind = level.get("kind").and_then(|k| k.as_str()).map_or(Kind::UNKNOWN, Kind::new);
            failure = Some(Failure {
                kind,
                message: message.to_owned(),
                retryable: level.get("retry").and_then(serde_json::Value::as_bool),
                details: level.get("details").filter(|d| !d.is_null()).cloned(),
                stack: level.get("stack").and_then(|s| s.as_str()).map(str::to_owned),
                cause: failure.map(Box::new),
            });
        }
        failure
    }
}

/// The `value, err` return convention of module functions: `value, nil` or `nil, err`.
pub fn returned<T: IntoLua>(lua: &Lua, result: Result<T, Failure>) -> mlua::Result<(Value, Value)> {
    match result {
        Ok(value) => Ok((value.into_lua(lua)?, Value::Nil)),
        Err(failure) => Ok((Value::Nil, failure.push(lua)?)),
    }
}

/// Splits mlua's `message\nstack traceback:\n...` into the message and the traceback.
fn split_traceback(text: &str) -> (String, Option<String>) {
    match text.find("\nstack traceback:") {
        Some(at) => (text[..at].to_owned(), Some(text[at + 1..].to_owned())),
        None => (text.to_owned(), None),
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause.as_deref().map(|c| c as &(dyn std::error::Error + 'static))
    }
}

impl UserData for Failure {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_method("kind", |_, this, ()| Ok(this.kind.as_str().to_owned()));
        methods.add_method("message", |_, this, ()| Ok(this.message.clone()));
        methods.add_method("retryable", |_, this, ()| Ok(this.retryable));
        methods.add_method("details", |lua, this, ()| match &this.details {
            Some(details) => convert::json_to_lua(lua, details),
            None => Ok(Value::Nil),
        });
        methods.add_method("stack", |_, this, ()| Ok(this.stack.clone()));
        methods.add_method("cause", |_, this, ()| Ok(this.cause.as_deref().cloned()));
        methods.add_meta_method(MetaMethod::ToString, |_, this, ()| Ok(this.message.clone()));
    }
}

/// A Lua function that calls `function` and, when it raises, re-raises the error as a
/// [`Failure`] carrying the Lua traceback, so [`Failure::from_lua_error`] recovers it exactly (an
/// `error(err)` keeps err's kind). mlua alone turns a raised userdata into its `tostring`. Works for
/// plain calls and for coroutine bodies (Lua's `xpcall` is yieldable).
pub fn protect(lua: &Lua, function: Function) -> mlua::Result<Function> {
    let handler = lua.create_function(|lua, raised: Value| {
        let stack = lua.traceback(None, 1).ok().map(|s| s.to_string_lossy());
        let failure = match &raised {
            Value::Error(error) => Failure::from_lua_error(error),
            other => match Failure::from_value(other) {
                Some(failure) if failure.stack.is_some() => failure,
                Some(failure) => failure.with_stack(stack),
                None => {
                    let text = match other {
                        Value::String(s) => s.to_string_lossy(),
                        other => other.to_string().unwrap_or_else(|_| other.type_name().to_owned()),
                    };
                    Failure::internal(text).with_stack(stack)
                }
            },
        };
        Ok(Value::Error(Box::new(mlua::Error::external(failure))))
    })?;
    let wrapper: Function = lua
        .load(
            r#"local xpcall, pack, unpack, error, handler, f = ...
            return function(...)
                local r = pack(xpcall(f, handler, ...))
                if r[1] then return unpack(r, 2, r.n) end
                error(r[2], 0)
            end"#,
        )
        .set_name("=[tempest protect]")
        .into_function()?;
    let globals = lua.globals();
    let table: mlua::Table = globals.get("table")?;
    wrapper.call((
        globals.get::<Function>("xpcall")?,
        table.get::<Function>("pack")?,
        table.get::<Function>("unpack")?,
        globals.get::<Function>("error")?,
        handler,
        function,
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn chain_round_trip() {
        let inner =
            Failure::new(Kind::NOT_FOUND, "no user").with_retryable(Some(false)).with_details(Some(json!({"id": 7})));
        let outer = inner.wrap("load profile");
        assert_eq!(outer.message, "load profile: no user");
        assert_eq!(outer.kind, Kind::NOT_FOUND);
        let chain = outer.to_chain();
        assert_eq!(
            chain,
            json!({"errors": [
                {"msg": "load profile: no user", "kind": "NotFound", "retry": false, "details": {"id": 7}},
                {"msg": "no user", "kind": "NotFound", "retry": false, "details": {"id": 7}},
            ]})
        );
        assert_eq!(Failure::from_chain(&chain), Some(outer));
        let reference = json!({"errors": [{"msg": "x"}]});
        let rebuilt = Failure::from_chain(&reference).unwrap();
        assert_eq!((rebuilt.kind, rebuilt.retryable), (Kind::UNKNOWN, None));
        assert_eq!(Failure::from_chain(&json!({"errors": []})), None);
        assert_eq!(Failure::from_chain(&json!("x")), None);
    }

    #[test]
    fn kinds() {
        assert_eq!(Kind::new("Timeout"), Kind::TIMEOUT);
        assert_eq!(Kind::new(""), Kind::UNKNOWN);
        assert_eq!(Kind::new("Custom").as_str(), "Custom");
        assert_eq!(Failure::new(Kind::UNKNOWN, "x").failure_type(), "Internal");
        assert_eq!(Failure::new(Kind::CONFLICT, "x").failure_type(), "Conflict");
        let f = Failure::new(Kind::TIMEOUT, "t").wrap("a");
        assert!(f.is(&Kind::TIMEOUT) && !f.is(&Kind::INVALID));
    }

    #[test]
    fn from_return_convention() {
        let lua = Lua::new();
        assert_eq!(Failure::from_return(&Value::Nil), None);
        assert_eq!(Failure::from_return(&Value::Boolean(false)), None);
        let s = Failure::from_return(&Value::String(lua.create_string("bad").unwrap())).unwrap();
        assert_eq!((s.kind, s.message.as_str(), s.retryable), (Kind::INTERNAL, "bad", Some(false)));
        let n = Failure::from_return(&Value::Integer(3)).unwrap();
        assert_eq!(n.message, "unexpected error value of type integer");
        let ud = Failure::new(Kind::CONFLICT, "c").push(&lua).unwrap();
        assert_eq!(Failure::from_return(&ud).unwrap().kind, Kind::CONFLICT);
    }

    #[test]
    fn userdata_methods() {
        let lua = Lua::new();
        let f = Failure::new(Kind::INVALID, "bad input").with_details(Some(json!({"field": "a"})));
        lua.globals().set("e", f.wrap("parse")).unwrap();
        let ok: bool = lua
            .load(
                r#"return e:kind() == "Invalid" and e:message() == "parse: bad input"
                and e:retryable() == nil and e:details().field == "a" and e:stack() == nil
                and tostring(e) == "parse: bad input" and e:cause():message() == "bad input""#,
            )
            .eval()
            .unwrap();
        assert!(ok);
    }

    #[test]
    fn raised_string_becomes_internal_with_stack() {
        let lua = Lua::new();
        let f: Function = lua.load("return function() error('boom') end").set_name("@wf.lua").eval().unwrap();
        let err = f.call::<()>(()).unwrap_err();
        let failure = Failure::from_lua_error(&err);
        assert_eq!(failure.kind, Kind::INTERNAL);
        assert_eq!(failure.retryable, Some(false));
        assert_eq!(failure.message, "wf.lua:1: boom");
        assert!(failure.stack.unwrap().starts_with("stack traceback:"));
    }

    #[test]
    fn raised_failure_survives_protect() {
        let lua = Lua::new();
        lua.globals().set("e", Failure::new(Kind::NOT_FOUND, "missing")).unwrap();
        let f: Function = lua.load("return function(x) if x then error(e) end return 1, 2 end").eval().unwrap();
        let protected = protect(&lua, f).unwrap();
        assert_eq!(protected.call::<(i64, i64)>(false).unwrap(), (1, 2));
        let failure = Failure::from_lua_error(&protected.call::<()>(true).unwrap_err());
        assert_eq!((failure.kind, failure.message.as_str()), (Kind::NOT_FOUND, "missing"));
        assert!(failure.stack.is_some());
        // The same through a coroutine, as workflow bodies run.
        let thread = lua.create_thread(protected).unwrap();
        let failure = Failure::from_lua_error(&thread.resume::<()>(true).unwrap_err());
        assert_eq!(failure.kind, Kind::NOT_FOUND);
        // A Rust callback's error keeps its Failure too.
        let cb =
            lua.create_function(|_, ()| Err::<(), _>(mlua::Error::external(Failure::new(Kind::TIMEOUT, "t")))).unwrap();
        let failure = Failure::from_lua_error(&protect(&lua, cb).unwrap().call::<()>(()).unwrap_err());
        assert_eq!(failure.kind, Kind::TIMEOUT);
    }
}
