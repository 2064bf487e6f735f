//! The workflow engine: one sandboxed Lua VM shared by many runs, each run a set of coroutines
//! with its own global environment. `activate` applies an activation's jobs, runs every ready
//! coroutine until all are blocked, and returns the commands they issued.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mlua::{
    Function, HookTriggers, LightUserData, Lua, MultiValue, Table, Thread, ThreadStatus, UserDataFields, Value, VmState,
};

use super::FastMap;
use super::run::{ActiveRun, Resume, RunCore, RunSetting, active_run};
use super::watchdog::{self, Watch};
use super::{
    Activation, ActivityOutcome, ActivityTarget, Command, Completion, Job, TaskFailure, WorkflowCode, api, channel,
    time_api,
};
use crate::convert::{from_data, to_data};
use crate::entropy::Entropy;
use crate::failure::Failure;
use crate::heap::Heap;
use crate::sandbox::{self, Sandbox};

/// How much one activation may grow the Lua heap. A run that needs more fails its workflow task
/// (and is evicted), instead of taking the whole worker's memory.
pub const MEMORY_PER_ACTIVATION: usize = 64 * 1024 * 1024;

/// The collector's pause: a new cycle starts once the heap has grown to 4 times what the last
/// cycle left alive (Lua's default is 2 times). Every cycle walks the state of every cached run,
/// pushing the worker's own working set out of the CPU cache; fewer cycles cost only garbage
/// that waits longer. Measured on the benchmark (12 interleaved rounds): about 5% less worker CPU
/// per workflow; resident memory per idle run unchanged.
const GC_PAUSE_PERCENT: std::os::raw::c_int = 400;

/// How often (in VM instructions) an armed deadlock hook checks the deadline: after the first
/// check raised `TMPRL1101`, code that caught it still gets this many instructions to return.
pub(crate) const DEADLOCK_CHECK_INSTRUCTIONS: u32 = 10_000;

/// The modules a workflow may `require`: deterministic ones only.
pub const WORKFLOW_MODULES: &[&str] =
    &["funcs", "time", "workflow", "ctx", "uuid", "crypto", "json", "base64", "yaml", "hash", "logger", "errors"];

static PARK_SENTINEL: u8 = 0;
static TRACE_SENTINEL: u8 = 0;

/// What a task yields to park itself.
fn park() -> LightUserData {
    LightUserData(std::ptr::from_ref(&PARK_SENTINEL).cast_mut().cast())
}

/// What the scheduler resumes a parked task with to make it record its traceback.
pub(crate) fn trace() -> LightUserData {
    LightUserData(std::ptr::from_ref(&TRACE_SENTINEL).cast_mut().cast())
}

/// Everything the engine needs to know about the worker's entries.
#[derive(Debug, Clone, Default)]
pub struct EngineConfig {
    pub workflows: Vec<WorkflowCode>,
    /// Activity entries by entry ID.
    pub activities: HashMap<String, ActivityTarget>,
    /// `deadlock_detection_timeout`.
    pub deadlock_timeout: Duration,
    /// `client@worker`, the host part of workflow PIDs.
    pub pid_host: String,
}

struct Definition {
    code: WorkflowCode,
    /// `instantiate(env)` returns a new closure of the entry's chunk bound to `env`: every run
    /// shares the compiled prototypes and gets only its own closure.
    instantiate: Function,
    modules: Rc<[String]>,
    entry_id: Rc<str>,
    /// The namespace part of `entry_id`, for activity IDs given without one.
    namespace_of_entry: Rc<str>,
    /// `entry_id` and the method, as the Lua strings every run's main task starts with.
    entry_name: mlua::String,
    method_name: mlua::String,
}

struct Run {
    core: Rc<RefCell<RunCore>>,
    env: Table,
    definition: Rc<Definition>,
}

pub struct WorkflowEngine {
    lua: Lua,
    /// The VM's heap for small objects, with its byte count and limit (mlua's own when the heap
    /// could not be reserved). Valid as long as `lua` keeps the VM open.
    heap: Option<Heap>,
    /// The run whose activation executes (the VM's app data shares it).
    active: ActiveRun,
    definitions: HashMap<String, Rc<Definition>>,
    runs: FastMap<String, Run>,
    main: Function,
    env_meta: Table,
    deadlock_timeout: Duration,
    /// The deadlock watchdog's view of this engine's activations (none where signals cannot be
    /// used: every thread then counts instructions).
    watch: Option<Arc<Watch>>,
    activity_targets: Rc<HashMap<String, ActivityTarget>>,
    pid_host: Rc<str>,
    /// Main coroutines of evicted runs that returned, reset for the next runs: a run then starts
    /// without allocating a Lua thread, its stack and its call frames.
    spare_threads: Vec<Thread>,
}

