//! Workflows calling Lua activities on the real dev server: sequential and concurrent calls,
//! failures with their kinds, retries, timeouts. Every workflow is replayed afterwards.

mod common;

use common::{Project, assert_replays, execute};
use serde_json::json;
use tempest_registry::EntryId;
use temporalio_common::protos::temporal::api::history::v1::history_event::Attributes;

const ENTRIES: &str = r#"  - name: flow
    kind: workflow.lua
    source: file://flow.lua
    modules: [funcs, time, json]
    meta: {temporal: {workflow: {worker: worker}}}
  - name: echo
    kind: function.lua
    source: file://acts.lua
    method: echo
    meta: {temporal: {activity: {worker: worker}}}
  - name: fail
    kind: function.lua
    source: file://acts.lua
    method: fail
    modules: [errors]
    meta: {temporal: {activity: {worker: worker}}}
  - name: flaky
    kind: function.lua
    source: file://acts.lua
    method: flaky
    modules: [errors]
    meta: {temporal: {activity: {worker: worker}}}
  - name: whoami
    kind: function.lua
    source: "return { main = function() local ctx = require('ctx') local t = ctx.get('tenant') local _, e = ctx.get('missing') return { tenant = t, missing = e:kind() } end }"
    modules: [ctx]
    meta: {temporal: {activity: {worker: worker}}}
  - name: slow
    kind: function.lua
    source: file://acts.lua
    method: slow
    modules: [time]
    meta: {temporal: {activity: {worker: worker}}}
"#;

const ACTS: &str = r#"
local M = {}
function M.echo(s) return s end
function M.fail(mode)
  if mode == "notfound" then
    local errors = require("errors")
    return nil, errors.new({ kind = errors.NOT_FOUND, message = "no such thing", retryable = false })
  elseif mode == "string" then
    return nil, "plain string failure"
  else
    error("raised in lua")
  end
end
function M.flaky()
  return nil, errors.new({ kind = errors.UNAVAILABLE, message = "always failing", retryable = true })
end
function M.slow()
  require("time").sleep("3s")
  return "late"
end
return M
"#;

const FLOW: &str = r#"
local funcs = require("funcs")
local function describe(err)
  if not err then return nil end
  return { kind = err:kind(), message = err:message(), retryable = err:retryable() }
