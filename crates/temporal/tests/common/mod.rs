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
        Project::with_worker_options(prefix, "", entries, files)
    }

    /// As [`Project::new`], with more `worker_options` lines (each indented by 6).
    pub fn with_worker_options(prefix: &str, options: &str, entries: &str, files: &[(&str, &str)]) -> Project {
        let dir = tempfile::tempdir().expect("temp dir");
        let task_queue = tempest_testkit::unique_task_queue(prefix);
        let yaml = format!(
            "namespace: app\nentries:\n  - name: client\n    kind: temporal.client\n    address: \"${{env:TEMPORAL_ADDRESS}}\"\n    lifecycle: {{auto_start: true}}\n  - name: worker\n    kind: temporal.worker\n    client: client\n    task_queue: \"{task_queue}\"\n    worker_options:\n      deadlock_detection_timeout: 1s\n{options}    lifecycle: {{auto_start: true}}\n{entries}"
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
pub async fn execute(
    workflow_type: &str,
    task_queue: &str,
    workflow_id: &str,
    inputs: &[&str],
) -> Result<serde_json::Value, String> {
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

fn json_payloads(
    inputs: &[serde_json::Value],
) -> Option<temporalio_common::protos::temporal::api::common::v1::Payloads> {
    use temporalio_common::protos::temporal::api::common::v1::{Payload, Payloads};
    Some(Payloads {
        payloads: inputs
            .iter()
            .map(|v| Payload {
                metadata: std::collections::HashMap::from([("encoding".to_owned(), b"json/plain".to_vec())]),
                data: serde_json::to_vec(v).expect("json"),
                ..Default::default()
            })
            .collect(),
    })
}

/// Starts a workflow through the gRPC API (does not wait for it).
pub async fn start_workflow(workflow_type: &str, task_queue: &str, workflow_id: &str, inputs: &[serde_json::Value]) {
    use temporalio_common::protos::temporal::api::common::v1::WorkflowType;
    use temporalio_common::protos::temporal::api::taskqueue::v1::TaskQueue;
    use temporalio_common::protos::temporal::api::workflowservice::v1::StartWorkflowExecutionRequest;
    let mut connection = connection().await;
    let request = StartWorkflowExecutionRequest {
        namespace: "default".into(),
        workflow_id: workflow_id.into(),
        workflow_type: Some(WorkflowType { name: workflow_type.into() }),
        task_queue: Some(TaskQueue { name: task_queue.into(), ..Default::default() }),
        input: json_payloads(inputs),
        identity: "tests".into(),
        request_id: format!("{workflow_id}-start"),
        ..Default::default()
    };
    WorkflowService::start_workflow_execution(&mut connection, request.into_request()).await.expect("start workflow");
}

/// Sends signals to a workflow, one after another on one connection.
pub async fn signal_many(workflow_id: &str, name: &str, inputs: &[serde_json::Value]) {
    use temporalio_common::protos::temporal::api::workflowservice::v1::SignalWorkflowExecutionRequest;
    let mut connection = connection().await;
    for (i, input) in inputs.iter().enumerate() {
        let request = SignalWorkflowExecutionRequest {
            namespace: "default".into(),
            workflow_execution: Some(WorkflowExecution { workflow_id: workflow_id.into(), run_id: String::new() }),
            signal_name: name.into(),
            input: json_payloads(std::slice::from_ref(input)),
            identity: "tests".into(),
            request_id: format!("{workflow_id}-{name}-{i}-{}", tempest_testkit::unique_task_queue("signal")),
            ..Default::default()
        };
        WorkflowService::signal_workflow_execution(&mut connection, request.into_request()).await.expect("signal");
    }
}

/// Waits (up to `timeout`) for the workflow to close; returns the result JSON or the failure message.
pub async fn wait_result(workflow_id: &str, timeout: std::time::Duration) -> Result<serde_json::Value, String> {
    use temporalio_common::protos::temporal::api::history::v1::history_event::Attributes;
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let history = history(workflow_id).await;
        for event in &history.events {
            match &event.attributes {
                Some(Attributes::WorkflowExecutionCompletedEventAttributes(done)) => {
                    let payload = done.result.as_ref().and_then(|p| p.payloads.first());
                    return Ok(payload
                        .map(|p| serde_json::from_slice(&p.data).unwrap_or(serde_json::Value::Null))
                        .unwrap_or(serde_json::Value::Null));
                }
                Some(Attributes::WorkflowExecutionFailedEventAttributes(failed)) => {
                    return Err(failed.failure.as_ref().map(|f| f.message.clone()).unwrap_or_default());
                }
                _ => {}
            }
        }
        if std::time::Instant::now() > deadline {
            return Err(format!("{workflow_id} did not close within {timeout:?}"));
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Messages of the workflow task failures recorded in the workflow's history.
pub async fn task_failures(workflow_id: &str) -> Vec<String> {
    use temporalio_common::protos::temporal::api::history::v1::history_event::Attributes;
    history(workflow_id)
        .await
        .events
        .iter()
        .filter_map(|e| match &e.attributes {
            Some(Attributes::WorkflowTaskFailedEventAttributes(f)) => f.failure.as_ref().map(|f| f.message.clone()),
            _ => None,
        })
        .collect()
}
