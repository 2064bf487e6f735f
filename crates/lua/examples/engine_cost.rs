//! Measures the Lua engine's cost of one BenchWorkflow (3 sequential activities, a 0 s timer),
//! without Temporal: `cargo run --release -p tempest-lua --example engine_cost [N]`; with
//! `N interleaved [KB]`, 500 runs at a time, optionally with KB of cache pollution between
//! activations.

use std::time::{Duration, Instant, SystemTime};

use serde_json::json;
use tempest_lua::convert::Data;
use tempest_lua::workflow::{
    Activation, ActivityOutcome, Command, Completion, EngineConfig, Job, WorkflowCode, WorkflowEngine, WorkflowInfo,
};

const SOURCE: &str = r#"
local funcs = require("funcs")
local time = require("time")
local echo = funcs.new():with_options({ ["activity.start_to_close_timeout"] = "30s" })
return { main = function(arg)
  local s = arg .. "|0"
  for i = 1, 2 do s = echo:call("bench:echo", s) .. "|" .. i end
  s = echo:call("bench:echo", s)
  time.sleep(0)
  return s
end }
"#;

fn activation(run_id: &str, jobs: Vec<Job>) -> Activation {
    Activation {
        run_id: run_id.into(),
        timestamp: SystemTime::now(),
        is_replaying: false,
        history_length: 3,
        history_size: 100,
        jobs,
    }
}

fn init(i: usize) -> Job {
    Job::Initialize {
        info: WorkflowInfo {
            workflow_id: format!("wf-{i}"),
            workflow_type: "BenchWorkflow".into(),
            ..Default::default()
        },
        args: vec![Data::Json(json!("x"))],
        randomness_seed: i as u64,
        context: None,
    }
}

/// The next job for a run after `completion`, or None when the run completed.
fn next_job(completion: Completion) -> Option<Job> {
    let Completion::Commands(commands) = completion else { panic!("task failed") };
    match commands.as_slice() {
        [Command::ScheduleActivity(s)] => {
            let Data::Json(arg) = &s.args[0] else { panic!() };
            Some(Job::ResolveActivity { seq: s.seq, outcome: ActivityOutcome::Completed(Data::Json(arg.clone())) })
        }
        [Command::StartTimer { seq, .. }] => Some(Job::FireTimer { seq: *seq }),
        [Command::CompleteWorkflow(Data::Json(v))] => {
            assert_eq!(v, &json!("x|0|1|2"));
            None
        }
        other => panic!("{other:?}"),
    }
}

/// As a worker with a backlog sees them: 500 runs in flight, one activation of each in turn, a
/// run evicted when it completes (`engine_cost N interleaved [KB]`).
fn interleaved(engine: &mut WorkflowEngine, n: usize) {
    const IN_FLIGHT: usize = 500;
    let started = Instant::now();
    let mut next = 0;
    let mut flight: Vec<(String, Job)> = Vec::new();
    // Optional: touch this many KB and churn the allocator between activations, as Core's work
    // between two activations does in a worker (cold caches).
    let mut pollute = std::env::args().nth(3).and_then(|kb| kb.parse::<usize>().ok()).map(|kb| vec![0u8; kb * 1024]);
    let mut in_engine = Duration::ZERO;
    while next < n || !flight.is_empty() {
        while flight.len() < IN_FLIGHT && next < n {
            flight.push((format!("run-{next}"), init(next)));
            next += 1;
        }
        let mut still = Vec::with_capacity(flight.len());
        for (run_id, job) in flight.drain(..) {
            if let Some(buf) = pollute.as_mut() {
                for (i, b) in buf.iter_mut().enumerate() {
                    *b = b.wrapping_add(i as u8);
                }
                let junk: Vec<Vec<u8>> = (0..200).map(|i| vec![i as u8; 16 + (i * 37) % 500]).collect();
                std::hint::black_box(&junk);
            }
            let t0 = Instant::now();
            let c = engine.activate(activation(&run_id, vec![job]));
            in_engine += t0.elapsed();
            match next_job(c) {
                Some(job) => still.push((run_id, job)),
                None => {
                    engine.evict(&run_id);
                }
            }
        }
        flight = still;
    }
    println!(
        "{n} workflows, {IN_FLIGHT} in flight: {:.1} µs per workflow (6 activations and an eviction), {:.1} µs in activate",
        started.elapsed().as_secs_f64() * 1e6 / n as f64,
        in_engine.as_secs_f64() * 1e6 / n as f64
    );
}

fn main() {
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let mut engine = WorkflowEngine::new(EngineConfig {
        workflows: vec![WorkflowCode {
            type_name: "BenchWorkflow".into(),
            entry_id: "bench:workflow".into(),
            chunk_name: "bench.lua".into(),
            source: SOURCE.into(),
            method: "main".into(),
            modules: vec!["funcs".into(), "time".into()],
        }],
        activities: Default::default(),
        deadlock_timeout: Duration::from_secs(1),
        pid_host: "c@w".into(),
    })
    .expect("engine");
    if std::env::args().nth(2).as_deref() == Some("idle") {
        // Runs blocked on their first activity, as a busy worker caches them.
        let before = engine.used_memory();
        for i in 0..n {
            engine.activate(activation(&format!("run-{i}"), vec![init(i)]));
        }
        let used = engine.used_memory();
        engine.collect_garbage();
        println!(
            "{n} idle runs: {:.2} KB of Lua heap per run ({:.2} KB live after a full collection)",
            (used - before) as f64 / 1024.0 / n as f64,
            (engine.used_memory() - before) as f64 / 1024.0 / n as f64
        );
        return;
    }
    if std::env::args().nth(2).as_deref() == Some("interleaved") {
        interleaved(&mut engine, n);
        return;
    }
    let started = Instant::now();
    let mut cached = Vec::new();
    for i in 0..n {
        let run_id = format!("run-{i}");
        let mut completion = engine.activate(activation(&run_id, vec![init(i)]));
        let mut seq_result = String::new();
        loop {
            let Completion::Commands(commands) = completion else { panic!("task failed") };
            match commands.as_slice() {
                [Command::ScheduleActivity(s)] => {
                    let Data::Json(arg) = &s.args[0] else { panic!() };
                    seq_result = arg.as_str().unwrap_or_default().to_owned();
                    let job = Job::ResolveActivity {
                        seq: s.seq,
                        outcome: ActivityOutcome::Completed(Data::Json(json!(seq_result))),
                    };
                    completion = engine.activate(activation(&run_id, vec![job]));
                }
                [Command::StartTimer { seq, .. }] => {
                    completion = engine.activate(activation(&run_id, vec![Job::FireTimer { seq: *seq }]));
                }
                [Command::CompleteWorkflow(Data::Json(v))] => {
                    assert_eq!(v, &json!("x|0|1|2"), "{seq_result}");
                    break;
                }
                other => panic!("{other:?}"),
            }
        }
        cached.push(run_id);
    }
    let elapsed = started.elapsed();
    let memory = engine.used_memory();
    for run_id in &cached {
        engine.evict(run_id);
    }
    println!(
        "{n} workflows: {:.1} µs per workflow (6 activations); Lua heap with all {n} runs cached: {:.1} KB per run",
        elapsed.as_secs_f64() * 1e6 / n as f64,
        memory as f64 / 1024.0 / n as f64
    );
}
