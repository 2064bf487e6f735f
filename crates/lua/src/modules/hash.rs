//! The `hash` module: `md5`, `sha1`, `sha256`, `sha512` of a string or bytes value, each returning
//! the lowercase hex digest (`hex, err`; a non-string argument is Invalid).

use mlua::{Lua, Table, Value};
use sha2::Digest;

use crate::convert;
use crate::failure::{self, Failure};

pub fn register(lua: &Lua) -> mlua::Result<Table> {
    let module = lua.create_table()?;
    module.set("md5", digest_function::<md5::Md5>(lua, "hash.md5")?)?;
    module.set("sha1", digest_function::<sha1::Sha1>(lua, "hash.sha1")?)?;
    module.set("sha256", digest_function::<sha2::Sha256>(lua, "hash.sha256")?)?;
    module.set("sha512", digest_function::<sha2::Sha512>(lua, "hash.sha512")?)?;
    Ok(module)
}

fn digest_function<D: Digest>(lua: &Lua, name: &'static str) -> mlua::Result<mlua::Function> {
    lua.create_function(move |lua, value: Value| {
        let digest = convert::bytes_or_string(&value)
            .map(|data| convert::hex(&D::digest(data)))
            .ok_or_else(|| Failure::invalid(format!("{name}: expected a string, got {}", value.type_name())));
        failure::returned(lua, digest)
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn digests() {
        let lua = Lua::new();
        lua.globals().set("hash", register(&lua).unwrap()).unwrap();
        let ok: bool = lua
            .load(r#"return hash.md5("abc") == "900150983cd24fb0d6963f7d28e17f72"
                and hash.sha1("abc") == "a9993e364706816aba3e25717850c26c9cd0d89d"
                and hash.sha256("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
                and hash.sha512("") == "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e"
                and select(2, hash.sha256(nil)):kind() == "Invalid""#)
            .eval()
            .unwrap();
        assert!(ok);
    }
}
