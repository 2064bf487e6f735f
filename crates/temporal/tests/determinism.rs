//! Determinism guards on the real server: a busy loop fails its workflow task with TMPRL1101
//! while other workflows keep completing; code that diverges from its history fails the task as
//! nondeterministic (TMPRL1100), and Tempest names the Lua line of the diverging command.

mod common;

use std::time::Duration;

use common::{Project, assert_replays, replay_failures, signal_many, start_workflow, task_failures, wait_result};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_loop_fails_its_task_and_others_keep_running() {
    let entries = r#"  - name: spin
    kind: workflow.lua
    source: "return { main = function() while true do end end }"
    meta: {temporal: {workflow: {worker: worker}}}
  - name: quick
    kind: workflow.lua
    source: "return { main = function(n) return n + 1 end }"
    meta: {temporal: {workflow: {worker: worker}}}
"#;
    let project = Project::new("deadlock", entries, &[]);
    let registry = project.load();
    let running = tempest_temporal::start(&registry).await.expect("start");
    let tq = project.task_queue.as_str();
    start_workflow("app:spin", tq, "deadlock-spin", &[]).await;
    for i in 0..3 {
        start_workflow("app:quick", tq, &format!("deadlock-quick-{i}"), &[json!(i)]).await;
    }
    for i in 0..3 {
        let result = wait_result(&format!("deadlock-quick-{i}"), Duration::from_secs(30)).await;
        assert_eq!(result, Ok(json!(i + 1)));
    }
    let failures = tempest_testkit::wait_until_async(Duration::from_secs(30), Duration::from_millis(200), || async {
        !task_failures("deadlock-spin").await.is_empty()
    })
    .await;
    assert!(failures.is_ok(), "the spinning workflow's task never failed");
    let messages = task_failures("deadlock-spin").await;
    assert!(messages[0].contains("[TMPRL1101]"), "{messages:?}");
    assert!(messages[0].contains("_index.yaml"), "the traceback names the source: {messages:?}");
    // A later workflow still completes on the same worker.
    start_workflow("app:quick", tq, "deadlock-quick-after", &[json!(41)]).await;
    assert_eq!(wait_result("deadlock-quick-after", Duration::from_secs(30)).await, Ok(json!(42)));
    tempest_testkit::temporal_cli_async([
        "workflow",
        "terminate",
        "--workflow-id",
        "deadlock-spin",
        "--reason",
        "test over",
    ])
    .await
    .expect_success();
    running.shutdown().await;
    assert_replays(&registry, "deadlock-quick-after").await;
}

const ACTS: &str = "return { step = function(s) return s end }";

fn flow(first: &str, second: &str) -> String {
    format!(
        r#"local funcs = require("funcs")
return {{ main = function()
  local a = funcs.call("{first}", "1")
  process.listen("go"):receive()
  local b = funcs.call("{second}", "2")
  return a .. b
end }}
"#
    )
}

const ENTRIES: &str = r#"  - name: flow
    kind: workflow.lua
    source: file://flow.lua
    modules: [funcs]
    meta: {temporal: {workflow: {worker: worker}}}
  - name: a
    kind: function.lua
    source: file://acts.lua
    method: step
    meta: {temporal: {activity: {worker: worker}}}
  - name: b
    kind: function.lua
    source: file://acts.lua
    method: step
    meta: {temporal: {activity: {worker: worker}}}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swapped_activity_calls_are_reported_as_nondeterministic() {
    let project = Project::new("nondeterminism", ENTRIES, &[("flow.lua", &flow("app:a", "app:b")), ("acts.lua", ACTS)]);
    let registry = project.load();
    let running = tempest_temporal::start(&registry).await.expect("start");
    start_workflow("app:flow", &project.task_queue, "nondet-1", &[]).await;
    // Wait until the first activity completed and the workflow waits for the signal.
    let waited = tempest_testkit::wait_until_async(Duration::from_secs(30), Duration::from_millis(100), || async {
        common::history("nondet-1").await.events.len() >= 10
    })
    .await;
    assert!(waited.is_ok(), "the workflow did not reach its signal wait");
    running.shutdown().await;

    // The same history against the swapped code: the first command is now `app:b`.
    std::fs::write(project.path().join("flow.lua"), flow("app:b", "app:a")).expect("rewrite");
    let swapped = project.load();
    let failures = replay_failures(&swapped, "nondet-1").await;
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(failures[0].contains("TMPRL1100"), "{failures:?}");
    assert!(failures[0].contains("ScheduleActivity(app:b) seq 1 at"), "{failures:?}");
    assert!(failures[0].contains("flow.lua:3"), "names the Lua line: {failures:?}");

    // A live worker with the swapped code fails the workflow task the same way.
    let running = tempest_temporal::start(&swapped).await.expect("start");
    signal_many("nondet-1", "go", &[json!(true)]).await;
    let failed = tempest_testkit::wait_until_async(Duration::from_secs(30), Duration::from_millis(200), || async {
        task_failures("nondet-1").await.iter().any(|m| m.contains("TMPRL1100"))
    })
    .await;
    running.shutdown().await;
    assert!(failed.is_ok(), "no TMPRL1100 task failure: {:?}", task_failures("nondet-1").await);
    tempest_testkit::temporal_cli_async([
        "workflow",
        "terminate",
        "--workflow-id",
        "nondet-1",
        "--reason",
        "test over",
    ])
    .await
    .expect_success();
    // The original code still replays the history cleanly.
    assert_replays(&registry, "nondet-1").await;
}
