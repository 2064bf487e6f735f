//! Measures the Lua engine's cost of one BenchWorkflow (3 sequential activities, a 0 s timer),
//! without Temporal: `cargo run --release -p tempest-lua --example engine_cost [N]`.

use std::time::{Duration, Instant, SystemTime};

use serde_json::json;
use tempest_lua::convert::Data;
use tempest_lua::workflow::{Activation, ActivityOutcome, Command, Completion, EngineConfig, Job, WorkflowCode, WorkflowEngine, WorkflowInfo};

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
    Activation { run_id: run_id.into(), timestamp: SystemTime::now(), is_replaying: false, history_length: 3, history_size: 100, jobs }
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
            let init = Job::Initialize {
                info: WorkflowInfo { workflow_id: format!("wf-{i}"), workflow_type: "BenchWorkflow".into(), ..Default::default() },
                args: vec![Data::Json(json!("x"))],
                randomness_seed: i as u64,
                context: None,
            };
            engine.activate(activation(&format!("run-{i}"), vec![init]));
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
    let started = Instant::now();
    let mut cached = Vec::new();
    for i in 0..n {
        let run_id = format!("run-{i}");
        let init = Job::Initialize {
            info: WorkflowInfo { workflow_id: format!("wf-{i}"), workflow_type: "BenchWorkflow".into(), ..Default::default() },
            args: vec![Data::Json(json!("x"))],
            randomness_seed: i as u64,
            context: None,
        };
        let mut completion = engine.activate(activation(&run_id, vec![init]));
        let mut seq_result = String::new();
        loop {
            let Completion::Commands(commands) = completion else { panic!("task failed") };
            match commands.as_slice() {
                [Command::ScheduleActivity(s)] => {
                    let Data::Json(arg) = &s.args[0] else { panic!() };
                    seq_result = arg.as_str().unwrap_or_default().to_owned();
                    let job = Job::ResolveActivity { seq: s.seq, outcome: ActivityOutcome::Completed(Data::Json(json!(seq_result))) };
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