/// How many returned main coroutines the engine keeps for reuse.
const SPARE_THREADS: usize = 64;

impl std::fmt::Debug for WorkflowEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkflowEngine").field("runs", &self.runs.len()).finish_non_exhaustive()
    }
}

/// Why the engine could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// A workflow source does not compile (fatal: fix the Lua file).
    #[error("{chunk}: {message}")]
    Compile { chunk: String, message: String },
    /// The Lua host itself failed to start (fatal).
    #[error("cannot start the workflow Lua VM: {0}")]
    Vm(String),
}

/// The active run's seeded generator; outside an activation, the OS (as with no source installed).
struct RunEntropy(ActiveRun);

impl Entropy for RunEntropy {
    fn fill(&mut self, buf: &mut [u8]) {
        match self.0.run() {
            Some(run) => {
                if let Ok(mut core) = run.try_borrow_mut() {
                    core.rng.fill(buf);
                }
            }
            None => rand::fill(buf),
        }
    }
}

/// The activation's time; outside an activation, the system clock (as with no clock installed).
struct RunClock(ActiveRun);

impl crate::clock::WallClock for RunClock {
    fn now_unix_nanos(&self) -> i128 {
        self.0.now_nanos().unwrap_or_else(crate::clock::system_unix_nanos)
    }
}

impl WorkflowEngine {
    pub fn new(config: EngineConfig) -> Result<Self, EngineError> {
        let vm_error = |e: mlua::Error| EngineError::Vm(e.to_string());
        let lua = sandbox::new_vm(Sandbox::Workflow).map_err(vm_error)?;
        let heap = Heap::install(&lua);
        lua.gc_set_pause(GC_PAUSE_PERCENT);
        let (main, env_meta) = install_api(&lua).map_err(vm_error)?;
        let watched = install_deadlock_hook(&lua).map_err(vm_error)?;
        let active = ActiveRun::default();
        lua.set_app_data(active.clone());
        lua.set_app_data::<Box<dyn Entropy>>(Box::new(RunEntropy(active.clone())));
        lua.set_app_data::<Box<dyn crate::clock::WallClock>>(Box::new(RunClock(active.clone())));
        let mut definitions = HashMap::new();
        for code in config.workflows {
            let compile_error =
                |e: mlua::Error| EngineError::Compile { chunk: code.chunk_name.clone(), message: e.to_string() };
            // Compiled as written first, so syntax errors read exactly as the user's file.
            lua.load(&code.source).set_name(format!("@{}", code.chunk_name)).into_function().map_err(compile_error)?;
            let instantiate = lua
                .load(instantiable_source(&code.source))
                .set_name(format!("@{}", code.chunk_name))
                .into_function()
                .map_err(compile_error)?;
            let namespace_of_entry = code.entry_id.split_once(':').map(|(ns, _)| ns).unwrap_or("").into();
            let definition = Definition {
                instantiate,
                modules: code.modules.clone().into(),
                entry_id: code.entry_id.as_str().into(),
                namespace_of_entry,
                entry_name: lua.create_string(&code.entry_id).map_err(vm_error)?,
                method_name: lua.create_string(&code.method).map_err(vm_error)?,
                code,
            };
            definitions.insert(definition.code.type_name.clone(), Rc::new(definition));
        }
        let deadlock_timeout =
            if config.deadlock_timeout.is_zero() { Duration::from_secs(1) } else { config.deadlock_timeout };
        Ok(WorkflowEngine {
            lua,
            heap,
            active,
            definitions,
            runs: FastMap::default(),
            main,
            env_meta,
            deadlock_timeout,
            watch: watched.then(|| Watch::new(deadlock_timeout)),
            activity_targets: Rc::new(config.activities),
            pid_host: config.pid_host.as_str().into(),
            spare_threads: Vec::new(),
        })
    }

    /// Workflow types this engine can run.
    pub fn workflow_types(&self) -> impl Iterator<Item = &str> {
        self.definitions.keys().map(String::as_str)
    }

    /// Whether the deadlock watchdog watches this engine (else every Lua thread counts its
    /// instructions to check the deadline).
    pub fn deadlock_watched(&self) -> bool {
        self.watch.is_some()
    }

