//! `tempest replay DIR HISTORY...`: replays recorded workflow histories against the current Lua
//! sources of every worker in DIR and reports, per file, whether the code still produces the
//! recorded commands. Needs no server.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use tempest_lua::workflow::EngineConfig;
use tempest_registry::Registry;
use tempest_temporal::history_file;

use crate::{RUNTIME_FAILURE, USER_ERROR};

/// A history file that parsed, waiting for its replay verdict.
struct Readable {
    file: PathBuf,
    workflow_id: String,
    run_id: String,
}

pub fn run(dir: &Path, files: &[PathBuf]) -> ExitCode {
    let registry = match Registry::load(dir) {
        Ok(registry) => {
            for warning in registry.warnings() {
                tracing::warn!("{warning}");
            }
            registry
        }
        Err(errors) => {
            eprintln!("{}", errors.report);
            return ExitCode::from(USER_ERROR);
        }
    };
    let engine = all_workflows(&registry);

    let mut unreadable = 0;
    let mut readable = Vec::new();
    let mut histories = Vec::new();
    for file in files {
        match history_file::read_history_file(file) {
            Ok((workflow_id, history)) => {
                let workflow_id = workflow_id.unwrap_or_else(|| file_stem(file));
                let run_id = history_file::run_id(&history).to_owned();
                histories.push((workflow_id.clone(), history));
                readable.push(Readable { file: file.clone(), workflow_id, run_id });
            }
            Err(error) => {
                println!("FAIL {error}");
                unreadable += 1;
            }
        }
    }

    let failures = if histories.is_empty() {
        HashMap::new()
    } else {
        match replay(engine, histories) {
            Ok(failures) => failures,
            Err(message) => {
                eprintln!("tempest replay: {message}");
                return ExitCode::from(RUNTIME_FAILURE);
            }
        }
    };

    let mut mismatched = 0;
    for history in &readable {
        let file = history.file.display();
        let workflow_id = &history.workflow_id;
        match failures.get(&history.run_id) {
            None => println!("ok   {file} ({workflow_id})"),
            Some(message) => {
                mismatched += 1;
                println!("FAIL {file} ({workflow_id}): {}", indent(&concise(message)));
            }
        }
    }
    println!("{}", summary(files.len(), mismatched, unreadable));
    if mismatched + unreadable == 0 { ExitCode::SUCCESS } else { ExitCode::from(USER_ERROR) }
}

/// One engine holding the workflows of every worker: a history may come from any of them.
fn all_workflows(registry: &Registry) -> EngineConfig {
    let mut engine = EngineConfig::default();
    let mut seen = HashSet::new();
    for (id, _) in registry.workers() {
        let Some(plan) = tempest_temporal::worker_plan(registry, id) else { continue };
        let EngineConfig { workflows, activities, deadlock_timeout, pid_host } = plan.engine;
        for workflow in workflows {
            if seen.insert(workflow.type_name.clone()) {
                engine.workflows.push(workflow);
            }
        }
        engine.activities.extend(activities);
        // The most lenient limit: replay must not fail where the live worker would not.
        engine.deadlock_timeout = engine.deadlock_timeout.max(deadlock_timeout);
        if engine.pid_host.is_empty() {
            engine.pid_host = pid_host;
        }
    }
    engine
}

/// Replays everything in one replay worker; returns failure messages by run ID.
fn replay(
    engine: EngineConfig,
    histories: Vec<(String, history_file::History)>,
) -> Result<HashMap<String, String>, String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    let failures = runtime.block_on(tempest_temporal::replay::replay(engine, histories)).map_err(|e| e.to_string())?;
    let mut by_run: HashMap<String, String> = HashMap::new();
    for failure in failures {
        by_run
            .entry(failure.run_id)
            .and_modify(|message| {
                message.push('\n');
                message.push_str(&failure.message);
            })
            .or_insert(failure.message);
    }
    Ok(by_run)
}

fn file_stem(file: &Path) -> String {
    file.file_stem().map_or_else(|| file.display().to_string(), |s| s.to_string_lossy().into_owned())
}

/// Core reports a failed replay as the Debug form of a `Failure`; keep its message, the eviction
/// reason unless the message carries a `[TMPRL....]` code, and what follows the failure
/// (Tempest's note on the Lua line). Any other shape is shown whole.
fn concise(message: &str) -> String {
    const FAILURE: &str = "Workflow activation completion failed: Failure { failure: Some(Failure { message: \"";
    let Some(at) = message.find(FAILURE) else { return message.to_owned() };
    let body = &message[at + FAILURE.len()..];
    let Some(length) = body.find("\", source: ") else { return message.to_owned() };
    let core_message = &body[..length];
    let tail = body.find("force_cause: ").and_then(|i| body[i..].find(" }").map(|j| &body[i + j + 2..])).unwrap_or("");
    let reason = message[..at].trim_end_matches(": ").rsplit(": ").next().unwrap_or("");
    if core_message.starts_with("[TMPRL") || reason.is_empty() {
        format!("{core_message}{tail}")
    } else {
        format!("{reason}: {core_message}{tail}")
    }
}

/// Continuation lines of a multi-line message, indented under the `FAIL` line.
fn indent(message: &str) -> String {
    message.trim_end().replace('\n', "\n     ")
}

fn summary(total: usize, mismatched: usize, unreadable: usize) -> String {
    let noun = if total == 1 { "history" } else { "histories" };
    let ok = total - mismatched - unreadable;
    let mut text = format!("{total} {noun}: {ok} ok, {mismatched} failed");
    if unreadable > 0 {
        text.push_str(&format!(", {unreadable} unreadable"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_counts() {
        assert_eq!(summary(1, 0, 0), "1 history: 1 ok, 0 failed");
        assert_eq!(summary(3, 1, 1), "3 histories: 1 ok, 1 failed, 1 unreadable");
    }

    #[test]
    fn core_failures_are_shortened_to_their_message() {
        let message = "workflow code diverged from its history: Nondeterminism: Workflow activation completion failed: \
            Failure { failure: Some(Failure { message: \"[TMPRL1100] Nondeterminism error: Activity type of scheduled event 'a' \
            does not match activity type of activity command 'b'\", source: \"\", cause: None }), \
            force_cause: NonDeterministicError }; the current code issued: ScheduleActivity(b) seq 1 at flow.lua:5";
        assert_eq!(
            concise(message),
            "[TMPRL1100] Nondeterminism error: Activity type of scheduled event 'a' does not match activity type of \
             activity command 'b'; the current code issued: ScheduleActivity(b) seq 1 at flow.lua:5"
        );
        assert_eq!(concise("Fatal: something else"), "Fatal: something else");
        let unknown = "LangFail: Workflow activation completion failed: Failure { failure: Some(Failure { \
            message: \"workflow type `x` is not registered\", source: \"\" }), force_cause: Unspecified }";
        assert_eq!(concise(unknown), "LangFail: workflow type `x` is not registered");
    }

    #[test]
    fn continuation_lines_are_indented() {
        assert_eq!(indent("a\nb\n"), "a\n     b");
    }
}
