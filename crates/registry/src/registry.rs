//! `Registry`: the loaded, validated project — entries by ID, typed views, the start order,
//! warnings and the env system.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::check;
use crate::diagnostic::{Diagnostic, LoadErrors, Report};
use crate::env::{Env, OsEnv, ProcessEnv, ProcessLookup};
use crate::id::EntryId;
use crate::kinds::client::ClientConfig;
use crate::kinds::lua::{LuaEntry, Registration};
use crate::kinds::worker::WorkerConfig;
use crate::kinds::{Entry, EntryKind};
use crate::loader;

/// How to load: where the process environment comes from.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Read by `env.storage.os`, by placeholders in env entries, and by the fallback lookup
    /// when a project has no env entries. Defaults to the real environment.
    pub process_env: Arc<dyn ProcessEnv>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions { process_env: Arc::new(OsEnv) }
    }
}

/// A loaded project. Every entry in it passed validation.
#[derive(Debug)]
pub struct Registry {
    dir: PathBuf,
    entries: Vec<Entry>,
    index: HashMap<EntryId, usize>,
    start_order: Vec<EntryId>,
    warnings: Vec<Diagnostic>,
    env: Arc<Env>,
}

impl Registry {
    /// Loads every definition file under `dir`, reading the real process environment.
    pub fn load(dir: &Path) -> Result<Registry, LoadErrors> {
        Registry::load_with(dir, LoadOptions::default())
    }

    /// Loads every definition file under `dir`. All problems of all files are returned together.
    pub fn load_with(dir: &Path, options: LoadOptions) -> Result<Registry, LoadErrors> {
        let root = loader::open_root(dir)
            .map_err(|diagnostic| LoadErrors::new([*diagnostic].into_iter().collect(), Vec::new()))?;
        let mut diagnostics = Vec::new();
        let files = loader::read_files(&root, &mut diagnostics);
        let documents: Vec<_> = files
            .iter()
            .enumerate()
            .filter_map(|(index, (file, text))| {
                loader::parse_yaml(file, text, &mut diagnostics).map(|doc| (index, doc))
            })
            .collect();
        let sources: Vec<_> = files.iter().map(|(file, _)| file.clone()).collect();
        let process = ProcessLookup(options.process_env.as_ref());
        let mut declared = Vec::new();
        for (index, document) in &documents {
            loader::declare(*index, &sources[*index], document, &process, &mut declared, &mut diagnostics);
        }
        loader::check_declarations(&declared, &sources, &mut diagnostics);

        let mut env = Env::process_only(options.process_env.clone());
        let mut loaded = loader::load_env_entries(&declared, &sources, &root, &mut env, &process, &mut diagnostics);
        loaded.extend(loader::load_entries(&declared, &sources, &root, &env, &mut diagnostics));
        loaded.sort_by_key(|item| item.declared);
        // Duplicates were reported; keep the first declaration only.
        let mut seen = std::collections::HashSet::new();
        loaded.retain(|item| seen.insert(item.id.clone()));

        check::references(&loaded, &declared, &sources, &mut diagnostics);
        check::router_loops(&loaded, &declared, &sources, &mut diagnostics);
        let start_order = check::start_order(&loaded, &declared, &sources, &mut diagnostics);

        let report: Report = diagnostics.into_iter().collect();
        if report.has_errors() {
            // Entries with errors of their own are left out: a dropped `modules:` item would
            // turn into a second, misleading report about the `require` it allows.
            let lua_entries = loaded
                .into_iter()
                .filter(|item| !item.had_errors)
                .filter_map(|item| match item.entry?.kind {
                    EntryKind::Lua(lua) => Some((item.id, lua)),
                    _ => None,
                })
                .collect();
            return Err(LoadErrors::new(report, lua_entries));
        }
        let (_, warnings) = report.into_parts();
        let entries: Vec<Entry> = loaded.into_iter().filter_map(|item| item.entry).collect();
        let index = entries.iter().enumerate().map(|(i, entry)| (entry.id.clone(), i)).collect();
        Ok(Registry { dir: dir.to_path_buf(), entries, index, start_order, warnings, env: Arc::new(env) })
    }