    /// Returned main coroutines kept for later runs.
    #[cfg(test)]
    pub(crate) fn spare_threads(&self) -> usize {
        self.spare_threads.len()
    }

    pub fn cached_runs(&self) -> usize {
        self.runs.len()
    }

    /// Bytes the VM currently holds (all cached runs together).
    pub fn used_memory(&self) -> usize {
        match &self.heap {
            Some(heap) => heap.used(),
            None => self.lua.used_memory(),
        }
    }

    /// Makes the VM's allocations past `limit` bytes fail (a Lua memory error); zero: no limit.
    fn set_memory_limit(&self, limit: usize) -> mlua::Result<()> {
        match &self.heap {
            Some(heap) => heap.set_limit(limit),
            None => {
                self.lua.set_memory_limit(limit)?;
            }
        }
        Ok(())
    }

    /// Runs a full garbage collection of the VM (for measurements; the VM collects on its own).
    pub fn collect_garbage(&self) {
        let _ = self.lua.gc_collect();
        let _ = self.lua.gc_collect();
    }

    /// Drops a run's state (Core evicted it). Returns the commands the run issued in its last
    /// activation with the Lua lines that issued them (`ScheduleActivity(app:pay) seq 2 at
    /// flow.lua:14`), which is what a nondeterminism report needs.
    pub fn evict(&mut self, run_id: &str) -> LastIssued {
        let Some(run) = self.runs.remove(run_id) else { return LastIssued::default() };
        let mut core = run.core.borrow_mut();
        if let Some(thread) = core.finished_main.take()
            && self.spare_threads.len() < SPARE_THREADS
        {
            self.spare_threads.push(thread);
        }
        LastIssued(std::mem::take(&mut core.last_issued))
    }

    /// Applies `activation` and returns the commands the run issued, or why the task fails.
    pub fn activate(&mut self, mut activation: Activation) -> Completion {
        let run_id = std::mem::take(&mut activation.run_id);
        self.activate_run(&run_id, activation)
    }

    /// [`WorkflowEngine::activate`] with the run ID given apart: `activation.run_id` is not read
    /// (the worker keeps the ID for its completion instead of copying it).
    pub fn activate_run(&mut self, run_id: &str, activation: Activation) -> Completion {
        let result = self.activate_inner(run_id, activation);
        if let Some(watch) = &self.watch {
            watch.disarm();
        }
        self.active.set(None);
        self.lua.remove_app_data::<crate::modules::ctx::CallContext>();
        match result {
            Ok(completion) => completion,
            Err(e) => {
                self.runs.remove(run_id);
                Completion::Failed(TaskFailure::Other { message: format!("workflow engine error: {e}") })
            }
        }
    }

    fn activate_inner(&mut self, run_id: &str, activation: Activation) -> mlua::Result<Completion> {
        let Activation { run_id: _, timestamp, is_replaying, history_length, history_size, jobs } = activation;
        let mut jobs = jobs.into_iter().peekable();
        if let Some(Job::Initialize { .. }) = jobs.peek()
            && let Some(Job::Initialize { info, args, randomness_seed, context }) = jobs.next()
        {
            let Some(definition) = self.definitions.get(&info.workflow_type).cloned() else {
                let known: Vec<&str> = self.workflow_types().collect();
                return Ok(Completion::Failed(TaskFailure::Other {
                    message: format!(
                        "workflow type `{}` is not registered on this worker (registered: {})",
                        info.workflow_type,
                        known.join(", ")
                    ),
                }));
            };
            let mut core = RunCore::new(
                info,
                randomness_seed,
                timestamp,
                RunSetting {
                    entry_id: definition.entry_id.clone(),
                    namespace_of_entry: definition.namespace_of_entry.clone(),
                    modules: definition.modules.clone(),
                    activity_targets: self.activity_targets.clone(),
                    pid_host: self.pid_host.clone(),
                },
            );
            core.context = context.map(Rc::new);
            let env = sandbox::run_environment(&self.lua, &self.env_meta)?;
            let run = Run { core: Rc::new(RefCell::new(core)), env, definition };
            self.start_main(&run, &args)?;
            self.runs.insert(run_id.to_owned(), run);
        }
        let Some(run) = self.runs.get(run_id) else {
            return Ok(Completion::Failed(TaskFailure::Other {
                message: format!("run {run_id} is not in the workflow cache and the activation does not start it"),
            }));
        };
        let core = run.core.clone();
        {
            let mut c = core.borrow_mut();
            c.now = timestamp;
            c.replaying = is_replaying;
            c.history_length = history_length;
            c.history_size = history_size;
            let deadline = Instant::now() + self.deadlock_timeout;
            c.deadline = Some(deadline);
            c.deadlock_timeout = self.deadlock_timeout;
            if let Some(watch) = &self.watch {
                watch.arm(deadline);
            }
        }
        let now = core.borrow().now_nanos();
        self.active.set(Some((core.clone(), now)));
        let context = core.borrow().context.clone();
        if context.is_some() {
            self.lua.set_app_data(crate::modules::ctx::CallContext(context));
        }
        let mut queries = Vec::new();
        for job in jobs {
            match job {
                Job::Query { query_id, name, args } => queries.push((query_id, name, args)),
                job => apply_job(&self.lua, &core, job)?,
            }
        }
        self.set_memory_limit(self.used_memory() + MEMORY_PER_ACTIVATION)?;
        let mut completion = run_ready_tasks(&self.lua, &core);
        if let Completion::Commands(commands) = &mut completion {
            for (query_id, name, args) in queries {
                let result = super::query::answer(&self.lua, &core, &name, &args);
                commands.push(Command::RespondToQuery { query_id, result });
            }
        }
        self.set_memory_limit(0)?;
        Ok(completion)
    }

