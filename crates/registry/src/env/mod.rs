//! The env system (SPEC §3): storages and named variables, shared at run time with the Lua
//! `env` module and used at load time to expand `${env:NAME}` placeholders.
//!
//! Lookup of NAME: public `variable` names first, then entry IDs (bare names resolve in the
//! caller's namespace). The storage key is `variable` if set, else the entry ID. An empty value
//! counts as unset and falls back to the variable's `default`. When the project defines no env
//! entries at all, NAME is read from the process environment instead.

mod config;
mod dotenv;
mod process;
mod store;

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

pub use config::{FileStorageConfig, StorageConfig, VariableConfig};
pub use process::{MapEnv, OsEnv, ProcessEnv};
use store::{Store, WriteError};

use crate::id::EntryId;
use crate::walk::Lookup;

/// Why an env operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EnvError {
    /// No variable by that name, or it has no value and no default. Not retryable.
    #[error("environment variable `{name}` is not set")]
    NotFound { name: String },
    /// A write to a read-only variable or storage. Not retryable.
    #[error("environment variable `{name}` cannot be written ({reason})")]
    PermissionDenied { name: String, reason: &'static str },
    /// An empty name. Not retryable.
    #[error("invalid environment variable name `{name}` (expected a variable name or entry ID)")]
    Invalid { name: String },
    /// The `.env` file could not be written. May succeed on retry.
    #[error("cannot write environment file `{}`: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
}

impl EnvError {
    /// The Tempest error kind name (`NotFound`, `PermissionDenied`, `Invalid`, `Internal`).
    pub fn kind(&self) -> &'static str {
        match self {
            EnvError::NotFound { .. } => "NotFound",
            EnvError::PermissionDenied { .. } => "PermissionDenied",
            EnvError::Invalid { .. } => "Invalid",
            EnvError::Io { .. } => "Internal",
        }
    }
}

/// The live env system of a loaded project. Cheap to share (`Arc<Env>`), safe across threads.
#[derive(Debug)]
pub struct Env {
    stores: HashMap<EntryId, Store>,
    variables: Vec<(EntryId, VariableConfig)>,
    by_public_name: HashMap<String, usize>,
    by_id: HashMap<EntryId, usize>,
    process: Arc<dyn ProcessEnv>,
    /// True when the project has no env entries: names are read from `process`.
    process_fallback: bool,
}

impl Env {
    /// An env system with no entries: every name reads the process environment.
    pub fn process_only(process: Arc<dyn ProcessEnv>) -> Env {
        Env {
            stores: HashMap::new(),
            variables: Vec::new(),
            by_public_name: HashMap::new(),
            by_id: HashMap::new(),
            process,
            process_fallback: true,
        }
    }

    /// Adds a storage entry; fails when a `.env` file cannot be read.
    pub(crate) fn add_storage(&mut self, id: EntryId, config: &StorageConfig) -> io::Result<()> {
        self.process_fallback = false;
        self.stores.insert(id, Store::open(config)?);
        Ok(())
    }

    /// Adds a variable entry (its storage is checked by the loader).
    pub(crate) fn add_variable(&mut self, id: EntryId, config: VariableConfig) {
        self.process_fallback = false;
        let index = self.variables.len();
        if let Some(name) = &config.variable {
            self.by_public_name.entry(name.clone()).or_insert(index);
        }
        self.by_id.insert(id.clone(), index);
        self.variables.push((id, config));
    }

    /// The value of `name` as seen from an entry in `namespace`.
    pub fn get(&self, name: &str, namespace: &str) -> Result<String, EnvError> {
        let not_found = || EnvError::NotFound { name: name.to_owned() };
        if name.is_empty() {
            return Err(EnvError::Invalid { name: name.to_owned() });
        }
        let Some((id, variable)) = self.find(name, namespace) else {
            if self.process_fallback {
                return self.process.var(name).filter(|v| !v.is_empty()).ok_or_else(not_found);
            }
            return Err(not_found());
        };
        let key = storage_key(id, variable);
        self.read(&variable.storage, &key, 0)
            .filter(|value| !value.is_empty())
            .or_else(|| variable.default.clone())
            .ok_or_else(not_found)
    }

