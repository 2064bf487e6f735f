"""Builds variants of the core-floor (../shared/tools/core-floor, read-only) for the benchmark.

    floor_variants.py SRC DEST memory   -> a copy whose BenchSignalWorkflow blocks forever (the
                                           memory floor: Core's own cost per cached run), cache 12000
    floor_variants.py SRC DEST nogzip   -> a copy that does not gzip its gRPC traffic, as Tempest on
                                           a loopback address, for a like-for-like CPU ratio
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
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns("target"))
    main_rs = dest / "src/main.rs"
    text = main_rs.read_text()
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
    else:
        raise SystemExit(f"floor_variants: unknown variant {variant}")
    main_rs.write_text(text)
    # The copy lives under this repository's target/: keep it out of the Tempest workspace.
    manifest = dest / "Cargo.toml"
    manifest.write_text(manifest.read_text() + "\n[workspace]\n")


if __name__ == "__main__":
    main()
