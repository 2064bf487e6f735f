//! Engine tests without a server: activations in, commands out.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use super::*;
use crate::convert::Data;
use serde_json::json;

fn engine(source: &str) -> WorkflowEngine {
    engine_with(source, &["funcs", "time", "workflow", "json", "uuid"])
}

fn engine_with(source: &str, modules: &[&str]) -> WorkflowEngine {
    engine_calling(source, modules, Default::default())
}

fn engine_calling(source: &str, modules: &[&str], activities: HashMap<String, ActivityTarget>) -> WorkflowEngine {
    WorkflowEngine::new(EngineConfig {
        workflows: vec![WorkflowCode {
            type_name: "test:wf".into(),
            entry_id: "test:wf".into(),
            chunk_name: "wf.lua".into(),
            source: source.into(),
            method: "main".into(),
            modules: modules.iter().map(|m| m.to_string()).collect(),
        }],
        activities,
        deadlock_timeout: Duration::from_millis(200),
        pid_host: "app:client@app:worker".into(),
    })
    .unwrap()
}

fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

fn activation(jobs: Vec<Job>) -> Activation {
    Activation {
        run_id: "run-1".into(),
        timestamp: at(1_700_000_000),
        is_replaying: false,
        history_length: 3,
        history_size: 100,
        jobs,
    }
}

fn start(args: Vec<serde_json::Value>) -> Activation {
    activation(vec![Job::Initialize {
        info: WorkflowInfo {
            workflow_id: "wf-1".into(),
            run_id: "run-1".into(),
            workflow_type: "test:wf".into(),
            ..Default::default()
        },
        args: args.into_iter().map(Data::Json).collect(),
        randomness_seed: 7,
        context: None,
    }])
}

fn commands(completion: Completion) -> Vec<Command> {
    match completion {
        Completion::Commands(c) => c,
        Completion::Failed(f) => panic!("task failed: {f:?}"),
    }
}

fn completed(commands: &[Command]) -> serde_json::Value {
    match commands.last() {
        Some(Command::CompleteWorkflow(Data::Json(v))) => v.clone(),
        Some(Command::CompleteWorkflow(Data::Nil)) => serde_json::Value::Null,
        other => panic!("expected completion, got {other:?}"),
    }
}

fn resolve(seq: u32, value: serde_json::Value) -> Activation {
    activation(vec![Job::ResolveActivity { seq, outcome: ActivityOutcome::Completed(Data::Json(value)) }])
}

#[test]
fn sequential_activities_then_timer() {
    let mut e = engine(
        r#"
        local funcs = require("funcs")
        local time = require("time")
        local function main(order)
          local a, err = funcs.call("app:charge", order.id, 10)
          if err then return nil, err end
          time.sleep("1h")
          return { charged = a, id = order.id }
        end
        return { main = main }
        "#,
    );
    let cmds = commands(e.activate(start(vec![json!({"id": "o-1"})])));
    match &cmds[..] {
        [Command::ScheduleActivity(s)] => {
            assert_eq!(s.activity_type, "app:charge");
            assert_eq!(s.seq, 1);
            assert_eq!(s.args.len(), 2);
            assert_eq!(s.options.start_to_close, Some(Duration::from_secs(600)));
        }
        other => panic!("{other:?}"),
    }
    let cmds = commands(e.activate(resolve(1, json!("ok"))));
    assert!(matches!(&cmds[..], [Command::StartTimer { seq: 1, duration }] if *duration == Duration::from_secs(3600)));
    let cmds = commands(e.activate(activation(vec![Job::FireTimer { seq: 1 }])));
    assert_eq!(completed(&cmds), json!({"charged": "ok", "id": "o-1"}));
}

