//! Lua entries (`workflow.lua`, `function.lua`, `process.lua`, `library.lua`): source text,
//! method, `modules:` and `imports:`, and their Temporal registration under `meta.temporal`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::id::EntryId;
use crate::reference::{Expect, References};
use crate::source::{self, FileRefError, Root};
use crate::value::Value;
use crate::walk::{Fields, Node, Position, Walker};

/// Modules a workflow may `require`: those whose results are deterministic under replay.
pub const WORKFLOW_MODULES: [&str; 12] =
    ["funcs", "time", "workflow", "ctx", "uuid", "crypto", "json", "base64", "yaml", "hash", "logger", "errors"];

/// Which Lua entry kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LuaKind {
    Workflow,
    Function,
    Process,
    Library,
}

impl LuaKind {
    pub(crate) fn from_kind(kind: &str) -> Option<LuaKind> {
        Some(match kind {
            "workflow.lua" => LuaKind::Workflow,
            "function.lua" => LuaKind::Function,
            "process.lua" => LuaKind::Process,
            "library.lua" => LuaKind::Library,
            _ => return None,
        })
    }

    /// The entry kind as written.
    pub fn as_str(self) -> &'static str {
        match self {
            LuaKind::Workflow => "workflow.lua",
            LuaKind::Function => "function.lua",
            LuaKind::Process => "process.lua",
            LuaKind::Library => "library.lua",
        }
    }
}

/// A validated Lua entry.
#[derive(Debug, Clone, PartialEq)]
pub struct LuaEntry {
    pub kind: LuaKind,
    pub source: LuaSource,
    /// The exported function to run; workflows default to `main`. `None` = the chunk must
    /// return a function (libraries have none).
    pub method: Option<String>,
    /// The `require` allow-list.
    pub modules: Vec<String>,
    /// `require(alias)` → that `library.lua` entry.
    pub imports: BTreeMap<String, EntryId>,
    /// Temporal registration from `meta.temporal`.
    pub registration: Option<Registration>,
    /// `meta.options`: default call options (e.g. `activity.start_to_close_timeout`).
    pub options: BTreeMap<String, Value>,
}

/// Lua source text and how to name it in tracebacks.
#[derive(Debug, Clone, PartialEq)]
pub struct LuaSource {
    pub text: String,
    /// The path shown for the chunk (`examples/orders/order_workflow.lua`), or the YAML file's
    /// path for inline sources.
    pub chunk_name: PathBuf,
    /// Add to a Lua line number to get the line in `chunk_name` (0 for `file://` sources).
    pub line_offset: usize,
    /// Whether the text was written inline in the YAML file.
    pub inline: bool,
}

/// How an entry is registered with a Temporal worker.
#[derive(Debug, Clone, PartialEq)]
pub enum Registration {
    /// `meta.temporal.workflow`: type = `name`, or the entry ID.
    Workflow { worker: EntryId, name: Option<String> },
    /// `meta.temporal.activity`: type = the entry ID.
    Activity { worker: EntryId, local: bool },
}

impl Registration {
    /// The worker entry this registration belongs to.
    pub fn worker(&self) -> &EntryId {
        match self {
            Registration::Workflow { worker, .. } | Registration::Activity { worker, .. } => worker,
        }
    }
}

pub(crate) struct Parsed {
    pub(crate) entry: Option<LuaEntry>,
    pub(crate) meta: BTreeMap<String, Value>,
}

pub(crate) fn parse(
    walker: &mut Walker<'_>,
    fields: &mut Fields<'_>,
    references: &mut References,
    root: &Root,
    kind: LuaKind,
) -> Parsed {
    let source = match fields.take("source") {
        Some(node) => read_source(walker, node, root),
        None => {
            walker.missing("source", "Lua code, or `source: file://name.lua` next to this YAML file");
            None
        }
    };
    let method = walker.take_string(fields, "method").map(|s| s.value).filter(|s| !s.is_empty());
    let method = match kind {
        LuaKind::Workflow => Some(method.unwrap_or_else(|| "main".to_owned())),
        _ => method,
    };
    let modules = walker.take_string_list(fields, "modules");
    if kind == LuaKind::Workflow {
        check_workflow_modules(walker, &modules);
    }
    let imports = parse_imports(walker, fields, references);
    if kind == LuaKind::Function {
        // Wippy's executor pool settings: accepted, not used by Tempest.
        let _ = fields.take("pool");
    }
    let (registration, options, meta) = parse_meta(walker, fields, references, kind);
    let entry = source.map(|source| LuaEntry {
        kind,
        source,
        method,
        modules: modules.into_iter().map(|m| m.value).collect(),
        imports,
        registration,
        options,
    });
    Parsed { entry, meta }
}

fn read_source(walker: &mut Walker<'_>, node: &Node<'_>, root: &Root) -> Option<LuaSource> {
    let text = walker.string(node, "source")?;
    let reference = text.value.trim();
    if !reference.starts_with("file://") {
        if reference.is_empty() {
            walker.error(text.at, "source", "is empty (expected Lua code or `file://name.lua`)");
            return None;
        }
        return Some(LuaSource {
            text: text.value,
            chunk_name: walker.file.display.clone(),
            line_offset: text.at.line.saturating_sub(1),
            inline: true,
        });
    }
    match source::read_reference(root, walker.file, reference) {
        Ok((text, chunk_name)) => Some(LuaSource { text, chunk_name, line_offset: 0, inline: false }),
        Err(error) => {
            let message = match error {
                FileRefError::Escapes => format!(
                    "`{reference}` points outside the loaded directory `{}` (expected a file inside it)",
                    root.display.display()
                ),
                FileRefError::NotFound { display } => {
                    format!(
                        "file `{}` does not exist (expected a Lua file, relative to this YAML file)",
                        display.display()
                    )
                }
                FileRefError::Unreadable { display, error } => {
                    format!("cannot read `{}`: {error} (expected a readable UTF-8 Lua file)", display.display())
                }
            };
            walker.error(text.at, "source", message);
            None
        }
    }
}

