//! `tempest run` as a process against the real dev server: a run survives its worker being
//! killed with SIGKILL and gives the same values when a second process finishes it; SIGTERM stops
//! the worker quickly with work in flight, and that work completes after a restart.

mod common;

use std::time::Duration;

use common::{Tempest, assert_replays, cli, decode, events, project};
use serde_json::{Value, json};

const DETERMINISM_FLOW: &str = r#"
local funcs = require("funcs")
local uuid = require("uuid")
local crypto = require("crypto")
local time = require("time")

local function values()
  local t = {}
  for i = 1, 50 do t["key" .. i] = i end
  local order = {}
  for k in pairs(t) do order[#order + 1] = k end
  local ch = channel.new()
  local mixed = {}
  coroutine.spawn(function()
    for i = 1, 3 do ch:send("c" .. i .. ":" .. math.random(1, 1000)) end
    ch:close()
  end)
  while true do
    local v, ok = ch:receive()
    if not ok then break end
    mixed[#mixed + 1] = v
  end
  return {
    now = time.now():unix_nano(),
    random = math.random(1, 1000000000),
    uuid = uuid.v4(),
    bytes = crypto.random.bytes(16):hex(),
    order = table.concat(order, ","),
    mixed = mixed,
  }
end

return { main = function()
  local v = values()
  funcs.call("app:record", v)
  process.listen("go"):receive()
  return v
end }
"#;

const ENTRIES: &str = r#"  - name: flow
    kind: workflow.lua
    source: file://flow.lua
    modules: [funcs, uuid, crypto, time]
    meta: {temporal: {workflow: {worker: worker}}}
  - name: record
    kind: function.lua
    source: "return { main = function(v) return true end }"
    meta: {temporal: {activity: {worker: worker}}}
"#;

#[test]
fn sigkill_mid_run_then_a_second_process_finishes_with_the_same_values() {
    let (dir, queue) = project(&[("flow.lua", DETERMINISM_FLOW)], ENTRIES);
    let log = dir.path().join("first.log");
    let mut first = Tempest::start(dir.path(), &log);
    cli(&["workflow", "start", "--type", "app:flow", "--task-queue", &queue, "--workflow-id", "killed-1"])
        .expect_success();
    let recorded = tempest_testkit::wait_until(Duration::from_secs(30), Duration::from_millis(100), || {
        events("killed-1").iter().any(|e| e["eventType"] == "EVENT_TYPE_ACTIVITY_TASK_COMPLETED")
    });
    assert!(recorded.is_ok(), "the record activity never completed");
    first.signal("KILL");
    first.wait_exit(Duration::from_secs(10));

    let second_log = dir.path().join("second.log");
    let _second = Tempest::start(dir.path(), &second_log);
    cli(&["workflow", "signal", "--workflow-id", "killed-1", "--name", "go"]).expect_success();
    cli(&["workflow", "result", "--workflow-id", "killed-1"]).expect_success();
    // Read the raw payloads: the CLI's rendering of results rounds large integers.
    let completed = events("killed-1")
        .into_iter()
        .find(|e| e["eventType"] == "EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED")
        .expect("completed event");
    let result = decode(&completed["workflowExecutionCompletedEventAttributes"]["result"]["payloads"][0]);

    let scheduled = events("killed-1")
        .into_iter()
        .find(|e| e["eventType"] == "EVENT_TYPE_ACTIVITY_TASK_SCHEDULED")
        .expect("scheduled event");
    let recorded_input = decode(&scheduled["activityTaskScheduledEventAttributes"]["input"]["payloads"][0]);
    assert_eq!(result, recorded_input, "the second process recomputed different values");
    assert_eq!(result["mixed"].as_array().map(Vec::len), Some(3));
    assert_eq!(result["order"].as_str().map(|s| s.split(',').count()), Some(50));
    assert!(
        !std::fs::read_to_string(&second_log).unwrap_or_default().contains("TMPRL1100"),
        "the second process saw nondeterminism"
    );
    assert_replays(dir.path(), "killed-1");
}

const SLOW_FLOW: &str = r#"
local funcs = require("funcs")
local time = require("time")
return { main = function(i)
  local a = funcs.call("app:step", i)
  time.sleep("2s")
  local b = funcs.call("app:step", a + 1)
  return b
end }
"#;

#[test]
fn sigterm_stops_quickly_with_work_in_flight_and_a_restart_finishes_it() {
    let entries = r#"  - name: slow
    kind: workflow.lua
    source: file://slow.lua
    modules: [funcs, time]
    meta: {temporal: {workflow: {worker: worker}}}
  - name: step
    kind: function.lua
    source: "return { main = function(n) return n end }"
    meta: {temporal: {activity: {worker: worker}}}
"#;
    let (dir, queue) = project(&[("slow.lua", SLOW_FLOW)], entries);
    let mut first = Tempest::start(dir.path(), &dir.path().join("first.log"));
    for i in 0..50 {
        cli(&[
            "workflow",
            "start",
            "--type",
            "app:slow",
            "--task-queue",
            &queue,
            "--workflow-id",
            &format!("inflight-{i}"),
            "--input",
            &i.to_string(),
        ])
        .expect_success();
    }
    first.signal("TERM");
    let took = first.wait_exit(Duration::from_secs(30));
    assert!(took < Duration::from_secs(5), "SIGTERM took {took:?}");

    let _second = Tempest::start(dir.path(), &dir.path().join("second.log"));
    for i in 0..50 {
        let out =
            cli(&["workflow", "result", "--workflow-id", &format!("inflight-{i}"), "-o", "json"]).expect_success();
        let result: Value = serde_json::from_str(&out.stdout).expect("json");
        assert_eq!(result.get("result").cloned().unwrap_or(result), json!(i + 1), "inflight-{i}");
    }
    for i in [0, 25, 49] {
        assert_replays(dir.path(), &format!("inflight-{i}"));
    }
}
