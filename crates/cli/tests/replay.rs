//! `tempest replay` as a process: a history recorded from the real dev server (exported with
//! `temporal workflow show --output json`) replays cleanly against the code that made it, and a
//! changed workflow is reported as nondeterministic with its Lua line; unreadable files fail
//! with a clear message. The project under `replay/project` recorded `replay/captured.json`.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

const PROJECT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/replay/project");
const CAPTURED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/replay/captured.json");

/// `tempest run DIR`, killed when dropped.
struct Worker(Child);

impl Worker {
    fn start(dir: &Path, task_queue: &str) -> Worker {
        let log = dir.join("worker.log");
        let log_file = std::fs::File::create(&log).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_tempest"))
            .arg("run")
            .arg(dir)
            .env("TEMPORAL_ADDRESS", tempest_testkit::address())
            .env("TEMPEST_TASK_QUEUE", task_queue)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("spawn tempest run");
        let worker = Worker(child);
        let started = tempest_testkit::wait_until(Duration::from_secs(60), Duration::from_millis(50), || {
            std::fs::read_to_string(&log).is_ok_and(|l| l.contains("worker started"))
        });
        assert!(started.is_ok(), "tempest did not start:\n{}", std::fs::read_to_string(&log).unwrap_or_default());
        worker
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A copy of the fixture project in a temp dir, so a test can change its Lua.
fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for name in ["_index.yaml", "flow.lua"] {
        std::fs::copy(Path::new(PROJECT).join(name), dir.path().join(name)).expect("copy fixture project");
    }
    dir
}

/// `tempest replay DIR FILES...` with no server reachable: replay must not need one.
fn replay(dir: &Path, files: &[&Path]) -> (Option<i32>, String) {
    let output: Output = Command::new(env!("CARGO_BIN_EXE_tempest"))
        .arg("replay")
        .arg(dir)
        .args(files)
        .env("TEMPORAL_ADDRESS", "127.0.0.1:1")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .expect("run tempest replay");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.code(), text)
}

/// Whether `text` holds `file:LINE` for some line number.
fn names_lua_line(text: &str, file: &str) -> bool {
    let pattern = format!("{file}:");
    text.match_indices(&pattern).any(|(at, _)| text[at + pattern.len()..].starts_with(|c: char| c.is_ascii_digit()))
}

fn call_shout_first(dir: &Path) {
    let flow = dir.join("flow.lua");
    let source = std::fs::read_to_string(&flow).expect("flow.lua");
    let changed = source.replace(
        r#"local greeting = funcs.call("app:greet", name)"#,
        "local loud = funcs.call(\"app:shout\", name)\n  local greeting = funcs.call(\"app:greet\", loud)",
    );
    assert_ne!(changed, source, "the fixture workflow no longer has the line this test changes");
    std::fs::write(&flow, changed).expect("write flow.lua");
}

#[test]
fn a_recorded_history_replays_and_a_changed_workflow_is_nondeterministic() {
    let dir = project();
    let queue = tempest_testkit::unique_task_queue("replay");
    let workflow_id = format!("{queue}-run");
    let worker = Worker::start(dir.path(), &queue);
    tempest_testkit::temporal_cli([
        "workflow",
        "execute",
        "--type",
        "app:flow",
        "--task-queue",
        &queue,
        "--workflow-id",
        &workflow_id,
        "--input",
        "\"replay\"",
    ])
    .expect_success();
    let exported =
        tempest_testkit::temporal_cli(["workflow", "show", "--workflow-id", &workflow_id, "--output", "json"])
            .expect_success();
    drop(worker);
    let history = dir.path().join("history.json");
    std::fs::write(&history, exported.stdout).expect("write history");

    let (code, output) = replay(dir.path(), &[&history]);
    assert_eq!(code, Some(0), "{output}");
    assert!(output.contains(&format!("ok   {} ({workflow_id})", history.display())), "{output}");
    assert!(output.contains("1 history: 1 ok, 0 failed"), "{output}");

    call_shout_first(dir.path());
    let (code, output) = replay(dir.path(), &[&history]);
    assert_eq!(code, Some(1), "{output}");
    assert!(output.contains(&format!("FAIL {} ({workflow_id}): ", history.display())), "{output}");
    assert!(output.contains("TMPRL1100"), "{output}");
    assert!(names_lua_line(&output, "flow.lua"), "no flow.lua:LINE in:\n{output}");
}

#[test]
fn the_stored_fixture_replays_without_a_server() {
    let (code, output) = replay(Path::new(PROJECT), &[Path::new(CAPTURED)]);
    assert_eq!(code, Some(0), "{output}");
    assert!(output.contains(&format!("ok   {CAPTURED} (replay-fixture)")), "{output}");

    let dir = project();
    call_shout_first(dir.path());
    let (code, output) = replay(dir.path(), &[Path::new(CAPTURED)]);
    assert_eq!(code, Some(1), "{output}");
    assert!(output.contains("Activity type of scheduled event 'app:greet' does not match"), "{output}");
    assert!(names_lua_line(&output, "flow.lua"), "no flow.lua:LINE in:\n{output}");
}

#[test]
fn unreadable_files_fail_with_a_clear_message() {
    let dir = project();
    let garbage = dir.path().join("garbage.bin");
    std::fs::write(&garbage, "this is not a history\n").expect("write garbage");
    let not_history = dir.path().join("list.json");
    std::fs::write(&not_history, r#"{"workflows": []}"#).expect("write json");
    let missing = dir.path().join("missing.json");

    let (code, output) = replay(dir.path(), &[&garbage, &not_history, &missing, Path::new(CAPTURED)]);
    assert_eq!(code, Some(1), "{output}");
    assert!(
        output.contains(&format!("FAIL {}: neither JSON nor a binary protobuf History (", garbage.display())),
        "{output}"
    );
    assert!(
        output.contains(&format!(
            "FAIL {}: not a workflow history: expected a JSON object with an `events` array",
            not_history.display()
        )),
        "{output}"
    );
    assert!(output.contains(&format!("FAIL {}: cannot read: ", missing.display())), "{output}");
    // The readable history is still replayed.
    assert!(output.contains(&format!("ok   {CAPTURED} (replay-fixture)")), "{output}");
    assert!(output.contains("4 histories: 1 ok, 0 failed, 3 unreadable"), "{output}");
}
