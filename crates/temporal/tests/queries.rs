//! Queries through the `temporal` CLI: a handler registered with `workflow.on_query`, the
//! built-in `__stack_trace` (`temporal workflow stack`), queries on a closed workflow (answered
//! after a full replay), and an unknown query failing the query only.

mod common;

use std::time::Duration;

use common::{Project, assert_replays, signal_many, start_workflow, wait_result};
use serde_json::json;

const ENTRIES: &str = r#"  - name: counter
    kind: workflow.lua
    source: file://counter.lua
    modules: [workflow]
    meta: {temporal: {workflow: {worker: worker}}}
"#;

const COUNTER: &str = r#"
local workflow = require("workflow")
return { main = function(limit)
  local count = 0
  workflow.on_query("count", function(plus) return count + (plus or 0) end)
  local ticks = process.listen("tick")
  while count < limit do
    ticks:receive()
    count = count + 1
  end
  return count
end }
"#;

fn query(args: &[&str]) -> tempest_testkit::CliOutput {
    let mut all = vec!["workflow", "query", "--workflow-id", "queries-1"];
    all.extend_from_slice(args);
    tempest_testkit::temporal_cli(all)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_answer_from_handlers_stack_traces_and_closed_workflows() {
    let project = Project::new("queries", ENTRIES, &[("counter.lua", COUNTER)]);
    let registry = project.load();
    let running = tempest_temporal::start(&registry).await.expect("start");
    start_workflow("app:counter", &project.task_queue, "queries-1", &[json!(2)]).await;
    signal_many("queries-1", "tick", &[json!(null)]).await;
    let counted = tempest_testkit::wait_until_async(Duration::from_secs(30), Duration::from_millis(100), || async {
        tokio::task::spawn_blocking(|| query(&["--type", "count"]).stdout.contains('1')).await.unwrap_or(false)
    })
    .await;
    assert!(counted.is_ok(), "the count query never answered 1");
    let with_arg =
        tokio::task::spawn_blocking(|| query(&["--type", "count", "--input", "10"]).expect_success()).await.unwrap();
    assert!(with_arg.stdout.contains("11"), "{}", with_arg.stdout);
    let stack =
        tempest_testkit::temporal_cli_async(["workflow", "stack", "--workflow-id", "queries-1"]).await.expect_success();
    assert!(stack.stdout.contains("counter.lua:"), "{}", stack.stdout);
    let unknown = tokio::task::spawn_blocking(|| query(&["--type", "nope"])).await.unwrap();
    assert!(!unknown.success());
    assert!(format!("{}{}", unknown.stdout, unknown.stderr).contains("unknown query type `nope`"), "{unknown:?}");

    signal_many("queries-1", "tick", &[json!(null)]).await;
    assert_eq!(wait_result("queries-1", Duration::from_secs(30)).await, Ok(json!(2)));
    // Closed: Core rebuilds the run from history to answer.
    let closed = tokio::task::spawn_blocking(|| query(&["--type", "count"]).expect_success()).await.unwrap();
    assert!(closed.stdout.contains('2'), "{}", closed.stdout);
    running.shutdown().await;
    assert_replays(&registry, "queries-1").await;
}
