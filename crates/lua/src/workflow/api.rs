//! The workflow-facing Lua API that does not block: activity futures (`funcs`), signals and
//! events (`process`), `workflow.info`, and the deterministic replacements for `math.random`,
//! `os.time`/`os.clock`/`os.date`, `print`, `tostring` and `setmetatable`.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use mlua::{AnyUserData, Lua, MultiValue, Table, UserData, UserDataMethods, Value};

use super::channel::{Channel, UNBOUNDED};
use super::run::{FutureState, RunCore, active_run};
use super::{ActivityOptions, Command, RetryPolicy, ScheduleActivity};
use crate::convert::{Data, from_data, to_data};
use crate::failure::Failure;

/// Default start-to-close timeout when neither it nor schedule-to-close is given (reference: 10m).
const DEFAULT_START_TO_CLOSE: Duration = Duration::from_secs(600);

/// A received value that is decoded only when asked for (`p:data()`).
pub(crate) struct Payload(pub(crate) Data);

impl UserData for Payload {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_method("data", |lua, this, ()| from_data(lua, &this.0));
    }
}

/// A signal as a message: `msg:topic()`, `msg:from()`, `msg:payload():data()`.
struct Message {
    topic: String,
    args: Vec<Data>,
}

impl UserData for Message {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_method("topic", |_, this, ()| Ok(this.topic.clone()));
        methods.add_method("from", |_, _, ()| Ok(Value::Nil));
        methods.add_method("payload", |lua, this, ()| {
            let value = signal_value(lua, &this.args)?;
            let data = to_data(&value).map_err(|e| mlua::Error::runtime(e.to_string()))?;
            Ok(Payload(data))
        });
    }
}

/// A signal's arguments as one value: none → nil, one → itself, several → an array.
pub(crate) fn signal_value(lua: &Lua, args: &[Data]) -> mlua::Result<Value> {
    match args {
        [] => Ok(Value::Nil),
        [one] => from_data(lua, one),
        many => {
            let table = lua.create_table_with_capacity(many.len(), 0)?;
            for (i, data) in many.iter().enumerate() {
                table.raw_set(i + 1, from_data(lua, data)?)?;
            }
            Ok(Value::Table(table))
        }
    }
}

pub(crate) fn message_value(lua: &Lua, topic: &str, args: Vec<Data>) -> mlua::Result<Value> {
    lua.create_userdata(Message { topic: topic.to_owned(), args }).map(Value::UserData)
}

/// The handle `funcs.async` returns.
struct Future {
    state: Rc<RefCell<FutureState>>,
    channel_ud: AnyUserData,
}

fn future_values(lua: &Lua, state: &FutureState) -> mlua::Result<(Value, Value)> {
    match &state.outcome {
        None => Ok((Value::Nil, Value::Nil)),
        Some(Ok(data)) => Ok((from_data(lua, data)?, Value::Nil)),
        Some(Err(failure)) => Ok((Value::Nil, failure.clone().push(lua)?)),
    }
}

impl UserData for Future {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_method("response", |_, this, ()| Ok(this.channel_ud.clone()));
        methods.add_method("channel", |_, this, ()| Ok(this.channel_ud.clone()));
        methods.add_method("is_complete", |_, this, ()| Ok(this.state.borrow().outcome.is_some()));
        methods.add_method("is_canceled", |_, this, ()| {
            let state = this.state.borrow();
            Ok(state.cancel_requested
                || matches!(&state.outcome, Some(Err(f)) if f.kind == crate::failure::Kind::CANCELED))
        });
        methods.add_method("result", |lua, this, ()| {
            let state = this.state.borrow();
            match &state.outcome {
                Some(Ok(data)) => Ok((Value::UserData(lua.create_userdata(Payload(data.clone()))?), Value::Nil)),
                _ => future_values(lua, &state),
            }
        });
        methods.add_method("error", |lua, this, ()| {
            let state = this.state.borrow();
            match &state.outcome {
                Some(Err(failure)) => Ok((failure.clone().push(lua)?, true)),
                _ => Ok((Value::Nil, false)),
            }
        });
        methods.add_method("cancel", |lua, this, ()| {
            let mut state = this.state.borrow_mut();
            if state.outcome.is_some() || state.cancel_requested {
                return Ok(false);
            }
            state.cancel_requested = true;
            let run = active_run(lua)?;
            let site = super::run::command_site(lua, run.borrow().replaying);
            run.borrow_mut().issue(Command::RequestCancelActivity { seq: state.seq, local: state.local }, site);
            Ok(true)
        });
    }
}

