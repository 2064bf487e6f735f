//! `tempest run` as a process against the real dev server: a run survives its worker being
//! killed with SIGKILL and gives the same values when a second process finishes it; SIGTERM stops
//! the worker quickly with work in flight, and that work completes after a restart.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

struct Tempest(Child);

impl Tempest {
    fn start(dir: &Path, log: &Path) -> Tempest {
        let log_file = std::fs::File::create(log).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_tempest"))
            .arg("run")
            .arg(dir)
            .env("TEMPORAL_ADDRESS", tempest_testkit::address())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("spawn tempest");
        let started = tempest_testkit::wait_until(Duration::from_secs(60), Duration::from_millis(50), || {
            std::fs::read_to_string(log).is_ok_and(|l| l.contains("worker started"))
        });
        assert!(started.is_ok(), "tempest did not start:\n{}", std::fs::read_to_string(log).unwrap_or_default());
        Tempest(child)
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill").args([format!("-{signal}"), self.0.id().to_string()]).status().expect("kill");
        assert!(status.success());
    }

    /// Waits for the process to exit; returns how long that took.
    fn wait_exit(&mut self, timeout: Duration) -> Duration {
        let start = Instant::now();
        loop {
            if let Some(status) = self.0.try_wait().expect("try_wait") {
                let _ = status;
                return start.elapsed();
            }
            assert!(start.elapsed() < timeout, "tempest did not exit within {timeout:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Tempest {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn project(files: &[(&str, &str)], entries: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let queue = tempest_testkit::unique_task_queue("process");
    let yaml = format!(
        "namespace: app\nentries:\n  - name: client\n    kind: temporal.client\n    address: \"${{env:TEMPORAL_ADDRESS}}\"\n    lifecycle: {{auto_start: true}}\n  - name: worker\n    kind: temporal.worker\n    client: client\n    task_queue: \"{queue}\"\n    worker_options:\n      sticky_schedule_to_start_timeout: 1s\n    lifecycle: {{auto_start: true}}\n{entries}"
    );
    std::fs::write(dir.path().join("_index.yaml"), yaml).expect("yaml");
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).expect("lua");
    }
    (dir, queue)
}

fn cli(args: &[&str]) -> tempest_testkit::CliOutput {
    tempest_testkit::temporal_cli(args.iter().copied())
}

fn history(workflow_id: &str) -> Value {
    let out = cli(&["workflow", "show", "--workflow-id", workflow_id, "-o", "json"]).expect_success();
    serde_json::from_str(&out.stdout).expect("history json")
}

fn events(workflow_id: &str) -> Vec<Value> {
    history(workflow_id)["events"].as_array().cloned().unwrap_or_default()
}

/// A json/plain payload as `temporal workflow show -o json` prints it (proto JSON: base64 data).
fn decode(payload: &Value) -> Value {
    use base64::Engine;
    let data = payload["data"].as_str().expect("payload data");
    let bytes = base64::engine::general_purpose::STANDARD.decode(data).expect("base64");
    serde_json::from_slice(&bytes).expect("json payload")
}

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
    cli(&["workflow", "start", "--type", "app:flow", "--task-queue", &queue, "--workflow-id", "killed-1"]).expect_success();
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
            "workflow", "start", "--type", "app:slow", "--task-queue", &queue,
            "--workflow-id", &format!("inflight-{i}"), "--input", &i.to_string(),
        ])
        .expect_success();
    }
    first.signal("TERM");
    let took = first.wait_exit(Duration::from_secs(30));
    assert!(took < Duration::from_secs(5), "SIGTERM took {took:?}");

    let _second = Tempest::start(dir.path(), &dir.path().join("second.log"));
    for i in 0..50 {
        let out = cli(&["workflow", "result", "--workflow-id", &format!("inflight-{i}"), "-o", "json"]).expect_success();
        let result: Value = serde_json::from_str(&out.stdout).expect("json");
        assert_eq!(result.get("result").cloned().unwrap_or(result), json!(i + 1), "inflight-{i}");
    }
}
