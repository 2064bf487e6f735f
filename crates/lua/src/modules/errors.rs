//! The `errors` module (a global in the reference): build, wrap and test [`Failure`] values.
//!
//! `errors.new("msg")` (kind Unknown, retryable nil), `errors.new{message=, kind=, retryable=,
//! details=}`, `errors.wrap(err_or_string, "context")`, `errors.is(err, KIND)` and the kind
//! constants (`errors.NOT_FOUND == "NotFound"`, ...). Constructors capture the Lua traceback as
//! the error's stack. Wrong argument types raise, as argument errors do in the reference.

use mlua::{Lua, Table, Value};

use crate::convert;
use crate::failure::{Failure, Kind};

pub fn register(lua: &Lua) -> mlua::Result<Table> {
    let module = lua.create_table()?;
    module.set("new", lua.create_function(new)?)?;
    module.set("wrap", lua.create_function(wrap)?)?;
    module.set(
        "is",
        lua.create_function(|_, (err, kind): (Value, String)| {
            Ok(Failure::from_value(&err).is_some_and(|f| f.is(&Kind::new(&kind))))
        })?,
    )?;
    for (name, kind) in Kind::ALL {
        module.set(name, kind.as_str())?;
    }
    Ok(module)
}

fn caller_stack(lua: &Lua) -> Option<String> {
    lua.traceback(None, 1).ok().map(|s| s.to_string_lossy())
}

fn new(lua: &Lua, spec: Value) -> mlua::Result<Failure> {
    let failure = match spec {
        Value::String(message) => Failure::new(Kind::UNKNOWN, message.to_string_lossy()),
        Value::Table(spec) => from_spec(&spec)?,
        other => {
            return Err(mlua::Error::runtime(format!(
                "errors.new: expected a message string or a table, got {}",
                other.type_name()
            )));
        }
    };
    Ok(failure.with_stack(caller_stack(lua)))
}

fn from_spec(spec: &Table) -> mlua::Result<Failure> {
    let message: Option<mlua::String> = spec.get("message")?;
    let Some(message) = message else {
        return Err(mlua::Error::runtime("errors.new: field `message` (a string) is required"));
    };
    let kind: Option<String> = spec.get("kind")?;
    let retryable: Option<bool> = spec.get("retryable")?;
    let details = match spec.get::<Value>("details")? {
        Value::Nil => None,
        value => Some(
            convert::to_json(&value)
                .map_err(|e| mlua::Error::runtime(format!("errors.new: {}", e.with_root("details"))))?,
        ),
    };
    let kind = kind.as_deref().map_or(Kind::UNKNOWN, Kind::new);
    Ok(Failure::new(kind, message.to_string_lossy()).with_retryable(retryable).with_details(details))
}

fn wrap(lua: &Lua, (err, context): (Value, String)) -> mlua::Result<Option<Failure>> {
    let inner = match &err {
        Value::Nil => return Ok(None),
        Value::String(message) => Failure::new(Kind::UNKNOWN, message.to_string_lossy()).with_stack(caller_stack(lua)),
        other => Failure::from_value(other).ok_or_else(|| {
            mlua::Error::runtime(format!("errors.wrap: expected an error or a string, got {}", other.type_name()))
        })?,
    };
    Ok(Some(inner.wrap(&context)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    use crate::testing::check;

    fn lua() -> Lua {
        crate::testing::vm_with("errors", register)
    }

    #[test]
    fn constants() {
        let lua = lua();
        check(
            &lua,
            r#"return errors.NOT_FOUND == "NotFound" and errors.RATE_LIMITED == "RateLimited"
            and errors.PERMISSION_DENIED == "PermissionDenied" and errors.UNKNOWN == "Unknown""#,
        );
    }

    #[test]
    fn new_from_string_and_table() {
        let lua = lua();
        check(
            &lua,
            r#"local e = errors.new("boom")
            return e:kind() == "Unknown" and e:message() == "boom" and e:retryable() == nil
                and e:details() == nil and e:stack():find("stack traceback") ~= nil"#,
        );
        check(
            &lua,
            r#"local e = errors.new({message = "gone", kind = errors.NOT_FOUND,
                retryable = false, details = {id = 3}})
            return e:kind() == "NotFound" and e:retryable() == false and e:details().id == 3
                and tostring(e) == "gone""#,
        );
        let err = lua.load("errors.new({kind = 'Invalid'})").exec().unwrap_err();
        assert!(err.to_string().contains("`message` (a string) is required"));
        let err = lua.load("errors.new({message = 'm', details = {f = print}})").exec().unwrap_err();
        assert!(err.to_string().contains("details.f: cannot encode a function"));
        assert!(lua.load("errors.new(12)").exec().is_err());
    }

    #[test]
    fn wrap_and_is() {
        let lua = lua();
        check(
            &lua,
            r#"local e = errors.new({message = "slow", kind = errors.TIMEOUT, retryable = true})
            local w = errors.wrap(e, "call api")
            return w:message() == "call api: slow" and w:kind() == "Timeout" and w:retryable() == true
                and errors.is(w, errors.TIMEOUT) and not errors.is(w, errors.INVALID)
                and w:cause():message() == "slow""#,
        );
        check(
            &lua,
            r#"local w = errors.wrap("plain", "ctx")
            return w:message() == "ctx: plain" and w:kind() == "Unknown"
                and errors.wrap(nil, "ctx") == nil and errors.is("text", errors.UNKNOWN) == false
                and errors.is(nil, errors.UNKNOWN) == false"#,
        );
        assert!(lua.load("errors.wrap({}, 'ctx')").exec().is_err());
    }
}
