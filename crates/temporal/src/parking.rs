//! Parked runs: a leaner cache tier behind Core's workflow cache.
//!
//! Core keeps ~21 KB per cached run (its state machines, the last task's history, metrics
//! handles); the run's Lua state costs a few KB. When Core evicts an idle run because its cache is
//! full, a worker with `max_parked_workflows` keeps the Lua state instead of dropping it, together
//! with the log of the commands each of the run's activations produced. When the run wakes up
//! (a signal, a timer), Core fetches its history and replays it: the replayed activations are
//! answered from the log, without running Lua, and the first live activation continues the parked
//! Lua state. Core still checks every logged command against the history, as in any replay.
//!
//! If a replayed activation does not match the log (its jobs differ, or the log ends early), the
//! parked state is dropped and the activations seen so far are replayed through a fresh Lua run,
//! exactly what happens to a run that was not parked.

use std::collections::VecDeque;

use prost::Message;
use prost::encoding::{decode_varint, encode_varint};
use temporalio_common::protos::coresdk::workflow_activation::{
    WorkflowActivation, workflow_activation_job::Variant as JobVariant,
};
use temporalio_common::protos::coresdk::workflow_commands::WorkflowCommand;
use temporalio_common::protos::coresdk::workflow_commands::workflow_command::Variant as CommandVariant;

/// Maps keyed by run ID, looked up on every activation: hashed with foldhash (run IDs come from
/// the server).
type RunMap<V> = std::collections::HashMap<String, V, foldhash::fast::RandomState>;

/// Runs whose logged commands outgrow this are not parked (Core's cache still holds them).
const LOG_LIMIT_BYTES: usize = 16 * 1024;

/// A run's log buffer to start with: a few activations' commands without growing.
const FIRST_LOG_BYTES: usize = 512;

/// What identifies an activation's jobs when a replayed activation is matched against the log:
/// each job that is history (queries and evictions are left out) as one byte naming its kind,
/// then the timer's or activity's sequence number or the signal's name; for other kinds only the
/// kind counts. Encoded in a buffer the worker reuses for every activation, and copied into the
/// run's log as it is.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct JobKeys(Vec<u8>);

const INITIALIZE: u8 = 0;
const FIRE_TIMER: u8 = 1;
const RESOLVE_ACTIVITY: u8 = 2;
const SIGNAL: u8 = 3;
const OTHER: u8 = 4;

