//! The `json` module: `encode(v) → s, err` and `decode(s) → v, err`, with the conversion rules of
//! SPEC §7 (see [`crate::convert`]). Failures are kind Internal, as in the reference; a
//! non-string argument to `decode` is Invalid.

use mlua::{Lua, Table, Value};

use crate::convert;
use crate::failure::{self, Failure};

pub fn register(lua: &Lua) -> mlua::Result<Table> {
    let module = lua.create_table()?;
    module.set(
        "encode",
        lua.create_function(|lua, value: Value| {
            let encoded = convert::to_json(&value)
                .map(|json| json.to_string())
                .map_err(|e| Failure::internal(format!("json.encode: {e}")));
            failure::returned(lua, encoded)
        })?,
    )?;
    module.set("decode", lua.create_function(decode)?)?;
    Ok(module)
}

fn decode(lua: &Lua, text: Value) -> mlua::Result<(Value, Value)> {
    let Value::String(text) = text else {
        let failure = Failure::invalid(format!("json.decode: expected a string, got {}", text.type_name()));
        return failure::returned(lua, Err::<Value, _>(failure));
    };
    match serde_json::from_slice::<serde_json::Value>(&text.as_bytes()) {
        Ok(json) => Ok((convert::json_to_lua(lua, &json)?, Value::Nil)),
        Err(e) => failure::returned(lua, Err::<Value, _>(Failure::internal(format!("json.decode: {e}")))),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn check(code: &str) {
        let lua = Lua::new();
        lua.globals().set("json", register(&lua).unwrap()).unwrap();
        let ok: bool = lua.load(code).eval().unwrap();
        assert!(ok, "{code}");
    }

    #[test]
    fn encode() {
        check(r#"return json.encode({b = 1, a = {1, 2.5, "x"}, e = {}}) == '{"a":[1,2.5,"x"],"b":1,"e":[]}'"#);
        check(r#"return json.encode(nil) == "null" and json.encode(1.0) == "1.0" and json.encode(0/0) == "null""#);
        check(
            r#"local s, err = json.encode({a = {print}})
            return s == nil and err:kind() == "Internal"
                and err:message() == "json.encode: value.a[1]: cannot encode a function as JSON""#,
        );
    }

    #[test]
    fn decode() {
        check(
            r#"local v, err = json.decode('{"a":[1,null,3],"b":{"c":1.5},"n":null}')
            return err == nil and v.a[1] == 1 and v.a[2] == nil and v.a[3] == 3 and v.b.c == 1.5
                and math.type(v.a[1]) == "integer""#,
        );
        check(
            r#"local v, err = json.decode('{oops')
            return v == nil and err:kind() == "Internal" and err:message():find("json.decode") == 1"#,
        );
        check(r#"local v, err = json.decode({}) return v == nil and err:kind() == "Invalid""#);
        check(r#"local v, err = json.decode("null") return v == nil and err == nil"#);
    }
}
