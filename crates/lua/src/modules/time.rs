//! The `time` module's values (`Time`, `Duration`) and its real-clock flavour for activities.
//! Workflows get the same values with a deterministic clock and durable timers
//! (`workflow::time_api`). Numbers given as durations are nanoseconds, as in the reference.

use std::time::SystemTime;

use chrono::{DateTime, SecondsFormat, Utc};
use mlua::{AnyUserData, Lua, MetaMethod, Table, UserData, UserDataMethods, Value};

const NANOS_PER_SECOND: i128 = 1_000_000_000;

/// A point in time, UTC, nanosecond precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Time(pub i128);

/// A signed span of time in nanoseconds (Go's `time.Duration`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct DurationValue(pub i64);

impl Time {
    pub fn from_system(time: SystemTime) -> Self {
        match time.duration_since(SystemTime::UNIX_EPOCH) {
            Ok(d) => Time(d.as_nanos() as i128),
            Err(e) => Time(-(e.duration().as_nanos() as i128)),
        }
    }

    fn datetime(self) -> DateTime<Utc> {
        let secs = self.0.div_euclid(NANOS_PER_SECOND) as i64;
        let nanos = self.0.rem_euclid(NANOS_PER_SECOND) as u32;
        DateTime::from_timestamp(secs, nanos).unwrap_or_default()
    }

    pub fn rfc3339(self) -> String {
        self.datetime().to_rfc3339_opts(SecondsFormat::AutoSi, true)
    }

    pub fn unix(self) -> i64 {
        self.0.div_euclid(NANOS_PER_SECOND) as i64
    }

    /// Formats with a Go reference layout (`2006-01-02T15:04:05Z07:00`); the common tokens.
    pub fn format_go(self, layout: &str) -> String {
        const TOKENS: &[(&str, &str)] = &[
            ("2006", "%Y"),
            ("Z07:00", "%:z"),
            ("-07:00", "%:z"),
            ("-0700", "%z"),
            (".000000000", "%.9f"),
            (".000000", "%.6f"),
            (".000", "%.3f"),
            ("January", "%B"),
            ("Monday", "%A"),
            ("Jan", "%b"),
            ("Mon", "%a"),
            ("MST", "UTC"),
            ("01", "%m"),
            ("02", "%d"),
            ("15", "%H"),
            ("03", "%I"),
            ("04", "%M"),
            ("05", "%S"),
            ("06", "%y"),
            ("PM", "%p"),
            ("_2", "%e"),
        ];
        let mut out = String::new();
        let mut rest = layout;
        'outer: while !rest.is_empty() {
            for (go, strf) in TOKENS {
                if let Some(after) = rest.strip_prefix(go) {
                    // Go prints "Z" for UTC in Z07:00 layouts.
                    if *go == "Z07:00" {
                        out.push('Z');
                    } else {
                        out.push_str(&self.datetime().format(strf).to_string());
                    }
                    rest = after;
                    continue 'outer;
                }
            }
            let ch = rest.chars().next().unwrap_or_default();
            out.push(ch);
            rest = &rest[ch.len_utf8()..];
        }
        out
    }
}

/// Reads a duration argument: a number of nanoseconds, a Go duration string, or a Duration.
pub fn duration_arg(value: &Value) -> Result<i64, String> {
    match value {
        Value::Integer(n) => Ok(*n),
        Value::Number(n) if n.is_finite() => Ok(*n as i64),
        Value::String(s) => {
            let text = s.to_string_lossy();
            tempest_duration::parse_nanos(&text).map_err(|e| e.to_string())
        }
        Value::UserData(ud) => match ud.borrow::<DurationValue>() {
            Ok(d) => Ok(d.0),
            Err(_) => Err("expected a duration (nanoseconds, a string such as \"5s\", or a Duration)".into()),
        },
        other => Err(format!(
            "expected a duration (nanoseconds, a string such as \"5s\", or a Duration), got {}",
            other.type_name()
        )),
    }
}

fn other_time(value: &Value) -> mlua::Result<Time> {
    match value {
        Value::UserData(ud) => Ok(*ud.borrow::<Time>()?),
        other => Err(mlua::Error::runtime(format!("expected a Time, got {}", other.type_name()))),
    }
}

impl UserData for Time {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_method("add", |_, this, d: Value| {
            let nanos = duration_arg(&d).map_err(mlua::Error::runtime)?;
            Ok(Time(this.0 + nanos as i128))
        });
        methods.add_method("sub", |lua, this, other: Value| {
            if let Value::UserData(ud) = &other
                && let Ok(t) = ud.borrow::<Time>()
            {
                let diff = (this.0 - t.0).clamp(i64::MIN as i128, i64::MAX as i128) as i64;
                return lua.create_userdata(DurationValue(diff)).map(Value::UserData);
            }
            let nanos = duration_arg(&other).map_err(mlua::Error::runtime)?;
            lua.create_userdata(Time(this.0 - nanos as i128)).map(Value::UserData)
        });
        methods.add_method("before", |_, this, t: Value| Ok(this.0 < other_time(&t)?.0));
        methods.add_method("after", |_, this, t: Value| Ok(this.0 > other_time(&t)?.0));
        methods.add_method("equal", |_, this, t: Value| Ok(this.0 == other_time(&t)?.0));
        methods.add_method("unix", |_, this, ()| Ok(this.unix()));
        methods.add_method("unix_nano", |_, this, ()| Ok(this.0 as i64));
        methods.add_method("format_rfc3339", |_, this, ()| Ok(this.rfc3339()));
        methods.add_method("format", |_, this, layout: String| Ok(this.format_go(&layout)));
        methods.add_method("utc", |_, this, ()| Ok(*this));
        methods.add_method("is_zero", |_, this, ()| Ok(this.0 == 0));
        methods.add_meta_method(MetaMethod::ToString, |_, this, ()| Ok(this.rfc3339()));
        methods.add_meta_method(MetaMethod::Eq, |_, this, t: AnyUserData| Ok(this.0 == t.borrow::<Time>()?.0));
        methods.add_meta_method(MetaMethod::Lt, |_, this, t: AnyUserData| Ok(this.0 < t.borrow::<Time>()?.0));
        methods.add_meta_method(MetaMethod::Le, |_, this, t: AnyUserData| Ok(this.0 <= t.borrow::<Time>()?.0));
    }
}

