//! The entry kinds Tempest understands, one file each, and the `Entry` that holds one of them.

pub(crate) mod client;
pub(crate) mod env;
pub(crate) mod lifecycle;
pub(crate) mod lua;
pub(crate) mod worker;

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::env::{StorageConfig, VariableConfig};
use crate::id::EntryId;
use crate::value::Value;
use client::ClientConfig;
use lua::LuaEntry;
use worker::WorkerConfig;

/// One loaded entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub id: EntryId,
    pub kind: EntryKind,
    /// Free-form `meta` (for Lua entries, without `temporal` and `options`, which are typed).
    pub meta: BTreeMap<String, Value>,
    /// Where the entry's `name` is written.
    pub location: Location,
}

/// A position in a definition file, as shown to users.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub file: PathBuf,
    pub line: usize,
    pub col: usize,
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.col)
    }
}

/// The kind-specific part of an entry.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum EntryKind {
    Client(ClientConfig),
    Worker(WorkerConfig),
    Lua(LuaEntry),
    EnvStorage(StorageConfig),
    EnvVariable(VariableConfig),
}

impl EntryKind {
    /// The kind as written in YAML (`temporal.client`, `workflow.lua`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            EntryKind::Client(_) => "temporal.client",
            EntryKind::Worker(_) => "temporal.worker",
            EntryKind::Lua(lua) => lua.kind.as_str(),
            EntryKind::EnvStorage(storage) => storage.kind(),
            EntryKind::EnvVariable(_) => "env.variable",
        }
    }
}
