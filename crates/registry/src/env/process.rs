//! The process environment as an injectable source, so tests never touch real env vars.

use std::collections::BTreeMap;
use std::fmt;

/// Read access to a process environment.
pub trait ProcessEnv: Send + Sync + fmt::Debug {
    /// The value of `name`, if set and valid Unicode.
    fn var(&self, name: &str) -> Option<String>;
    /// Every variable, sorted by name.
    fn vars(&self) -> Vec<(String, String)>;
}

/// The real process environment (`std::env`).
#[derive(Debug, Clone, Copy, Default)]
pub struct OsEnv;

impl ProcessEnv for OsEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }

    fn vars(&self) -> Vec<(String, String)> {
        let mut vars: Vec<_> = std::env::vars().collect();
        vars.sort();
        vars
    }
}

/// A fixed environment for tests and embedding.
#[derive(Debug, Clone, Default)]
pub struct MapEnv(BTreeMap<String, String>);

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for MapEnv {
    fn from_iter<T: IntoIterator<Item = (K, V)>>(iter: T) -> Self {
        MapEnv(iter.into_iter().map(|(k, v)| (k.into(), v.into())).collect())
    }
}

impl ProcessEnv for MapEnv {
    fn var(&self, name: &str) -> Option<String> {
        self.0.get(name).cloned()
    }

    fn vars(&self) -> Vec<(String, String)> {
        self.0.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }
}