end
local function main(input)
  local out = {}
  -- three sequential calls, each feeding the next
  local s = input
  for i = 0, 2 do
    s = funcs.call("app:echo", s .. "|" .. i)
  end
  out.sequential = s
  -- three concurrent: two coroutines and one async future
  local results = channel.new(2)
  for i = 1, 2 do
    coroutine.spawn(function() results:send(funcs.call("echo", "c" .. i)) end)
  end
  local future = funcs.async("app:echo", "f")
  local a = results:receive()
  local b = results:receive()
  local got = { a, b }
  table.sort(got)
  local payload = future:response():receive()
  got[#got + 1] = payload:data()
  out.concurrent = got
  -- failures
  local _, e1 = funcs.call("app:fail", "notfound")
  local _, e2 = funcs.call("app:fail", "string")
  local _, e3 = funcs.call("app:fail", "raise")
  local _, e4 = funcs.call("app:not_registered")
  local _, e5 = funcs.new():with_options({ ["activity.start_to_close_timeout"] = "1s",
    ["activity.retry_policy"] = { maximum_attempts = 1 } }):call("app:slow")
  local _, e6 = funcs.new():with_options({ ["activity.retry_policy"] = { maximum_attempts = 3, initial_interval = 10 } }):call("app:flaky")
  out.errors = { describe(e1), describe(e2), describe(e3), describe(e4), describe(e5), describe(e6) }
  out.timeout_type = e5 and e5:details() and e5:details().timeout_type
  out.flaky_attempts_seen = e6 and e6:details() and e6:details()._retry_state
  out.context = funcs.new():with_context({ tenant = "acme" }):call("app:whoami")
  return out
end
return { main = main }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activities_sequential_concurrent_and_failures() {
    let project = Project::new("activities", ENTRIES, &[("flow.lua", FLOW), ("acts.lua", ACTS)]);
    let registry = project.load();
    let running = tempest_temporal::start(&registry).await.expect("start");
    let result = execute("app:flow", &project.task_queue, "activities-1", &["\"in\""]).await;
    running.shutdown().await;
    let result = result.expect("workflow completes");
    assert_eq!(result["sequential"], json!("in|0|1|2"));
    assert_eq!(result["concurrent"], json!(["c1", "c2", "f"]));
    let errors = &result["errors"];
    assert_eq!(errors[0], json!({"kind": "NotFound", "message": "no such thing", "retryable": false}));
    assert_eq!(errors[1], json!({"kind": "Internal", "message": "plain string failure", "retryable": false}));
    assert_eq!(errors[2]["kind"], json!("Internal"));
    assert_eq!(errors[2]["retryable"], json!(false));
    assert!(errors[2]["message"].as_str().unwrap().contains("acts.lua:11: raised in lua"), "{}", errors[2]);
    assert_eq!(errors[3]["kind"], json!("NotFound"));
    assert_eq!(errors[3]["retryable"], json!(false));
    assert_eq!(errors[4]["kind"], json!("Timeout"));
    assert_eq!(result["timeout_type"], json!("StartToClose"));
    assert_eq!(errors[5]["message"], json!("always failing"));
    assert_eq!(result["flaky_attempts_seen"], json!("MaximumAttemptsReached"));
    assert_eq!(result["context"], json!({"tenant": "acme", "missing": "NotFound"}));
    // The retried activity ran exactly three times: its last start is attempt 3.
    let history = common::history("activities-1").await;
    let flaky_attempts: Vec<i32> = history
        .events
        .iter()
        .filter_map(|e| match &e.attributes {
            Some(Attributes::ActivityTaskStartedEventAttributes(a)) => Some(a.attempt),
            _ => None,
        })
        .filter(|attempt| *attempt > 1)
        .collect();
    assert_eq!(flaky_attempts, vec![3], "only the retried activity has attempts > 1");
    // Without `build_id`, every workflow task completion carries the hash of the worker's code.
    let plan = tempest_temporal::worker_plan(&registry, &EntryId::new("app", "worker")).expect("worker plan");
    let build_ids: Vec<&str> = history
        .events
        .iter()
        .filter_map(|e| match &e.attributes {
            Some(Attributes::WorkflowTaskCompletedEventAttributes(a)) => {
                Some(a.worker_version.as_ref().map_or("", |v| v.build_id.as_str()))
            }
            _ => None,
        })
        .collect();
    assert!(plan.build_id().starts_with("tempest-"), "{}", plan.build_id());
    assert!(!build_ids.is_empty() && build_ids.iter().all(|id| *id == plan.build_id()), "{build_ids:?}");
    assert_replays(&registry, "activities-1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_activities_run_as_local_activities() {
    let entries = r#"  - name: flow
    kind: workflow.lua
    source: "local funcs = require('funcs') return { main = function(s) local a = funcs.call('app:shout', s) local b = funcs.call('app:shout', a .. '!') return b end }"
    modules: [funcs]
    meta: {temporal: {workflow: {worker: worker}}}
  - name: shout
    kind: function.lua
    source: "return { main = function(s) return string.upper(s) end }"
    meta: {temporal: {activity: {worker: worker, local: true}}}
"#;
    let project = Project::new("local", entries, &[]);
    let registry = project.load();
    let running = tempest_temporal::start(&registry).await.expect("start");
    let result = execute("app:flow", &project.task_queue, "local-1", &["\"hey\""]).await;
    running.shutdown().await;
    assert_eq!(result, Ok(json!("HEY!")));
    let history = common::history("local-1").await;
    let markers = history
        .events
        .iter()
        .filter(|e| matches!(e.attributes, Some(Attributes::MarkerRecordedEventAttributes(_))))
        .count();
    let scheduled = history
        .events
        .iter()
        .filter(|e| matches!(e.attributes, Some(Attributes::ActivityTaskScheduledEventAttributes(_))))
        .count();
    assert_eq!((markers, scheduled), (2, 0), "local activities leave markers, not activity tasks");
    assert_replays(&registry, "local-1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activity_module_info_heartbeat_and_cancellation() {
    let entries = r#"  - name: flow
    kind: workflow.lua
    source: file://flow.lua
    modules: [funcs, time]
    meta: {temporal: {workflow: {worker: worker}}}
  - name: describe
    kind: function.lua
    source: "return { main = function() local a = require('activity') a.heartbeat({ step = 1 }) local i = a.info() return { type = i.activity_type, attempt = i.attempt, wf = i.workflow_id, tq = i.task_queue, cancelled = a.cancelled() } end }"
    modules: [activity]
    meta: {temporal: {activity: {worker: worker}}}
  - name: patient
    kind: function.lua
    source: file://patient.lua
    modules: [activity, time, errors]
    meta: {temporal: {activity: {worker: worker}}}
"#;
    let patient = r#"
local activity = require("activity")
local time = require("time")
return { main = function()
  for _ = 1, 300 do
    activity.heartbeat()
    if activity.cancelled() then
      return nil, errors.new({ kind = errors.CANCELED, message = "stopped on request" })
    end
    time.sleep("100ms")
  end
  return "ran to the end"
end }
"#;
    let flow = r#"
local funcs = require("funcs")
local time = require("time")
return { main = function()
  local described = funcs.call("app:describe")
  local future = funcs.new():with_options({
    ["activity.heartbeat_timeout"] = "2s",
    ["activity.wait_for_cancellation"] = true,
  }):async("app:patient")
  time.sleep("1s")
  future:cancel()
  future:response():receive()
  local _, err = future:result()
  return { described = described, cancel_kind = err and err:kind() }
end }
"#;
    let project = Project::new("activity-module", entries, &[("flow.lua", flow), ("patient.lua", patient)]);
    let registry = project.load();
    let running = tempest_temporal::start(&registry).await.expect("start");
    let began = std::time::Instant::now();
    let result = execute("app:flow", &project.task_queue, "activity-module-1", &[]).await;
    running.shutdown().await;
    let result = result.expect("workflow completes");
    assert!(began.elapsed() < std::time::Duration::from_secs(20), "cancellation did not reach the activity");
    assert_eq!(
        result["described"],
        json!({"type": "app:describe", "attempt": 1, "wf": "activity-module-1", "tq": project.task_queue, "cancelled": false})
    );
    assert_eq!(result["cancel_kind"], json!("Canceled"));
    assert_replays(&registry, "activity-module-1").await;
}
