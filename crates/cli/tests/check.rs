//! `tempest check` as a user runs it: the built binary on the definition sets under
//! `tests/fixtures/<case>/`, each printing exactly its `expected.txt`.
//!
//! Run with `UPDATE_EXPECTED=1` to rewrite the expected files (then read every diff).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn tempest(cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tempest"))
        .args(args)
        .current_dir(cwd)
        .env_remove("TEMPORAL_ADDRESS")
        .env_remove("RUST_LOG")
        .output()
        .expect("the tempest binary runs")
}

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Checks `tests/fixtures/<case>` and compares stdout and the exit code.
fn assert_case(case: &str, exit_code: i32) {
    let dir = format!("tests/fixtures/{case}");
    let output = tempest(&manifest_dir(), &["check", &dir]);
    let stdout = String::from_utf8(output.stdout).expect("stdout is UTF-8");
    let expected_path = manifest_dir().join(&dir).join("expected.txt");
    if std::env::var_os("UPDATE_EXPECTED").is_some() {
        fs::write(&expected_path, &stdout).expect("write expected.txt");
    }
    let expected = fs::read_to_string(&expected_path).expect("expected.txt exists");
    assert_eq!(stdout, expected, "stdout of `tempest check {dir}`");
    assert_eq!(
        output.status.code(),
        Some(exit_code),
        "exit code of `tempest check {dir}`; stderr:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn syntax_error_points_at_the_lua_file_and_line() {
    assert_case("syntax_error", 1);
}

#[test]
fn syntax_error_in_inline_source_points_at_the_yaml_line() {
    assert_case("inline_syntax_error", 1);
}

#[test]
fn http_client_is_rejected_in_a_workflow() {
    assert_case("http_client_in_workflow", 1);
}

#[test]
fn a_library_imported_by_a_workflow_is_gated_too() {
    assert_case("library_in_workflow", 1);
}

#[test]
fn require_of_a_module_not_in_modules_is_reported() {
    assert_case("module_not_listed", 1);
}

#[test]
fn registry_warnings_and_lua_errors_print_together_sorted() {
    assert_case("warning_and_lua_error", 1);
}

#[test]
fn registry_errors_and_lua_errors_print_together() {
    assert_case("registry_and_lua_errors", 1);
}

#[test]
fn success_prints_the_start_order() {
    assert_case("success", 0);
}

#[test]
fn the_orders_example_checks_clean_in_start_order() {
    let root = manifest_dir().join("../..");
    let output = tempest(&root, &["check", "examples/orders"]);
    let stdout = String::from_utf8(output.stdout).expect("stdout is UTF-8");
    assert_eq!(output.status.code(), Some(0), "stdout:\n{stdout}");
    let kinds: Vec<&str> =
        stdout.lines().filter_map(|line| line.split_once(" (")?.1.split([',', ')']).next()).collect();
    assert_eq!(kinds, ["temporal.client", "temporal.worker", "workflow.lua", "function.lua"], "stdout:\n{stdout}");
    assert!(stdout.starts_with("start order:\n"), "stdout:\n{stdout}");
    assert!(stdout.ends_with("ok: 4 entries, 0 warnings\n"), "stdout:\n{stdout}");
}

#[test]
fn dir_defaults_to_src() {
    let project = tempfile::tempdir().expect("temp dir");
    fs::create_dir(project.path().join("src")).expect("create src");
    fs::write(
        project.path().join("src/_index.yaml"),
        "namespace: app\nentries:\n  - name: c\n    kind: temporal.client\n",
    )
    .expect("write _index.yaml");
    let output = tempest(project.path(), &["check"]);
    let stdout = String::from_utf8(output.stdout).expect("stdout is UTF-8");
    assert!(stdout.starts_with("src/_index.yaml:3:11: entry `app:c`: field `address`:"), "stdout:\n{stdout}");
    assert_eq!(output.status.code(), Some(1));
}

#[test]
fn a_missing_dir_is_a_user_error() {
    let output = tempest(&manifest_dir(), &["check", "tests/fixtures/no_such_case"]);
    let stdout = String::from_utf8(output.stdout).expect("stdout is UTF-8");
    assert!(stdout.starts_with("tests/fixtures/no_such_case: cannot load definitions:"), "stdout:\n{stdout}");
    assert!(stdout.ends_with("\n1 error, 0 warnings\n"), "stdout:\n{stdout}");
    assert_eq!(output.status.code(), Some(1));
}

#[test]
fn bad_arguments_are_a_user_error() {
    let output = tempest(&manifest_dir(), &["check", "a", "b"]);
    assert_eq!(output.status.code(), Some(1));
    let output = tempest(&manifest_dir(), &["--help"]);
    assert_eq!(output.status.code(), Some(0));
}