impl JobKeys {
    /// Encodes the keys of `activation`'s jobs into `buffer` (cleared first).
    fn read(activation: &WorkflowActivation, mut buffer: Vec<u8>) -> Self {
        buffer.clear();
        for variant in activation.jobs.iter().filter_map(|job| job.variant.as_ref()) {
            match variant {
                JobVariant::QueryWorkflow(_) | JobVariant::RemoveFromCache(_) => {}
                JobVariant::InitializeWorkflow(_) => buffer.push(INITIALIZE),
                JobVariant::FireTimer(timer) => {
                    buffer.push(FIRE_TIMER);
                    encode_varint(u64::from(timer.seq), &mut buffer);
                }
                JobVariant::ResolveActivity(resolve) => {
                    buffer.push(RESOLVE_ACTIVITY);
                    encode_varint(u64::from(resolve.seq), &mut buffer);
                }
                JobVariant::SignalWorkflow(signal) => {
                    buffer.push(SIGNAL);
                    encode_varint(signal.signal_name.len() as u64, &mut buffer);
                    buffer.extend_from_slice(signal.signal_name.as_bytes());
                }
                other => buffer.extend_from_slice(&[OTHER, other_kind(other)]),
            }
        }
        JobKeys(buffer)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether one of the jobs initializes the run.
    fn initializes(&self) -> bool {
        let mut rest = self.0.as_slice();
        while let Some((&kind, after)) = rest.split_first() {
            rest = after;
            match kind {
                INITIALIZE => return true,
                FIRE_TIMER | RESOLVE_ACTIVITY => {
                    if decode_varint(&mut rest).is_err() {
                        return false;
                    }
                }
                SIGNAL => match decode_varint(&mut rest) {
                    Ok(len) if len as usize <= rest.len() => rest = &rest[len as usize..],
                    _ => return false,
                },
                _ => rest = rest.get(1..).unwrap_or_default(),
            }
        }
        false
    }
}

/// The kind of a job [`JobKeys`] names only by its kind.
fn other_kind(variant: &JobVariant) -> u8 {
    match variant {
        JobVariant::InitializeWorkflow(_) => 0,
        JobVariant::FireTimer(_) => 1,
        JobVariant::UpdateRandomSeed(_) => 2,
        JobVariant::QueryWorkflow(_) => 3,
        JobVariant::CancelWorkflow(_) => 4,
        JobVariant::SignalWorkflow(_) => 5,
        JobVariant::ResolveActivity(_) => 6,
        JobVariant::NotifyHasPatch(_) => 7,
        JobVariant::ResolveChildWorkflowExecutionStart(_) => 8,
        JobVariant::ResolveChildWorkflowExecution(_) => 9,
        JobVariant::ResolveSignalExternalWorkflow(_) => 10,
        JobVariant::ResolveRequestCancelExternalWorkflow(_) => 11,
        JobVariant::DoUpdate(_) => 12,
        JobVariant::ResolveNexusOperationStart(_) => 13,
        JobVariant::ResolveNexusOperation(_) => 14,
        JobVariant::RemoveFromCache(_) => 15,
    }
}

fn closes_the_run(command: &CommandVariant) -> bool {
    matches!(
        command,
        CommandVariant::CompleteWorkflowExecution(_)
            | CommandVariant::FailWorkflowExecution(_)
            | CommandVariant::ContinueAsNewWorkflowExecution(_)
            | CommandVariant::CancelWorkflowExecution(_)
    )
}

/// Every activation of one run that changed it, with the commands it answered, in one buffer (no
/// allocation per activation, and a fraction of the memory of the decoded structs). Each entry:
/// the length of its [`JobKeys`] and the keys, the number of its commands, then each command as a
/// length-delimited `WorkflowCommand`.
#[derive(Debug, Default)]
struct RunLog {
    encoded: Vec<u8>,
    entries: usize,
    /// Outgrew [`LOG_LIMIT_BYTES`]: no longer recorded, never parked.
    overflowed: bool,
}

impl RunLog {
    fn push(&mut self, jobs: &JobKeys, commands: &[CommandVariant]) {
        let logged = || commands.iter().filter(|c| !matches!(c, CommandVariant::RespondToQuery(_)));
        encode_varint(jobs.0.len() as u64, &mut self.encoded);
        self.encoded.extend_from_slice(&jobs.0);
        encode_varint(logged().count() as u64, &mut self.encoded);
        for command in logged() {
            // A oneof encoded on its own is the same bytes as the message holding only it.
            encode_varint(command.encoded_len() as u64, &mut self.encoded);
            command.encode(&mut self.encoded);
        }
        self.entries += 1;
    }