/// Applies a local activity's backoff: a durable timer, after which the activity is scheduled
/// again under a new sequence number (Core's local activity protocol).
pub(crate) fn backoff_local_activity(
    run: &mut RunCore,
    seq: u32,
    attempt: u32,
    backoff: Duration,
    original_schedule_time: Option<std::time::SystemTime>,
) {
    let Some(future) = run.activities.remove(&seq) else { return };
    let timer = run.next_timer();
    run.issue(Command::StartTimer { seq: timer, duration: backoff }, None);
    run.timers.insert(timer, super::run::TimerTarget::LocalBackoff { future, attempt, original_schedule_time });
}

/// A local activity's backoff timer fired: schedule it again (or give up if it was cancelled).
pub(crate) fn reschedule_local_activity(
    lua: &Lua,
    run: &mut RunCore,
    future: Rc<RefCell<FutureState>>,
    attempt: u32,
    original_schedule_time: Option<std::time::SystemTime>,
) -> mlua::Result<()> {
    let (cancelled, template) = {
        let state = future.borrow();
        (state.cancel_requested, state.schedule.clone())
    };
    let Some(mut schedule) = template.filter(|_| !cancelled) else {
        let seq = future.borrow().seq;
        run.activities.insert(seq, future);
        let canceled =
            Failure::new(crate::failure::Kind::CANCELED, "local activity canceled").with_retryable(Some(false));
        return resolve_activity(lua, run, seq, Err(canceled));
    };
    let seq = run.next_activity();
    schedule.seq = seq;
    schedule.attempt = attempt;
    schedule.original_schedule_time = original_schedule_time;
    future.borrow_mut().seq = seq;
    run.activities.insert(seq, future);
    run.issue(Command::ScheduleActivity(Box::new(schedule)), None);
    Ok(())
}

/// Applies a `ResolveActivity` job to the future it belongs to.
pub(crate) fn resolve_activity(
    lua: &Lua,
    run: &mut RunCore,
    seq: u32,
    outcome: Result<Data, Failure>,
) -> mlua::Result<()> {
    let Some(state) = run.activities.remove(&seq) else {
        return Ok(());
    };
    let waiter = state.borrow().waiter;
    if let Some((task, key)) = waiter {
        run.call_results.insert(key, outcome);
        run.wake(task);
        return Ok(());
    }
    let channel = {
        let mut state = state.borrow_mut();
        state.outcome = Some(outcome.clone());
        state.channel.clone()
    };
    if let Some(channel) = channel {
        match outcome {
            Ok(data) => {
                let payload = lua.create_userdata(Payload(data))?;
                channel.push(run, Value::UserData(payload));
            }
            Err(_) => channel.close(run),
        }
    }
    Ok(())
}

fn option_key(key: &str) -> Option<&str> {
    let key = key.strip_prefix("temporal.").unwrap_or(key);
    key.strip_prefix("activity.")
}

fn json_duration_ms(key: &str, value: &serde_json::Value) -> Result<Duration, Failure> {
    let nanos = match value {
        serde_json::Value::Number(n) => {
            n.as_f64().filter(|ms| *ms >= 0.0).map(|ms| (ms * 1e6) as i64).ok_or_else(|| {
                Failure::invalid(format!("option `{key}`: expected a non-negative number of milliseconds"))
            })?
        }
        serde_json::Value::String(s) => {
            tempest_duration::parse_nanos(s).map_err(|e| Failure::invalid(format!("option `{key}`: {e}")))?
        }
        other => return Err(Failure::invalid(format!("option `{key}`: expected a duration, got {other}"))),
    };
    if nanos < 0 {
        return Err(Failure::invalid(format!("option `{key}`: duration must not be negative")));
    }
    Ok(Duration::from_nanos(nanos as u64))
}

