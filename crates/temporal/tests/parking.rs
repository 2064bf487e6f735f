//! `max_parked_workflows`: with a workflow cache of 2, most runs blocked on a signal are evicted by
//! Core and parked (their Lua state kept). A query and then the signal wake them: Core replays the
//! history, the replay is answered from the parked run's log, and the parked Lua state answers the
//! query and finishes the run. Results, histories and replays are those of runs never evicted.

mod common;

use std::time::Duration;

use common::{Project, assert_replays, signal_many, start_workflow, task_failures, wait_result};
use serde_json::json;
use temporalio_common::protos::temporal::api::history::v1::history_event::Attributes;

const ENTRIES: &str = r#"  - name: waiter
    kind: workflow.lua
    source: file://waiter.lua
    modules: [funcs, workflow]
    meta: {temporal: {workflow: {worker: worker}}}
  - name: echo
    kind: function.lua
    source: "return { main = function(s) return s end }"
    meta: {temporal: {activity: {worker: worker}}}
"#;

const WAITER: &str = r#"
local funcs = require("funcs")
local workflow = require("workflow")
return { main = function(name)
  local before = funcs.call("app:echo", name .. ":a")
  workflow.on_query("before", function() return before end)
  local go = process.listen("go"):receive()
  return funcs.call("app:echo", before .. ":" .. go)
end }
"#;

const RUNS: usize = 6;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parked_runs_wake_on_signals_and_finish_without_replaying_lua() {
    let options = "      max_cached_workflows: 2\n      max_parked_workflows: 50\n";
    let project = Project::with_worker_options("parking", options, ENTRIES, &[("waiter.lua", WAITER)]);
    let registry = project.load();
    let running = tempest_temporal::start(&registry).await.expect("start");
    let tq = project.task_queue.as_str();
    let ids: Vec<String> = (0..RUNS).map(|i| format!("{tq}-{i}")).collect();
    for (i, id) in ids.iter().enumerate() {
        start_workflow("app:waiter", tq, id, &[json!(format!("w{i}"))]).await;
    }

    // Every run has called its activity and waits for `go` (its second workflow task is done);
    // with room for 2 in Core's cache, the others are parked.
    let parked = tempest_testkit::wait_until_async(Duration::from_secs(60), Duration::from_millis(100), || async {
        for id in &ids {
            let done = common::history(id)
                .await
                .events
                .iter()
                .filter(|e| matches!(e.attributes, Some(Attributes::WorkflowTaskCompletedEventAttributes(_))))
                .count();
            if done < 2 {
                return false;
            }
        }
        running.parking().iter().map(|(_, p)| p.runs).sum::<usize>() == RUNS - 2
    })
    .await;
    assert!(parked.is_ok(), "runs were not parked: {:?}", running.parking());

    // A query wakes the oldest run (parked: the cache holds the newest two), and the parked
    // Lua state answers it.
    let woken = |running: &tempest_temporal::Running| running.parking().iter().map(|(_, p)| p.stats.woken).sum::<u64>();
    let woken_before_query = woken(&running);
    let first = ids[0].clone();
    let answer =
        tempest_testkit::temporal_cli_async(["workflow", "query", "--workflow-id", &first, "--type", "before"])
            .await
            .expect_success();
    assert!(answer.stdout.contains("w0:a"), "{}", answer.stdout);
    assert_eq!(woken(&running), woken_before_query + 1, "the query woke the parked run: {:?}", running.parking());

    for id in &ids {
        signal_many(id, "go", &[json!("go")]).await;
    }
    let mut results = Vec::new();
    for id in &ids {
        results.push(wait_result(id, Duration::from_secs(60)).await);
    }
    let stats: Vec<_> = running.parking().into_iter().map(|(_, p)| p.stats).collect();
    running.shutdown().await;

    for (i, result) in results.into_iter().enumerate() {
        let result = result.unwrap_or_else(|e| panic!("run {i} did not complete: {e}"));
        assert_eq!(result, json!(format!("w{i}:a:go")), "run {i}");
    }
    let woken: u64 = stats.iter().map(|s| s.woken).sum();
    let rebuilt: u64 = stats.iter().map(|s| s.rebuilt).sum();
    assert!(woken >= (RUNS - 2) as u64, "parked runs were woken from their log: {stats:?}");
    assert_eq!(rebuilt, 0, "no parked run needed a rebuild: {stats:?}");
    for id in &ids {
        assert!(task_failures(id).await.is_empty(), "{id} has workflow task failures");
        assert_replays(&registry, id).await;
    }
}