    /// The directory as given to `load`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every entry in declaration order (files sorted by path, then order in the file).
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The entry with this ID.
    pub fn get(&self, id: &EntryId) -> Option<&Entry> {
        self.index.get(id).and_then(|&i| self.entries.get(i))
    }

    /// A `temporal.client` by ID.
    pub fn client(&self, id: &EntryId) -> Option<&ClientConfig> {
        match &self.get(id)?.kind {
            EntryKind::Client(client) => Some(client),
            _ => None,
        }
    }

    /// A `temporal.worker` by ID.
    pub fn worker(&self, id: &EntryId) -> Option<&WorkerConfig> {
        match &self.get(id)?.kind {
            EntryKind::Worker(worker) => Some(worker),
            _ => None,
        }
    }

    /// A Lua entry (any Lua kind) by ID.
    pub fn lua(&self, id: &EntryId) -> Option<&LuaEntry> {
        match &self.get(id)?.kind {
            EntryKind::Lua(lua) => Some(lua),
            _ => None,
        }
    }

    /// Every `temporal.client`.
    pub fn clients(&self) -> impl Iterator<Item = (&EntryId, &ClientConfig)> {
        self.entries.iter().filter_map(|entry| match &entry.kind {
            EntryKind::Client(client) => Some((&entry.id, client)),
            _ => None,
        })
    }

    /// Every `temporal.worker`.
    pub fn workers(&self) -> impl Iterator<Item = (&EntryId, &WorkerConfig)> {
        self.entries.iter().filter_map(|entry| match &entry.kind {
            EntryKind::Worker(worker) => Some((&entry.id, worker)),
            _ => None,
        })
    }

    /// Every Lua entry, registered or not.
    pub fn lua_entries(&self) -> impl Iterator<Item = (&EntryId, &LuaEntry)> {
        self.entries.iter().filter_map(|entry| match &entry.kind {
            EntryKind::Lua(lua) => Some((&entry.id, lua)),
            _ => None,
        })
    }

    /// Every Lua entry registered as a workflow (`meta.temporal.workflow`).
    pub fn workflows(&self) -> impl Iterator<Item = (&EntryId, &LuaEntry)> {
        self.lua_entries().filter(|(_, lua)| matches!(lua.registration, Some(Registration::Workflow { .. })))
    }

    /// Every Lua entry registered as an activity (`meta.temporal.activity`).
    pub fn activities(&self) -> impl Iterator<Item = (&EntryId, &LuaEntry)> {
        self.lua_entries().filter(|(_, lua)| matches!(lua.registration, Some(Registration::Activity { .. })))
    }

    /// The Temporal workflow type of a workflow entry: its custom `name`, else its entry ID.
    pub fn workflow_type(&self, id: &EntryId) -> Option<String> {
        match &self.lua(id)?.registration {
            Some(Registration::Workflow { name, .. }) => Some(name.clone().unwrap_or_else(|| id.to_string())),
            _ => None,
        }
    }

    /// The task queue a worker polls: its client's `tq_prefix` + its `task_queue`.
    pub fn task_queue(&self, worker: &EntryId) -> Option<String> {
        let worker = self.worker(worker)?;
        let client = self.client(&worker.client)?;
        Some(format!("{}{}", client.tq_prefix, worker.task_queue))
    }

    /// Clients, workers and registered Lua entries, dependencies first; ties keep declaration
    /// order. Shut down in reverse.
    pub fn start_order(&self) -> &[EntryId] {
        &self.start_order
    }

    /// Warnings found while loading (unknown kinds, options without effect), sorted.
    pub fn warnings(&self) -> &[Diagnostic] {
        &self.warnings
    }

    /// The env system, shared with the Lua `env` module.
    pub fn env(&self) -> &Arc<Env> {
        &self.env
    }
}
