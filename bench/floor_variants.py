"""Builds variants of the core-floor (../shared/tools/core-floor, read-only) for the benchmark.

    floor_variants.py SRC DEST memory   -> a copy whose BenchSignalWorkflow blocks forever (the
                                           memory floor: Core's own cost per cached run), cache 12000
    floor_variants.py SRC DEST nogzip   -> a copy that does not gzip its gRPC traffic, as Tempest on
                                           a loopback address, for a like-for-like CPU ratio
    floor_variants.py SRC DEST nogzip+st -> also on a single-threaded tokio runtime, as Tempest runs
    floor_variants.py SRC DEST nogzip+st+spin  -> floor-st plus a busy loop per activation and per
                                           activity (FLOOR_SPIN_WF_US, FLOOR_SPIN_ACT_US): a
                                           stand-in for a language layer's CPU
    floor_variants.py SRC DEST nogzip+st+mimic -> floor-st sending Tempest's request contents before it reported a build ID
    floor_variants.py SRC DEST nogzip+st+local -> floor-st with its workflow loop in a LocalSet
Variants combine with `+`.
"""
import shutil
import sys
from pathlib import Path


def patch(text: str, old: str, new: str) -> str:
    if old not in text:
        raise SystemExit(f"floor_variants: the core-floor source changed; cannot find:\n{old}")
    return text.replace(old, new, 1)


def main() -> None:
    src, dest, variant = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    text = (src / "src/main.rs").read_text()
    for one in variant.split("+"):
        text = apply(text, one)
    # Each variant is its own package, core-floor-<variant>, so its binary has its own path in
    # the shared target dir (cargo does not copy a binary out again when nothing was rebuilt).
    # The copy lives under this repository's target/: keep it out of the Tempest workspace.
    name = 'name = "core-floor"'
    renamed = f'name = "core-floor-{variant.replace("+", "-")}"'
    manifest = patch((src / "Cargo.toml").read_text(), name, renamed) + "\n[workspace]\n"
    lock = patch((src / "Cargo.lock").read_text(), name, renamed)
    wanted = {"src/main.rs": text, "Cargo.toml": manifest, "Cargo.lock": lock}
    if dest.exists() and all((dest / name).is_file() and (dest / name).read_text() == content
                             for name, content in wanted.items()):
        return  # unchanged: keep the files' times, so cargo does not rebuild the variant
    if dest.exists():
        shutil.rmtree(dest)
    for name, content in wanted.items():
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        (dest / name).write_text(content)


def apply(text: str, variant: str) -> str:
    if variant == "memory":
        text = patch(text, '''                if init.workflow_type != "BenchWorkflow" {''', '''                if init.workflow_type == "BenchSignalWorkflow" {
                    // Waits for a signal forever: a cached run with nothing to do.
                    runs.insert(run_id.clone(), Run { arg: String::new() });
                    continue;
                }
                if init.workflow_type != "BenchWorkflow" {''')
        text = patch(text, ".max_cached_workflows(1000_usize)", ".max_cached_workflows(12000_usize)")
        text = patch(text, "Job::UpdateRandomSeed(_) | Job::NotifyHasPatch(_) => {}",
                     "Job::UpdateRandomSeed(_) | Job::NotifyHasPatch(_) | Job::SignalWorkflow(_) => {}")
    elif variant == "nogzip":
        text = patch(text, ".connect_timeout(Duration::from_secs(5))",
                     ".connect_timeout(Duration::from_secs(5))\n        .grpc_compression(temporalio_client::GrpcCompression::None)")
    elif variant == "st":
        text = patch(text, """    let runtime = CoreRuntime::new(
        RuntimeOptions::builder().telemetry_options(telemetry).build().map_err(|e| anyhow!(e))?,
        TokioRuntimeBuilder::default(),
    )?;
    let handle = runtime.tokio_handle();
    handle.block_on(run(&runtime, &tq, &url))""", """    // Everything on one thread: Core, gRPC and the workflow loop.
    let tokio_runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    tokio_runtime.block_on(async {
        let runtime = CoreRuntime::new_assume_tokio(
            RuntimeOptions::builder().telemetry_options(telemetry).build().map_err(|e| anyhow!(e))?,
        )?;
        run(&runtime, &tq, &url).await
    })""")
        text = patch(text, "CoreRuntime, PollError, PollerBehavior, RuntimeOptions, TokioRuntimeBuilder, Worker,",
                     "CoreRuntime, PollError, PollerBehavior, RuntimeOptions, Worker,")
    elif variant == "mimic":
        # Tempest's request contents before 0b8fa9b: empty build ID, `pid@vm` identity, client name `tempest`,
        # activity type `bench:echo`. Shows whether the server treats Tempest's requests
        # differently. It does: with no build ID the server spends ~10% more CPU per workflow.
        text = patch(text, 'WorkerVersioningStrategy::None { build_id: "core-floor".into() }', 'WorkerVersioningStrategy::None { build_id: String::new() }')
        text = patch(text, '.identity(format!("{}@core-floor", std::process::id()))', '.identity(format!("{}@vm", std::process::id()))')
        text = patch(text, '.client_name("core-floor")', '.client_name("tempest")')
        text = patch(text, 'activity_type: "echo".into(),', 'activity_type: "bench:echo".into(),')
        text = patch(text, 'if start.activity_type == "echo"', 'if start.activity_type == "bench:echo"')
    elif variant == "local":
        # (after st) The workflow loop and its completions as local tasks of a LocalSet, as
        # Tempest runs them (its Lua engine cannot leave its thread).
        text = patch(text, "    tokio_runtime.block_on(async {", "    tokio::task::LocalSet::new().block_on(&tokio_runtime, async {")
        text = patch(text, "let wf = tokio::spawn(workflow_loop(", "let wf = tokio::task::spawn_local(workflow_loop(")
        text = patch(text, """        let w = worker.clone();
        tokio::spawn(async move {
            if let Err(e) = w.complete_workflow_activation(completion).await {""", """        let w = worker.clone();
        tokio::task::spawn_local(async move {
            if let Err(e) = w.complete_workflow_activation(completion).await {""")
    elif variant == "spin":
        # Burns CPU as a language layer would: FLOOR_SPIN_WF_US microseconds per activation and
        # FLOOR_SPIN_ACT_US per activity, in a busy loop on the worker's thread.
        text = patch(text, """        let w = worker.clone();
        tokio::spawn(async move {
            if let Err(e) = w.complete_workflow_activation(completion).await {""", """        spin("FLOOR_SPIN_WF_US");
        let w = worker.clone();
        tokio::spawn(async move {
            if let Err(e) = w.complete_workflow_activation(completion).await {""")
        text = patch(text, """        let w = worker.clone();
        let task_token = task.task_token;""", """        spin("FLOOR_SPIN_ACT_US");
        let w = worker.clone();
        let task_token = task.task_token;""")
        text += """
fn spin(var: &str) {
    let us: u64 = std::env::var(var).ok().and_then(|v| v.parse().ok()).unwrap_or(0);
    let until = std::time::Instant::now() + Duration::from_micros(us);
    while std::time::Instant::now() < until {}
}
"""
    else:
        raise SystemExit(f"floor_variants: unknown variant {variant}")
    return text


if __name__ == "__main__":
    main()
