//! The `uuid` module: `v1`, `v4`, `v7` (randomness from [`entropy`], time from [`clock`], so a
//! workflow's seeded source and deterministic clock make them replay identically), the name-based
//! `v3(ns, name)` / `v5(ns, name)`, and `validate`, `version`, `variant`, `parse`, `format`.
//!
//! Every function but `validate` returns `value, err`; bad input is kind Invalid. A namespace is a
//! UUID string or one of `dns`, `url`, `oid`, `x500`.

use mlua::{Lua, Table, Value};
use uuid::{Builder, Uuid, Variant};

use crate::failure::{self, Failure};
use crate::{clock, entropy};

/// 100 ns ticks between the Gregorian epoch (1582-10-15) and the Unix epoch.
const GREGORIAN_OFFSET_TICKS: i128 = 0x01B2_1DD2_1381_4000;

pub fn register(lua: &Lua) -> mlua::Result<Table> {
    let module = lua.create_table()?;
    module.set("v1", lua.create_function(|lua, ()| failure::returned(lua, Ok::<_, Failure>(v1(lua))))?)?;
    module.set("v4", lua.create_function(|lua, ()| failure::returned(lua, Ok::<_, Failure>(v4(lua))))?)?;
    module.set("v7", lua.create_function(|lua, ()| failure::returned(lua, Ok::<_, Failure>(v7(lua))))?)?;
    module.set(
        "v3",
        lua.create_function(|lua, (ns, name): (Value, Value)| {
            failure::returned(lua, named("uuid.v3", &ns, &name, Uuid::new_v3))
        })?,
    )?;
    module.set(
        "v5",
        lua.create_function(|lua, (ns, name): (Value, Value)| {
            failure::returned(lua, named("uuid.v5", &ns, &name, Uuid::new_v5))
        })?,
    )?;
    module.set("validate", lua.create_function(|_, value: Value| Ok(parse_arg("", &value).is_ok()))?)?;
    module.set(
        "version",
        lua.create_function(|lua, value: Value| {
            failure::returned(lua, parse_arg("uuid.version", &value).map(|u| u.get_version_num()))
        })?,
    )?;
    module.set(
        "variant",
        lua.create_function(|lua, value: Value| {
            failure::returned(lua, parse_arg("uuid.variant", &value).map(|u| variant_name(&u)))
        })?,
    )?;
    module.set("parse", lua.create_function(parse)?)?;
    module.set(
        "format",
        lua.create_function(|lua, (value, style): (Value, Option<String>)| {
            failure::returned(lua, parse_arg("uuid.format", &value).and_then(|u| format(&u, style.as_deref())))
        })?,
    )?;
    Ok(module)
}

/// A random (version 4) uuid string drawn from the VM's entropy source.
pub fn v4(lua: &Lua) -> String {
    let mut bytes = [0u8; 16];
    entropy::fill_bytes(lua, &mut bytes);
    Builder::from_random_bytes(bytes).into_uuid().hyphenated().to_string()
}

fn v1(lua: &Lua) -> String {
    let ticks = (clock::now_unix_nanos(lua) / 100 + GREGORIAN_OFFSET_TICKS).max(0);
    let mut random = [0u8; 8];
    entropy::fill_bytes(lua, &mut random);
    let counter = u16::from_be_bytes([random[0], random[1]]) & 0x3fff;
    // A random node id has the multicast bit set (RFC 9562 §6.10), so it never collides with a MAC.
    let node = [random[2] | 0x01, random[3], random[4], random[5], random[6], random[7]];
    let ticks = u64::try_from(ticks).unwrap_or(u64::MAX);
    Builder::from_gregorian_timestamp(ticks, counter, &node).into_uuid().hyphenated().to_string()
}

fn v7(lua: &Lua) -> String {
    let millis = u64::try_from(clock::now_unix_nanos(lua).max(0) / 1_000_000).unwrap_or(u64::MAX);
    let mut random = [0u8; 10];
    entropy::fill_bytes(lua, &mut random);
    Builder::from_unix_timestamp_millis(millis, &random).into_uuid().hyphenated().to_string()
}

fn parse_arg(name: &str, value: &Value) -> Result<Uuid, Failure> {
    let Value::String(text) = value else {
        return Err(Failure::invalid(format!("{name}: expected a uuid string, got {}", value.type_name())));
    };
    let text = text.to_string_lossy();
    Uuid::parse_str(text.trim()).map_err(|e| Failure::invalid(format!("{name}: invalid uuid {text:?}: {e}")))
}

fn named(name: &str, ns: &Value, label: &Value, make: fn(&Uuid, &[u8]) -> Uuid) -> Result<String, Failure> {
    let namespace = match ns {
        Value::String(s) => match s.to_string_lossy().to_ascii_lowercase().as_str() {
            "dns" => Uuid::NAMESPACE_DNS,
            "url" => Uuid::NAMESPACE_URL,
            "oid" => Uuid::NAMESPACE_OID,
            "x500" => Uuid::NAMESPACE_X500,
            _ => parse_arg(name, ns)?,
        },
        _ => parse_arg(name, ns)?,
    };
    let Value::String(label) = label else {
        return Err(Failure::invalid(format!("{name}: expected a name string, got {}", label.type_name())));
    };
    Ok(make(&namespace, &label.as_bytes()).hyphenated().to_string())
}

