//! Where random bytes come from: the OS in activities and processes, the run's seeded generator in
//! workflows (so uuids and random bytes replay identically).

use mlua::Lua;

/// Randomness source installed as Lua app data. Absent means the OS generator.
pub trait Entropy {
    fn fill(&mut self, buf: &mut [u8]);
}

/// Fills `buf` from the VM's installed [`Entropy`], or from the OS when none is installed.
pub fn fill_bytes(lua: &Lua, buf: &mut [u8]) {
    if let Some(mut source) = lua.app_data_mut::<Box<dyn Entropy>>() {
        source.fill(buf);
        return;
    }
    rand::fill(buf);
}