    fn start_main(&mut self, run: &Run, args: &[crate::convert::Data]) -> mlua::Result<()> {
        let definition = &run.definition;
        let chunk: Function = definition.instantiate.call(run.env.clone())?;
        let thread = match self.spare_threads.pop() {
            Some(thread) => {
                thread.reset(self.main.clone())?;
                thread
            }
            None => self.lua.create_thread(self.main.clone())?,
        };
        let mut start = Vec::with_capacity(args.len() + 3);
        start.push(Value::Function(chunk));
        start.push(Value::String(definition.entry_name.clone()));
        start.push(Value::String(definition.method_name.clone()));
        for data in args {
            start.push(from_data(&self.lua, data)?);
        }
        run.core.borrow_mut().add_task(thread, MultiValue::from_vec(start));
        Ok(())
    }
}

/// The chunk wrapped so that calling it with an environment returns the chunk as a closure over
/// that environment. The wrapper shares the first line with the source and the closing `end` sits
/// on a line of its own, so line numbers stay those of the user's file.
fn instantiable_source(source: &str) -> String {
    format!("local _ENV = ...; return function(...) {source}\nend")
}

fn apply_job(lua: &Lua, core: &Rc<RefCell<RunCore>>, job: Job) -> mlua::Result<()> {
    let mut run = core.borrow_mut();
    match job {
        Job::Initialize { .. } => {
            return Err(mlua::Error::runtime("InitializeWorkflow for a run that is already running"));
        }
        Job::FireTimer { seq } => time_api::fire(lua, &mut run, seq)?,
        Job::ResolveActivity { seq, outcome } => {
            let outcome = match outcome {
                ActivityOutcome::Completed(data) => Ok(data),
                ActivityOutcome::Failed(failure) | ActivityOutcome::Cancelled(failure) => Err(failure),
                ActivityOutcome::Backoff { attempt, backoff, original_schedule_time } => {
                    api::backoff_local_activity(&mut run, seq, attempt, backoff, original_schedule_time);
                    return Ok(());
                }
            };
            api::resolve_activity(lua, &mut run, seq, outcome)?;
        }
        Job::Signal { name, args } => run.deliver_signal(lua, name, args)?,
        Job::Cancel { reason } => api::deliver_cancel(lua, &mut run, reason)?,
        Job::UpdateRandomSeed { seed } => run.rng = super::random::DeterministicRng::new(seed),
        Job::Query { .. } => {}
    }
    Ok(())
}