fn json_bool(key: &str, value: &serde_json::Value) -> Result<bool, Failure> {
    value.as_bool().ok_or_else(|| Failure::invalid(format!("option `{key}`: expected a boolean, got {value}")))
}

fn json_string(key: &str, value: &serde_json::Value) -> Result<String, Failure> {
    match value.as_str() {
        Some(s) if !s.is_empty() => Ok(s.to_owned()),
        _ => Err(Failure::invalid(format!("option `{key}`: expected a non-empty string, got {value}"))),
    }
}

fn retry_policy(value: &serde_json::Value) -> Result<RetryPolicy, Failure> {
    let key = "activity.retry_policy";
    let map = value.as_object().ok_or_else(|| Failure::invalid(format!("option `{key}`: expected a table")))?;
    let mut policy = RetryPolicy::default();
    for (field, v) in map {
        let path = format!("{key}.{field}");
        match field.as_str() {
            "initial_interval" => policy.initial_interval = Some(json_duration_ms(&path, v)?),
            "maximum_interval" => policy.maximum_interval = Some(json_duration_ms(&path, v)?),
            "backoff_coefficient" => {
                let c = v.as_f64().filter(|c| *c >= 1.0);
                policy.backoff_coefficient =
                    Some(c.ok_or_else(|| Failure::invalid(format!("option `{path}`: expected a number >= 1")))?);
            }
            "maximum_attempts" => {
                let n = v.as_i64().filter(|n| (0..=i32::MAX as i64).contains(n));
                policy.maximum_attempts =
                    n.ok_or_else(|| Failure::invalid(format!("option `{path}`: expected an integer >= 0")))? as i32;
            }
            "non_retryable_error_types" => {
                let list = v.as_array().ok_or_else(|| Failure::invalid(format!("option `{path}`: expected a list")))?;
                policy.non_retryable_error_types =
                    list.iter().map(|t| json_string(&path, t)).collect::<Result<_, _>>()?;
            }
            other => return Err(Failure::invalid(format!("option `{key}`: unknown field `{other}`"))),
        }
    }
    Ok(policy)
}

/// Validates activity options: the entry's defaults overlaid by the call's options.
pub(crate) fn activity_options(
    defaults: &BTreeMap<String, serde_json::Value>,
    overrides: &BTreeMap<String, serde_json::Value>,
) -> Result<ActivityOptions, Failure> {
    let mut options = ActivityOptions::default();
    // An entry's `meta.options` may hold options for other kinds of call; a workflow's own
    // `with_options` may not: a misspelt key must not be silently ignored.
    if let Some(key) = overrides.keys().find(|key| option_key(key).is_none()) {
        return Err(Failure::invalid(format!(
            "unknown option `{key}` (activity options are written `activity.<name>`, e.g. `activity.start_to_close_timeout`)"
        )));
    }
    for (key, value) in defaults.iter().chain(overrides) {
        let Some(name) = option_key(key) else { continue };
        match name {
            "start_to_close_timeout" => options.start_to_close = Some(json_duration_ms(key, value)?),
            "schedule_to_close_timeout" => options.schedule_to_close = Some(json_duration_ms(key, value)?),
            "schedule_to_start_timeout" => options.schedule_to_start = Some(json_duration_ms(key, value)?),
            "heartbeat_timeout" => options.heartbeat = Some(json_duration_ms(key, value)?),
            "id" => options.activity_id = Some(json_string(key, value)?),
            "task_queue" => options.task_queue = Some(json_string(key, value)?),
            "wait_for_cancellation" => options.wait_for_cancellation = json_bool(key, value)?,
            "disable_eager_execution" => options.disable_eager_execution = json_bool(key, value)?,
            "retry_policy" => options.retry_policy = Some(retry_policy(value)?),
            other => {
                return Err(Failure::invalid(format!(
                    "unknown activity option `activity.{other}` (known: start_to_close_timeout, \
                     schedule_to_close_timeout, schedule_to_start_timeout, heartbeat_timeout, id, task_queue, \
                     wait_for_cancellation, disable_eager_execution, retry_policy)"
                )));
            }
        }
    }
    if options.start_to_close.is_none() && options.schedule_to_close.is_none() {
        options.start_to_close = Some(DEFAULT_START_TO_CLOSE);
    }
    Ok(options)
}