    /// The commands of the entry at byte `at` if its jobs are `jobs` (then `at` moves past the
    /// entry); `None` if they are not.
    fn answer_at(&self, at: &mut usize, jobs: &JobKeys) -> Option<Result<Vec<CommandVariant>, prost::DecodeError>> {
        let mut rest = self.encoded.get(*at..)?;
        let before = rest.len();
        let keys_len = usize::try_from(decode_varint(&mut rest).ok()?).ok()?;
        if rest.get(..keys_len)? != jobs.0.as_slice() {
            return None;
        }
        rest = &rest[keys_len..];
        let decoded = (|| {
            let count = decode_varint(&mut rest)?;
            let mut commands = Vec::with_capacity(count.min(64) as usize);
            for _ in 0..count {
                let command = WorkflowCommand::decode_length_delimited(&mut rest)?;
                commands.extend(command.variant);
            }
            Ok(commands)
        })();
        *at += before - rest.len();
        Some(decoded)
    }
}

/// A parked run being replayed by Core: `answered` entries of its log have been given back, and
/// the next entry's commands start at byte `cursor` of the log.
#[derive(Debug)]
struct Waking {
    log: RunLog,
    answered: usize,
    cursor: usize,
    /// The replayed activations so far, for a rebuild if a later one does not match.
    seen: Vec<WorkflowActivation>,
}

/// What to do with an activation before the engine sees it.
#[derive(Debug)]
pub enum Wake {
    /// Run it through the engine as usual.
    Pass,
    /// A replayed activation of a parked run: answer with these commands, without Lua.
    Answer(Vec<CommandVariant>),
    /// The parked state was dropped: drop the engine's run, replay these through a fresh one,
    /// then run the activation.
    Rebuild(Vec<WorkflowActivation>),
}

/// Counters for the worker's shutdown line.
#[derive(Debug, Default, Clone, Copy)]
pub struct ParkingStats {
    pub parked: u64,
    pub woken: u64,
    pub rebuilt: u64,
    /// Parked runs dropped to stay within `max_parked_workflows`.
    pub dropped: u64,
}

#[derive(Debug, Default)]
pub struct Parking {
    capacity: usize,
    live: RunMap<RunLog>,
    /// Parked runs with the number of their parking (a run can be parked, woken, parked again).
    parked: RunMap<(u64, RunLog)>,
    waking: RunMap<Waking>,
    /// Park order, oldest first; entries whose run was woken since are skipped.
    order: VecDeque<(u64, String)>,
    parkings: u64,
    /// The buffer the next activation's [`JobKeys`] are read into.
    spare_keys: Vec<u8>,
    pub stats: ParkingStats,
}

impl Parking {
    /// `capacity` 0: nothing is recorded or parked.
    pub fn new(capacity: usize) -> Self {
        Parking { capacity, ..Parking::default() }
    }

    pub fn enabled(&self) -> bool {
        self.capacity > 0
    }

    pub fn parked_runs(&self) -> usize {
        self.parked.len()
    }

    /// The keys of `activation`'s jobs, read into the buffer the last ones were given back in
    /// ([`Parking::recycle`]).
    pub fn job_keys(&mut self, activation: &WorkflowActivation) -> JobKeys {
        JobKeys::read(activation, std::mem::take(&mut self.spare_keys))
    }

    /// Takes back the buffer of keys no longer needed, for the next activation's.
    pub fn recycle(&mut self, keys: JobKeys) {
        if keys.0.capacity() > self.spare_keys.capacity() {
            self.spare_keys = keys.0;
        }
    }

    /// Decides what happens to `activation` of run `run_id`, whose job keys are `jobs`.
    pub fn before(&mut self, run_id: &str, activation: &WorkflowActivation, jobs: &JobKeys) -> Wake {
        if self.parked.is_empty() && self.waking.is_empty() {
            return Wake::Pass;
        }
        if let Some((_, log)) = self.parked.remove(run_id) {
            if !jobs.initializes() {
                // Core replays a run it does not cache from the start; anything else is not ours.
                return self.rebuild(run_id, Vec::new());
            }
            self.stats.woken += 1;
            self.waking.insert(run_id.to_owned(), Waking { log, answered: 0, cursor: 0, seen: Vec::new() });
        }
        let Some(waking) = self.waking.get_mut(run_id) else { return Wake::Pass };
        let caught_up = waking.answered == waking.log.entries;
        if caught_up && (!activation.is_replaying || jobs.is_empty()) {
            // Live again (or a query after the replay): the parked Lua state continues.
            let waking = self.waking.remove(run_id).expect("present");
            self.live.insert(run_id.to_owned(), waking.log);
            return Wake::Pass;
        }
        let answer =
            (activation.is_replaying && !caught_up).then(|| waking.log.answer_at(&mut waking.cursor, jobs)).flatten();
        match answer {
            Some(Ok(commands)) => {
                waking.answered += 1;
                let mut seen = activation.clone();
                seen.run_id = run_id.to_owned();
                waking.seen.push(seen);
                Wake::Answer(commands)
            }
            _ => {
                let seen = std::mem::take(&mut waking.seen);
                tracing::warn!(
                    run_id,
                    "a parked run's replay did not match its log; replaying it through a fresh Lua run"
                );
                self.rebuild(run_id, seen)
            }
        }
    }

