//! The `base64` module: `encode(s) → string`, `decode(s) → string, err` (standard alphabet,
//! padded) and `encode_url` / `decode_url` (URL-safe alphabet, unpadded; decoding accepts padding).
//! Inputs may be strings or bytes values; decoded data is a Lua string of the raw bytes.

use base64::Engine;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD, URL_SAFE_NO_PAD};
use mlua::{Lua, Table, Value};

use crate::convert;
use crate::failure::{self, Failure};

const URL_SAFE_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_encode_padding(false).with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

pub fn register(lua: &Lua) -> mlua::Result<Table> {
    let module = lua.create_table()?;
    module.set("encode", encoder(lua, "base64.encode", &STANDARD)?)?;
    module.set("decode", decoder(lua, "base64.decode", &STANDARD)?)?;
    module.set("encode_url", encoder(lua, "base64.encode_url", &URL_SAFE_NO_PAD)?)?;
    module.set("decode_url", decoder(lua, "base64.decode_url", &URL_SAFE_LENIENT)?)?;
    Ok(module)
}

fn input(name: &str, value: &Value) -> Result<Vec<u8>, Failure> {
    convert::bytes_or_string(value)
        .ok_or_else(|| Failure::invalid(format!("{name}: expected a string, got {}", value.type_name())))
}

fn encoder(lua: &Lua, name: &'static str, engine: &'static GeneralPurpose) -> mlua::Result<mlua::Function> {
    lua.create_function(move |lua, value: Value| {
        failure::returned(lua, input(name, &value).map(|data| engine.encode(data)))
    })
}

fn decoder(lua: &Lua, name: &'static str, engine: &'static GeneralPurpose) -> mlua::Result<mlua::Function> {
    lua.create_function(move |lua, value: Value| {
        let decoded = input(name, &value)
            .and_then(|text| engine.decode(text).map_err(|e| Failure::invalid(format!("{name}: {e}"))));
        match decoded {
            Ok(bytes) => Ok((Value::String(lua.create_string(bytes)?), Value::Nil)),
            Err(failure) => failure::returned(lua, Err::<Value, _>(failure)),
        }
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn check(code: &str) {
        let lua = Lua::new();
        lua.globals().set("base64", register(&lua).unwrap()).unwrap();
        lua.globals().set("bytes", convert::Bytes(vec![0xfb, 0xff])).unwrap();
        let ok: bool = lua.load(code).eval().unwrap();
        assert!(ok, "{code}");
    }

    #[test]
    fn round_trips() {
        check(r#"return base64.encode("hello") == "aGVsbG8=" and base64.decode("aGVsbG8=") == "hello""#);
        check(
            r#"return base64.encode(bytes) == "+/8=" and base64.encode_url(bytes) == "-_8"
            and base64.decode_url("-_8") == "\xfb\xff" and base64.decode_url("-_8=") == "\xfb\xff""#,
        );
        check(r#"return base64.encode("") == "" and base64.decode("") == """#);
    }

    #[test]
    fn errors() {
        check(r#"local v, err = base64.decode("@@@") return v == nil and err:kind() == "Invalid""#);
        check(r#"local v, err = base64.encode({}) return v == nil and err:kind() == "Invalid""#);
    }
}
