//! One live storage behind the env system: memory, `.env` file, OS, static, or router.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};

use super::config::{FileStorageConfig, StorageConfig};
use super::dotenv;
use super::process::ProcessEnv;
use crate::id::EntryId;

#[derive(Debug)]
pub(crate) enum Store {
    Memory(Mutex<BTreeMap<String, String>>),
    File(FileStore),
    Os,
    Static(BTreeMap<String, String>),
    Router(Vec<EntryId>),
}

#[derive(Debug)]
pub(crate) struct FileStore {
    config: FileStorageConfig,
    values: Mutex<BTreeMap<String, String>>,
}

/// A write that a store refused or failed.
#[derive(Debug)]
pub(crate) enum WriteError {
    ReadOnly(&'static str),
    Io { path: PathBuf, error: io::Error },
}

impl Store {
    /// Opens a storage; a `.env` file must exist unless `auto_create` is set.
    pub(crate) fn open(config: &StorageConfig) -> io::Result<Store> {
        Ok(match config {
            StorageConfig::Memory => Store::Memory(Mutex::default()),
            StorageConfig::File(file) => {
                let values = match fs::read_to_string(&file.path) {
                    Ok(text) => dotenv::parse(&text),
                    Err(error) if error.kind() == io::ErrorKind::NotFound && file.auto_create => BTreeMap::new(),
                    Err(error) => return Err(error),
                };
                Store::File(FileStore { config: file.clone(), values: Mutex::new(values) })
            }
            StorageConfig::Os => Store::Os,
            StorageConfig::Static { values } => Store::Static(values.clone()),
            StorageConfig::Router { storages } => Store::Router(storages.clone()),
        })
    }

    /// Reads `key` from this store alone (routers are handled by the caller).
    pub(crate) fn get(&self, key: &str, process: &dyn ProcessEnv) -> Option<String> {
        match self {
            Store::Memory(values) => values.lock().unwrap_or_else(PoisonError::into_inner).get(key).cloned(),
            Store::File(file) => file.values.lock().unwrap_or_else(PoisonError::into_inner).get(key).cloned(),
            Store::Os => process.var(key),
            Store::Static(values) => values.get(key).cloned(),
            Store::Router(_) => None,
        }
    }

    /// Writes `key` into this store alone.
    pub(crate) fn set(&self, key: &str, value: &str) -> Result<(), WriteError> {
        match self {
            Store::Memory(values) => {
                values.lock().unwrap_or_else(PoisonError::into_inner).insert(key.to_owned(), value.to_owned());
                Ok(())
            }
            Store::File(file) => file.set(key, value),
            Store::Os => Err(WriteError::ReadOnly("the OS environment storage is read-only")),
            Store::Static(_) => Err(WriteError::ReadOnly("static storages are read-only")),
            Store::Router(_) => Err(WriteError::ReadOnly("a router has no values of its own")),
        }
    }
}

impl FileStore {
    fn set(&self, key: &str, value: &str) -> Result<(), WriteError> {
        let mut values = self.values.lock().unwrap_or_else(PoisonError::into_inner);
        let path = &self.config.path;
        let io_error = |error| WriteError::Io { path: path.clone(), error };
        let current = match fs::read_to_string(path) {
            Ok(text) => text,
            Err(error) if error.kind() == io::ErrorKind::NotFound && self.config.auto_create => {
                if let Some(dir) = path.parent().filter(|dir| !dir.exists()) {
                    create_dir(dir, self.config.dir_mode).map_err(io_error)?;
                }
                String::new()
            }
            Err(error) => return Err(io_error(error)),
        };
        let created = !path.exists();
        fs::write(path, dotenv::upsert(&current, key, value)).map_err(io_error)?;
        if created {
            set_mode(path, self.config.file_mode).map_err(io_error)?;
        }
        values.insert(key.to_owned(), value.to_owned());
        Ok(())
    }
}

fn create_dir(dir: &std::path::Path, mode: u32) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    set_mode(dir, mode)
}

#[cfg(unix)]
fn set_mode(path: &std::path::Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn set_mode(_path: &std::path::Path, _mode: u32) -> io::Result<()> {
    Ok(())
}
