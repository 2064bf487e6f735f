//! Shared helpers for the worker integration tests: a throwaway project directory pointing at the
//! testkit dev server, starting Tempest in-process, running workflows through the `temporal` CLI,
//! and replaying their histories through the same Lua engine.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;

use tempest_registry::{EntryId, LoadOptions, MapEnv, Registry};
use tempest_temporal::replay::replay;
use temporalio_client::grpc::WorkflowService;
use temporalio_client::tonic::IntoRequest;
use temporalio_client::{Connection, ConnectionOptions, Url};
use temporalio_common::protos::temporal::api::common::v1::WorkflowExecution;
use temporalio_common::protos::temporal::api::history::v1::History;
use temporalio_common::protos::temporal::api::workflowservice::v1::GetWorkflowExecutionHistoryRequest;

/// A project in a temp dir: `_index.yaml` with a client and a worker on a unique task queue,
/// plus the given entries and Lua files.
pub struct Project {
    pub dir: tempfile::TempDir,
    pub task_queue: String,
}

impl Project {
    /// `entries` is YAML list items (indented by 2) appended after the client and worker.
    pub fn new(prefix: &str, entries: &str, files: &[(&str, &str)]) -> Project {
        let dir = tempfile::tempdir().expect("temp dir");
        let task_queue = tempest_testkit::unique_task_queue(prefix);
        let yaml = format!(
            "namespace: app\nentries:\n  - name: client\n    kind: temporal.client\n    address: \"${{env:TEMPORAL_ADDRESS}}\"\n    lifecycle: {{auto_start: true}}\n  - name: worker\n    kind: temporal.worker\n    client: client\n    task_queue: \"{task_queue}\"\n    worker_options:\n      deadlock_detection_timeout: 1s\n    lifecycle: {{auto_start: true}}\n{entries}"
        );
        std::fs::write(dir.path().join("_index.yaml"), yaml).expect("write yaml");
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).expect("write lua");
        }
        Project { dir, task_queue }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn load(&self) -> Registry {
        let env = MapEnv::from_iter([("TEMPORAL_ADDRESS", tempest_testkit::address())]);
        match Registry::load_with(self.path(), LoadOptions { process_env: Arc::new(env) }) {
            Ok(registry) => registry,
            Err(errors) => panic!("project does not load:\n{errors}"),
        }
    }
}

/// Runs `temporal workflow execute` and returns the parsed JSON result, or the CLI's output as
/// an error string when the workflow failed.
pub async fn execute(workflow_type: &str, task_queue: &str, workflow_id: &str, inputs: &[&str]) -> Result<serde_json::Value, String> {
    let mut args = vec![
        "workflow".to_owned(),
        "execute".into(),
        "--type".into(),
        workflow_type.into(),
        "--task-queue".into(),
        task_queue.into(),
        "--workflow-id".into(),
        workflow_id.into(),
        "-o".into(),
        "json".into(),
    ];
    for input in inputs {
        args.push("--input".into());
        args.push((*input).into());
    }
    let out = tempest_testkit::temporal_cli_async(args).await;
    if !out.success() {
        return Err(format!("{}\n{}", out.stdout, out.stderr));
    }
    let parsed: serde_json::Value =
        serde_json::from_str(&out.stdout).map_err(|e| format!("bad CLI JSON ({e}): {}", out.stdout))?;
    Ok(parsed.get("result").cloned().unwrap_or(serde_json::Value::Null))
}

pub async fn connection() -> Connection {
    let options = ConnectionOptions::new(Url::parse(&tempest_testkit::dev_server().url()).expect("url"))
        .identity("tests")
        .client_name("tempest-tests")
        .client_version("0.1.0")
        .build();
    Connection::connect(options).await.expect("connect to the dev server")
}

/// The whole history of `workflow_id`'s latest run.
pub async fn history(workflow_id: &str) -> History {
    let mut connection = connection().await;
    let mut events = Vec::new();
    let mut page_token = Vec::new();
    loop {
        let request = GetWorkflowExecutionHistoryRequest {
            namespace: "default".into(),
            execution: Some(WorkflowExecution { workflow_id: workflow_id.into(), run_id: String::new() }),
            next_page_token: page_token.clone(),
            ..Default::default()
        };
        let response = WorkflowService::get_workflow_execution_history(&mut connection, request.into_request())
            .await
            .expect("history")
            .into_inner();
        events.extend(response.history.map(|h| h.events).unwrap_or_default());
        if response.next_page_token.is_empty() {
            break;
        }
        page_token = response.next_page_token;
    }
    History { events }
}

/// Replays `workflow_id`'s history through the worker's Lua engine; returns the failures.
pub async fn replay_failures(registry: &Registry, workflow_id: &str) -> Vec<String> {
    let plan = tempest_temporal::worker_plan(registry, &EntryId::new("app", "worker")).expect("worker plan");
    let history = history(workflow_id).await;
    replay(plan.engine, vec![(workflow_id.to_owned(), history)])
        .await
        .expect("replay runs")
        .into_iter()
        .map(|f| f.message)
        .collect()
}

/// Asserts the history of `workflow_id` replays cleanly.
pub async fn assert_replays(registry: &Registry, workflow_id: &str) {
    let failures = replay_failures(registry, workflow_id).await;
    assert!(failures.is_empty(), "replay of {workflow_id} failed: {failures:?}");
}
