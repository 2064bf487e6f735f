//! The workflow flavour of `time`: the activation's deterministic clock, and `after`, `timer`,
//! `ticker` as durable Temporal timers feeding one-shot (or re-arming) channels. Stopping a timer
//! cancels it on the server.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use mlua::{AnyUserData, Lua, Table, UserData, UserDataMethods, Value};

use super::Command;
use super::channel::Channel;
use super::run::{RunCore, TickerState, TimerTarget, active_run};
use crate::failure::Failure;
use crate::modules::time::{Time, duration_arg, register_common};

/// Starts a timer for `nanos` feeding `target`; returns its sequence number.
fn start_timer(run: &mut RunCore, nanos: i64, target: TimerTarget, site: Option<String>) -> u32 {
    let seq = run.next_timer();
    run.issue(Command::StartTimer { seq, duration: Duration::from_nanos(nanos.max(0) as u64) }, site);
    run.timers.insert(seq, target);
    seq
}

fn cancel_timer(run: &mut RunCore, seq: u32, site: Option<String>) -> bool {
    if run.timers.remove(&seq).is_some() {
        run.issue(Command::CancelTimer { seq }, site);
        true
    } else {
        false
    }
}

/// Applies a `FireTimer` job: deliver the activation time and re-arm tickers.
pub(crate) fn fire(lua: &Lua, run: &mut RunCore, seq: u32) -> mlua::Result<()> {
    let Some(target) = run.timers.remove(&seq) else {
        return Ok(());
    };
    let now = || lua.create_userdata(Time::from_system(run.now));
    match target {
        TimerTarget::Wake(task) => run.wake(task),
        TimerTarget::Once(channel) => {
            let now = now()?;
            channel.push(run, Value::UserData(now));
        }
        TimerTarget::LocalBackoff { future, attempt, original_schedule_time } => {
            super::api::reschedule_local_activity(lua, run, future, attempt, original_schedule_time)?;
        }
        TimerTarget::Ticker { channel, period, ticker } => {
            let now = now()?;
            channel.push(run, Value::UserData(now));
            if !ticker.borrow().stopped {
                let next = start_timer(
                    run,
                    period.as_nanos() as i64,
                    TimerTarget::Ticker { channel, period, ticker: ticker.clone() },
                    None,
                );
                ticker.borrow_mut().current_seq = next;
            }
        }
    }
    Ok(())
}

fn channel_userdata(lua: &Lua, channel: &Channel) -> mlua::Result<AnyUserData> {
    lua.create_any_userdata(channel.clone())
}

/// `time.timer(d)`: a stoppable, resettable one-shot timer.
struct Timer {
    seq: u32,
    channel: Channel,
    channel_ud: AnyUserData,
}

impl UserData for Timer {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_method("channel", |_, this, ()| Ok(this.channel_ud.clone()));
        methods.add_method("response", |_, this, ()| Ok(this.channel_ud.clone()));
        methods.add_method_mut("stop", |lua, this, ()| {
            let run = active_run(lua)?;
            let site = super::run::command_site(lua, run.borrow().replaying);
            Ok(cancel_timer(&mut run.borrow_mut(), this.seq, site))
        });
        methods.add_method_mut("reset", |lua, this, d: Value| {
            let nanos = duration_arg(&d).map_err(mlua::Error::runtime)?;
            let run = active_run(lua)?;
            let site = super::run::command_site(lua, run.borrow().replaying);
            let mut run = run.borrow_mut();
            let was_active = cancel_timer(&mut run, this.seq, site.clone());
            this.seq = start_timer(&mut run, nanos, TimerTarget::Once(this.channel.clone()), site);
            Ok(was_active)
        });
    }
}

/// `time.ticker(d)`: fires every period until stopped.
struct Ticker {
    state: Rc<RefCell<TickerState>>,
    channel_ud: AnyUserData,
}

impl UserData for Ticker {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_method("channel", |_, this, ()| Ok(this.channel_ud.clone()));
        methods.add_method("response", |_, this, ()| Ok(this.channel_ud.clone()));
        methods.add_method("stop", |lua, this, ()| {
            let run = active_run(lua)?;
            let mut state = this.state.borrow_mut();
            if state.stopped {
                return Ok(false);
            }
            state.stopped = true;
            let site = super::run::command_site(lua, run.borrow().replaying);
            Ok(cancel_timer(&mut run.borrow_mut(), state.current_seq, site))
        });
    }
}

