//! Channels between a run's coroutines (Go semantics: buffered or unbuffered, close, select), and
//! the host-fed channels behind timers, activity futures and signals.
//!
//! Blocking is cooperative: a primitive that cannot proceed registers the current task as a waiter
//! and reports "parked"; the Lua wrapper in `prelude.lua` then yields to the scheduler and retries
//! when woken. Every state change wakes the waiters, so no wake-up can be lost; spurious ones only
//! cost a retry.

use std::cell::RefCell;
use std::collections::{HashSet, VecDeque};
use std::rc::Rc;

use mlua::{AnyUserData, Lua, MultiValue, Table, Value};

use super::run::{RunCore, TaskId, active_run};

/// Capacity that never fills: host-fed channels (signals) must not drop or block.
pub(crate) const UNBOUNDED: usize = usize::MAX;

#[derive(Debug, Default)]
pub(crate) struct ChannelState {
    buffer: VecDeque<Value>,
    capacity: usize,
    closed: bool,
    /// Values offered by blocked senders (rendezvous for unbuffered channels), with their tickets.
    offers: VecDeque<(u64, Value)>,
    taken: HashSet<u64>,
    next_ticket: u64,
    receivers: Vec<TaskId>,
    senders: Vec<TaskId>,
}

/// The userdata behind a Lua channel.
#[derive(Debug, Clone)]
pub(crate) struct Channel(pub(crate) Rc<RefCell<ChannelState>>);

impl Channel {
    pub(crate) fn new(capacity: usize) -> Self {
        Channel(Rc::new(RefCell::new(ChannelState { capacity, next_ticket: 1, ..Default::default() })))
    }

    /// Pushes a value from the host (timer fired, activity resolved, signal arrived). A full
    /// bounded channel drops the value (ticker semantics) and returns false.
    pub(crate) fn push(&self, run: &mut RunCore, value: Value) -> bool {
        let mut state = self.0.borrow_mut();
        if state.closed || state.buffer.len() >= state.capacity {
            return false;
        }
        state.buffer.push_back(value);
        run.wake_all(&mut state.receivers);
        true
    }

    pub(crate) fn close(&self, run: &mut RunCore) {
        let mut state = self.0.borrow_mut();
        state.closed = true;
        run.wake_all(&mut state.receivers);
        run.wake_all(&mut state.senders);
    }

    /// Takes a value if one is available (buffer first, then blocked senders' offers).
    fn take(&self, run: &mut RunCore) -> Option<Value> {
        let mut state = self.0.borrow_mut();
        let value = if let Some(v) = state.buffer.pop_front() {
            // Room freed: move one blocked sender's offer into the buffer.
            if let Some((ticket, offered)) = state.offers.pop_front() {
                state.taken.insert(ticket);
                state.buffer.push_back(offered);
            }
            v
        } else {
            let (ticket, v) = state.offers.pop_front()?;
            state.taken.insert(ticket);
            v
        };
        run.wake_all(&mut state.senders);
        Some(value)
    }

    fn is_closed(&self) -> bool {
        self.0.borrow().closed
    }

    fn has_receivers(&self) -> bool {
        !self.0.borrow().receivers.is_empty()
    }
}

fn channel_of(ud: &AnyUserData) -> mlua::Result<Channel> {
    Ok(ud.borrow::<Channel>()?.clone())
}

fn closed_send_error() -> mlua::Error {
    mlua::Error::runtime("send on closed channel")
}

