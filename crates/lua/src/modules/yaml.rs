//! The `yaml` module: `encode(v) → s, err` and `decode(s) → v, err`, going through JSON values so
//! Lua tables follow the same rules as everywhere else (SPEC §7; [`crate::convert`]).
//!
//! Decoding takes the first document (an empty stream is nil), expands anchors, ignores tags and
//! turns scalar mapping keys into strings (`1: a` → `{["1"] = "a"}`); YAML errors are Invalid.
//! Encoding emits block style with sorted keys and no `---` marker; unencodable values are
//! Internal, as in `json.encode`.

use std::borrow::Cow;

use mlua::{Lua, Table, Value};
use saphyr::{LoadableYamlNode, Mapping, Scalar, ScalarOwned, ScalarStyle, Yaml, YamlEmitter, YamlOwned};

use crate::convert;
use crate::failure::{self, Failure};

pub fn register(lua: &Lua) -> mlua::Result<Table> {
    let module = lua.create_table()?;
    module.set("encode", lua.create_function(|lua, value: Value| failure::returned(lua, encode(&value)))?)?;
    module.set("decode", lua.create_function(decode)?)?;
    Ok(module)
}

fn encode(value: &Value) -> Result<String, Failure> {
    let json = convert::to_json(value).map_err(|e| Failure::internal(format!("yaml.encode: {e}")))?;
    let mut out = String::new();
    let mut emitter = YamlEmitter::new(&mut out);
    emitter.multiline(true);
    emitter.dump(&to_yaml(&json)).map_err(|e| Failure::internal(format!("yaml.encode: {e}")))?;
    let body = out.strip_prefix("---\n").or_else(|| out.strip_prefix("--- ")).unwrap_or(&out);
    Ok(format!("{}\n", body.trim_end_matches('\n')))
}

fn to_yaml(json: &serde_json::Value) -> Yaml<'static> {
    match json {
        serde_json::Value::Null => Yaml::Value(Scalar::Null),
        serde_json::Value::Bool(b) => Yaml::Value(Scalar::Boolean(*b)),
        serde_json::Value::Number(n) => Yaml::Representation(Cow::Owned(n.to_string()), ScalarStyle::Plain, None),
        serde_json::Value::String(s) => Yaml::Value(Scalar::String(Cow::Owned(s.clone()))),
        serde_json::Value::Array(items) => Yaml::Sequence(items.iter().map(to_yaml).collect()),
        serde_json::Value::Object(fields) => {
            let mut mapping = Mapping::new();
            for (key, value) in fields {
                mapping.insert(Yaml::Value(Scalar::String(Cow::Owned(key.clone()))), to_yaml(value));
            }
            Yaml::Mapping(mapping)
        }
    }
}

fn decode(lua: &Lua, text: Value) -> mlua::Result<(Value, Value)> {
    let parsed = match &text {
        Value::String(text) => match std::str::from_utf8(&text.as_bytes()) {
            Ok(text) => YamlOwned::load_from_str(text)
                .map_err(|e| Failure::invalid(format!("yaml.decode: {e}")))
                .and_then(|docs| docs.first().map_or(Ok(serde_json::Value::Null), to_json)),
            Err(_) => Err(Failure::invalid("yaml.decode: input is not valid UTF-8")),
        },
        other => Err(Failure::invalid(format!("yaml.decode: expected a string, got {}", other.type_name()))),
    };
    match parsed {
        Ok(json) => Ok((convert::json_to_lua(lua, &json)?, Value::Nil)),
        Err(failure) => failure::returned(lua, Err::<Value, _>(failure)),
    }
}

fn to_json(node: &YamlOwned) -> Result<serde_json::Value, Failure> {
    Ok(match node {
        YamlOwned::Value(scalar) => scalar_to_json(scalar),
        YamlOwned::Representation(text, _, _) => serde_json::Value::String(text.clone()),
        YamlOwned::Sequence(items) => serde_json::Value::Array(items.iter().map(to_json).collect::<Result<_, _>>()?),
        YamlOwned::Mapping(fields) => {
            let mut object = serde_json::Map::new();
            for (key, value) in fields {
                object.insert(key_text(key)?, to_json(value)?);
            }
            serde_json::Value::Object(object)
        }
        YamlOwned::Tagged(_, inner) => to_json(inner)?,
        YamlOwned::Alias(_) | YamlOwned::BadValue => {
            return Err(Failure::invalid("yaml.decode: unresolvable alias or malformed value"));
        }
    })
}

fn scalar_to_json(scalar: &ScalarOwned) -> serde_json::Value {
    match scalar {
        ScalarOwned::Null => serde_json::Value::Null,
        ScalarOwned::Boolean(b) => serde_json::Value::Bool(*b),
        ScalarOwned::Integer(i) => serde_json::Value::from(*i),
        ScalarOwned::FloatingPoint(f) => {
            serde_json::Number::from_f64(f.into_inner()).map_or(serde_json::Value::Null, serde_json::Value::Number)
        }
        ScalarOwned::String(s) => serde_json::Value::String(s.clone()),
    }
}

fn key_text(key: &YamlOwned) -> Result<String, Failure> {
    match key {
        YamlOwned::Value(ScalarOwned::String(s)) | YamlOwned::Representation(s, _, _) => Ok(s.clone()),
        YamlOwned::Value(ScalarOwned::Null) => Ok(String::from("null")),
        YamlOwned::Value(scalar) => Ok(scalar_to_json(scalar).to_string()),
        YamlOwned::Tagged(_, inner) => key_text(inner),
        _ => Err(Failure::invalid("yaml.decode: mapping keys must be scalars")),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    use crate::testing::check;

    fn lua() -> Lua {
        crate::testing::vm_with("yaml", register)
    }

    #[test]
    fn decode_values() {
        let lua = lua();
        check(
            &lua,
            r#"local v, err = yaml.decode("name: app\nport: 8080\nratio: 0.5\non: true\nnone: ~\nlist: [1, two]\n1: one\n")
            return err == nil and v.name == "app" and math.type(v.port) == "integer" and v.ratio == 0.5
                and v.on == true and v.none == nil and v.list[2] == "two" and v["1"] == "one""#,
        );
        check(&lua, r#"local v = yaml.decode("base: &b {x: 1}\nother: *b\n") return v.other.x == 1"#);
        check(&lua, r#"local v, err = yaml.decode("") return v == nil and err == nil"#);
        check(&lua, r#"local v, err = yaml.decode("a: [1, 2") return v == nil and err:kind() == "Invalid""#);
        check(&lua, r#"local v, err = yaml.decode(5) return v == nil and err:kind() == "Invalid""#);
    }

    #[test]
    fn encode_values() {
        let lua = lua();
        let out: String =
            lua.load(r#"return yaml.encode({b = {1, 2.5}, a = "x: y", c = {}, d = "true"})"#).eval().unwrap();
        assert_eq!(out, "a: \"x: y\"\nb:\n  - 1\n  - 2.5\nc: []\nd: \"true\"\n");
        check(&lua, r#"return yaml.encode("hi") == "hi\n" and yaml.encode(nil) == "~\n""#);
        check(&lua, r#"local s, err = yaml.encode({f = print}) return s == nil and err:kind() == "Internal""#);
        check(
            &lua,
            r#"local t = {name = "n", list = {1, {k = "multi\nline"}}, n = 1.0}
            local back = yaml.decode(yaml.encode(t))
            return back.name == "n" and back.list[2].k == "multi\nline" and math.type(back.n) == "float""#,
        );
    }
}
