//! Loading a directory: read and parse every definition file, collect the entries, build the
//! env system, then read each entry with placeholders expanded. All problems are collected.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::Path;

use saphyr::{LoadableYamlNode, MarkedYaml, Scalar, YamlData};

use crate::diagnostic::Diagnostic;
use crate::env::{Env, ProcessLookup};
use crate::id::{self, EntryId};
use crate::kinds::lua::{self, LuaKind};
use crate::kinds::{Entry, EntryKind, Location, client, env as env_kind, worker};
use crate::reference::{Reference, References};
use crate::source::{self, Root, SourceFile};
use crate::walk::{Lookup, Node, Position, Spanned, Walker};

/// Kinds that are read; any other kind is a warning and the entry is ignored.
pub(crate) const KNOWN_KINDS: [&str; 12] = [
    "temporal.client",
    "temporal.worker",
    "workflow.lua",
    "function.lua",
    "process.lua",
    "library.lua",
    "env.storage.memory",
    "env.storage.file",
    "env.storage.os",
    "env.storage.static",
    "env.storage.router",
    "env.variable",
];

/// An entry found in a file, before its kind-specific fields are read.
pub(crate) struct Declared<'y> {
    pub(crate) file: usize,
    pub(crate) id: EntryId,
    pub(crate) name_at: Position,
    pub(crate) kind: Spanned<String>,
    node: &'y Node<'y>,
}

impl Declared<'_> {
    pub(crate) fn location(&self, files: &[SourceFile]) -> Location {
        Location { file: files[self.file].display.clone(), line: self.name_at.line, col: self.name_at.col }
    }

    pub(crate) fn is_known(&self) -> bool {
        KNOWN_KINDS.contains(&self.kind.value.as_str())
    }
}

/// One read entry with the references it makes (`entry` is `None` when it had errors; its
/// references are still checked so every problem is reported at once).
pub(crate) struct Loaded {
    pub(crate) id: EntryId,
    pub(crate) entry: Option<Entry>,
    pub(crate) references: Vec<Reference>,
    /// Index into the declared list (declaration order).
    pub(crate) declared: usize,
    /// Whether reading the entry's own fields reported an error. `entry` may still be `Some`
    /// then (a Lua entry whose source was read), but with the bad values left out.
    pub(crate) had_errors: bool,
}

/// Reads every file under `root`, returning the files and their text.
pub(crate) fn read_files(root: &Root, diagnostics: &mut Vec<Diagnostic>) -> Vec<(SourceFile, String)> {
    let files = match source::discover(root) {
        Ok(files) => files,
        Err(error) => {
            diagnostics.push(Diagnostic::new(root.display.clone(), 0, 0, format!("cannot list directory: {error}")));
            return Vec::new();
        }
    };
    files
        .into_iter()
        .filter_map(|file| match fs::read_to_string(&file.path) {
            Ok(text) => Some((file, text)),
            Err(error) => {
                diagnostics.push(Diagnostic::new(file.display.clone(), 0, 0, format!("cannot read file: {error}")));
                None
            }
        })
        .collect()
}

/// Parses one file; `None` for files that are not definition files (no top-level `namespace`).
pub(crate) fn parse_yaml<'t>(
    file: &SourceFile,
    text: &'t str,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<MarkedYaml<'t>> {
    match MarkedYaml::load_from_str(text) {
        Ok(documents) => documents.into_iter().next().filter(|document| {
            matches!(&document.data, YamlData::Mapping(map) if map.keys().any(|key| key.data.as_str() == Some("namespace")))
        }),
        Err(error) => {
            let marker = error.marker();
            diagnostics.push(Diagnostic::new(
                file.display.clone(),
                marker.line(),
                marker.col() + 1,
                format!("invalid YAML: {}", error.info()),
            ));
            None
        }
    }
}