/// Runs ready coroutines until every one is blocked or the workflow ends.
fn run_ready_tasks(lua: &Lua, core: &Rc<RefCell<RunCore>>) -> Completion {
    const MAIN: usize = 0;
    let park = Value::LightUserData(park());
    loop {
        if core.borrow().finished {
            break;
        }
        let next = core.borrow_mut().next_ready();
        let Some((task, thread, resume)) = next else { break };
        core.borrow_mut().current = Some(task);
        // The first two values are all the scheduler reads: PARK from a yield, or the main
        // function's result and error.
        let result = watchdog::resuming(thread.state(), || match resume {
            Resume::Start(args) => thread.resume::<(Value, Value)>(args),
            Resume::Outcome(key, Ok(data)) => thread.resume((key, from_data(lua, &data)?)),
            Resume::Outcome(key, Err(failure)) => thread.resume((key, Value::Nil, failure.push(lua)?)),
            Resume::Wake => thread.resume(()),
        });
        core.borrow_mut().current = None;
        if core.borrow().deadlocked {
            let message = match &result {
                Err(e) => {
                    let failure = Failure::from_lua_error(e);
                    match failure.stack {
                        Some(stack) => format!("{}\n{stack}", failure.message),
                        None => failure.message,
                    }
                }
                Ok(_) => "[TMPRL1101] potential deadlock detected".to_owned(),
            };
            return Completion::Failed(TaskFailure::Deadlock { message });
        }
        match result {
            Err(error) if is_memory_error(&error) => {
                return Completion::Failed(TaskFailure::Other {
                    message: format!(
                        "workflow code exceeded its memory limit ({} MiB per activation): {error}",
                        MEMORY_PER_ACTIVATION / (1024 * 1024)
                    ),
                });
            }
            Err(error) => {
                let mut failure = Failure::from_lua_error(&error);
                if task != MAIN {
                    failure = failure.wrap("error in a coroutine started with coroutine.spawn");
                }
                finish(lua, core, Err(failure));
            }
            Ok(values) => match thread.status() {
                ThreadStatus::Resumable => {
                    if values.0 != park {
                        finish(
                            lua,
                            core,
                            Err(Failure::internal(
                                "coroutine.yield was called outside a coroutine created with coroutine.create \
                                 (workflow code blocks through channels, timers and funcs instead)",
                            )),
                        );
                    }
                }
                ThreadStatus::Finished => {
                    let finished = core.borrow_mut().finish_task(task);
                    if task == MAIN {
                        core.borrow_mut().finished_main = finished;
                        let outcome = returned_outcome(&values);
                        finish(lua, core, outcome);
                    }
                }
                ThreadStatus::Running | ThreadStatus::Error => {}
            },
        }
    }
    let mut run = core.borrow_mut();
    let commands = std::mem::take(&mut run.commands);
    let sites = std::mem::take(&mut run.sites);
    run.last_issued = commands.iter().map(Issued::of).zip(sites).collect();
    Completion::Commands(commands)
}

/// A command as a nondeterminism report names it (`ScheduleActivity(app:pay) seq 2`), kept cheap
/// to record: it is written out only when a report needs it.
#[derive(Debug, Clone)]
pub(crate) enum Issued {
    StartTimer { seq: u32, duration: Duration },
    CancelTimer { seq: u32 },
    ScheduleActivity { seq: u32, activity_type: String },
    RequestCancelActivity { seq: u32 },
    CompleteWorkflow,
    FailWorkflow,
    RespondToQuery { query_id: String },
}

impl Issued {
    fn of(command: &Command) -> Self {
        match command {
            Command::StartTimer { seq, duration } => Issued::StartTimer { seq: *seq, duration: *duration },
            Command::CancelTimer { seq } => Issued::CancelTimer { seq: *seq },
            Command::ScheduleActivity(s) => {
                Issued::ScheduleActivity { seq: s.seq, activity_type: s.activity_type.clone() }
            }
            Command::RequestCancelActivity { seq, .. } => Issued::RequestCancelActivity { seq: *seq },
            Command::CompleteWorkflow(_) => Issued::CompleteWorkflow,
            Command::FailWorkflow(_) => Issued::FailWorkflow,
            Command::RespondToQuery { query_id, .. } => Issued::RespondToQuery { query_id: query_id.clone() },
        }
    }
}

impl std::fmt::Display for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Issued::StartTimer { seq, duration } => write!(f, "StartTimer({duration:?}) seq {seq}"),
            Issued::CancelTimer { seq } => write!(f, "CancelTimer seq {seq}"),
            Issued::ScheduleActivity { seq, activity_type } => write!(f, "ScheduleActivity({activity_type}) seq {seq}"),
            Issued::RequestCancelActivity { seq } => write!(f, "RequestCancelActivity seq {seq}"),
            Issued::CompleteWorkflow => f.write_str("CompleteWorkflowExecution"),
            Issued::FailWorkflow => f.write_str("FailWorkflowExecution"),
            Issued::RespondToQuery { query_id } => write!(f, "RespondToQuery {query_id}"),
        }
    }
}