fn variant_name(uuid: &Uuid) -> &'static str {
    match uuid.get_variant() {
        Variant::RFC4122 => "RFC4122",
        Variant::NCS => "Reserved",
        Variant::Microsoft => "Microsoft",
        Variant::Future => "Future",
        _ => "Invalid",
    }
}

fn format(uuid: &Uuid, style: Option<&str>) -> Result<String, Failure> {
    match style.unwrap_or("standard") {
        "standard" => Ok(uuid.hyphenated().to_string()),
        "simple" => Ok(uuid.simple().to_string()),
        "urn" => Ok(uuid.urn().to_string()),
        "braced" => Ok(uuid.braced().to_string()),
        other => Err(Failure::invalid(format!(
            "uuid.format: unknown format {other:?} (expected standard, simple, urn or braced)"
        ))),
    }
}

/// `{version, variant, timestamp?, node?}`; `timestamp` is Unix seconds (v1, v6, v7), `node` the
/// v1/v6 node id as `aa:bb:cc:dd:ee:ff`.
fn parse(lua: &Lua, value: Value) -> mlua::Result<(Value, Value)> {
    let uuid = match parse_arg("uuid.parse", &value) {
        Ok(uuid) => uuid,
        Err(failure) => return failure::returned(lua, Err::<Value, _>(failure)),
    };
    let info = lua.create_table()?;
    info.set("version", uuid.get_version_num())?;
    info.set("variant", variant_name(&uuid))?;
    if let Some(timestamp) = uuid.get_timestamp() {
        info.set("timestamp", timestamp.to_unix().0)?;
    }
    if let Some(node) = uuid.get_node_id() {
        let parts: Vec<String> = node.iter().map(|b| format!("{b:02x}")).collect();
        info.set("node", parts.join(":"))?;
    }
    Ok((Value::Table(info), Value::Nil))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::clock::WallClock;
    use crate::entropy::Entropy;

    struct Zeros;
    impl Entropy for Zeros {
        fn fill(&mut self, buf: &mut [u8]) {
            buf.fill(0);
        }
    }
    struct At(i128);
    impl WallClock for At {
        fn now_unix_nanos(&self) -> i128 {
            self.0
        }
    }

    use crate::testing::check;

    fn lua() -> Lua {
        crate::testing::vm_with("uuid", register)
    }

    #[test]
    fn generated_versions() {
        let lua = lua();
        check(
            &lua,
            r#"local a, b, c = uuid.v1(), uuid.v4(), uuid.v7()
            return uuid.version(a) == 1 and uuid.version(b) == 4 and uuid.version(c) == 7
                and #b == 36 and uuid.v4() ~= b and uuid.variant(b) == "RFC4122""#,
        );
    }

    #[test]
    fn seeded_sources_make_them_reproducible() {
        let lua = lua();
        lua.set_app_data::<Box<dyn Entropy>>(Box::new(Zeros));
        lua.set_app_data::<Box<dyn WallClock>>(Box::new(At(1_700_000_000_123_000_000)));
        check(
            &lua,
            r#"return uuid.v4() == "00000000-0000-4000-8000-000000000000"
            and uuid.v7() == "018bcfe5-687b-7000-8000-000000000000"
            and uuid.parse(uuid.v7()).timestamp == 1700000000
            and uuid.parse(uuid.v1()).timestamp == 1700000000
            and uuid.parse(uuid.v1()).node == "01:00:00:00:00:00""#,
        );
    }

    #[test]
    fn name_based() {
        let lua = lua();
        check(
            &lua,
            r#"return uuid.v5("dns", "example.com") == "cfbff0d1-9375-5685-968c-48ce8b15ae17"
            and uuid.v3("6ba7b810-9dad-11d1-80b4-00c04fd430c8", "example.com")
                == "9073926b-929f-31c2-abc9-fad77ae3e8eb""#,
        );
        check(&lua, r#"local v, err = uuid.v5("nope", "x") return v == nil and err:kind() == "Invalid""#);
    }

    #[test]
    fn inspect_and_format() {
        let lua = lua();
        check(
            &lua,
            r#"local id = "6ba7b810-9dad-11d1-80b4-00c04fd430c8"
            return uuid.validate(id) and not uuid.validate("x") and not uuid.validate(5)
                and uuid.format(id, "simple") == "6ba7b8109dad11d180b400c04fd430c8"
                and uuid.format(id, "urn") == "urn:uuid:" .. id and uuid.format(id) == id
                and uuid.format("6BA7B8109DAD11D180B400C04FD430C8") == id
                and select(2, uuid.format(id, "weird")):kind() == "Invalid"
                and uuid.parse(id).version == 1 and select(2, uuid.version("zz")):kind() == "Invalid""#,
        );
    }
}
