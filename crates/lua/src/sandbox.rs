//! The base Lua VM every sandbox starts from: the safe standard libraries only, dangerous globals
//! replaced by stubs that explain themselves, shared library tables frozen so one run cannot change
//! them under another, and the string-hash seed checked so `pairs()` order is reproducible.

use mlua::{Function, Lua, LuaOptions, StdLib, Table, Value};

/// What kind of code a VM runs; decides which globals and modules it gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sandbox {
    /// Deterministic workflow code: replayed from history, so no I/O, no wall clock, no entropy.
    Workflow,
    /// Activities and processes: ordinary code with I/O through modules.
    Activity,
}

/// Globals removed from every sandbox, with the reason and the alternative shown when called.
const FORBIDDEN_EVERYWHERE: &[(&str, &str)] = &[
    ("load", "loading code at run time is not allowed; put the code in a library.lua entry and require it"),
    ("loadstring", "loading code at run time is not allowed; put the code in a library.lua entry and require it"),
    ("loadfile", "reading files is not allowed; declare the code as an entry"),
    ("dofile", "reading files is not allowed; declare the code as an entry"),
    ("collectgarbage", "the garbage collector is managed by Tempest"),
];

/// `os` functions removed from every sandbox.
const FORBIDDEN_OS: &[(&str, &str)] = &[
    ("execute", "running programs is not allowed"),
    ("exit", "exiting the process is not allowed; return from your function instead"),
    ("remove", "file system access is not allowed"),
    ("rename", "file system access is not allowed"),
    ("tmpname", "file system access is not allowed"),
];

