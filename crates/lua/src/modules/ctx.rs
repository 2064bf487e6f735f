//! The `ctx` module: read-only context values that travel with calls (`with_context` on the
//! caller's side, the `wippy-context` header on the wire) into workflows, activities and
//! children. `ctx.get(key) -> value, err` (NotFound when missing), `ctx.all() -> table`.

use std::rc::Rc;

use mlua::{Lua, Table, Value};

use crate::convert::json_to_lua;
use crate::failure::{Failure, Kind, returned};

/// Context values as JSON.
pub type ContextMap = serde_json::Map<String, serde_json::Value>;

/// The context of the call or run being executed, installed as VM app data.
#[derive(Debug, Clone, Default)]
pub struct CallContext(pub Option<Rc<ContextMap>>);

fn current(lua: &Lua) -> Option<Rc<ContextMap>> {
    lua.app_data_ref::<CallContext>().and_then(|c| c.0.clone())
}

pub fn register(lua: &Lua) -> mlua::Result<Table> {
    let module = lua.create_table()?;
    module.raw_set(
        "get",
        lua.create_function(|lua, key: String| {
            if key.is_empty() {
                return returned::<Value>(lua, Err(Failure::invalid("ctx.get: the key must not be empty")));
            }
            let found = current(lua).and_then(|map| map.get(&key).cloned());
            match found {
                Some(value) => returned(lua, Ok(json_to_lua(lua, &value)?)),
                None => returned::<Value>(
                    lua,
                    Err(Failure::new(Kind::NOT_FOUND, format!("context value `{key}` not found"))
                        .with_retryable(Some(false))),
                ),
            }
        })?,
    )?;
    module.raw_set(
        "all",
        lua.create_function(|lua, ()| {
            let map = current(lua).map(|m| serde_json::Value::Object((*m).clone())).unwrap_or(serde_json::json!({}));
            let table = json_to_lua(lua, &map)?;
            Ok((table, Value::Nil))
        })?,
    )?;
    Ok(module)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_installed_context() {
        let lua = Lua::new();
        lua.globals().set("ctx", register(&lua).unwrap()).unwrap();
        let mut map = ContextMap::new();
        map.insert("tenant".into(), serde_json::json!("acme"));
        lua.set_app_data(CallContext(Some(Rc::new(map))));
        let (v, missing): (String, String) =
            lua.load("local v = ctx.get('tenant') local _, e = ctx.get('nope') return v, e:kind()").eval().unwrap();
        assert_eq!((v.as_str(), missing.as_str()), ("acme", "NotFound"));
    }
}