fn options_table(table: &Table) -> Result<BTreeMap<String, serde_json::Value>, Failure> {
    let mut out = BTreeMap::new();
    for pair in table.pairs::<String, Value>() {
        let (key, value) = pair.map_err(|e| Failure::invalid(format!("options: {e}")))?;
        let json = crate::convert::to_json(&value).map_err(|e| Failure::invalid(format!("option `{key}`: {e}")))?;
        out.insert(key, json);
    }
    Ok(out)
}

/// An executor's options or context (`funcs.new():with_options{...}`), converted once when the
/// executor is made instead of on every call through it. Options also keep what the last call
/// resolved them to: an executor usually calls one target.
pub(crate) struct Prepared {
    values: Result<BTreeMap<String, serde_json::Value>, Failure>,
    last: RefCell<Option<Rc<Resolved>>>,
}

impl UserData for Prepared {}

/// A call target with its options: the entry's defaults overlaid by the executor's.
struct Resolved {
    id: String,
    activity_type: String,
    local: bool,
    options: ActivityOptions,
}

/// Finds the target `id` names and validates its options over its defaults.
fn resolve(run: &RunCore, id: &str, overrides: &BTreeMap<String, serde_json::Value>) -> Result<Resolved, Failure> {
    let targets = &run.activity_targets;
    let target = targets.get(id).or_else(|| targets.get(&format!("{}:{id}", run.namespace_of_entry)));
    let no_defaults = BTreeMap::new();
    let (activity_type, local, defaults, home_queue) = match target {
        Some(t) => (t.type_name.clone(), t.local, &t.defaults, t.task_queue.as_ref()),
        None => (id.to_owned(), false, &no_defaults, None),
    };
    let mut options = activity_options(defaults, overrides).map_err(|f| f.wrap(&format!("funcs.call({id})")))?;
    if options.task_queue.is_none() {
        options.task_queue = home_queue.cloned();
    }
    Ok(Resolved { id: id.to_owned(), activity_type, local, options })
}

