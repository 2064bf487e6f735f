//! `lifecycle:` of supervised entries (clients, workers): auto start, dependencies, timeouts and
//! the restart backoff.

use std::time::Duration;

use crate::id::EntryId;
use crate::reference::{Expect, References};
use crate::walk::{Fields, Walker};

/// How the supervisor runs an entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Lifecycle {
    /// Start at `tempest run` (default false).
    pub auto_start: bool,
    /// Explicit dependencies (`depends_on` and `requires` merged, in order, without repeats).
    pub depends_on: Vec<EntryId>,
    pub start_timeout: Duration,
    pub stop_timeout: Duration,
    /// Once an entry has run this long, its restart counter resets (default 5s).
    pub stable_threshold: Duration,
    pub restart: RestartPolicy,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Lifecycle {
            auto_start: false,
            depends_on: Vec::new(),
            start_timeout: Duration::from_secs(10),
            stop_timeout: Duration::from_secs(10),
            stable_threshold: Duration::from_secs(5),
            restart: RestartPolicy::default(),
        }
    }
}

/// Exponential restart backoff.
#[derive(Debug, Clone, PartialEq)]
pub struct RestartPolicy {
    pub initial_delay: Duration,
    pub max_delay: Duration,
    pub backoff_factor: f64,
    /// Fraction of random spread, 0.1 = ±10 %.
    pub jitter: f64,
    /// 0 means unlimited.
    pub max_attempts: u32,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        RestartPolicy {
            initial_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(90),
            backoff_factor: 2.0,
            jitter: 0.1,
            max_attempts: 0,
        }
    }
}

/// Reads `lifecycle` from an entry's fields, recording its dependencies.
pub(crate) fn parse(walker: &mut Walker<'_>, fields: &mut Fields<'_>, references: &mut References) -> Lifecycle {
    let mut lifecycle = Lifecycle::default();
    let Some(node) = fields.take("lifecycle") else {
        return lifecycle;
    };
    let Some(mut fields) = walker.fields(node, "lifecycle") else {
        return lifecycle;
    };
    if let Some(value) = walker.take_bool(&mut fields, "auto_start") {
        lifecycle.auto_start = value;
    }
    for name in ["depends_on", "requires"] {
        let path = fields.path(name);
        for (index, item) in walker.take_string_list(&mut fields, name).iter().enumerate() {
            let field = format!("{path}[{index}]");
            if let Some(id) = references.add(walker, item, &field, Expect::Any, true)
                && !lifecycle.depends_on.contains(&id)
            {
                lifecycle.depends_on.push(id);
            }
        }
    }
    for (name, slot) in [
        ("start_timeout", &mut lifecycle.start_timeout),
        ("stop_timeout", &mut lifecycle.stop_timeout),
        ("stable_threshold", &mut lifecycle.stable_threshold),
    ] {
        if let Some(value) = walker.take_duration(&mut fields, name) {
            *slot = value.value;
        }
    }
    // Accepted for Wippy compatibility; every Tempest entry is required at startup.
    let _ = walker.take_string(&mut fields, "startup");
    if let Some(node) = fields.take("restart") {
        lifecycle.restart = parse_restart(walker, node);
    }
    walker.finish(fields);
    lifecycle
}

fn parse_restart(walker: &mut Walker<'_>, node: &crate::walk::Node<'_>) -> RestartPolicy {
    let mut restart = RestartPolicy::default();
    let Some(mut fields) = walker.fields(node, "lifecycle.restart") else {
        return restart;
    };
    let initial = walker.take_duration(&mut fields, "initial_delay");
    if let Some(value) = &initial {
        restart.initial_delay = value.value;
    }
    if let Some(value) = walker.take_duration(&mut fields, "max_delay") {
        restart.max_delay = value.value;
    }
    if let Some(value) = walker.take_number(&mut fields, "backoff_factor", 1.0, f64::INFINITY) {
        restart.backoff_factor = value;
    }
    if let Some(value) = walker.take_number(&mut fields, "jitter", 0.0, 1.0) {
        restart.jitter = value;
    }
    if let Some(value) = walker.take_integer(&mut fields, "max_attempts", 0) {
        restart.max_attempts = u32::try_from(value.value).unwrap_or(u32::MAX);
    }
    if let Some(initial) = initial
        && restart.initial_delay > restart.max_delay
    {
        walker.error(
            initial.at,
            "lifecycle.restart.initial_delay",
            format!(
                "{} is longer than max_delay {} (expected initial_delay <= max_delay)",
                tempest_duration::format(restart.initial_delay),
                tempest_duration::format(restart.max_delay)
            ),
        );
    }
    walker.finish(fields);
    restart
}