/// Reads a file's top level (`version`, `namespace`, `entries`) and declares its entries.
pub(crate) fn declare<'y>(
    file_index: usize,
    file: &SourceFile,
    document: &'y Node<'y>,
    lookup: &dyn Lookup,
    declared: &mut Vec<Declared<'y>>,
    diagnostics: &mut Vec<Diagnostic>,
) {
    let mut walker = Walker::new(file, "", lookup, diagnostics);
    let Some(mut top) = walker.fields(document, "") else {
        return;
    };
    let _version = top.take("version");
    let _meta = top.take("meta");
    let namespace = walker.take_string(&mut top, "namespace");
    let entries = top.take("entries");
    walker.finish(top);
    let Some(namespace) = namespace else { return };
    if !id::is_valid_namespace(&namespace.value) {
        walker.error(
            namespace.at,
            "namespace",
            format!(
                "`{}` is not a valid namespace (expected dot-separated names such as `app.billing`)",
                namespace.value
            ),
        );
        return;
    }
    let Some(entries) = entries else {
        walker.error(Position::of(document), "entries", "missing required field (expected a list of entries)");
        return;
    };
    let YamlData::Sequence(items) = &entries.data else {
        walker.expected(entries, "entries", "a list of entries");
        return;
    };
    for (index, item) in items.iter().enumerate() {
        if let Some(entry) = declare_entry(&mut walker, file_index, &namespace.value, item, index) {
            declared.push(entry);
        }
    }
}

fn declare_entry<'y>(
    walker: &mut Walker<'_>,
    file: usize,
    namespace: &str,
    item: &'y Node<'y>,
    index: usize,
) -> Option<Declared<'y>> {
    let path = format!("entries[{index}]");
    let YamlData::Mapping(map) = &item.data else {
        walker.expected(item, &path, "an entry mapping with `name` and `kind`");
        return None;
    };
    let field = |name: &str| map.iter().find(|(k, _)| k.data.as_str() == Some(name)).map(|(_, v)| v);
    let Some(name_node) = field("name") else {
        walker.error(
            Position::of(item),
            &format!("{path}.name"),
            "missing required field (expected a unique entry name)",
        );
        return None;
    };
    let name = match &name_node.data {
        YamlData::Value(Scalar::String(name)) if id::is_valid_name(name) => name.to_string(),
        _ => {
            walker.expected(name_node, &format!("{path}.name"), "a name of letters, digits, `_`, `-` and `.`");
            return None;
        }
    };
    let id = EntryId::new(namespace, name);
    let name_at = Position::of(name_node);
    walker.entry = Some(id.clone());
    let kind = match field("kind") {
        Some(node) => match node.data.as_str() {
            Some(kind) => Some(Spanned { value: kind.to_owned(), at: Position::of(node) }),
            None => {
                walker.expected(node, "kind", "an entry kind such as `temporal.worker`");
                None
            }
        },
        None => {
            walker.error(name_at, "kind", "missing required field (expected an entry kind such as `workflow.lua`)");
            None
        }
    };
    walker.entry = None;
    Some(Declared { file, id, name_at, kind: kind?, node: item })
}

