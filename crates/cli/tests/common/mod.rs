//! Helpers for tests that run `tempest` as a process against the testkit dev server.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub struct Tempest(Child);

impl Tempest {
    pub fn start(dir: &Path, log: &Path) -> Tempest {
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

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill").args([format!("-{signal}"), self.0.id().to_string()]).status().expect("kill");
        assert!(status.success());
    }

    /// Waits for the process to exit; returns how long that took.
    pub fn wait_exit(&mut self, timeout: Duration) -> Duration {
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

pub fn project(files: &[(&str, &str)], entries: &str) -> (tempfile::TempDir, String) {
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

pub fn cli(args: &[&str]) -> tempest_testkit::CliOutput {
    tempest_testkit::temporal_cli(args.iter().copied())
}

pub fn history(workflow_id: &str) -> Value {
    let out = cli(&["workflow", "show", "--workflow-id", workflow_id, "-o", "json"]).expect_success();
    serde_json::from_str(&out.stdout).expect("history json")
}

pub fn events(workflow_id: &str) -> Vec<Value> {
    history(workflow_id)["events"].as_array().cloned().unwrap_or_default()
}

/// A json/plain payload as `temporal workflow show -o json` prints it (proto JSON: base64 data).
pub fn decode(payload: &Value) -> Value {
    use base64::Engine;
    let data = payload["data"].as_str().expect("payload data");
    let bytes = base64::engine::general_purpose::STANDARD.decode(data).expect("base64");
    serde_json::from_slice(&bytes).expect("json payload")
}

/// Exports `workflow_id`'s history with the CLI and asserts `tempest replay DIR FILE` accepts it.
pub fn assert_replays(dir: &Path, workflow_id: &str) {
    let out = cli(&["workflow", "show", "--workflow-id", workflow_id, "--output", "json"]).expect_success();
    let file = tempfile::NamedTempFile::new().expect("history file");
    std::fs::write(file.path(), out.stdout).expect("write history");
    let replay = Command::new(env!("CARGO_BIN_EXE_tempest"))
        .arg("replay")
        .arg(dir)
        .arg(file.path())
        .env("TEMPORAL_ADDRESS", tempest_testkit::address())
        .env("RUST_LOG", "error")
        .output()
        .expect("run tempest replay");
    let stdout = String::from_utf8_lossy(&replay.stdout);
    assert!(
        replay.status.success() && stdout.starts_with("ok"),
        "replay of {workflow_id} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&replay.stderr)
    );
}
