//! Queries: the built-in `__stack_trace` (every coroutine's Lua traceback, as the Web UI shows
//! it), `pid` and `state`, and handlers registered with `workflow.on_query`. A query never changes
//! the run: a handler that blocks or issues commands fails the query, not the workflow.

use std::cell::RefCell;
use std::rc::Rc;

use mlua::{Lua, MultiValue, ThreadStatus};

use super::run::RunCore;
use crate::convert::{Data, from_data, to_data};
use crate::failure::Failure;

pub(crate) fn answer(lua: &Lua, core: &Rc<RefCell<RunCore>>, name: &str, args: &[Data]) -> Result<Data, Failure> {
    match name {
        "__stack_trace" => {
            collect_traces(core);
            Ok(Data::Json(serde_json::Value::String(stack_trace(&core.borrow()))))
        }
        "pid" => Ok(Data::Json(serde_json::Value::String(core.borrow().pid()))),
        "state" => {
            let run = core.borrow();
            let live = run.tasks.iter().filter(|t| t.is_some()).count();
            Ok(Data::Json(serde_json::json!({
                "status": if run.finished { "finished" } else { "running" },
                "coroutines": live,
                "pending_activities": run.activities.len(),
                "pending_timers": run.timers.len(),
                "queries": run.query_handlers.keys().collect::<Vec<_>>(),
            })))
        }
        _ => call_handler(lua, core, name, args),
    }
}

/// Resumes every parked task with TRACE: each records its traceback and parks again. Nothing can
/// have become ready meanwhile (the activation's jobs already ran), so no task makes progress.
fn collect_traces(core: &Rc<RefCell<RunCore>>) {
    let parked: Vec<(usize, mlua::Thread)> = {
        let mut run = core.borrow_mut();
        run.park_traces.clear();
        run.tasks
            .iter()
            .enumerate()
            .filter_map(|(id, task)| task.as_ref().filter(|t| t.start_args.is_none()).map(|t| (id, t.thread.clone())))
            .collect()
    };
    for (id, thread) in parked {
        if thread.status() != ThreadStatus::Resumable {
            continue;
        }
        core.borrow_mut().current = Some(id);
        let _ = thread.resume::<MultiValue>(mlua::Value::LightUserData(super::engine::trace()));
        core.borrow_mut().current = None;
    }
}

fn stack_trace(run: &RunCore) -> String {
    let mut ids: Vec<_> =
        run.park_traces.keys().copied().filter(|id| matches!(run.tasks.get(*id), Some(Some(_)))).collect();
    ids.sort_unstable();
    if ids.is_empty() {
        return "no coroutine is blocked".into();
    }
    ids.iter()
        .map(|id| {
            let label = if *id == 0 { "main".to_owned() } else { format!("coroutine {id}") };
            format!("{label}:\n{}", run.park_traces[id])
        })
        .collect::<Vec<_>>()
        .join("\n\n")
}

fn call_handler(lua: &Lua, core: &Rc<RefCell<RunCore>>, name: &str, args: &[Data]) -> Result<Data, Failure> {
    let handler = core.borrow().query_handlers.get(name).cloned();
    let Some(handler) = handler else {
        let mut known: Vec<String> = core.borrow().query_handlers.keys().cloned().collect();
        known.sort();
        known.extend(["__stack_trace".into(), "pid".into(), "state".into()]);
        return Err(Failure::invalid(format!("unknown query type `{name}` (known: {})", known.join(", "))));
    };
    let lua_error = |e: mlua::Error| Failure::from_lua_error(&e).wrap(&format!("query `{name}`"));
    let mut values = Vec::with_capacity(args.len());
    for data in args {
        values.push(from_data(lua, data).map_err(lua_error)?);
    }
    // A thread of its own, so a blocking call cannot park it; the engine resumes it, so the
    // deadlock watchdog follows it.
    let thread = lua.create_thread(handler).map_err(lua_error)?;
    let (commands_before, activity_seq, timer_seq) = {
        let run = core.borrow();
        (run.commands.len(), run.next_activity_seq, run.next_timer_seq)
    };
    let result =
        super::watchdog::resuming(thread.state(), || thread.resume::<MultiValue>(MultiValue::from_vec(values)));
    {
        // Undo anything the handler started, so the run's next commands keep their numbers.
        let mut run = core.borrow_mut();
        let issued = run.commands.len() > commands_before;
        run.commands.truncate(commands_before);
        run.sites.truncate(commands_before);
        run.activities.retain(|seq, _| *seq < activity_seq);
        run.timers.retain(|seq, _| *seq < timer_seq);
        run.next_activity_seq = activity_seq;
        run.next_timer_seq = timer_seq;
        if issued {
            return Err(Failure::invalid(format!(
                "query `{name}` tried to change the workflow (queries are read-only)"
            )));
        }
        if run.deadlocked {
            run.deadlocked = false;
            return Err(Failure::invalid(format!("query `{name}` ran past the deadlock timeout")));
        }
    }
    let values = result.map_err(lua_error)?;
    if thread.status() == ThreadStatus::Resumable {
        return Err(Failure::invalid(format!(
            "query `{name}` blocked (queries cannot wait on channels, timers or activities)"
        )));
    }
    if let Some(failure) = values.get(1).and_then(Failure::from_return) {
        return Err(failure);
    }
    let value = values.front().cloned().unwrap_or(mlua::Value::Nil);
    to_data(&value)
        .map_err(|e| Failure::invalid(format!("query `{name}`: cannot encode the answer: {}", e.with_root("result"))))
}