/// Reports unknown kinds (warnings) and duplicate IDs (errors at the second declaration).
pub(crate) fn check_declarations(declared: &[Declared<'_>], files: &[SourceFile], diagnostics: &mut Vec<Diagnostic>) {
    let mut first: HashMap<&EntryId, &Declared<'_>> = HashMap::new();
    for entry in declared {
        let display = &files[entry.file].display;
        if let Some(previous) = first.get(&entry.id) {
            diagnostics.push(
                Diagnostic::new(
                    display.clone(),
                    entry.name_at.line,
                    entry.name_at.col,
                    format!(
                        "duplicate entry name (first defined at {}; expected names unique within a namespace)",
                        previous.location(files)
                    ),
                )
                .with_entry(entry.id.clone())
                .with_field("name"),
            );
            continue;
        }
        first.insert(&entry.id, entry);
        if !entry.is_known() {
            diagnostics.push(
                Diagnostic::new(
                    display.clone(),
                    entry.kind.at.line,
                    entry.kind.at.col,
                    format!(
                        "unknown kind `{}`; the entry is ignored (Tempest understands: {})",
                        entry.kind.value,
                        KNOWN_KINDS.join(", ")
                    ),
                )
                .warning()
                .with_entry(entry.id.clone())
                .with_field("kind"),
            );
        }
    }
}

/// Reads the env entries into `env`, expanding their placeholders from the process alone.
pub(crate) fn load_env_entries(
    declared: &[Declared<'_>],
    files: &[SourceFile],
    root: &Root,
    env: &mut Env,
    process: &ProcessLookup<'_>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Vec<Loaded> {
    let mut loaded = Vec::new();
    for (index, entry) in declared.iter().enumerate() {
        if !entry.kind.value.starts_with("env.") || !entry.is_known() {
            continue;
        }
        let Some(item) = read_entry(entry, index, &files[entry.file], root, process, diagnostics) else {
            continue;
        };
        let added = match item.entry.as_ref().map(|entry| &entry.kind) {
            Some(EntryKind::EnvStorage(storage)) => env.add_storage(item.id.clone(), storage),
            Some(EntryKind::EnvVariable(variable)) => {
                env.add_variable(item.id.clone(), variable.clone());
                Ok(())
            }
            _ => Ok(()),
        };
        if let Err(error) = added {
            diagnostics.push(
                Diagnostic::new(
                    files[entry.file].display.clone(),
                    entry.name_at.line,
                    entry.name_at.col,
                    format!(
                        "cannot open the env file: {error} (expected an existing .env file, or `auto_create: true`)"
                    ),
                )
                .with_entry(entry.id.clone())
                .with_field("file_path"),
            );
        }
        loaded.push(item);
    }
    loaded
}

/// Reads every other known entry, expanding placeholders through `env`.
pub(crate) fn load_entries(
    declared: &[Declared<'_>],
    files: &[SourceFile],
    root: &Root,
    env: &Env,
    diagnostics: &mut Vec<Diagnostic>,
) -> Vec<Loaded> {
    declared
        .iter()
        .enumerate()
        .filter(|(_, entry)| entry.is_known() && !entry.kind.value.starts_with("env."))
        .filter_map(|(index, entry)| read_entry(entry, index, &files[entry.file], root, env, diagnostics))
        .collect()
}

fn read_entry(
    declared: &Declared<'_>,
    index: usize,
    file: &SourceFile,
    root: &Root,
    lookup: &dyn Lookup,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<Loaded> {
    let before = diagnostics.len();
    let mut walker = Walker::new(file, declared.id.namespace(), lookup, diagnostics);
    walker.entry = Some(declared.id.clone());
    walker.entry_at = declared.name_at;
    let mut fields = walker.fields(declared.node, "")?;
    let _ = (fields.take("name"), fields.take("kind"));
    let mut references = References::default();
    let kind_name = declared.kind.value.as_str();
    let mut meta = BTreeMap::new();
    let kind = if let Some(lua_kind) = LuaKind::from_kind(kind_name) {
        let parsed = lua::parse(&mut walker, &mut fields, &mut references, root, lua_kind);
        meta = parsed.meta;
        parsed.entry.map(EntryKind::Lua)
    } else {
        let kind = match kind_name {
            "temporal.client" => client::parse(&mut walker, &mut fields, &mut references).map(EntryKind::Client),
            "temporal.worker" => worker::parse(&mut walker, &mut fields, &mut references).map(EntryKind::Worker),
            "env.variable" => {
                env_kind::parse_variable(&mut walker, &mut fields, &mut references).map(EntryKind::EnvVariable)
            }
            other => other
                .strip_prefix("env.storage.")
                .and_then(|storage| env_kind::parse_storage(&mut walker, &mut fields, &mut references, storage))
                .map(EntryKind::EnvStorage),
        };
        if let Some(node) = fields.take("meta") {
            meta = walker.value_map(node, "meta");
        }
        kind
    };
    walker.finish(fields);
    let had_errors = walker.diagnostics.get(before..).is_some_and(|added| added.iter().any(Diagnostic::is_error));
    let location = Location { file: file.display.clone(), line: declared.name_at.line, col: declared.name_at.col };
    let entry = kind.map(|kind| Entry { id: declared.id.clone(), kind, meta, location });
    Some(Loaded { id: declared.id.clone(), entry, references: references.items, declared: index, had_errors })
}

/// Opens the root directory, or reports why not.
pub(crate) fn open_root(dir: &Path) -> Result<Root, Box<Diagnostic>> {
    Root::open(dir).map_err(|error| {
        Box::new(Diagnostic::new(
            dir.to_path_buf(),
            0,
            0,
            format!("cannot load definitions: {error} (expected a directory of YAML files)"),
        ))
    })
}