/// Builds a VM for `sandbox`: standard libraries, stubs, frozen library tables.
///
/// The returned VM's globals table is the *shared* environment; per-run environments index into
/// it (see [`run_environment`]).
pub fn new_vm(sandbox: Sandbox) -> mlua::Result<Lua> {
    let libs = StdLib::COROUTINE | StdLib::TABLE | StdLib::STRING | StdLib::MATH | StdLib::UTF8 | StdLib::OS;
    let lua = Lua::new_with(libs, LuaOptions::default())?;
    check_hash_seed(&lua)?;
    let globals = lua.globals();
    let where_ = match sandbox {
        Sandbox::Workflow => "workflows",
        Sandbox::Activity => "Tempest functions",
    };
    for (name, why) in FORBIDDEN_EVERYWHERE {
        globals.raw_set(*name, stub(&lua, name, where_, why)?)?;
    }
    let os: Table = globals.get("os")?;
    for (name, why) in FORBIDDEN_OS {
        os.raw_set(*name, stub(&lua, &format!("os.{name}"), where_, why)?)?;
    }
    if sandbox == Sandbox::Workflow {
        os.raw_set(
            "getenv",
            stub(
                &lua,
                "os.getenv",
                where_,
                "the environment differs between workers; pass values as workflow arguments",
            )?,
        )?;
    }
    globals
        .raw_set("io", explaining_table(&lua, "io", where_, "file and console I/O is not allowed; use activities")?)?;
    globals.raw_set("debug", explaining_table(&lua, "debug", where_, "the debug library can break isolation")?)?;
    // The string metatable is shared by every run; hide it so no run can change string methods.
    lua.load(r#"getmetatable("").__metatable = false"#).set_name("=tempest:sandbox").exec()?;
    Ok(lua)
}

/// A function that raises an explanatory error when called.
fn stub(lua: &Lua, name: &str, where_: &str, why: &str) -> mlua::Result<Function> {
    let message = format!("{name} is not available in {where_}: {why}");
    lua.create_function(move |_, _: mlua::MultiValue| -> mlua::Result<()> {
        Err(mlua::Error::runtime(message.clone()))
    })
}

/// A table whose every field access raises an explanatory error (stands in for `io`, `debug`).
fn explaining_table(lua: &Lua, name: &str, where_: &str, why: &str) -> mlua::Result<Table> {
    let table = lua.create_table()?;
    let meta = lua.create_table()?;
    let message = format!("{name} is not available in {where_}: {why}");
    meta.raw_set(
        "__index",
        lua.create_function(move |_, (_, key): (Value, Value)| -> mlua::Result<()> {
            let key = key.to_string().unwrap_or_default();
            Err(mlua::Error::runtime(format!("{message} (accessed {key})")))
        })?,
    )?;
    meta.raw_set("__metatable", false)?;
    table.set_metatable(Some(meta))?;
    Ok(table)
}

/// Returns a read-only view of `table`: reads and `pairs` see the original, writes raise. Nested
/// plain tables (`crypto.random`) are frozen too, so no part of a shared module can be changed.
pub fn freeze(lua: &Lua, name: &str, table: &Table) -> mlua::Result<Table> {
    let mut nested = Vec::new();
    for pair in table.pairs::<Value, Value>() {
        let (key, value) = pair?;
        if let (Value::String(key), Value::Table(inner)) = (&key, &value)
            && inner.metatable().is_none()
        {
            nested.push((key.to_string_lossy(), inner.clone()));
        }
    }
    for (key, inner) in nested {
        table.raw_set(key.as_str(), freeze(lua, &format!("{name}.{key}"), &inner)?)?;
    }
    let proxy = lua.create_table()?;
    let meta = lua.create_table()?;
    meta.raw_set("__index", table)?;
    let message = format!("{name} is read-only");
    meta.raw_set(
        "__newindex",
        lua.create_function(move |_, _: mlua::MultiValue| -> mlua::Result<()> {
            Err(mlua::Error::runtime(message.clone()))
        })?,
    )?;
    let inner = table.clone();
    meta.raw_set(
        "__pairs",
        lua.create_function(move |lua, _: Value| {
            let next: Function = lua.globals().raw_get("next")?;
            Ok((next, inner.clone(), Value::Nil))
        })?,
    )?;
    meta.raw_set("__metatable", false)?;
    proxy.set_metatable(Some(meta))?;
    Ok(proxy)
}

/// Creates a fresh global environment for one run or call: `_G` is the environment itself and
/// every other global is looked up in `shared` (which should hold frozen tables only).
pub fn run_environment(lua: &Lua, shared_meta: &Table) -> mlua::Result<Table> {
    let env = lua.create_table()?;
    env.raw_set("_G", &env)?;
    env.set_metatable(Some(shared_meta.clone()))?;
    Ok(env)
}

/// The metatable of per-run environments: unknown globals resolve in `shared`.
pub fn environment_meta(lua: &Lua, shared: &Table) -> mlua::Result<Table> {
    let meta = lua.create_table()?;
    meta.raw_set("__index", shared)?;
    meta.raw_set("__metatable", false)?;
    Ok(meta)
}

/// Fails if the Lua build still seeds its string hash randomly: `pairs()` order over string keys
/// would then differ between processes and replays would diverge. The constant seed comes from
/// `.cargo/config.toml`; this order was recorded with it.
fn check_hash_seed(lua: &Lua) -> mlua::Result<()> {
    const EXPECTED: &str = "k9,k14,k6,k5,k8,k7,k11,k16,k1,k2,k3,k4,k17,k20,k13,k19,k10,k18,k12,k15";
    let order: String = lua
        .load(
            r#"local t = {} for i = 1, 20 do t["k" .. i] = i end
                 local o = {} for k in pairs(t) do o[#o + 1] = k end
                 return table.concat(o, ",")"#,
        )
        .set_name("=tempest:seed-check")
        .eval()?;
    if order == EXPECTED {
        Ok(())
    } else {
        Err(mlua::Error::runtime(
            "this build of Lua seeds its string hash randomly, so pairs() order is not reproducible; \
             build Tempest with the repository's .cargo/config.toml (it sets luai_makeseed)",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forbidden_functions_explain_themselves() {
        let lua = new_vm(Sandbox::Workflow).unwrap();
        let err = lua.load("load('return 1')").exec().unwrap_err().to_string();
        assert!(err.contains("load is not available in workflows"), "{err}");
        let err = lua.load("io.open('x')").exec().unwrap_err().to_string();
        assert!(err.contains("io is not available in workflows"), "{err}");
        let err = lua.load("os.getenv('HOME')").exec().unwrap_err().to_string();
        assert!(err.contains("os.getenv is not available in workflows"), "{err}");
        let err = lua.load("os.exit(1)").exec().unwrap_err().to_string();
        assert!(err.contains("os.exit is not available"), "{err}");
    }

    #[test]
    fn frozen_tables_reject_writes_but_iterate() {
        let lua = new_vm(Sandbox::Activity).unwrap();
        let t = lua.create_table().unwrap();
        t.set("a", 1).unwrap();
        let frozen = freeze(&lua, "mod", &t).unwrap();
        lua.globals().set("m", frozen).unwrap();
        let err = lua.load("m.a = 2").exec().unwrap_err().to_string();
        assert!(err.contains("mod is read-only"), "{err}");
        let n: i64 = lua.load("local n = 0 for k, v in pairs(m) do n = n + v end return n").eval().unwrap();
        assert_eq!(n, 1);
        t.set("sub", lua.create_table().unwrap()).unwrap();
        let deep = freeze(&lua, "mod", &t).unwrap();
        lua.globals().set("d", deep).unwrap();
        let err = lua.load("d.sub.x = 1").exec().unwrap_err().to_string();
        assert!(err.contains("mod.sub is read-only"), "{err}");
    }

    #[test]
    fn string_metatable_is_hidden() {
        let lua = new_vm(Sandbox::Workflow).unwrap();
        let mt: Value = lua.load("return getmetatable('')").eval().unwrap();
        assert_eq!(mt, Value::Boolean(false));
    }
}