/// `funcs.async` / `funcs.call` / executor calls: schedule an activity. Returns its future, or
/// for a blocking call (`direct`) made by a task, the call's key for `activity_result`: the
/// running task waits for it without a future or a channel.
fn start_activity(
    lua: &Lua,
    options: Option<AnyUserData>,
    context: Option<AnyUserData>,
    id: Value,
    args: MultiValue,
    direct: bool,
) -> mlua::Result<(Value, Value)> {
    let fail = |failure: Failure| -> mlua::Result<(Value, Value)> { Ok((Value::Nil, failure.push(lua)?)) };
    let id_string = match id {
        Value::String(s) if !s.as_bytes().is_empty() => s,
        other => {
            return fail(Failure::invalid(format!("funcs.call: expected a function ID, got {}", other.type_name())));
        }
    };
    // Borrowed from Lua: an ID costs no copy unless it is not UTF-8.
    let (borrowed, lossy);
    let id: &str = match id_string.to_str() {
        Ok(text) => {
            borrowed = text;
            &borrowed
        }
        Err(_) => {
            lossy = id_string.to_string_lossy();
            &lossy
        }
    };
    let options = options.map(|ud| ud.borrow::<Prepared>()).transpose()?;
    let context = context.map(|ud| ud.borrow::<Prepared>()).transpose()?;
    let run = active_run(lua)?;
    let mut run = run.borrow_mut();
    let last = options.as_ref().and_then(|p| p.last.borrow().clone()).filter(|r| r.id == id);
    let resolved = match last {
        Some(resolved) => resolved,
        None => {
            let no_overrides = BTreeMap::new();
            let overrides = match options.as_ref().map(|p| &p.values) {
                None => &no_overrides,
                Some(Ok(values)) => values,
                Some(Err(failure)) => return fail(failure.clone()),
            };
            let resolved = match resolve(&run, id, overrides) {
                Ok(r) => Rc::new(r),
                Err(failure) => return fail(failure),
            };
            if let Some(p) = &options {
                *p.last.borrow_mut() = Some(resolved.clone());
            }
            resolved
        }
    };
    let mut data = Vec::with_capacity(args.len());
    for (i, arg) in args.iter().enumerate() {
        match to_data(arg) {
            Ok(d) => data.push(d),
            Err(e) => {
                let e = e.with_root(format!("arg{}", i + 1));
                return fail(Failure::invalid(format!("funcs.call({id}): cannot encode argument {}: {e}", i + 1)));
            }
        }
    }
    let extra = match context.as_ref().map(|p| &p.values) {
        Some(Ok(values)) if !values.is_empty() => Some(values),
        Some(Err(failure)) => return fail(failure.clone().wrap("with_context")),
        _ => None,
    };
    let context = match (run.context.as_deref(), extra) {
        (None, None) => None,
        (Some(base), None) => (!base.is_empty()).then(|| base.clone()),
        (base, Some(extra)) => {
            let mut call_context = base.cloned().unwrap_or_default();
            call_context.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
            Some(call_context)
        }
    };
    let local = resolved.local;
    let seq = run.next_activity();
    let waiter = if direct { run.current.map(|task| (task, seq)) } else { None };
    if waiter.is_some() {
        run.await_call(seq);
    }
    let channel = waiter.is_none().then(|| Channel::new(1));
    let schedule = ScheduleActivity {
        seq,
        activity_type: resolved.activity_type.clone(),
        args: data,
        options: resolved.options.clone(),
        local,
        context,
        attempt: 1,
        original_schedule_time: None,
    };
    let state = Rc::new(RefCell::new(FutureState {
        seq,
        local,
        outcome: None,
        cancel_requested: false,
        channel: channel.clone(),
        waiter,
        schedule: local.then(|| schedule.clone()),
    }));
    run.activities.insert(seq, state.clone());
    let site = super::run::command_site(lua, run.replaying);
    run.issue(Command::ScheduleActivity(Box::new(schedule)), site);
    drop(run);
    match channel {
        None => Ok((Value::Integer(i64::from(seq)), Value::Nil)),
        Some(channel) => {
            let channel_ud = lua.create_any_userdata(channel)?;
            let future = lua.create_userdata(Future { state, channel_ud })?;
            Ok((Value::UserData(future), Value::Nil))
        }
    }
}

/// Registers the `funcs` primitives the prelude builds on.
pub(crate) fn register_primitives(lua: &Lua, primitives: &Table) -> mlua::Result<()> {
    // `activity` returns a future (funcs.async); `activity_call` lets the calling task wait
    // without one (funcs.call).
    for (name, direct) in [("activity", false), ("activity_call", true)] {
        primitives.raw_set(
            name,
            lua.create_function(
                move |lua, (options, context, id, args): (Option<AnyUserData>, Option<AnyUserData>, Value, MultiValue)| {
                    start_activity(lua, options, context, id, args, direct)
                },
            )?,
        )?;
    }
    primitives.raw_set(
        "prepare",
        lua.create_function(|_, table: Table| {
            Ok(Prepared { values: options_table(&table), last: RefCell::new(None) })
        })?,
    )?;
    primitives.raw_set(
        "activity_result",
        lua.create_function(|lua, key: u32| {
            let outcome = active_run(lua)?.borrow_mut().call_results.remove(&key);
            match outcome {
                None => Ok((false, Value::Nil, Value::Nil)),
                Some(Ok(data)) => Ok((true, from_data(lua, &data)?, Value::Nil)),
                Some(Err(failure)) => Ok((true, Value::Nil, failure.push(lua)?)),
            }
        })?,
    )?;
    primitives.raw_set(
        "future_channel",
        lua.create_function(|_, future: AnyUserData| Ok(future.borrow::<Future>()?.channel_ud.clone()))?,
    )?;
    primitives.raw_set(
        "future_values",
        lua.create_function(|lua, future: AnyUserData| {
            let future = future.borrow::<Future>()?;
            let state = future.state.borrow();
            future_values(lua, &state)
        })?,
    )?;
    primitives.raw_set("invalid", lua.create_function(|lua, message: String| Failure::invalid(message).push(lua))?)?;
    Ok(())
}