/// Registers the primitives `prelude.lua` builds channels from into `primitives`.
pub(crate) fn register(lua: &Lua, primitives: &Table) -> mlua::Result<()> {
    primitives.raw_set(
        "chan_new",
        lua.create_function(|lua, size: Option<i64>| {
            let size = size.unwrap_or(0);
            if size < 0 {
                return Err(mlua::Error::runtime(format!("channel.new: size must be >= 0, got {size}")));
            }
            lua.create_any_userdata(Channel::new(size as usize))
        })?,
    )?;
    // try_recv(ch) -> true, v | false | (nothing: parked)
    primitives.raw_set(
        "chan_try_recv",
        lua.create_function(|lua, ud: AnyUserData| {
            let channel = channel_of(&ud)?;
            let run = active_run(lua)?;
            let mut run = run.borrow_mut();
            if let Some(v) = channel.take(&mut run) {
                return Ok(MultiValue::from_vec(vec![Value::Boolean(true), v]));
            }
            if channel.is_closed() {
                return Ok(MultiValue::from_vec(vec![Value::Boolean(false)]));
            }
            park_receiver(&channel, &mut run)?;
            Ok(MultiValue::new())
        })?,
    )?;
    // try_send(ch, v) -> true (done) | ticket (offered; wait with send_status)
    primitives.raw_set(
        "chan_try_send",
        lua.create_function(|lua, (ud, value): (AnyUserData, Value)| {
            let channel = channel_of(&ud)?;
            let run = active_run(lua)?;
            let mut run = run.borrow_mut();
            let mut state = channel.0.borrow_mut();
            if state.closed {
                return Err(closed_send_error());
            }
            if state.capacity > 0 && state.buffer.len() < state.capacity && state.offers.is_empty() {
                state.buffer.push_back(value);
                run.wake_all(&mut state.receivers);
                return Ok(Value::Boolean(true));
            }
            let ticket = state.next_ticket;
            state.next_ticket += 1;
            state.offers.push_back((ticket, value));
            run.wake_all(&mut state.receivers);
            Ok(Value::Integer(ticket as i64))
        })?,
    )?;
    // send_status(ch, ticket) -> true when taken | false (parked); raises if closed meanwhile
    primitives.raw_set(
        "chan_send_status",
        lua.create_function(|lua, (ud, ticket): (AnyUserData, i64)| {
            let channel = channel_of(&ud)?;
            let ticket = ticket as u64;
            let run = active_run(lua)?;
            let run = run.borrow();
            let mut state = channel.0.borrow_mut();
            if state.taken.remove(&ticket) {
                return Ok(true);
            }
            if state.closed {
                state.offers.retain(|(t, _)| *t != ticket);
                return Err(closed_send_error());
            }
            let task = run.current_task()?;
            state.senders.push(task);
            Ok(false)
        })?,
    )?;
    primitives.raw_set(
        "chan_close",
        lua.create_function(|lua, ud: AnyUserData| {
            let channel = channel_of(&ud)?;
            let run = active_run(lua)?;
            channel.close(&mut run.borrow_mut());
            Ok(())
        })?,
    )?;
    primitives
        .raw_set("chan_len", lua.create_function(|_, ud: AnyUserData| Ok(channel_of(&ud)?.0.borrow().buffer.len()))?)?;
    // try_select(cases, has_default) -> index, value, ok | nil (parked) | 0 (default)
    primitives.raw_set(
        "chan_try_select",
        lua.create_function(|lua, (cases, has_default): (Table, bool)| try_select(lua, &cases, has_default))?,
    )?;
    Ok(())
}

fn park_receiver(channel: &Channel, run: &mut RunCore) -> mlua::Result<()> {
    let task = run.current_task()?;
    let mut state = channel.0.borrow_mut();
    state.receivers.push(task);
    // A select waiting to send may now hand its value over.
    run.wake_all(&mut state.senders);
    Ok(())
}

fn try_select(lua: &Lua, cases: &Table, has_default: bool) -> mlua::Result<MultiValue> {
    let run = active_run(lua)?;
    let mut run = run.borrow_mut();
    let count = cases.raw_len();
    let mut parsed = Vec::with_capacity(count);
    for index in 1..=count {
        let case: Table = cases
            .raw_get(index)
            .map_err(|_| mlua::Error::runtime(format!("channel.select: case {index} is not a case")))?;
        let ud: AnyUserData = case
            .raw_get("channel")
            .map_err(|_| mlua::Error::runtime(format!("channel.select: case {index} has no channel")))?;
        let channel = channel_of(&ud)?;
        let send: bool = case.raw_get::<Option<String>>("op")?.as_deref() == Some("send");
        parsed.push((index, channel, send, case));
    }
    for (index, channel, send, case) in &parsed {
        if *send {
            if channel.is_closed() {
                return Err(closed_send_error());
            }
            let mut state = channel.0.borrow_mut();
            let room = state.capacity > 0 && state.buffer.len() < state.capacity && state.offers.is_empty();
            if room || (!state.receivers.is_empty() && state.offers.is_empty()) {
                let value: Value = case.raw_get("value")?;
                if room {
                    state.buffer.push_back(value);
                } else {
                    // A receiver is parked: hand the value over (ticket 0 is never waited on).
                    state.offers.push_back((0, value));
                }
                run.wake_all(&mut state.receivers);
                return Ok(MultiValue::from_vec(vec![Value::Integer(*index as i64), Value::Nil, Value::Boolean(true)]));
            }
        } else if let Some(v) = channel.take(&mut run) {
            return Ok(MultiValue::from_vec(vec![Value::Integer(*index as i64), v, Value::Boolean(true)]));
        } else if channel.is_closed() {
            return Ok(MultiValue::from_vec(vec![Value::Integer(*index as i64), Value::Nil, Value::Boolean(false)]));
        }
    }
    if has_default {
        return Ok(MultiValue::from_vec(vec![Value::Integer(0)]));
    }
    let task = run.current_task()?;
    for (_, channel, send, _) in &parsed {
        let mut state = channel.0.borrow_mut();
        if *send {
            state.senders.push(task);
        } else {
            state.receivers.push(task);
        }
    }
    // Parked select receivers let select senders elsewhere proceed.
    for (_, channel, send, _) in &parsed {
        if !*send && channel.has_receivers() {
            let mut state = channel.0.borrow_mut();
            run.wake_all(&mut state.senders);
        }
    }
    Ok(MultiValue::new())
}