#[test]
fn concurrent_coroutines_and_async() {
    let mut e = engine(
        r#"
        local funcs = require("funcs")
        return { main = function()
          local results = channel.new(3)
          for i = 1, 2 do
            coroutine.spawn(function()
              local v = funcs.call("act", i)
              results:send(v)
            end)
          end
          local f = funcs.async("act", 3)
          local p = f:response():receive()
          local total = p:data()
          for _ = 1, 2 do total = total + results:receive() end
          return total
        end }
        "#,
    );
    let cmds = commands(e.activate(start(vec![])));
    let seqs: Vec<u32> = cmds
        .iter()
        .map(|c| match c {
            Command::ScheduleActivity(s) => s.seq,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(seqs.len(), 3);
    let cmds = commands(e.activate(activation(vec![
        Job::ResolveActivity { seq: 1, outcome: ActivityOutcome::Completed(Data::Json(json!(10))) },
        Job::ResolveActivity { seq: 2, outcome: ActivityOutcome::Completed(Data::Json(json!(20))) },
        Job::ResolveActivity { seq: 3, outcome: ActivityOutcome::Completed(Data::Json(json!(30))) },
    ])));
    assert_eq!(completed(&cmds), json!(60));
}

#[test]
fn activity_failure_reaches_the_workflow() {
    let mut e = engine(
        r#"
        local funcs = require("funcs")
        return { main = function()
          local v, err = funcs.call("act")
          return { kind = err:kind(), message = err:message(), retryable = err:retryable() }
        end }
        "#,
    );
    commands(e.activate(start(vec![])));
    let failure = Failure::new(crate::failure::Kind::new("NotFound"), "no such order").with_retryable(Some(false));
    let cmds = commands(
        e.activate(activation(vec![Job::ResolveActivity { seq: 1, outcome: ActivityOutcome::Failed(failure) }])),
    );
    assert_eq!(completed(&cmds), json!({"kind": "NotFound", "message": "no such order", "retryable": false}));
}

#[test]
fn invalid_options_return_an_error() {
    let mut e = engine(
        r#"
        local funcs = require("funcs")
        return { main = function()
          local v, err = funcs.new():with_options({ ["activity.start_to_close_timeout"] = "5 mins" }):call("act")
          return err:kind() .. ": " .. err:message()
        end }
        "#,
    );
    let cmds = commands(e.activate(start(vec![])));
    let text = completed(&cmds);
    let text = text.as_str().unwrap();
    assert!(text.starts_with("Invalid: funcs.call(act): option `activity.start_to_close_timeout`"), "{text}");
    let mut e = engine(
        r#"
        local funcs = require("funcs")
        return { main = function()
          local v, err = funcs.new():with_options({ start_to_close_timeout = "5s" }):call("act")
          return err:message()
        end }
        "#,
    );
    let text = completed(&commands(e.activate(start(vec![]))));
    assert!(text.as_str().unwrap().contains("unknown option `start_to_close_timeout`"), "{text}");
}

#[test]
fn an_executor_applies_its_options_to_every_call_over_each_targets_defaults() {
    let slow = ActivityTarget {
        type_name: "app:slow".into(),
        defaults: [("activity.heartbeat_timeout".to_owned(), json!("5s"))].into(),
        ..ActivityTarget::default()
    };
    let fast = ActivityTarget { type_name: "app:fast".into(), ..ActivityTarget::default() };
    let mut e = engine_calling(
        r#"
        local funcs = require("funcs")
        return { main = function()
          local ex = funcs.new():with_options({ ["activity.start_to_close_timeout"] = "30s" })
          ex:async("app:fast")
          ex:async("app:slow")
          ex:with_context({ tenant = "t1" }):async("app:fast")
          ex:async("app:slow")
          local bad = funcs.new():with_options({ ["activity.heartbeat_timeout"] = "soon" })
          local _, e1 = bad:async("app:fast")
          local _, e2 = bad:async("app:fast")
          return { e1:message(), e2:message() }
        end }
        "#,
        &["funcs"],
        [("app:slow".to_owned(), slow), ("app:fast".to_owned(), fast)].into(),
    );
    let cmds = commands(e.activate(start(vec![])));
    let scheduled: Vec<(&str, Option<Duration>, Option<Duration>)> = cmds
        .iter()
        .filter_map(|c| match c {
            Command::ScheduleActivity(s) => {
                Some((s.activity_type.as_str(), s.options.start_to_close, s.options.heartbeat))
            }
            _ => None,
        })
        .collect();
    let thirty = Some(Duration::from_secs(30));
    let five = Some(Duration::from_secs(5));
    assert_eq!(
        scheduled,
        vec![
            ("app:fast", thirty, None),
            ("app:slow", thirty, five),
            ("app:fast", thirty, None),
            ("app:slow", thirty, five)
        ]
    );
    let errors = completed(&cmds);
    assert_eq!(errors[0], errors[1], "a bad option fails every call the same way");
    assert!(
        errors[0].as_str().unwrap().starts_with("funcs.call(app:fast): option `activity.heartbeat_timeout`"),
        "{errors}"
    );
}

#[test]
fn signals_reach_listen_and_inbox_in_order() {
    let mut e = engine(
        r#"
        return { main = function()
          local approve = process.listen("approve")
          local inbox = process.inbox()
          local got = {}
          local v = approve:receive()
          got[#got + 1] = v.by
          for i = 1, 3 do
            local msg = inbox:receive()
            got[#got + 1] = msg:topic() .. "=" .. tostring(msg:payload():data())
          end
          return got
        end }
        "#,
    );
    // A signal that arrives before anyone listens is held, not lost.
    let mut first = start(vec![]);
    first.jobs.push(Job::Signal { name: "note".into(), args: vec![Data::Json(json!(1))] });
    assert!(commands(e.activate(first)).is_empty());
    let cmds = commands(e.activate(activation(vec![
        Job::Signal { name: "note".into(), args: vec![Data::Json(json!(2))] },
        Job::Signal { name: "approve".into(), args: vec![Data::Json(json!({"by": "ann"}))] },
        Job::Signal { name: "note".into(), args: vec![Data::Json(json!(3))] },
    ])));
    assert_eq!(completed(&cmds), json!(["ann", "note=1", "note=2", "note=3"]));
}

#[test]
fn determinism_helpers_are_seeded() {
    let source = r#"
        local uuid = require("uuid")
        return { main = function()
          local t = {}
          for i = 1, 50 do t["key" .. i] = i end
          local order = {}
          for k in pairs(t) do order[#order + 1] = k end
          return { r = math.random(1, 1000000), u = uuid.v4(), now = os.time(), order = table.concat(order, ","), t = tostring({}) }
        end }
    "#;
    let a = completed(&commands(engine(source).activate(start(vec![]))));
    let b = completed(&commands(engine(source).activate(start(vec![]))));
    assert_eq!(a, b);
    assert_eq!(a["now"], json!(1_700_000_000));
    assert_eq!(a["t"], json!("table"));
}

#[test]
fn busy_loop_in_a_user_coroutine_fails_the_task_with_tmprl1101() {
    // Coroutines inherit the deadlock hook, whether created through the workflow API or inside
    // another coroutine.
    let mut e = engine(
        r#"return { main = function()
          local outer = coroutine.wrap(function()
            local inner = coroutine.wrap(function() while true do end end)
            inner()
          end)
          outer()
        end }"#,
    );
    match e.activate(start(vec![])) {
        Completion::Failed(TaskFailure::Deadlock { message }) => assert!(message.contains("[TMPRL1101]"), "{message}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn busy_loop_fails_the_task_with_tmprl1101() {
    let mut e = engine("return { main = function() while true do end end }");
    match e.activate(start(vec![])) {
        Completion::Failed(TaskFailure::Deadlock { message }) => {
            assert!(message.contains("[TMPRL1101]"), "{message}");
            assert!(message.contains("wf.lua:1"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_deadlock_watchdog_watches_the_engine_instead_of_a_count_hook() {
    // Where signals work (Linux), task threads run without any hook until they are late.
    assert!(engine("return { main = function() end }").deadlock_watched());
}

#[test]
fn a_query_handler_that_spins_fails_the_query_and_the_run_goes_on() {
    let mut e = engine(
        r#"
        local workflow = require("workflow")
        return { main = function()
          workflow.on_query("spin", function() while true do end end)
          workflow.on_query("ok", function() return "fine" end)
          local v = process.listen("go"):receive()
          return v
        end }
        "#,
    );
    commands(e.activate(start(vec![])));
    let spun = query_answer(e.activate(query("spin"))).unwrap_err();
    assert!(spun.message.contains("deadlock"), "{}", spun.message);
    assert_eq!(query_answer(e.activate(query("ok"))), Ok(Data::Json(json!("fine"))));
    let cmds = commands(
        e.activate(activation(vec![Job::Signal { name: "go".into(), args: vec![Data::Json(json!("done"))] }])),
    );
    assert_eq!(completed(&cmds), json!("done"));
}

#[test]
fn busy_loop_under_pcall_still_stops() {
    let mut e = engine("return { main = function() while true do pcall(function() while true do end end) end end }");
    assert!(matches!(e.activate(start(vec![])), Completion::Failed(TaskFailure::Deadlock { .. })));
}

#[test]
fn raised_error_fails_the_workflow_with_location() {
    let mut e = engine("return { main = function() error('boom') end }");
    let cmds = commands(e.activate(start(vec![])));
    match &cmds[..] {
        [Command::FailWorkflow(f)] => {
            assert_eq!(f.kind.as_str(), "Internal");
            assert!(f.message.contains("wf.lua:1: boom"), "{}", f.message);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn require_is_gated() {
    let mut e = engine_with("local h = require('time') return { main = function() return 1 end }", &["funcs"]);
    let cmds = commands(e.activate(start(vec![])));
    match &cmds[..] {
        [Command::FailWorkflow(f)] => {
            assert!(
                f.message.contains("module `time` is not in the `modules:` list of entry `test:wf`"),
                "{}",
                f.message
            )
        }
        other => panic!("{other:?}"),
    }
    let mut e =
        engine_with("local h = require('http_client') return { main = function() return 1 end }", &["http_client"]);
    let cmds = commands(e.activate(start(vec![])));
    assert!(matches!(&cmds[..], [Command::FailWorkflow(f)] if f.message.contains("not deterministic")));
}

#[test]
fn stopping_a_timer_cancels_it_and_select_sees_the_other_case() {
    let mut e = engine(
        r#"
        local time = require("time")
        return { main = function()
          local t = time.timer("10s")
          local ch = process.listen("go")
          local r = channel.select({ t:channel():case_receive(), ch:case_receive() })
          if r.channel == ch then t:stop() return "signal:" .. r.value end
          return "timer"
        end }
        "#,
    );
    let cmds = commands(e.activate(start(vec![])));
    assert!(matches!(&cmds[..], [Command::StartTimer { seq: 1, .. }]));
    let cmds =
        commands(e.activate(activation(vec![Job::Signal { name: "go".into(), args: vec![Data::Json(json!("x"))] }])));
    assert!(matches!(&cmds[0], Command::CancelTimer { seq: 1 }));
    assert_eq!(completed(&cmds), json!("signal:x"));
}

#[test]
fn unbuffered_channel_rendezvous() {
    let mut e = engine(
        r#"
        return { main = function()
          local ch = channel.new()
          local log = {}
          coroutine.spawn(function()
            for i = 1, 3 do ch:send(i); log[#log + 1] = "sent" .. i end
            ch:close()
          end)
          while true do
            local v, ok = ch:receive()
            if not ok then break end
            log[#log + 1] = "got" .. v
          end
          return table.concat(log, " ")
        end }
        "#,
    );
    let out = completed(&commands(e.activate(start(vec![]))));
    assert_eq!(out, json!("got1 sent1 got2 sent2 got3 sent3"));
}

#[test]
fn runs_are_isolated() {
    let mut e = engine("x = (x or 0) + 1 return { main = function() string.upper = nil return x end }");
    let cmds = commands(e.activate(start(vec![])));
    assert!(matches!(&cmds[..], [Command::FailWorkflow(f)] if f.message.contains("string is read-only")));
    let mut e = engine("counter = (counter or 0) + 1 return { main = function() return counter end }");
    assert_eq!(completed(&commands(e.activate(start(vec![])))), json!(1));
    let mut second = start(vec![]);
    second.run_id = "run-2".into();
    assert_eq!(completed(&commands(e.activate(second))), json!(1));
}

#[test]
fn an_evicted_runs_main_coroutine_starts_a_later_run_afresh() {
    let mut e = engine(
        r#"
        local time = require("time")
        seen = (seen or 0) + 1
        return { main = function(label)
          local depth = 0
          local function deep(n) if n == 0 then time.sleep("1s") return 0 end return 1 + deep(n - 1) end
          depth = deep(30)
          return { label = label, seen = seen, depth = depth, yieldable = coroutine.isyieldable() }
        end }
        "#,
    );
    for (i, label) in ["first", "second", "third"].into_iter().enumerate() {
        let run_id = format!("run-{i}");
        let mut first = start(vec![json!(label)]);
        first.run_id = run_id.clone();
        assert!(matches!(&commands(e.activate(first))[..], [Command::StartTimer { .. }]));
        let mut fire = activation(vec![Job::FireTimer { seq: 1 }]);
        fire.run_id = run_id.clone();
        let done = commands(e.activate(fire));
        assert_eq!(completed(&done), json!({"label": label, "seen": 1, "depth": 30, "yieldable": true}));
        e.evict(&run_id);
        assert_eq!(e.spare_threads(), 1, "the returned main coroutine is kept for the next run");
    }
}

#[test]
fn cancel_arrives_as_an_event() {
    let mut e = engine(
        r#"
        return { main = function()
          local ev = process.events():receive()
          return { kind = ev.kind, reason = ev.reason, is_cancel = ev.kind == process.event.CANCEL }
        end }
        "#,
    );
    commands(e.activate(start(vec![])));
    let cmds = commands(e.activate(activation(vec![Job::Cancel { reason: "stop".into() }])));
    assert_eq!(completed(&cmds), json!({"kind": "pid.cancel", "reason": "stop", "is_cancel": true}));
}

#[test]
fn raised_error_object_keeps_its_kind() {
    let mut e = engine(
        "return { main = function() error(errors.new{kind = errors.CONFLICT, message = 'dup', retryable = false}) end }",
    );
    let cmds = commands(e.activate(start(vec![])));
    assert!(matches!(&cmds[..], [Command::FailWorkflow(f)] if f.kind.as_str() == "Conflict" && f.message == "dup"));
}

#[test]
fn runaway_memory_fails_the_task_not_the_worker() {
    let mut e =
        engine("return { main = function() local t = {} for i = 1, 1e9 do t[i] = ('x'):rep(1000000) .. i end end }");
    match e.activate(start(vec![])) {
        Completion::Failed(TaskFailure::Other { message }) => assert!(message.contains("memory limit"), "{message}"),
        other => panic!("{other:?}"),
    }
    // The engine still runs other workflows.
    let mut second = start(vec![]);
    second.run_id = "run-2".into();
    let mut ok = engine("return { main = function() return 'fine' end }");
    assert_eq!(completed(&commands(ok.activate(second))), json!("fine"));
}

#[test]
fn local_activity_backoff_reschedules_after_a_timer() {
    let mut activities = std::collections::HashMap::new();
    activities.insert(
        "test:quick".to_owned(),
        ActivityTarget { type_name: "test:quick".into(), local: true, ..Default::default() },
    );
    let mut e = WorkflowEngine::new(EngineConfig {
        workflows: vec![WorkflowCode {
            type_name: "test:wf".into(),
            entry_id: "test:wf".into(),
            chunk_name: "wf.lua".into(),
            source: "local funcs = require('funcs') return { main = function() return funcs.call('quick', 1) end }"
                .into(),
            method: "main".into(),
            modules: vec!["funcs".into()],
        }],
        activities,
        deadlock_timeout: Duration::from_secs(1),
        pid_host: "c@w".into(),
    })
    .unwrap();
    let cmds = commands(e.activate(start(vec![])));
    assert!(matches!(&cmds[..], [Command::ScheduleActivity(s)] if s.local && s.seq == 1 && s.attempt == 1));
    let cmds = commands(e.activate(activation(vec![Job::ResolveActivity {
        seq: 1,
        outcome: ActivityOutcome::Backoff {
            attempt: 2,
            backoff: Duration::from_secs(3),
            original_schedule_time: Some(at(5)),
        },
    }])));
    assert!(matches!(&cmds[..], [Command::StartTimer { seq: 1, duration }] if *duration == Duration::from_secs(3)));
    let cmds = commands(e.activate(activation(vec![Job::FireTimer { seq: 1 }])));
    assert!(
        matches!(&cmds[..], [Command::ScheduleActivity(s)] if s.local && s.seq == 2 && s.attempt == 2 && s.original_schedule_time == Some(at(5))),
        "{cmds:?}"
    );
    let cmds = commands(e.activate(resolve(2, json!("done"))));
    assert_eq!(completed(&cmds), json!("done"));
}

fn query(name: &str) -> Activation {
    activation(vec![Job::Query { query_id: "q1".into(), name: name.into(), args: vec![] }])
}

fn query_answer(completion: Completion) -> Result<Data, Failure> {
    match commands(completion).pop() {
        Some(Command::RespondToQuery { query_id, result }) if query_id == "q1" => result,
        other => panic!("{other:?}"),
    }
}

#[test]
fn queries_answer_without_changing_the_run() {
    let mut e = engine(
        r#"
        local workflow = require("workflow")
        local funcs = require("funcs")
        return { main = function()
          local count = 0
          workflow.on_query("count", function() return count end)
          workflow.on_query("sneaky", function() return funcs.call("act") end)
          local ch = process.listen("tick")
          while true do
            ch:receive()
            count = count + 1
            if count == 2 then return funcs.call("act") end
          end
        end }
        "#,
    );
    commands(e.activate(start(vec![])));
    commands(e.activate(activation(vec![Job::Signal { name: "tick".into(), args: vec![] }])));
    assert_eq!(query_answer(e.activate(query("count"))), Ok(Data::Json(json!(1))));
    let trace = query_answer(e.activate(query("__stack_trace")));
    assert!(
        matches!(&trace, Ok(Data::Json(serde_json::Value::String(t))) if t.contains("main:") && t.contains("wf.lua:")),
        "{trace:?}"
    );
    assert_eq!(query_answer(e.activate(query("pid"))), Ok(Data::Json(json!("{app:client@app:worker|wf-1}"))));
    let sneaky = query_answer(e.activate(query("sneaky"))).unwrap_err();
    assert!(sneaky.message.contains("sneaky"), "{}", sneaky.message);
    let unknown = query_answer(e.activate(query("nope"))).unwrap_err();
    assert!(unknown.message.contains("unknown query type `nope`"), "{}", unknown.message);
    // The sneaky query's activity left no trace: the real call is still seq 1.
    let cmds = commands(e.activate(activation(vec![Job::Signal { name: "tick".into(), args: vec![] }])));
    assert!(matches!(&cmds[..], [Command::ScheduleActivity(s)] if s.seq == 1), "{cmds:?}");
}

#[test]
fn a_blocking_call_returns_its_outcome_after_a_stack_trace_query_resumed_it() {
    let mut e = engine(
        r#"
        local funcs = require("funcs")
        return { main = function()
          local value = funcs.call("act", "x")
          return value .. "!"
        end }
        "#,
    );
    commands(e.activate(start(vec![])));
    let trace = query_answer(e.activate(query("__stack_trace")));
    assert!(matches!(&trace, Ok(Data::Json(serde_json::Value::String(t))) if t.contains("wf.lua:4")), "{trace:?}");
    let cmds = commands(e.activate(resolve(1, json!("y"))));
    assert!(matches!(&cmds[..], [Command::CompleteWorkflow(Data::Json(v))] if *v == json!("y!")), "{cmds:?}");
}

#[test]
fn line_numbers_survive_the_per_run_closure() {
    let mut e = engine("-- a comment\nlocal x = 1\n\nreturn { main = function()\n  error('on line five')\nend }");
    let cmds = commands(e.activate(start(vec![])));
    assert!(
        matches!(&cmds[..], [Command::FailWorkflow(f)] if f.message.contains("wf.lua:5: on line five")),
        "{cmds:?}"
    );
}