    /// Sets `name` as seen from an entry in `namespace`.
    pub fn set(&self, name: &str, namespace: &str, value: &str) -> Result<(), EnvError> {
        if name.is_empty() {
            return Err(EnvError::Invalid { name: name.to_owned() });
        }
        let denied = |reason| EnvError::PermissionDenied { name: name.to_owned(), reason };
        let Some((id, variable)) = self.find(name, namespace) else {
            if self.process_fallback {
                return Err(denied("the process environment is read-only"));
            }
            return Err(EnvError::NotFound { name: name.to_owned() });
        };
        if variable.readonly {
            return Err(denied("the variable is declared readonly"));
        }
        let key = storage_key(id, variable);
        self.write(&variable.storage, &key, value, 0).map_err(|error| match error {
            WriteError::ReadOnly(reason) => denied(reason),
            WriteError::Io { path, error } => EnvError::Io { path, source: error },
        })
    }

    /// Every variable that has a value, keyed by public name (or entry ID when it has none).
    pub fn get_all(&self) -> BTreeMap<String, String> {
        if self.process_fallback {
            return self.process.vars().into_iter().collect();
        }
        self.variables
            .iter()
            .filter_map(|(id, variable)| {
                let name = variable.variable.clone().unwrap_or_else(|| id.to_string());
                let value = self
                    .read(&variable.storage, &storage_key(id, variable), 0)
                    .filter(|value| !value.is_empty())
                    .or_else(|| variable.default.clone())?;
                Some((name, value))
            })
            .collect()
    }

    fn find(&self, name: &str, namespace: &str) -> Option<(&EntryId, &VariableConfig)> {
        let index = self.by_public_name.get(name).copied().or_else(|| {
            let id = EntryId::resolve(name, namespace)?;
            self.by_id.get(&id).copied()
        })?;
        self.variables.get(index).map(|(id, variable)| (id, variable))
    }

    fn read(&self, storage: &EntryId, key: &str, depth: usize) -> Option<String> {
        match self.stores.get(storage)? {
            Store::Router(storages) if depth < MAX_ROUTER_DEPTH => {
                storages.iter().find_map(|inner| self.read(inner, key, depth + 1).filter(|value| !value.is_empty()))
            }
            store => store.get(key, self.process.as_ref()),
        }
    }

    fn write(&self, storage: &EntryId, key: &str, value: &str, depth: usize) -> Result<(), WriteError> {
        match self.stores.get(storage) {
            Some(Store::Router(storages)) if depth < MAX_ROUTER_DEPTH => match storages.first() {
                Some(first) => self.write(first, key, value, depth + 1),
                None => Err(WriteError::ReadOnly("the router has no storages")),
            },
            Some(store) => store.set(key, value),
            None => Err(WriteError::ReadOnly("its storage does not exist")),
        }
    }
}

/// Routers nested deeper than this are treated as a loop (the loader reports real loops).
const MAX_ROUTER_DEPTH: usize = 16;

fn storage_key(id: &EntryId, variable: &VariableConfig) -> String {
    variable.variable.clone().unwrap_or_else(|| id.to_string())
}

impl Lookup for Env {
    fn lookup(&self, name: &str, namespace: &str) -> Option<String> {
        self.get(name, namespace).ok()
    }
}

/// Placeholder lookup for env entries themselves: the process environment only.
#[derive(Debug)]
pub(crate) struct ProcessLookup<'a>(pub(crate) &'a dyn ProcessEnv);

