//! Checks that need every entry: references point at existing entries of the right kind, env
//! routers do not loop, and the start order has no cycles.

use std::collections::HashMap;

use crate::diagnostic::Diagnostic;
use crate::env::StorageConfig;
use crate::graph;
use crate::id::EntryId;
use crate::kinds::EntryKind;
use crate::loader::{Declared, Loaded};
use crate::reference::{Expect, Reference};
use crate::source::SourceFile;
use crate::suggest;

/// Reports references to missing entries and to entries of the wrong kind.
pub(crate) fn references(
    loaded: &[Loaded],
    declared: &[Declared<'_>],
    files: &[SourceFile],
    diagnostics: &mut Vec<Diagnostic>,
) {
    let mut by_id: HashMap<&EntryId, &Declared<'_>> = HashMap::new();
    for entry in declared {
        by_id.entry(&entry.id).or_insert(entry);
    }
    for item in loaded {
        for reference in &item.references {
            let message = match by_id.get(&reference.target) {
                Some(target) if !target.is_known() && reference.expect != Expect::Any => format!(
                    "`{}` has kind `{}`, which Tempest ignores (expected {})",
                    reference.target,
                    target.kind.value,
                    reference.expect.describe()
                ),
                Some(target) if target.is_known() && !reference.expect.accepts(&target.kind.value) => {
                    format!(
                        "`{}` is a `{}` entry (expected {})",
                        reference.target,
                        target.kind.value,
                        reference.expect.describe()
                    )
                }
                Some(_) => continue,
                None => {
                    let candidates: Vec<String> = declared
                        .iter()
                        .filter(|d| reference.expect.accepts(&d.kind.value))
                        .map(|d| d.id.to_string())
                        .collect();
                    let target = reference.target.to_string();
                    let hint = match suggest::closest(&target, candidates.iter().map(String::as_str)) {
                        Some(close) => format!("did you mean `{close}`?"),
                        None => format!("expected {}", reference.expect.describe()),
                    };
                    format!("entry `{target}` does not exist ({hint})")
                }
            };
            diagnostics.push(at_reference(item, reference, files, declared, message));
        }
    }
}

fn at_reference(
    item: &Loaded,
    reference: &Reference,
    files: &[SourceFile],
    declared: &[Declared<'_>],
    message: String,
) -> Diagnostic {
    let file = &files[declared[item.declared].file];
    Diagnostic::new(file.display.clone(), reference.at.line, reference.at.col, message)
        .with_entry(item.id.clone())
        .with_field(reference.field.clone())
}

/// Reports env routers that reach themselves.
pub(crate) fn router_loops(
    loaded: &[Loaded],
    declared: &[Declared<'_>],
    files: &[SourceFile],
    diagnostics: &mut Vec<Diagnostic>,
) {
    let routers: Vec<&Loaded> = loaded
        .iter()
        .filter(|item| {
            matches!(item.entry.as_ref().map(|e| &e.kind), Some(EntryKind::EnvStorage(StorageConfig::Router { .. })))
        })
        .collect();
    report_cycles(
        &routers,
        |_| true,
        "env routers loop",
        "a router must not reach itself",
        declared,
        files,
        diagnostics,
    );
}

/// The start order of supervised and registered entries; cycles are reported.
pub(crate) fn start_order(
    loaded: &[Loaded],
    declared: &[Declared<'_>],
    files: &[SourceFile],
    diagnostics: &mut Vec<Diagnostic>,
) -> Vec<EntryId> {
    let nodes: Vec<&Loaded> =
        loaded.iter().filter(|item| item.entry.as_ref().is_some_and(|entry| is_started(&entry.kind))).collect();
    report_cycles(
        &nodes,
        |reference| reference.dependency,
        "dependency cycle",
        "remove one of these dependencies",
        declared,
        files,
        diagnostics,
    )
    .into_iter()
    .map(|index| nodes[index].id.clone())
    .collect()
}

/// Clients, workers, and Lua entries registered with a worker.
fn is_started(kind: &EntryKind) -> bool {
    match kind {
        EntryKind::Client(_) | EntryKind::Worker(_) => true,
        EntryKind::Lua(lua) => lua.registration.is_some(),
        _ => false,
    }
}

/// Orders `nodes` by their references (those `follow` accepts), dependencies first and ties
/// in declaration order; reports each cycle at the reference that leaves its first node.
fn report_cycles(
    nodes: &[&Loaded],
    follow: impl Fn(&Reference) -> bool,
    what: &str,
    expected: &str,
    declared: &[Declared<'_>],
    files: &[SourceFile],
    diagnostics: &mut Vec<Diagnostic>,
) -> Vec<usize> {
    let mut sorted: Vec<usize> = (0..nodes.len()).collect();
    sorted.sort_by_key(|&i| nodes[i].declared);
    let nodes: Vec<&Loaded> = sorted.iter().map(|&i| nodes[i]).collect();
    let position: HashMap<&EntryId, usize> = nodes.iter().enumerate().map(|(i, item)| (&item.id, i)).collect();
    let kind_of = |i: usize| nodes[i].entry.as_ref().map_or("", |entry| entry.kind.name());
    let edges: Vec<Vec<usize>> = nodes
        .iter()
        .map(|item| {
            let mut targets = Vec::new();
            for reference in item.references.iter().filter(|r| follow(r)) {
                // References to the wrong kind were reported already; they order nothing.
                if let Some(&target) = position.get(&reference.target)
                    && reference.expect.accepts(kind_of(target))
                    && !targets.contains(&target)
                {
                    targets.push(target);
                }
            }
            targets
        })
        .collect();
    match graph::topological_order(&edges) {
        Ok(order) => order.into_iter().map(|i| sorted[i]).collect(),
        Err(cycles) => {
            for cycle in cycles {
                let path: Vec<String> = cycle.iter().map(|&i| nodes[i].id.to_string()).collect();
                let (from, to) = (nodes[cycle[0]], &nodes[cycle[1]].id);
                let Some(reference) = from.references.iter().find(|r| follow(r) && &r.target == to) else {
                    continue;
                };
                let message = format!("{what}: {} ({expected})", path.join(" -> "));
                diagnostics.push(at_reference(from, reference, files, declared, message));
            }
            Vec::new()
        }
    }
}
