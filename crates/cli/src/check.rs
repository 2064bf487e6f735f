//! `tempest check [DIR]`: loads the definitions, checks every Lua entry without running it, and
//! prints one sorted report — or, when nothing is wrong, the start order.
//!
//! Output (stdout), problems first, one per line, sorted by file, line and column:
//!
//! ```text
//! src/_index.yaml:9:11: warning: entry `app:api`: field `kind`: unknown kind `http.service`; ...
//! src/flow.lua:3:15: entry `app:flow`: field `source`: require("http_client") is not allowed ...
//! 1 error, 1 warning
//! ```
//!
//! Lua entries are checked even when the definitions have errors: a failed load still hands back
//! the Lua entries whose own fields were valid, so both kinds of problem show in one run.
//!
//! With no errors (warnings, if any, come first):
//!
//! ```text
//! start order:
//!   1. app:temporal_client (temporal.client)
//!   2. app:worker (temporal.worker, task queue `orders`)
//!   3. app:order_workflow (workflow.lua, workflow `app:order_workflow` on app:worker)
//!   4. app:charge_payment (function.lua, activity on app:worker)
//! ok: 4 entries, 0 warnings
//! ```

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;

use tempest_registry::{EntryId, EntryKind, Registration, Registry, Report};

use crate::lua_checks;

/// Runs the check, prints the result and returns the exit code: 1 if anything is an error.
pub fn run(dir: &Path) -> ExitCode {
    let outcome = check(dir);
    let text = render(&outcome);
    if let Err(error) = std::io::stdout().lock().write_all(text.as_bytes()) {
        tracing::error!(%error, "cannot write the report to stdout");
        return ExitCode::from(crate::RUNTIME_FAILURE);
    }
    if outcome.report.has_errors() { ExitCode::from(crate::USER_ERROR) } else { ExitCode::SUCCESS }
}

/// What one check found.
struct Outcome {
    /// Registry and Lua problems together.
    report: Report,
    /// Present when the definitions loaded.
    loaded: Option<Loaded>,
}

struct Loaded {
    /// One description per entry of the start order.
    start_order: Vec<String>,
    entries: usize,
}

fn check(dir: &Path) -> Outcome {
    let registry = match Registry::load(dir) {
        Ok(registry) => registry,
        Err(errors) => {
            let lua_problems = lua_checks::diagnose(errors.lua_entries());
            let mut report = errors.report;
            report.extend(lua_problems);
            return Outcome { report, loaded: None };
        }
    };
    tracing::debug!(entries = registry.entries().len(), "definitions loaded");
    let mut report: Report = registry.warnings().iter().cloned().collect();
    report.extend(lua_checks::diagnose(registry.lua_entries()));
    let start_order = registry.start_order().iter().map(|id| describe(&registry, id)).collect();
    Outcome { report, loaded: Some(Loaded { start_order, entries: registry.entries().len() }) }
}

/// `app:worker (temporal.worker, task queue `orders`)`.
fn describe(registry: &Registry, id: &EntryId) -> String {
    let Some(entry) = registry.get(id) else {
        return id.to_string();
    };
    let detail = match &entry.kind {
        EntryKind::Worker(_) => registry.task_queue(id).map(|queue| format!(", task queue `{queue}`")),
        EntryKind::Lua(lua) => match &lua.registration {
            Some(Registration::Workflow { worker, .. }) => {
                let workflow_type = registry.workflow_type(id).unwrap_or_else(|| id.to_string());
                Some(format!(", workflow `{workflow_type}` on {worker}"))
            }
            Some(Registration::Activity { worker, local }) => {
                let local = if *local { "local " } else { "" };
                Some(format!(", {local}activity on {worker}"))
            }
            None => None,
        },
        _ => None,
    };
    format!("{id} ({}{})", entry.kind.name(), detail.unwrap_or_default())
}

fn render(outcome: &Outcome) -> String {
    let mut out = String::new();
    for diagnostic in outcome.report.diagnostics() {
        let _ = writeln!(out, "{diagnostic}");
    }
    let errors = outcome.report.errors().count();
    let warnings = count(outcome.report.warnings().count(), "warning");
    match &outcome.loaded {
        Some(loaded) if errors == 0 => {
            out.push_str("start order:\n");
            for (index, line) in loaded.start_order.iter().enumerate() {
                let _ = writeln!(out, "{:>3}. {line}", index + 1);
            }
            let _ = writeln!(out, "ok: {}, {warnings}", count(loaded.entries, "entry"));
        }
        _ => {
            let _ = writeln!(out, "{}, {warnings}", count(errors, "error"));
        }
    }
    out
}

/// `1 error`, `2 errors`, `1 entry`, `0 entries`.
fn count(n: usize, noun: &str) -> String {
    match (n, noun.strip_suffix('y')) {
        (1, _) => format!("1 {noun}"),
        (_, Some(stem)) => format!("{n} {stem}ies"),
        (_, None) => format!("{n} {noun}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tempest_registry::Diagnostic;

    #[test]
    fn counts_read_as_english() {
        assert_eq!(count(1, "error"), "1 error");
        assert_eq!(count(0, "warning"), "0 warnings");
        assert_eq!(count(3, "entry"), "3 entries");
        assert_eq!(count(1, "entry"), "1 entry");
    }

    #[test]
    fn a_warning_alone_still_prints_the_start_order() {
        let outcome = Outcome {
            report: [Diagnostic::new("a.yaml", 2, 3, "odd").warning()].into_iter().collect(),
            loaded: Some(Loaded { start_order: vec!["app:c (temporal.client)".to_owned()], entries: 1 }),
        };
        assert_eq!(
            render(&outcome),
            "a.yaml:2:3: warning: odd\nstart order:\n  1. app:c (temporal.client)\nok: 1 entry, 1 warning\n"
        );
    }

    #[test]
    fn errors_end_with_a_summary_and_no_start_order() {
        let outcome = Outcome {
            report: [Diagnostic::new("b.lua", 1, 1, "bad"), Diagnostic::new("a.yaml", 4, 2, "worse")]
                .into_iter()
                .collect(),
            loaded: None,
        };
        assert_eq!(render(&outcome), "a.yaml:4:2: worse\nb.lua:1:1: bad\n2 errors, 0 warnings\n");
    }
}