/// The commands a run issued in its last activation, with the Lua lines that issued them;
/// displayed as `ScheduleActivity(app:pay) seq 2 at flow.lua:14; ...`.
#[derive(Debug, Default)]
pub struct LastIssued(Vec<(Issued, Option<String>)>);

impl LastIssued {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Display for LastIssued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, (command, site)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{command}")?;
            if let Some(site) = site {
                write!(f, " at {site}")?;
            }
        }
        Ok(())
    }
}

fn is_memory_error(error: &mlua::Error) -> bool {
    match error {
        mlua::Error::MemoryError(_) => true,
        mlua::Error::CallbackError { cause, .. } | mlua::Error::WithContext { cause, .. } => is_memory_error(cause),
        mlua::Error::RuntimeError(message) => message.contains("not enough memory"),
        mlua::Error::ExternalError(e) => e.to_string().contains("not enough memory"),
        _ => false,
    }
}

/// Applies the return convention to the main function's results.
fn returned_outcome((result, error): &(Value, Value)) -> Result<crate::convert::Data, Failure> {
    if let Some(failure) = Failure::from_return(error) {
        return Err(failure);
    }
    to_data(result)
        .map_err(|e| Failure::invalid(format!("cannot encode the workflow result: {}", e.with_root("result"))))
}

fn finish(_lua: &Lua, core: &Rc<RefCell<RunCore>>, outcome: Result<crate::convert::Data, Failure>) {
    let mut run = core.borrow_mut();
    run.finished = true;
    run.ready.clear();
    let command = match outcome {
        Ok(data) => Command::CompleteWorkflow(data),
        Err(failure) => Command::FailWorkflow(failure),
    };
    run.issue(command, None);
}

/// Bounds every activation's run time. The check is mlua's global hook with [`deadlock_hook`] as
/// its callback. Normally it is off on every thread: the watchdog arms it on the coroutine that
/// runs past the deadline (see `watchdog.rs`), and coroutines that workflow code creates itself
/// get a count hook of their own ([`hook_user_coroutine`]). Where signals cannot be used, the hook
/// counts instructions on every thread mlua creates, and coroutines created by Lua code copy it
/// from their parent. Returns whether the watchdog watches this VM.
fn install_deadlock_hook(lua: &Lua) -> mlua::Result<bool> {
    lua.set_global_hook(counting_instructions(), deadlock_hook)?;
    if !super::watchdog::install(lua) {
        return Ok(false);
    }
    lua.set_global_hook(HookTriggers::default(), deadlock_hook)?;
    Ok(true)
}

/// A coroutine created by workflow code (`coroutine.create`/`wrap`) checks the deadline itself
/// every [`DEADLOCK_CHECK_INSTRUCTIONS`]: the engine does not resume it, so the watchdog cannot
/// find it.
fn hook_user_coroutine(thread: &Thread) -> mlua::Result<()> {
    thread.set_hook(counting_instructions(), deadlock_hook)
}

/// The deadlock hook's trigger where it runs all the time.
fn counting_instructions() -> HookTriggers {
    HookTriggers::new().every_nth_instruction(DEADLOCK_CHECK_INSTRUCTIONS)
}

fn deadlock_hook(lua: &Lua, _: &mlua::Debug) -> mlua::Result<VmState> {
    let Some(active) = lua.app_data_ref::<ActiveRun>().and_then(|active| active.run()) else {
        return Ok(VmState::Continue);
    };
    let Ok(mut core) = active.try_borrow_mut() else { return Ok(VmState::Continue) };
    match core.deadline {
        Some(deadline) if Instant::now() > deadline => {
            if core.deadlocked {
                // The first error was caught by pcall: leave by yielding instead.
                return Ok(VmState::Yield);
            }
            core.deadlocked = true;
            let timeout = core.deadlock_timeout;
            drop(core);
            drop(active);
            let trace = traceback(lua);
            Err(mlua::Error::runtime(format!(
                "[TMPRL1101] Potential deadlock detected: workflow code ran for more than {timeout:?} \
                 without blocking on a channel, timer or activity\n{trace}"
            )))
        }
        _ => Ok(VmState::Continue),
    }
}

