//! Interop with the official Python SDK: its client starts a Lua workflow with a dict and gets a
//! dict back; a Lua workflow calls an activity served by a Python worker on another task queue.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::{Tempest, assert_replays, cli, project};
use serde_json::{Value, json};

fn python() -> std::path::PathBuf {
    let python = tempest_testkit::workspace_root().join(".tools/venv/bin/python");
    let ok = Command::new(&python).args(["-c", "import temporalio"]).status().is_ok_and(|s| s.success());
    assert!(ok, "the Temporal Python SDK is missing: run scripts/setup-python-sdk (scripts/test does)");
    python
}

fn peer_script() -> std::path::PathBuf {
    tempest_testkit::workspace_root().join("crates/cli/tests/interop/python_peer.py")
}

const ENTRIES: &str = r#"  - name: greet
    kind: workflow.lua
    source: file://greet.lua
    meta: {temporal: {workflow: {worker: worker}}}
  - name: call_python
    kind: workflow.lua
    source: file://call_python.lua
    modules: [funcs]
    meta: {temporal: {workflow: {worker: worker}}}
"#;

const GREET: &str = r#"
return { main = function(person)
  return { greeting = "Hello, " .. person.name .. "!", tags = person.tags, doubled = person.count * 2, nested = { ok = true } }
end }
"#;

const CALL_PYTHON: &str = r#"
local funcs = require("funcs")
return { main = function(queue)
  local result, err = funcs.new():with_options({ ["activity.task_queue"] = queue }):call("py_shout", { text = "hi from lua" })
  if err then return nil, err end
  return result
end }
"#;

#[test]
fn python_client_starts_a_lua_workflow_with_a_dict() {
    let python = python();
    let (dir, queue) = project(&[("greet.lua", GREET), ("call_python.lua", CALL_PYTHON)], ENTRIES);
    let _tempest = Tempest::start(dir.path(), &dir.path().join("tempest.log"));
    let out = Command::new(python)
        .arg(peer_script())
        .args(["client", &tempest_testkit::address(), &queue, "py-client-1"])
        .output()
        .expect("run python client");
    assert!(out.status.success(), "python client failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let result: Value = serde_json::from_slice(&out.stdout).expect("json from python");
    assert_eq!(result, json!({"greeting": "Hello, Ada!", "tags": ["x", "y"], "doubled": 4, "nested": {"ok": true}}));
    assert_replays(dir.path(), "py-client-1");
}

#[test]
fn lua_workflow_calls_a_python_activity_on_another_queue() {
    let python = python();
    let (dir, queue) = project(&[("greet.lua", GREET), ("call_python.lua", CALL_PYTHON)], ENTRIES);
    let python_queue = format!("{queue}-python");
    let mut worker = Command::new(python)
        .arg(peer_script())
        .args(["worker", &tempest_testkit::address(), &python_queue])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start python worker");
    let mut ready = String::new();
    BufReader::new(worker.stdout.take().expect("stdout")).read_line(&mut ready).expect("read");
    assert_eq!(ready.trim(), "READY");
    let _tempest = Tempest::start(dir.path(), &dir.path().join("tempest.log"));
    let input = json!(python_queue).to_string();
    let out = cli(&[
        "workflow",
        "execute",
        "--type",
        "app:call_python",
        "--task-queue",
        &queue,
        "--workflow-id",
        "py-activity-1",
        "--input",
        &input,
        "-o",
        "json",
    ]);
    drop(worker.stdin.take());
    let _ = worker.wait();
    let out = out.expect_success();
    let result: Value = serde_json::from_str(&out.stdout).expect("json");
    assert_eq!(result["result"], json!({"shouted": "HI FROM LUA", "by": "python"}));
    assert_replays(dir.path(), "py-activity-1");
}