/// The `process` global of workflows.
pub(crate) fn process_module(lua: &Lua) -> mlua::Result<Table> {
    let module = lua.create_table()?;
    module.raw_set("pid", lua.create_function(|lua, ()| Ok(active_run(lua)?.borrow().pid()))?)?;
    module.raw_set(
        "listen",
        lua.create_function(|lua, (topic, options): (String, Option<Table>)| {
            let as_message = match &options {
                Some(t) => t.get::<Option<bool>>("message")?.unwrap_or(false),
                None => false,
            };
            let run = active_run(lua)?;
            let mut run = run.borrow_mut();
            if let Some((channel, _)) = run.signals.listeners.get(&topic) {
                return lua.create_any_userdata(channel.clone());
            }
            let channel = Channel::new(UNBOUNDED);
            run.signals.listeners.insert(topic.clone(), (channel.clone(), as_message));
            let held = std::mem::take(&mut run.signals.held);
            for (name, args) in held {
                run.deliver_signal(lua, name, args)?;
            }
            lua.create_any_userdata(channel)
        })?,
    )?;
    module.raw_set(
        "unlisten",
        lua.create_function(|lua, ud: AnyUserData| {
            let target = ud.borrow::<Channel>()?.clone();
            let run = active_run(lua)?;
            run.borrow_mut().signals.listeners.retain(|_, (c, _)| !Rc::ptr_eq(&c.0, &target.0));
            Ok(())
        })?,
    )?;
    module.raw_set(
        "inbox",
        lua.create_function(|lua, ()| {
            let run = active_run(lua)?;
            let mut run = run.borrow_mut();
            if let Some(inbox) = &run.signals.inbox {
                return lua.create_any_userdata(inbox.clone());
            }
            let inbox = Channel::new(UNBOUNDED);
            run.signals.inbox = Some(inbox.clone());
            let held = std::mem::take(&mut run.signals.held);
            for (name, args) in held {
                run.deliver_signal(lua, name, args)?;
            }
            lua.create_any_userdata(inbox)
        })?,
    )?;
    module.raw_set(
        "events",
        lua.create_function(|lua, ()| {
            let run = active_run(lua)?;
            let mut run = run.borrow_mut();
            if let Some(events) = &run.events {
                return lua.create_any_userdata(events.clone());
            }
            let events = Channel::new(UNBOUNDED);
            run.events = Some(events.clone());
            for (kind, reason) in std::mem::take(&mut run.held_events) {
                let event = event_table(lua, &kind, &reason)?;
                events.push(&mut run, Value::Table(event));
            }
            lua.create_any_userdata(events)
        })?,
    )?;
    let event = lua.create_table()?;
    event.raw_set("EXIT", "pid.exit")?;
    event.raw_set("LINK_DOWN", "pid.link.down")?;
    event.raw_set("CANCEL", "pid.cancel")?;
    module.raw_set("event", crate::sandbox::freeze(lua, "process.event", &event)?)?;
    for name in ["send", "spawn", "spawn_monitored", "spawn_linked", "exec", "terminate", "cancel", "upgrade"] {
        let message = format!("process.{name} is not supported in workflows yet");
        module.raw_set(
            name,
            lua.create_function(move |lua, _: MultiValue| {
                Ok((Value::Nil, Failure::invalid(message.clone()).push(lua)?))
            })?,
        )?;
    }
    Ok(module)
}

