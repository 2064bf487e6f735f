//! Helpers for the modules' unit tests: a plain VM with one module as a global, and a check that
//! a Lua expression is true.
#![allow(clippy::unwrap_used)]

use mlua::{Lua, Table};

/// A fresh VM with `register`'s module set as the global `name`.
pub(crate) fn vm_with(name: &str, register: fn(&Lua) -> mlua::Result<Table>) -> Lua {
    let lua = Lua::new();
    let module = register(&lua).unwrap();
    lua.globals().set(name, module).unwrap();
    lua
}

/// Asserts that `code` evaluates to `true`.
#[track_caller]
pub(crate) fn check(lua: &Lua, code: &str) {
    let ok: bool = lua.load(code).eval().unwrap();
    assert!(ok, "{code}");
}
