//! Time spent running Lua, per worker: what the worker costs on top of Core. Logged at shutdown
//! (the benchmark reads it) and cheap enough to keep on always.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::parking::ParkingStats;

/// Parked runs now, and what parking did so far.
#[derive(Debug, Default, Clone, Copy)]
pub struct ParkingSnapshot {
    pub runs: usize,
    pub stats: ParkingStats,
}

#[derive(Debug, Default)]
pub struct LuaStats {
    workflow_activations: AtomicU64,
    workflow_nanos: AtomicU64,
    activity_calls: AtomicU64,
    activity_nanos: AtomicU64,
    /// Bytes the workflow VM held after the latest activation, and cached runs then.
    workflow_heap: AtomicU64,
    cached_runs: AtomicU64,
    /// Parking counters and parked runs after the latest activation.
    parking: std::sync::Mutex<ParkingSnapshot>,
    /// Activity VMs created (one per blocking thread that ran an activity of this worker).
    activity_vms: AtomicU64,
}

impl LuaStats {
    pub fn record_activation(&self, took: Duration) {
        self.workflow_activations.fetch_add(1, Ordering::Relaxed);
        self.workflow_nanos.fetch_add(took.as_nanos() as u64, Ordering::Relaxed);
    }

    pub fn record_workflow_memory(&self, heap: usize, runs: usize) {
        self.workflow_heap.store(heap as u64, Ordering::Relaxed);
        self.cached_runs.store(runs as u64, Ordering::Relaxed);
    }

    /// `(workflow VM heap bytes, cached runs)` after the latest activation.
    pub fn workflow_memory(&self) -> (u64, u64) {
        (self.workflow_heap.load(Ordering::Relaxed), self.cached_runs.load(Ordering::Relaxed))
    }

    pub fn record_parking(&self, stats: ParkingStats, runs: usize) {
        if let Ok(mut snapshot) = self.parking.lock() {
            *snapshot = ParkingSnapshot { runs, stats };
        }
    }

    pub fn parking(&self) -> ParkingSnapshot {
        self.parking.lock().map(|s| *s).unwrap_or_default()
    }

    pub fn record_activity_vm(&self) {
        self.activity_vms.fetch_add(1, Ordering::Relaxed);
    }

    pub fn activity_vms(&self) -> u64 {
        self.activity_vms.load(Ordering::Relaxed)
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
