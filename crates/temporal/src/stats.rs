//! Time spent running Lua, per worker: what the worker costs on top of Core. Logged at shutdown
//! (the benchmark reads it) and cheap enough to keep on always.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

#[derive(Debug, Default)]
pub struct LuaStats {
    workflow_activations: AtomicU64,
    workflow_nanos: AtomicU64,
    activity_calls: AtomicU64,
    activity_nanos: AtomicU64,
}

impl LuaStats {
    pub fn record_activation(&self, took: Duration) {
        self.workflow_activations.fetch_add(1, Ordering::Relaxed);
        self.workflow_nanos.fetch_add(took.as_nanos() as u64, Ordering::Relaxed);
    }

    pub fn record_activity(&self, took: Duration) {
        self.activity_calls.fetch_add(1, Ordering::Relaxed);
        self.activity_nanos.fetch_add(took.as_nanos() as u64, Ordering::Relaxed);
    }

    /// `(activations, workflow Lua time, activity calls, activity Lua time)`.
    pub fn snapshot(&self) -> (u64, Duration, u64, Duration) {
        (
            self.workflow_activations.load(Ordering::Relaxed),
            Duration::from_nanos(self.workflow_nanos.load(Ordering::Relaxed)),
            self.activity_calls.load(Ordering::Relaxed),
            Duration::from_nanos(self.activity_nanos.load(Ordering::Relaxed)),
        )
    }
}