fn event_table(lua: &Lua, kind: &str, reason: &str) -> mlua::Result<Table> {
    let event = lua.create_table()?;
    event.raw_set("kind", kind)?;
    event.raw_set("reason", reason)?;
    Ok(event)
}

/// Applies a `CancelWorkflow` job: a CANCEL event for the workflow to act on.
pub(crate) fn deliver_cancel(lua: &Lua, run: &mut RunCore, reason: String) -> mlua::Result<()> {
    run.cancel_reason = Some(reason.clone());
    match run.events.clone() {
        Some(events) => {
            let event = event_table(lua, "pid.cancel", &reason)?;
            events.push(run, Value::Table(event));
        }
        None => run.held_events.push(("pid.cancel".into(), reason)),
    }
    Ok(())
}

/// The `workflow` module.
pub(crate) fn workflow_module(lua: &Lua) -> mlua::Result<Table> {
    let module = lua.create_table()?;
    module.raw_set(
        "info",
        lua.create_function(|lua, ()| {
            let run = active_run(lua)?;
            let run = run.borrow();
            let info = &run.info;
            let t = lua.create_table()?;
            t.raw_set("workflow_id", info.workflow_id.as_str())?;
            t.raw_set("run_id", info.run_id.as_str())?;
            t.raw_set("workflow_type", info.workflow_type.as_str())?;
            t.raw_set("task_queue", info.task_queue.as_str())?;
            t.raw_set("namespace", info.namespace.as_str())?;
            t.raw_set("attempt", info.attempt)?;
            t.raw_set("history_length", run.history_length)?;
            t.raw_set("history_size", run.history_size)?;
            t.raw_set("continued_run_id", info.continued_run_id.as_deref())?;
            t.raw_set("cron_schedule", info.cron_schedule.as_deref())?;
            if let Some(parent) = &info.parent_workflow_id {
                let p = lua.create_table()?;
                p.raw_set("workflow_id", parent.as_str())?;
                p.raw_set("run_id", info.parent_run_id.as_deref())?;
                t.raw_set("parent", p)?;
            }
            Ok(t)
        })?,
    )?;
    module.raw_set("history_length", lua.create_function(|lua, ()| Ok(active_run(lua)?.borrow().history_length))?)?;
    module.raw_set("history_size", lua.create_function(|lua, ()| Ok(active_run(lua)?.borrow().history_size))?)?;
    module.raw_set(
        "on_query",
        lua.create_function(|lua, (name, handler): (String, mlua::Function)| {
            if name.is_empty() || name.starts_with("__") || name == "pid" || name == "state" {
                return Ok((
                    Value::Nil,
                    Failure::invalid(format!("query name `{name}` is reserved or empty")).push(lua)?,
                ));
            }
            active_run(lua)?.borrow_mut().query_handlers.insert(name, handler);
            Ok((Value::Boolean(true), Value::Nil))
        })?,
    )?;
    for name in ["exec", "version", "attrs"] {
        let message = format!("workflow.{name} is not supported yet");
        module.raw_set(
            name,
            lua.create_function(move |lua, _: MultiValue| {
                Ok((Value::Nil, Failure::invalid(message.clone()).push(lua)?))
            })?,
        )?;
    }
    Ok(module)
}

/// `math` with `random`/`randomseed` drawing from the run's seeded generator.
pub(crate) fn math_module(lua: &Lua) -> mlua::Result<Table> {
    let original: Table = lua.globals().get("math")?;
    let math = lua.create_table()?;
    for pair in original.pairs::<Value, Value>() {
        let (k, v) = pair?;
        math.raw_set(k, v)?;
    }
    math.raw_set(
        "random",
        lua.create_function(|lua, (m, n): (Option<i64>, Option<i64>)| {
            let run = active_run(lua)?;
            let mut run = run.borrow_mut();
            let (low, high) = match (m, n) {
                (None, _) => return Ok(Value::Number(run.rng.next_f64())),
                (Some(m), None) => (1, m),
                (Some(m), Some(n)) => (m, n),
            };
            if low > high {
                return Err(mlua::Error::runtime("bad argument to 'random' (interval is empty)"));
            }
            Ok(Value::Integer(run.rng.range(low, high)))
        })?,
    )?;
    math.raw_set(
        "randomseed",
        lua.create_function(|lua, seed: Option<i64>| {
            let run = active_run(lua)?;
            let mut run = run.borrow_mut();
            run.rng = super::random::DeterministicRng::new(seed.unwrap_or(0) as u64);
            Ok(())
        })?,
    )?;
    Ok(math)
}

