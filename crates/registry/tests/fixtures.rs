//! Broken definition sets under `tests/fixtures/<case>/`: each loads to exactly the report in
//! its `expected.txt` (errors and warnings, or only warnings when loading succeeds).
//!
//! A case may hold `process-env.txt` (`KEY=VALUE` lines) as its process environment; nothing
//! reads the real environment. Run with `UPDATE_EXPECTED=1` to rewrite the expected files
//! (then read every diff).

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tempest_registry::{LoadOptions, MapEnv, Registry};

fn process_env(case: &Path) -> MapEnv {
    let text = fs::read_to_string(case.join("process-env.txt")).unwrap_or_default();
    text.lines().filter_map(|line| line.split_once('=')).collect()
}

fn report(case: &Path) -> String {
    let options = LoadOptions { process_env: Arc::new(process_env(case)) };
    match Registry::load_with(case, options) {
        Ok(registry) => registry.warnings().iter().map(|w| format!("{w}\n")).collect(),
        Err(errors) => format!("{errors}\n"),
    }
}

#[test]
fn every_fixture_reports_exactly_its_expected_text() {
    let root = PathBuf::from("tests/fixtures");
    let mut cases: Vec<PathBuf> = fs::read_dir(&root)
        .expect("tests/fixtures exists")
        .map(|entry| entry.expect("readable fixture dir").path())
        .filter(|path| path.is_dir())
        .collect();
    cases.sort();
    assert!(cases.len() >= 25, "only {} fixture cases", cases.len());
    let update = std::env::var_os("UPDATE_EXPECTED").is_some();
    let mut failures = Vec::new();
    for case in &cases {
        let actual = report(case);
        let expected_path = case.join("expected.txt");
        if update {
            fs::write(&expected_path, &actual).expect("write expected.txt");
            continue;
        }
        let expected = fs::read_to_string(&expected_path).unwrap_or_default();
        if actual != expected {
            failures.push(format!("--- {}\nexpected:\n{expected}actual:\n{actual}", case.display()));
        }
    }
    assert!(failures.is_empty(), "{} fixture(s) differ:\n{}", failures.len(), failures.join("\n"));
}
