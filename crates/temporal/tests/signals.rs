//! Signals reach workflows through `process.listen` and `process.inbox()`; a burst of 100
//! arrives complete and in order. Every workflow is replayed afterwards.

mod common;

use std::time::Duration;

use common::{Project, assert_replays, signal_many, start_workflow, wait_result};
use serde_json::json;

const ENTRIES: &str = r#"  - name: approval
    kind: workflow.lua
    source: file://approval.lua
    meta: {temporal: {workflow: {worker: worker}}}
  - name: mailbox
    kind: workflow.lua
    source: file://mailbox.lua
    meta: {temporal: {workflow: {worker: worker}}}
  - name: burst
    kind: workflow.lua
    source: file://burst.lua
    meta: {temporal: {workflow: {worker: worker}}}
"#;

const APPROVAL: &str = r#"
return { main = function()
  local decision = process.listen("approve"):receive()
  return { approved_by = decision.by }
end }
"#;

const MAILBOX: &str = r#"
return { main = function()
  local msg = process.inbox():receive()
  return { topic = msg:topic(), data = msg:payload():data() }
end }
"#;

const BURST: &str = r#"
return { main = function(count)
  local ch = process.listen("n")
  local seen = {}
  for _ = 1, count do
    seen[#seen + 1] = ch:receive()
  end
  return seen
end }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signals_reach_listen_inbox_and_burst_in_order() {
    let project =
        Project::new("signals", ENTRIES, &[("approval.lua", APPROVAL), ("mailbox.lua", MAILBOX), ("burst.lua", BURST)]);
    let registry = project.load();
    let running = tempest_temporal::start(&registry).await.expect("start");
    let tq = project.task_queue.as_str();

    start_workflow("app:approval", tq, "signals-approval", &[]).await;
    start_workflow("app:mailbox", tq, "signals-mailbox", &[]).await;
    start_workflow("app:burst", tq, "signals-burst", &[json!(100)]).await;

    // The CLI, as a user would send it.
    tempest_testkit::temporal_cli_async([
        "workflow",
        "signal",
        "--workflow-id",
        "signals-approval",
        "--name",
        "approve",
        "--input",
        r#"{"by": "ann"}"#,
    ])
    .await
    .expect_success();
    tempest_testkit::temporal_cli_async([
        "workflow",
        "signal",
        "--workflow-id",
        "signals-mailbox",
        "--name",
        "hello",
        "--input",
        r#""world""#,
    ])
    .await
    .expect_success();
    let numbers: Vec<serde_json::Value> = (1..=100).map(|n| json!(n)).collect();
    signal_many("signals-burst", "n", &numbers).await;

    let approval = wait_result("signals-approval", Duration::from_secs(30)).await;
    let mailbox = wait_result("signals-mailbox", Duration::from_secs(30)).await;
    let burst = wait_result("signals-burst", Duration::from_secs(60)).await;
    running.shutdown().await;

    assert_eq!(approval, Ok(json!({"approved_by": "ann"})));
    assert_eq!(mailbox, Ok(json!({"topic": "hello", "data": "world"})));
    assert_eq!(burst, Ok(json!(numbers)));
    for id in ["signals-approval", "signals-mailbox", "signals-burst"] {
        assert_replays(&registry, id).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancellation_arrives_as_an_event_and_the_workflow_decides() {
    let entries = r#"  - name: cancellable
    kind: workflow.lua
    source: file://cancellable.lua
    modules: [time]
    meta: {temporal: {workflow: {worker: worker}}}
"#;
    let code = r#"
local time = require("time")
return { main = function()
  local events = process.events()
  local timeout = time.after("1h")
  local r = channel.select({ events:case_receive(), timeout:case_receive() })
  if r.channel == events then
    return { status = "canceled", kind = r.value.kind, is_cancel = r.value.kind == process.event.CANCEL }
  end
  return { status = "timed out" }
end }
"#;
    let project = Project::new("cancel", entries, &[("cancellable.lua", code)]);
    let registry = project.load();
    let running = tempest_temporal::start(&registry).await.expect("start");
    start_workflow("app:cancellable", &project.task_queue, "cancel-1", &[]).await;
    let started = tempest_testkit::wait_until_async(Duration::from_secs(30), Duration::from_millis(100), || async {
        common::history("cancel-1").await.events.len() >= 4
    })
    .await;
    assert!(started.is_ok(), "the workflow never ran its first task");
    tempest_testkit::temporal_cli_async(["workflow", "cancel", "--workflow-id", "cancel-1"]).await.expect_success();
    let result = wait_result("cancel-1", Duration::from_secs(30)).await;
    running.shutdown().await;
    assert_eq!(result, Ok(json!({"status": "canceled", "kind": "pid.cancel", "is_cancel": true})));
    assert_replays(&registry, "cancel-1").await;
}
