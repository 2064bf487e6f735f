//! What users write for `env.storage.*` and `env.variable` entries, after validation.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::id::EntryId;

/// An `env.storage.*` entry.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum StorageConfig {
    /// `env.storage.memory`: read/write, volatile.
    Memory,
    /// `env.storage.file`: a `.env` file, read/write.
    File(FileStorageConfig),
    /// `env.storage.os`: the process environment, read-only.
    Os,
    /// `env.storage.static`: fixed values, read-only.
    Static { values: BTreeMap<String, String> },
    /// `env.storage.router`: reads try each storage in order; writes go to the first.
    Router { storages: Vec<EntryId> },
}

impl StorageConfig {
    /// The entry kind this storage was declared with.
    pub fn kind(&self) -> &'static str {
        match self {
            StorageConfig::Memory => "env.storage.memory",
            StorageConfig::File(_) => "env.storage.file",
            StorageConfig::Os => "env.storage.os",
            StorageConfig::Static { .. } => "env.storage.static",
            StorageConfig::Router { .. } => "env.storage.router",
        }
    }
}

/// `env.storage.file` fields. `path` is resolved against the YAML file's directory.
#[derive(Debug, Clone, PartialEq)]
pub struct FileStorageConfig {
    pub path: PathBuf,
    /// Create the file (and its directory) on the first write when it is missing.
    pub auto_create: bool,
    /// Unix permission bits for a created file (default 0o644).
    pub file_mode: u32,
    /// Unix permission bits for a created directory (default 0o755).
    pub dir_mode: u32,
}

/// An `env.variable` entry: a named handle onto one storage key.
#[derive(Debug, Clone, PartialEq)]
pub struct VariableConfig {
    pub storage: EntryId,
    /// Public name; also the storage key when set (otherwise the key is the entry ID).
    pub variable: Option<String>,
    pub default: Option<String>,
    pub readonly: bool,
}