impl Lookup for ProcessLookup<'_> {
    fn lookup(&self, name: &str, _namespace: &str) -> Option<String> {
        self.0.var(name)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn id(name: &str) -> EntryId {
        EntryId::new("app", name)
    }

    fn variable(storage: &str, public: Option<&str>) -> VariableConfig {
        VariableConfig { storage: id(storage), variable: public.map(str::to_owned), default: None, readonly: false }
    }

    fn process() -> Arc<dyn ProcessEnv> {
        Arc::new([("HOME_DIR", "/home/x"), ("EMPTY", "")].into_iter().collect::<MapEnv>())
    }

    #[test]
    fn falls_back_to_the_process_without_env_entries() {
        let env = Env::process_only(process());
        assert_eq!(env.get("HOME_DIR", "app").unwrap(), "/home/x");
        assert_eq!(env.get("EMPTY", "app").unwrap_err().kind(), "NotFound");
        assert_eq!(env.set("HOME_DIR", "app", "y").unwrap_err().kind(), "PermissionDenied");
        assert_eq!(env.get_all().len(), 2);
    }

    #[test]
    fn memory_static_os_and_router_lookups() {
        let mut env = Env::process_only(process());
        env.add_storage(id("mem"), &StorageConfig::Memory).unwrap();
        env.add_storage(id("os"), &StorageConfig::Os).unwrap();
        let values = [("API_URL".to_owned(), "https://x".to_owned())].into_iter().collect();
        env.add_storage(id("consts"), &StorageConfig::Static { values }).unwrap();
        env.add_storage(id("chain"), &StorageConfig::Router { storages: vec![id("mem"), id("consts")] }).unwrap();
        env.add_variable(id("home"), variable("os", Some("HOME_DIR")));
        env.add_variable(id("api_url"), variable("chain", Some("API_URL")));
        env.add_variable(id("token"), VariableConfig { default: Some("dflt".into()), ..variable("mem", None) });
        env.add_variable(id("fixed"), VariableConfig { readonly: true, ..variable("mem", Some("FIXED")) });

        assert_eq!(env.get("HOME_DIR", "other").unwrap(), "/home/x");
        assert_eq!(env.get("home", "app").unwrap(), "/home/x");
        assert_eq!(env.get("app:home", "other").unwrap(), "/home/x");
        assert!(matches!(env.get("home", "other"), Err(EnvError::NotFound { .. })));
        assert_eq!(env.get("API_URL", "app").unwrap(), "https://x");
        env.set("API_URL", "app", "https://override").unwrap();
        assert_eq!(env.get("API_URL", "app").unwrap(), "https://override");
        assert_eq!(env.get("token", "app").unwrap(), "dflt");
        env.set("token", "app", "secret").unwrap();
        assert_eq!(env.get("token", "app").unwrap(), "secret");
        env.set("token", "app", "").unwrap();
        assert_eq!(env.get("token", "app").unwrap(), "dflt");
        assert_eq!(env.set("FIXED", "app", "x").unwrap_err().kind(), "PermissionDenied");
        assert_eq!(env.set("HOME_DIR", "app", "x").unwrap_err().kind(), "PermissionDenied");
        assert_eq!(env.get("", "app").unwrap_err().kind(), "Invalid");
        assert!(matches!(env.get("PATH", "app"), Err(EnvError::NotFound { .. })));
        let all = env.get_all();
        assert_eq!(all.get("app:token").map(String::as_str), Some("dflt"));
        assert!(!all.contains_key("FIXED"));
    }

    #[test]
    fn file_storage_reads_and_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("conf/app.env");
        let config = FileStorageConfig { path: path.clone(), auto_create: true, file_mode: 0o600, dir_mode: 0o700 };
        let mut env = Env::process_only(process());
        env.add_storage(id("file"), &StorageConfig::File(config.clone())).unwrap();
        env.add_variable(id("db"), variable("file", Some("DB_URL")));
        assert!(matches!(env.get("DB_URL", "app"), Err(EnvError::NotFound { .. })));
        env.set("DB_URL", "app", "postgres://x y").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "DB_URL=\"postgres://x y\"\n");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }

        let mut reopened = Env::process_only(process());
        reopened.add_storage(id("file"), &StorageConfig::File(config)).unwrap();
        reopened.add_variable(id("db"), variable("file", Some("DB_URL")));
        assert_eq!(reopened.get("DB_URL", "app").unwrap(), "postgres://x y");

        let missing = FileStorageConfig {
            path: dir.path().join("none.env"),
            auto_create: false,
            file_mode: 0o644,
            dir_mode: 0o755,
        };
        assert!(Env::process_only(process()).add_storage(id("f"), &StorageConfig::File(missing)).is_err());
    }
}
