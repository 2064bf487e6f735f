//! The harness against a real `temporal` binary: the shared server answers the CLI, servers with
//! options are separate, and no server outlives its owner or the test process.

use std::process::Command;
use std::time::Duration;

use tempest_testkit::{DevServerOptions, address, dev_server, temporal_cli, unique_task_queue, wait_until};

/// Set in the copy of this binary that `server_dies_with_the_test_process` runs.
const CHILD_MODE: &str = "TEMPEST_TESTKIT_CHILD_MODE";

fn server_pids(port: u16) -> Vec<u32> {
    let pattern = format!("temporal server start-dev .*--port {port}( |$)");
    let out = Command::new("pgrep").arg("-f").arg(&pattern).output().expect("pgrep runs");
    String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| l.trim().parse().ok()).collect()
}

fn gone(port: u16) -> bool {
    wait_until(Duration::from_secs(10), Duration::from_millis(20), || server_pids(port).is_empty()).is_ok()
}

#[test]
fn shared_server_answers_the_cli() {
    assert_eq!(address(), dev_server().address());
    assert!(address().starts_with("127.0.0.1:"));
    let described =
        temporal_cli(["operator", "namespace", "describe", "--namespace", "default", "-o", "json"]).expect_success();
    assert!(described.stdout.contains("NAMESPACE_STATE_REGISTERED"), "{}", described.stdout);

    let missing = temporal_cli(["workflow", "describe", "--workflow-id", &unique_task_queue("no-such-workflow")]);
    assert!(!missing.success(), "describing a missing workflow must fail: {missing:?}");
}

#[test]
fn options_start_a_separate_server_with_search_attributes() {
    let server = DevServerOptions::new()
        .search_attribute("TempestCustomer", "Keyword")
        .start()
        .expect("server with a search attribute");
    assert_ne!(server.port(), dev_server().port());
    let listed = server.cli(["operator", "search-attribute", "list"]).expect("runs").expect_success();
    assert!(listed.stdout.contains("TempestCustomer"), "{}", listed.stdout);

    let port = server.port();
    assert_eq!(server_pids(port).len(), 1);
    drop(server);
    assert!(gone(port), "dropped server still running");
}

#[test]
fn server_dies_with_the_test_process() {
    if std::env::var_os(CHILD_MODE).is_some() {
        // The child: start the shared server, report its port, exit without running destructors.
        println!("PORT={}", dev_server().port());
        std::process::exit(0);
    }
    let out = Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", "server_dies_with_the_test_process", "--nocapture", "--test-threads=1"])
        .env(CHILD_MODE, "1")
        .output()
        .expect("child test process runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let port: u16 = stdout
        .split_once("PORT=")
        .and_then(|(_, rest)| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("child printed no port: {stdout}\n{}", String::from_utf8_lossy(&out.stderr)));
    assert!(gone(port), "server on port {port} outlived its test process");
}

#[tokio::test]
async fn async_cli_runs_off_the_runtime_thread() {
    let listed = tempest_testkit::temporal_cli_async(["workflow", "list", "--limit", "1"]).await;
    listed.expect_success();
}