/// The Lua call stack of the running coroutine, one frame a line.
fn traceback(lua: &Lua) -> String {
    let mut lines = vec!["stack traceback:".to_owned()];
    for level in 0..32 {
        let Some(frame) = lua.inspect_stack(level, |debug| {
            let source = debug.source();
            let name = debug.names().name.map(|n| n.into_owned());
            let src = source.short_src.map(|s| s.into_owned()).unwrap_or_else(|| "?".into());
            (src, debug.current_line(), name)
        }) else {
            break;
        };
        let (src, line, name) = frame;
        if src.starts_with("[C]") || src.starts_with("tempest:") {
            continue;
        }
        let place = match line {
            Some(line) => format!("{src}:{line}"),
            None => src,
        };
        lines.push(match name {
            Some(name) => format!("\t{place}: in function '{name}'"),
            None => format!("\t{place}: in main chunk"),
        });
    }
    lines.join("\n")
}

/// Builds the shared workflow globals; returns the prelude's `main` and the per-run env metatable.
fn install_api(lua: &Lua) -> mlua::Result<(Function, Table)> {
    let primitives = lua.create_table()?;
    primitives.raw_set("PARK", park())?;
    primitives.raw_set("TRACE", trace())?;
    primitives.raw_set(
        "record_trace",
        lua.create_function(|lua, ()| {
            active_run(lua)?.borrow_mut().record_trace(lua);
            Ok(())
        })?,
    )?;
    channel::register(lua, &primitives)?;
    api::register_primitives(lua, &primitives)?;
    let time = time_api::register(lua, &primitives)?;
    // Coroutines created by workflow code check the deadline themselves.
    let hooked_create = lua.create_function(|lua, f: Function| {
        let thread = lua.create_thread(f)?;
        hook_user_coroutine(&thread)?;
        Ok(thread)
    })?;
    primitives.raw_set("coroutine_create", hooked_create.clone())?;
    let prelude: Table = lua.load(include_str!("prelude.lua")).set_name("=tempest:prelude").call(primitives.clone())?;

    let channel_methods: Table = prelude.get("channel_methods")?;
    lua.register_userdata_type::<channel::Channel>(|registry| {
        registry.add_meta_field("__index", channel_methods);
        registry.add_meta_field("__name", "channel");
    })?;

    let globals = lua.globals();
    let freeze = |name: &str, table: &Table| sandbox::freeze(lua, name, table);

    let channel_module = lua.create_table()?;
    channel_module.raw_set("new", primitives.get::<Function>("chan_new")?)?;
    channel_module.raw_set("select", prelude.get::<Function>("select")?)?;
    globals.raw_set("channel", freeze("channel", &channel_module)?)?;

    let coroutine: Table = globals.get("coroutine")?;
    let workflow_coroutine = lua.create_table()?;
    for name in ["yield", "status", "running", "isyieldable", "close"] {
        workflow_coroutine.raw_set(name, coroutine.get::<Value>(name)?)?;
    }
    workflow_coroutine.raw_set("create", hooked_create)?;
    workflow_coroutine.raw_set("resume", prelude.get::<Function>("resume")?)?;
    workflow_coroutine.raw_set("wrap", prelude.get::<Function>("wrap")?)?;
    let spawn_body = crate::failure::protect(lua, lua.load("return function(f, ...) return f(...) end").eval()?)?;
    workflow_coroutine.raw_set(
        "spawn",
        lua.create_function(move |lua, (f, args): (Function, MultiValue)| {
            let thread = lua.create_thread(spawn_body.clone())?;
            let mut start = Vec::with_capacity(args.len() + 1);
            start.push(Value::Function(f));
            start.extend(args);
            active_run(lua)?.borrow_mut().add_task(thread, MultiValue::from_vec(start));
            Ok(())
        })?,
    )?;
    globals.raw_set("coroutine", freeze("coroutine", &workflow_coroutine)?)?;

    globals.raw_set("math", freeze("math", &api::math_module(lua)?)?)?;
    globals.raw_set("os", freeze("os", &api::os_module(lua)?)?)?;
    for name in ["string", "table", "utf8"] {
        let table: Table = globals.get(name)?;
        globals.raw_set(name, freeze(name, &table)?)?;
    }
    globals.raw_set("process", freeze("process", &api::process_module(lua)?)?)?;
    let errors = freeze("errors", &crate::modules::errors::register(lua)?)?;
    globals.raw_set("errors", errors.clone())?;
    install_deterministic_base(lua, &globals)?;

    let funcs: Table = prelude.get("funcs")?;
    time.raw_set("sleep", prelude.get::<Function>("sleep")?)?;
    let modules = lua.create_table()?;
    modules.raw_set("funcs", freeze("funcs", &funcs)?)?;
    modules.raw_set("time", freeze("time", &time)?)?;
    modules.raw_set("workflow", freeze("workflow", &api::workflow_module(lua)?)?)?;
    modules.raw_set("errors", errors)?;
    modules.raw_set("json", freeze("json", &crate::modules::json::register(lua)?)?)?;
    modules.raw_set("uuid", freeze("uuid", &crate::modules::uuid::register(lua)?)?)?;
    modules.raw_set("base64", freeze("base64", &crate::modules::base64::register(lua)?)?)?;
    modules.raw_set("hash", freeze("hash", &crate::modules::hash::register(lua)?)?)?;
    modules.raw_set("ctx", freeze("ctx", &crate::modules::ctx::register(lua)?)?)?;
    modules.raw_set("crypto", freeze("crypto", &crate::modules::crypto::register(lua)?)?)?;
    modules.raw_set("yaml", freeze("yaml", &crate::modules::yaml::register(lua)?)?)?;
    globals.raw_set("require", require_function(lua, modules)?)?;

    // Protected, so `error(err)` keeps err's kind when it ends the workflow.
    let main = crate::failure::protect(lua, prelude.get::<Function>("main")?)?;
    let env_meta = sandbox::environment_meta(lua, &globals)?;
    Ok((main, env_meta))
}

