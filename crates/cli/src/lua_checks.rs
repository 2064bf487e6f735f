//! Problems in Lua entries found without running them: syntax errors, literal `require`s of
//! modules an entry does not declare, and non-deterministic modules in workflows — including
//! those required by the libraries a workflow imports.

use std::collections::{BTreeSet, HashMap};

use tempest_lua::check::{self, Require};
use tempest_registry::{Diagnostic, EntryId, LuaEntry, LuaKind, WORKFLOW_MODULES};

/// Every problem of these entries, unsorted.
pub fn diagnose<'a>(entries: impl IntoIterator<Item = (&'a EntryId, &'a LuaEntry)>) -> Vec<Diagnostic> {
    let entries: HashMap<&EntryId, &LuaEntry> = entries.into_iter().collect();
    let mut ids: Vec<&EntryId> = entries.keys().copied().collect();
    ids.sort();
    let mut found = Vec::new();
    // Each library's workflow problems are reported once, naming the first workflow that
    // imports it.
    let mut libraries_checked = BTreeSet::new();
    for id in ids {
        let lua = entries[id];
        check_entry(id, lua, &mut found);
        if lua.kind == LuaKind::Workflow {
            gate_imports(id, lua, &entries, &mut libraries_checked, &mut found);
        }
    }
    found
}

/// Syntax, and each literal `require` against the entry's `modules:`, `imports:` and (for
/// workflows) the deterministic modules.
fn check_entry(id: &EntryId, lua: &LuaEntry, found: &mut Vec<Diagnostic>) {
    let chunk_name = lua.source.chunk_name.to_string_lossy();
    if let Err(error) = check::compile(&chunk_name, &lua.source.text) {
        // Line 0: Lua gave no position; the diagnostic then names the file only.
        let line = match error.line {
            0 => 0,
            line => line as usize + lua.source.line_offset,
        };
        found.push(at(id, lua, line, 1, error.message));
    }
    for require in check::literal_requires(&lua.source.text) {
        let name = require.name.as_str();
        if lua.imports.contains_key(name) {
            continue;
        }
        if lua.kind == LuaKind::Workflow && !WORKFLOW_MODULES.contains(&name) {
            let message = not_deterministic(&require, None);
            found.push(at_require(id, lua, &require, message));
        } else if !lua.modules.iter().any(|module| module == name) {
            let message = format!(
                "require(\"{name}\"): module `{name}` is not in the `modules:` list of this entry (add it there)"
            );
            found.push(at_require(id, lua, &require, message));
        }
    }
}

/// Follows a workflow's `imports:` (and theirs) and reports libraries requiring modules a
/// workflow may not use.
fn gate_imports(
    workflow: &EntryId,
    lua: &LuaEntry,
    entries: &HashMap<&EntryId, &LuaEntry>,
    checked: &mut BTreeSet<EntryId>,
    found: &mut Vec<Diagnostic>,
) {
    let mut pending: Vec<&EntryId> = lua.imports.values().collect();
    while let Some(library_id) = pending.pop() {
        if !checked.insert(library_id.clone()) {
            continue;
        }
        // A missing library is the registry's error to report.
        let Some(library) = entries.get(library_id) else {
            continue;
        };
        pending.extend(library.imports.values());
        for require in check::literal_requires(&library.source.text) {
            let name = require.name.as_str();
            if !library.imports.contains_key(name) && !WORKFLOW_MODULES.contains(&name) {
                let message = not_deterministic(&require, Some(workflow));
                found.push(at_require(library_id, library, &require, message));
            }
        }
    }
}

fn not_deterministic(require: &Require, imported_by: Option<&EntryId>) -> String {
    let via =
        imported_by.map(|workflow| format!(", and workflow `{workflow}` imports this library")).unwrap_or_default();
    format!(
        "require(\"{}\") is not allowed in workflows (it is not deterministic){via}; allowed: {}",
        require.name,
        WORKFLOW_MODULES.join(", ")
    )
}

fn at_require(id: &EntryId, lua: &LuaEntry, require: &Require, message: String) -> Diagnostic {
    let line = require.line as usize + lua.source.line_offset;
    let mut col = require.col as usize;
    if lua.source.inline {
        col += inline_indent(lua, require.line as usize, line).unwrap_or(0);
    }
    at(id, lua, line, col, message)
}

/// For Lua written inline in YAML, how many characters precede Lua line `lua_line` on line
/// `yaml_line` of the YAML file (the block indentation, or `source: "`), found by looking the
/// Lua line up in the file. `None` when it cannot be found (escapes in a quoted string).
fn inline_indent(lua: &LuaEntry, lua_line: usize, yaml_line: usize) -> Option<usize> {
    let code = lua.source.text.lines().nth(lua_line.checked_sub(1)?)?;
    let yaml = std::fs::read_to_string(&lua.source.chunk_name).ok()?;
    let written = yaml.lines().nth(yaml_line.checked_sub(1)?)?;
    let at = written.find(code)?;
    Some(written[..at].chars().count())
}

fn at(id: &EntryId, lua: &LuaEntry, line: usize, col: usize, message: String) -> Diagnostic {
    Diagnostic::new(lua.source.chunk_name.clone(), line, col, message).with_entry(id.clone()).with_field("source")
}