    fn rebuild(&mut self, run_id: &str, seen: Vec<WorkflowActivation>) -> Wake {
        self.waking.remove(run_id);
        self.live.remove(run_id);
        self.stats.rebuilt += 1;
        Wake::Rebuild(seen)
    }

    /// Logs the commands the engine answered an activation with (query answers left out).
    pub fn record(&mut self, run_id: &str, jobs: &JobKeys, commands: &[CommandVariant]) {
        if jobs.is_empty() {
            return;
        }
        if commands.iter().any(closes_the_run) {
            // A closed run never wakes again: its log is of no use.
            self.live.remove(run_id);
            return;
        }
        let log = match self.live.get_mut(run_id) {
            Some(log) => log,
            None => self
                .live
                .entry(run_id.to_owned())
                .or_insert_with(|| RunLog { encoded: Vec::with_capacity(FIRST_LOG_BYTES), ..RunLog::default() }),
        };
        if log.overflowed {
            return;
        }
        log.push(jobs, commands);
        if log.encoded.len() > LOG_LIMIT_BYTES {
            *log = RunLog { overflowed: true, ..RunLog::default() };
        }
    }

    /// Core evicted the run. Returns whether the engine keeps its Lua state (parked) and the
    /// parked runs the engine must drop to stay within the capacity.
    pub fn evict(&mut self, run_id: &str, cache_full: bool) -> (bool, Vec<String>) {
        // A run evicted right after its replay was answered (say, for a query) keeps its log.
        let caught_up = self.waking.remove(run_id).filter(|w| w.answered == w.log.entries).map(|w| w.log);
        let log = self.live.remove(run_id).or(caught_up);
        let Some(mut log) = log.filter(|log| cache_full && !log.overflowed && self.capacity > 0) else {
            return (false, Vec::new());
        };
        self.parkings += 1;
        log.encoded.shrink_to_fit();
        self.parked.insert(run_id.to_owned(), (self.parkings, log));
        self.order.push_back((self.parkings, run_id.to_owned()));
        self.stats.parked += 1;
        let is_current = |parked: &RunMap<(u64, RunLog)>, (parking, id): &(u64, String)| {
            parked.get(id).is_some_and(|(current, _)| current == parking)
        };
        let mut dropped = Vec::new();
        while self.parked.len() > self.capacity {
            let Some(oldest) = self.order.pop_front() else { break };
            if is_current(&self.parked, &oldest) {
                self.parked.remove(&oldest.1);
                self.stats.dropped += 1;
                dropped.push(oldest.1);
            }
        }
        if self.order.len() > 2 * self.parked.len() + 64 {
            let parked = &self.parked;
            self.order.retain(|entry| is_current(parked, entry));
        }
        (true, dropped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use temporalio_common::protos::coresdk::workflow_activation::{
        FireTimer, InitializeWorkflow, SignalWorkflow, WorkflowActivationJob,
    };
    use temporalio_common::protos::coresdk::workflow_commands::StartTimer;

    fn activation(run_id: &str, replaying: bool, jobs: Vec<JobVariant>) -> WorkflowActivation {
        WorkflowActivation {
            run_id: run_id.into(),
            is_replaying: replaying,
            jobs: jobs.into_iter().map(|variant| WorkflowActivationJob { variant: Some(variant) }).collect(),
            ..Default::default()
        }
    }

    fn init() -> JobVariant {
        JobVariant::InitializeWorkflow(InitializeWorkflow { workflow_type: "wf".into(), ..Default::default() })
    }

    fn fire(seq: u32) -> JobVariant {
        JobVariant::FireTimer(FireTimer { seq })
    }

    fn signal(name: &str) -> JobVariant {
        JobVariant::SignalWorkflow(SignalWorkflow { signal_name: name.into(), ..Default::default() })
    }

    fn timer(seq: u32) -> CommandVariant {
        CommandVariant::StartTimer(StartTimer { seq, start_to_fire_timeout: None })
    }

    /// Runs `activation` through `parking` as the worker would when the engine answers `commands`.
    fn live(parking: &mut Parking, activation: &WorkflowActivation, commands: &[CommandVariant]) {
        let jobs = parking.job_keys(activation);
        assert!(matches!(parking.before(&activation.run_id, activation, &jobs), Wake::Pass));
        parking.record(&activation.run_id, &jobs, commands);
        parking.recycle(jobs);
    }

    fn before(parking: &mut Parking, activation: &WorkflowActivation) -> Wake {
        let jobs = parking.job_keys(activation);
        parking.before(&activation.run_id, activation, &jobs)
    }

    #[test]
    fn job_keys_tell_activations_apart_and_find_the_initialization() {
        let mut parking = Parking::new(1);
        let mut keys = |jobs| parking.job_keys(&activation("r", false, jobs));
        // Zero bytes in a signal's name or a sequence number are not an initialization.
        assert!(keys(vec![signal("\0"), init()]).initializes());
        assert!(!keys(vec![signal("\0"), fire(0)]).initializes());
        assert_ne!(keys(vec![fire(1)]), keys(vec![fire(2)]));
        assert_ne!(keys(vec![signal("a")]), keys(vec![signal("b")]));
        assert_ne!(keys(vec![fire(1), signal("a")]), keys(vec![fire(1)]));
        // Queries and evictions are not history; other jobs count by their kind.
        assert_eq!(keys(vec![fire(1), JobVariant::QueryWorkflow(Default::default())]), keys(vec![fire(1)]));
        assert_ne!(
            keys(vec![JobVariant::CancelWorkflow(Default::default())]),
            keys(vec![JobVariant::UpdateRandomSeed(Default::default())])
        );
    }

    #[test]
    fn a_closed_run_keeps_no_log() {
        let mut parking = Parking::new(10);
        live(&mut parking, &activation("r", false, vec![init()]), &[timer(1)]);
        let done = CommandVariant::CompleteWorkflowExecution(Default::default());
        live(&mut parking, &activation("r", false, vec![fire(1)]), &[done]);
        assert_eq!(parking.evict("r", true), (false, vec![]), "nothing left to park");
    }

    #[test]
    fn a_parked_run_is_answered_from_its_log_then_continues_live() {
        let mut parking = Parking::new(10);
        live(&mut parking, &activation("r", false, vec![init()]), &[timer(1)]);
        live(&mut parking, &activation("r", false, vec![fire(1)]), &[timer(2)]);
        assert_eq!(parking.evict("r", true), (true, vec![]));
        assert_eq!(parking.parked_runs(), 1);

        match before(&mut parking, &activation("r", true, vec![init()])) {
            Wake::Answer(commands) => assert_eq!(commands, vec![timer(1)]),
            other => panic!("expected the logged answer, got {other:?}"),
        }
        match before(&mut parking, &activation("r", true, vec![fire(1)])) {
            Wake::Answer(commands) => assert_eq!(commands, vec![timer(2)]),
            other => panic!("expected the logged answer, got {other:?}"),
        }
        // The new work: the parked Lua state runs it.
        assert!(matches!(before(&mut parking, &activation("r", false, vec![fire(2)])), Wake::Pass));
        assert_eq!((parking.stats.parked, parking.stats.woken, parking.stats.rebuilt), (1, 1, 0));
        assert_eq!(parking.parked_runs(), 0);
    }

    #[test]
    fn a_replay_that_differs_from_the_log_rebuilds_from_what_was_seen() {
        let mut parking = Parking::new(10);
        live(&mut parking, &activation("r", false, vec![init()]), &[timer(1)]);
        live(&mut parking, &activation("r", false, vec![fire(1)]), &[]);
        parking.evict("r", true);

        assert!(matches!(before(&mut parking, &activation("r", true, vec![init()])), Wake::Answer(_)));
        // History groups the timer with a signal: not what the parked state saw.
        match before(&mut parking, &activation("r", false, vec![fire(1), signal("go")])) {
            Wake::Rebuild(seen) => {
                assert_eq!(seen.len(), 1);
                assert_eq!(seen[0].run_id, "r", "replayed again as run r");
                assert!(matches!(
                    seen[0].jobs[..],
                    [WorkflowActivationJob { variant: Some(JobVariant::InitializeWorkflow(_)) }]
                ));
            }
            other => panic!("expected a rebuild, got {other:?}"),
        }
        assert_eq!(parking.stats.rebuilt, 1);
        // Afterwards the run is an ordinary live run.
        assert!(matches!(before(&mut parking, &activation("r", false, vec![signal("go")])), Wake::Pass));
    }

    #[test]
    fn a_replay_longer_than_the_log_rebuilds() {
        let mut parking = Parking::new(10);
        live(&mut parking, &activation("r", false, vec![init()]), &[timer(1)]);
        parking.evict("r", true);
        assert!(matches!(before(&mut parking, &activation("r", true, vec![init()])), Wake::Answer(_)));
        assert!(
            matches!(before(&mut parking, &activation("r", true, vec![fire(1)])), Wake::Rebuild(seen) if seen.len() == 1)
        );
    }

    #[test]
    fn only_cache_pressure_parks_and_the_oldest_parked_run_goes_first() {
        let mut parking = Parking::new(2);
        for run in ["a", "b", "c", "d"] {
            live(&mut parking, &activation(run, false, vec![init()]), &[timer(1)]);
        }
        assert_eq!(parking.evict("a", false), (false, vec![]), "a nondeterminism or failure eviction drops the run");
        assert_eq!(parking.evict("b", true), (true, vec![]));
        assert_eq!(parking.evict("c", true), (true, vec![]));
        assert_eq!(parking.evict("d", true), (true, vec!["b".to_owned()]));
        assert_eq!((parking.parked_runs(), parking.stats.dropped), (2, 1));
    }

    #[test]
    fn a_run_parked_twice_keeps_its_newer_place() {
        let mut parking = Parking::new(2);
        for run in ["a", "b"] {
            live(&mut parking, &activation(run, false, vec![init()]), &[timer(1)]);
            parking.evict(run, true);
        }
        // `a` wakes, is parked again (now newer than `b`), then `c` needs room: `b` goes.
        assert!(matches!(before(&mut parking, &activation("a", true, vec![init()])), Wake::Answer(_)));
        live(&mut parking, &activation("a", false, vec![fire(1)]), &[]);
        assert_eq!(parking.evict("a", true), (true, vec![]));
        live(&mut parking, &activation("c", false, vec![init()]), &[]);
        assert_eq!(parking.evict("c", true), (true, vec!["b".to_owned()]));
    }

    #[test]
    fn runs_with_large_logs_and_disabled_parking_are_not_parked() {
        let mut parking = Parking::new(10);
        let big = CommandVariant::CompleteWorkflowExecution(
            temporalio_common::protos::coresdk::workflow_commands::CompleteWorkflowExecution {
                result: Some(temporalio_common::protos::temporal::api::common::v1::Payload {
                    data: vec![b'x'; LOG_LIMIT_BYTES + 1],
                    ..Default::default()
                }),
            },
        );
        live(&mut parking, &activation("big", false, vec![init()]), &[big]);
        assert_eq!(parking.evict("big", true), (false, vec![]));

        let mut off = Parking::new(0);
        assert!(!off.enabled());
        let jobs = off.job_keys(&activation("r", false, vec![init()]));
        off.record("r", &jobs, &[timer(1)]);
        assert_eq!(off.evict("r", true), (false, vec![]));
    }
}