impl UserData for DurationValue {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_method("hours", |_, this, ()| Ok(this.0 as f64 / 3.6e12));
        methods.add_method("minutes", |_, this, ()| Ok(this.0 as f64 / 6e10));
        methods.add_method("seconds", |_, this, ()| Ok(this.0 as f64 / 1e9));
        methods.add_method("milliseconds", |_, this, ()| Ok(this.0 / 1_000_000));
        methods.add_method("microseconds", |_, this, ()| Ok(this.0 / 1_000));
        methods.add_method("nanoseconds", |_, this, ()| Ok(this.0));
        methods.add_meta_method(MetaMethod::ToString, |_, this, ()| Ok(tempest_duration::format_nanos(this.0)));
        methods.add_meta_method(MetaMethod::Eq, |_, this, d: AnyUserData| Ok(this.0 == d.borrow::<DurationValue>()?.0));
        methods.add_meta_method(MetaMethod::Lt, |_, this, d: AnyUserData| Ok(this.0 < d.borrow::<DurationValue>()?.0));
        methods.add_meta_method(MetaMethod::Le, |_, this, d: AnyUserData| Ok(this.0 <= d.borrow::<DurationValue>()?.0));
    }
}

/// Functions and constants both flavours share: `parse_duration`, `unix`, unit constants.
pub fn register_common(lua: &Lua, module: &Table) -> mlua::Result<()> {
    for (name, nanos) in [
        ("NANOSECOND", 1i64),
        ("MICROSECOND", 1_000),
        ("MILLISECOND", 1_000_000),
        ("SECOND", 1_000_000_000),
        ("MINUTE", 60_000_000_000),
        ("HOUR", 3_600_000_000_000),
    ] {
        module.raw_set(name, nanos)?;
    }
    module.raw_set("RFC3339", "2006-01-02T15:04:05Z07:00")?;
    module.raw_set("RFC3339NANO", "2006-01-02T15:04:05.999999999Z07:00")?;
    module.raw_set("DATE_TIME", "2006-01-02 15:04:05")?;
    module.raw_set("DATE_ONLY", "2006-01-02")?;
    module.raw_set("TIME_ONLY", "15:04:05")?;
    module.raw_set(
        "parse_duration",
        lua.create_function(|lua, v: Value| match duration_arg(&v) {
            Ok(nanos) => Ok((Some(DurationValue(nanos)), None)),
            Err(message) => Ok((None, Some(crate::failure::Failure::invalid(message).push(lua)?))),
        })?,
    )?;
    module.raw_set(
        "unix",
        lua.create_function(|_, (sec, nsec): (i64, Option<i64>)| {
            Ok(Time(sec as i128 * NANOS_PER_SECOND + nsec.unwrap_or(0) as i128))
        })?,
    )?;
    Ok(())
}

/// The activity flavour: the real clock, and `sleep` blocks the calling thread.
pub fn register(lua: &Lua) -> mlua::Result<Table> {
    let module = lua.create_table()?;
    register_common(lua, &module)?;
    module.raw_set("now", lua.create_function(|_, ()| Ok(Time::from_system(SystemTime::now())))?)?;
    module.raw_set(
        "sleep",
        lua.create_function(|_, d: Value| {
            let nanos = duration_arg(&d).map_err(mlua::Error::runtime)?;
            if nanos > 0 {
                std::thread::sleep(std::time::Duration::from_nanos(nanos as u64));
            }
            Ok(())
        })?,
    )?;
    Ok(module)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_go() {
        let t = Time(1_700_000_000_123_000_000);
        assert_eq!(t.rfc3339(), "2023-11-14T22:13:20.123Z");
        assert_eq!(t.format_go("2006-01-02 15:04:05"), "2023-11-14 22:13:20");
        assert_eq!(t.format_go("2006-01-02T15:04:05Z07:00"), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn duration_arguments() {
        assert_eq!(duration_arg(&Value::Integer(5)), Ok(5));
        let lua = Lua::new();
        let s = Value::String(lua.create_string("1m30s").unwrap());
        assert_eq!(duration_arg(&s), Ok(90_000_000_000));
        let bad = Value::String(lua.create_string("5 mins").unwrap());
        assert!(duration_arg(&bad).is_err());
    }

    #[test]
    fn values_in_lua() {
        let lua = Lua::new();
        let m = register(&lua).unwrap();
        lua.globals().set("time", m).unwrap();
        let (h, s): (f64, String) = lua
            .load("local d = time.parse_duration('90m') return d:hours(), tostring(time.unix(0, 0):add('1s'))")
            .eval()
            .unwrap();
        assert_eq!(h, 1.5);
        assert_eq!(s, "1970-01-01T00:00:01Z");
    }
}
