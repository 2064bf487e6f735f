//! Where wall-clock time comes from: the system clock in activities and processes, the
//! activation's deterministic time in workflows (so time-based uuids replay identically).

use std::time::{SystemTime, UNIX_EPOCH};

use mlua::Lua;

/// Wall-clock source installed as Lua app data (`Box<dyn WallClock>`). Absent means the system
/// clock.
pub trait WallClock {
    /// Nanoseconds since the Unix epoch (negative before it).
    fn now_unix_nanos(&self) -> i128;
}

/// The VM's current time from its installed [`WallClock`], or from the system clock.
pub fn now_unix_nanos(lua: &Lua) -> i128 {
    if let Some(clock) = lua.app_data_ref::<Box<dyn WallClock>>() {
        return clock.now_unix_nanos();
    }
    system_unix_nanos()
}

/// The system clock, in nanoseconds since the Unix epoch.
pub fn system_unix_nanos() -> i128 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(since) => since.as_nanos() as i128,
        Err(before) => -(before.duration().as_nanos() as i128),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(i128);

    impl WallClock for Fixed {
        fn now_unix_nanos(&self) -> i128 {
            self.0
        }
    }

    #[test]
    fn installed_clock_wins() {
        let lua = Lua::new();
        assert!(now_unix_nanos(&lua) > 1_600_000_000_000_000_000);
        lua.set_app_data::<Box<dyn WallClock>>(Box::new(Fixed(42)));
        assert_eq!(now_unix_nanos(&lua), 42);
    }
}