/// `require` for workflows: the entry's `modules:` list, then the deterministic module set.
fn require_function(lua: &Lua, modules: Table) -> mlua::Result<Function> {
    // Every run evaluates its chunk, so `require` runs once per run and module: the name stays a
    // Lua string, borrowed for the checks and used as is for the lookup.
    lua.create_function(move |lua, name: mlua::String| {
        let run = active_run(lua)?;
        let (allowed, entry) = {
            let run = run.borrow();
            (run.modules.clone(), run.entry_id.clone())
        };
        let text = name.to_str()?;
        let text: &str = &text;
        if !WORKFLOW_MODULES.contains(&text) {
            return Err(mlua::Error::runtime(format!(
                "module `{text}` cannot be used in workflows (it is not deterministic); allowed: {}",
                WORKFLOW_MODULES.join(", ")
            )));
        }
        if !allowed.iter().any(|m| *m == text) {
            return Err(mlua::Error::runtime(format!(
                "module `{text}` is not in the `modules:` list of entry `{entry}`; add it there"
            )));
        }
        match modules.raw_get::<Value>(&name)? {
            Value::Nil => Err(mlua::Error::runtime(format!("module `{text}` is not available in workflows yet"))),
            module => Ok(module),
        }
    })
}

/// `print`, `tostring` and `setmetatable` that cannot leak addresses or run finalizers.
fn install_deterministic_base(lua: &Lua, globals: &Table) -> mlua::Result<()> {
    let original_tostring: Function = globals.get("tostring")?;
    let tostring = lua.create_function(move |_, value: Value| {
        let text: String = original_tostring.call(value)?;
        // "table: 0x55d0c2a0" differs between processes; keep only the type (or __name).
        Ok(match text.rsplit_once(": 0x") {
            Some((name, address)) if address.bytes().all(|b| b.is_ascii_hexdigit()) => name.to_owned(),
            _ => text,
        })
    })?;
    globals.raw_set("tostring", tostring.clone())?;
    globals.raw_set(
        "print",
        lua.create_function(move |lua, args: MultiValue| {
            let mut parts = Vec::with_capacity(args.len());
            for arg in args {
                parts.push(tostring.call::<String>(arg)?);
            }
            let run = active_run(lua)?;
            let run = run.borrow();
            if !run.replaying {
                tracing::info!(target: "tempest::workflow", workflow_id = %run.info.workflow_id, run_id = %run.info.run_id, "{}", parts.join("\t"));
            }
            Ok(())
        })?,
    )?;
    let original_setmetatable: Function = globals.get("setmetatable")?;
    globals.raw_set(
        "setmetatable",
        lua.create_function(move |_, (table, meta): (Table, Option<Table>)| {
            if let Some(meta) = &meta
                && !meta.raw_get::<Value>("__gc")?.is_nil()
            {
                return Err(mlua::Error::runtime(
                    "__gc metamethods are not allowed in workflows (garbage collection timing differs between replays)",
                ));
            }
            original_setmetatable.call::<Table>((table, meta))
        })?,
    )?;
    Ok(())
}