/// A duration argument that must be positive (timers and tickers), or the message for `nil, err`.
fn positive_duration(function: &str, value: &Value) -> Result<i64, String> {
    match duration_arg(value) {
        Ok(nanos) if nanos > 0 => Ok(nanos),
        Ok(nanos) => Err(format!("{function}: duration must be positive, got {nanos}ns")),
        Err(message) => Err(format!("{function}: {message}")),
    }
}

/// A duration argument that may be zero (`after`, `sleep`), or the message for `nil, err`.
fn non_negative_duration(function: &str, value: &Value) -> Result<i64, String> {
    match duration_arg(value) {
        Ok(nanos) if nanos >= 0 => Ok(nanos),
        Ok(nanos) => Err(format!("{function}: duration must not be negative, got {nanos}ns")),
        Err(message) => Err(format!("{function}: {message}")),
    }
}

fn invalid(lua: &Lua, message: String) -> mlua::Result<(Value, Value)> {
    Ok((Value::Nil, Failure::invalid(message).push(lua)?))
}

/// Registers `after` into the primitives (the prelude's `sleep` uses it) and returns the module.
pub(crate) fn register(lua: &Lua, primitives: &Table) -> mlua::Result<Table> {
    let after = lua.create_function(|lua, d: Value| {
        let nanos = match non_negative_duration("time.after", &d) {
            Ok(n) => n,
            Err(message) => return invalid(lua, message),
        };
        let run = active_run(lua)?;
        let site = super::run::command_site(lua, run.borrow().replaying);
        let channel = Channel::new(1);
        start_timer(&mut run.borrow_mut(), nanos, TimerTarget::Once(channel.clone()), site);
        Ok((Value::UserData(channel_userdata(lua, &channel)?), Value::Nil))
    })?;
    primitives.raw_set("after", after.clone())?;
    // `time.sleep` in a task: a timer that wakes the task, no channel. Returns the timer's
    // sequence number for `timer_pending`; elsewhere (a query handler) it falls back to `after`.
    let after_for_sleep = after.clone();
    primitives.raw_set(
        "sleep_start",
        lua.create_function(move |lua, d: Value| {
            let run = active_run(lua)?;
            let Some(task) = run.borrow().current else { return after_for_sleep.call::<(Value, Value)>(d) };
            let nanos = match non_negative_duration("time.sleep", &d) {
                Ok(n) => n,
                Err(message) => return invalid(lua, message),
            };
            let site = super::run::command_site(lua, run.borrow().replaying);
            let seq = start_timer(&mut run.borrow_mut(), nanos, TimerTarget::Wake(task), site);
            Ok((Value::Integer(i64::from(seq)), Value::Nil))
        })?,
    )?;
    primitives.raw_set(
        "timer_pending",
        lua.create_function(|lua, seq: u32| Ok(active_run(lua)?.borrow().timers.contains_key(&seq)))?,
    )?;

    let module = lua.create_table()?;
    register_common(lua, &module)?;
    module.raw_set("after", after)?;
    module.raw_set(
        "now",
        lua.create_function(|lua, ()| {
            let run = active_run(lua)?;
            let now = run.borrow().now;
            Ok(Time::from_system(now))
        })?,
    )?;
    module.raw_set(
        "timer",
        lua.create_function(|lua, d: Value| {
            let nanos = match positive_duration("time.timer", &d) {
                Ok(n) => n,
                Err(message) => return invalid(lua, message),
            };
            let run = active_run(lua)?;
            let site = super::run::command_site(lua, run.borrow().replaying);
            let channel = Channel::new(1);
            let seq = start_timer(&mut run.borrow_mut(), nanos, TimerTarget::Once(channel.clone()), site);
            let channel_ud = channel_userdata(lua, &channel)?;
            Ok((Value::UserData(lua.create_userdata(Timer { seq, channel, channel_ud })?), Value::Nil))
        })?,
    )?;
    module.raw_set(
        "ticker",
        lua.create_function(|lua, d: Value| {
            let nanos = match positive_duration("time.ticker", &d) {
                Ok(n) => n,
                Err(message) => return invalid(lua, message),
            };
            let run = active_run(lua)?;
            let channel = Channel::new(1);
            let state = Rc::new(RefCell::new(TickerState::default()));
            let period = Duration::from_nanos(nanos as u64);
            let site = super::run::command_site(lua, run.borrow().replaying);
            let seq = start_timer(
                &mut run.borrow_mut(),
                nanos,
                TimerTarget::Ticker { channel: channel.clone(), period, ticker: state.clone() },
                site,
            );
            state.borrow_mut().current_seq = seq;
            let channel_ud = channel_userdata(lua, &channel)?;
            Ok((Value::UserData(lua.create_userdata(Ticker { state, channel_ud })?), Value::Nil))
        })?,
    )?;
    Ok(module)
}