fn check_workflow_modules(walker: &mut Walker<'_>, modules: &[crate::walk::Spanned<String>]) {
    for (index, module) in modules.iter().enumerate() {
        if !WORKFLOW_MODULES.contains(&module.value.as_str()) {
            walker.error(
                module.at,
                &format!("modules[{index}]"),
                format!(
                    "module `{}` is not allowed in workflows (it is not deterministic); allowed: {}",
                    module.value,
                    WORKFLOW_MODULES.join(", ")
                ),
            );
        }
    }
}

fn parse_imports(
    walker: &mut Walker<'_>,
    fields: &mut Fields<'_>,
    references: &mut References,
) -> BTreeMap<String, EntryId> {
    let mut imports = BTreeMap::new();
    let Some(node) = fields.take("imports") else {
        return imports;
    };
    let Some(mut map) = walker.fields(node, "imports") else {
        return imports;
    };
    for (alias, _, value) in map.rest() {
        let path = format!("imports.{alias}");
        if let Some(text) = walker.string(value, &path)
            && let Some(id) = references.add(walker, &text, &path, Expect::Kind("library.lua"), false)
        {
            imports.insert(alias, id);
        }
    }
    imports
}

type Meta = (Option<Registration>, BTreeMap<String, Value>, BTreeMap<String, Value>);

/// Splits `meta` into the Temporal registration, `options`, and the free-form rest.
fn parse_meta(walker: &mut Walker<'_>, fields: &mut Fields<'_>, references: &mut References, kind: LuaKind) -> Meta {
    let mut registration = None;
    let mut options = BTreeMap::new();
    let mut rest = BTreeMap::new();
    let mut workflow_declared = false;
    if let Some(node) = fields.take("meta")
        && let Some(mut meta) = walker.fields(node, "meta")
    {
        if let Some(temporal) = meta.take("temporal") {
            workflow_declared = matches!(&temporal.data, saphyr::YamlData::Mapping(map)
                if map.keys().any(|key| key.data.as_str() == Some("workflow")));
            registration = parse_temporal(walker, temporal, references, kind);
        }
        if let Some(node) = meta.take("options") {
            options = walker.value_map(node, "meta.options");
        }
        for (key, _, value) in meta.rest() {
            let path = format!("meta.{key}");
            rest.insert(key, walker.value(value, &path));
        }
    }
    // A `meta.temporal.workflow` without a worker was reported where it is written.
    if kind == LuaKind::Workflow && !workflow_declared {
        walker.missing(
            "meta.temporal.workflow.worker",
            "the ID of the temporal.worker that runs this workflow, e.g. `worker: app:worker`",
        );
    }
    (registration, options, rest)
}

fn parse_temporal(
    walker: &mut Walker<'_>,
    node: &Node<'_>,
    references: &mut References,
    kind: LuaKind,
) -> Option<Registration> {
    let mut temporal = walker.fields(node, "meta.temporal")?;
    let workflow = temporal.take("workflow");
    let activity = temporal.take("activity");
    walker.finish(temporal);
    let (node, field, is_workflow) = match (workflow, activity) {
        (Some(node), _) => (node, "meta.temporal.workflow", true),
        (None, Some(node)) => (node, "meta.temporal.activity", false),
        (None, None) => return None,
    };
    let allowed = match kind {
        LuaKind::Workflow => is_workflow,
        LuaKind::Function | LuaKind::Process => !is_workflow,
        LuaKind::Library => false,
    };
    if !allowed {
        let expected = match kind {
            LuaKind::Workflow => "only `meta.temporal.workflow` on a workflow.lua entry",
            LuaKind::Library => "no Temporal registration on a library.lua entry",
            _ => "`meta.temporal.activity`; workflows need kind workflow.lua",
        };
        walker.error(
            Position::of(node),
            field,
            format!("cannot register a {} entry this way (expected {expected})", kind.as_str()),
        );
        return None;
    }
    let mut fields = walker.fields(node, field)?;
    let worker = walker.take_string(&mut fields, "worker");
    let registration = if is_workflow {
        let name = walker.take_string(&mut fields, "name").map(|s| s.value).filter(|s| !s.is_empty());
        worker_ref(walker, &fields, worker, references).map(|worker| Registration::Workflow { worker, name })
    } else {
        let local = walker.take_bool(&mut fields, "local").unwrap_or(false);
        worker_ref(walker, &fields, worker, references).map(|worker| Registration::Activity { worker, local })
    };
    walker.finish(fields);
    registration
}

fn worker_ref(
    walker: &mut Walker<'_>,
    fields: &Fields<'_>,
    worker: Option<crate::walk::Spanned<String>>,
    references: &mut References,
) -> Option<EntryId> {
    let path = fields.path("worker");
    match worker {
        Some(text) => references.add(walker, &text, &path, Expect::Kind("temporal.worker"), true),
        None => {
            if !fields.has("worker") {
                walker.missing(&path, "the ID of a temporal.worker entry, e.g. `worker: app:worker`");
            }
            None
        }
    }
}
