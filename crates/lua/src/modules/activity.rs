//! The `activity` module (activities only): `activity.info()`, `activity.heartbeat(details?)` and
//! `activity.cancelled()`. The runner installs an [`ActivityCall`] for each call; cancellation
//! (from the server, or worker shutdown) also aborts `http_client` requests, which watch the same
//! flag.

use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use mlua::{Lua, Table, Value};

use crate::convert::{Data, from_data, to_data};
use crate::failure::{Failure, returned};

/// Facts about the running activity, as `activity.info()` returns them.
#[derive(Debug, Clone, Default)]
pub struct ActivityInfo {
    pub activity_id: String,
    pub activity_type: String,
    pub attempt: u32,
    pub workflow_id: String,
    pub run_id: String,
    pub workflow_type: String,
    pub task_queue: String,
    pub heartbeat_details: Option<Data>,
    /// Unix seconds (fractional).
    pub scheduled_time: Option<f64>,
    pub deadline: Option<f64>,
}

/// The call being executed: installed as VM app data by the activity runner.
#[derive(Clone)]
pub struct ActivityCall {
    /// Builds the facts when `activity.info()` asks: most calls never do.
    pub info: Rc<dyn Fn() -> ActivityInfo>,
    pub heartbeat: Rc<dyn Fn(Option<Data>)>,
    pub cancelled: Arc<AtomicBool>,
}

impl std::fmt::Debug for ActivityCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActivityCall").field("cancelled", &self.cancelled).finish_non_exhaustive()
    }
}

fn current(lua: &Lua) -> mlua::Result<ActivityCall> {
    lua.app_data_ref::<ActivityCall>()
        .map(|call| call.clone())
        .ok_or_else(|| mlua::Error::runtime("the activity module is only available while an activity runs"))
}

pub fn register(lua: &Lua) -> mlua::Result<Table> {
    let module = lua.create_table()?;
    module.raw_set(
        "info",
        lua.create_function(|lua, ()| {
            let call = current(lua)?;
            let info = (call.info)();
            let t = lua.create_table()?;
            t.raw_set("activity_id", info.activity_id.as_str())?;
            t.raw_set("activity_type", info.activity_type.as_str())?;
            t.raw_set("attempt", info.attempt)?;
            t.raw_set("workflow_id", info.workflow_id.as_str())?;
            t.raw_set("run_id", info.run_id.as_str())?;
            t.raw_set("workflow_type", info.workflow_type.as_str())?;
            t.raw_set("task_queue", info.task_queue.as_str())?;
            t.raw_set("scheduled_time", info.scheduled_time)?;
            t.raw_set("deadline", info.deadline)?;
            if let Some(details) = &info.heartbeat_details {
                t.raw_set("heartbeat_details", from_data(lua, details)?)?;
            }
            Ok(t)
        })?,
    )?;
    module.raw_set(
        "heartbeat",
        lua.create_function(|lua, details: Value| {
            let call = current(lua)?;
            let data = match details {
                Value::Nil => None,
                value => match to_data(&value) {
                    Ok(data) => Some(data),
                    Err(e) => {
                        return returned::<bool>(
                            lua,
                            Err(Failure::invalid(format!("activity.heartbeat: {}", e.with_root("details")))),
                        );
                    }
                },
            };
            (call.heartbeat)(data);
            returned(lua, Ok(true))
        })?,
    )?;
    module.raw_set("cancelled", lua.create_function(|lua, ()| Ok(current(lua)?.cancelled.load(Ordering::Relaxed)))?)?;
    Ok(module)
}