/// `os` time functions on the activation clock.
pub(crate) fn os_module(lua: &Lua) -> mlua::Result<Table> {
    let original: Table = lua.globals().get("os")?;
    let os = lua.create_table()?;
    for name in ["execute", "exit", "remove", "rename", "tmpname", "getenv"] {
        os.raw_set(name, original.raw_get::<Value>(name)?)?;
    }
    os.raw_set(
        "time",
        lua.create_function(|lua, table: Option<Table>| match table {
            None => Ok(active_run(lua)?.borrow().now_nanos().div_euclid(1_000_000_000) as i64),
            Some(t) => {
                let field = |name: &str, default: Option<i64>| -> mlua::Result<i64> {
                    t.get::<Option<i64>>(name)?
                        .or(default)
                        .ok_or_else(|| mlua::Error::runtime(format!("field '{name}' missing in date table")))
                };
                // Months and days may overflow, as in C's mktime: carry them.
                let month0 = field("month", None)? - 1;
                let year = field("year", None)? + month0.div_euclid(12);
                let month = month0.rem_euclid(12) + 1;
                let first = chrono::NaiveDate::from_ymd_opt(year as i32, month as u32, 1)
                    .and_then(|d| d.and_hms_opt(0, 0, 0))
                    .ok_or_else(|| mlua::Error::runtime("os.time: date out of range"))?;
                Ok(first.and_utc().timestamp()
                    + (field("day", None)? - 1) * 86_400
                    + field("hour", Some(12))? * 3_600
                    + field("min", Some(0))? * 60
                    + field("sec", Some(0))?)
            }
        })?,
    )?;
    os.raw_set(
        "clock",
        lua.create_function(|lua, ()| {
            let run = active_run(lua)?;
            let run = run.borrow();
            let elapsed = run.now.duration_since(run.start_time).unwrap_or_default();
            Ok(elapsed.as_secs_f64())
        })?,
    )?;
    os.raw_set("difftime", lua.create_function(|_, (a, b): (f64, Option<f64>)| Ok(a - b.unwrap_or(0.0)))?)?;
    os.raw_set(
        "date",
        lua.create_function(|lua, (format, time): (Option<String>, Option<i64>)| {
            let secs = match time {
                Some(t) => t,
                None => active_run(lua)?.borrow().now_nanos().div_euclid(1_000_000_000) as i64,
            };
            let when = chrono::DateTime::from_timestamp(secs, 0)
                .ok_or_else(|| mlua::Error::runtime("os.date: time out of range"))?;
            let format = format.unwrap_or_else(|| "%c".to_owned());
            let format = format.strip_prefix('!').unwrap_or(&format);
            if format.starts_with("*t") {
                use chrono::{Datelike, Timelike};
                let t = lua.create_table()?;
                t.raw_set("year", when.year())?;
                t.raw_set("month", when.month())?;
                t.raw_set("day", when.day())?;
                t.raw_set("hour", when.hour())?;
                t.raw_set("min", when.minute())?;
                t.raw_set("sec", when.second())?;
                t.raw_set("wday", when.weekday().num_days_from_sunday() + 1)?;
                t.raw_set("yday", when.ordinal())?;
                t.raw_set("isdst", false)?;
                return Ok(Value::Table(t));
            }
            let mut out = String::new();
            use std::fmt::Write;
            write!(out, "{}", when.format(format))
                .map_err(|_| mlua::Error::runtime(format!("os.date: invalid format {format:?}")))?;
            Ok(Value::String(lua.create_string(&out)?))
        })?,
    )?;
    Ok(os)
}
