"""bench/driver.py: the side-by-side benchmark of issue 4 (run it through bench/run).

One in-memory dev server; for each worker kind (floor, tempest, python, typescript) a fresh task
queue, N BenchWorkflows started with no worker running, then one worker process started and timed
until every result is in. Optional sections: --replay (histories/s) and --memory (resident memory
per cached idle workflow). Prints one table and writes bench/out/results-<timestamp>.json.
"""

import argparse
import asyncio
import datetime
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

from temporalio.client import Client, WorkflowExecutionStatus

from procs import Proc, free_port
from stats import describe, pair_ratios, round_pairs

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
OUT = BENCH / "out"
TEMPORAL = ROOT / ".tools/venv/bin/temporal"
PYTHON = ROOT / ".tools/venv/bin/python"
# The floor and its variants (bench/floor_variants.py), by kind, as bench/run copies them after
# building; the memory section runs the signal-blocked variant.
FLOOR_BIN = ROOT / "target/core-floor/bin"
FLOORS = {
    "floor": FLOOR_BIN / "core-floor",
    "floor-nogzip": FLOOR_BIN / "core-floor-nogzip",
    "floor-st": FLOOR_BIN / "core-floor-nogzip-st",
    # Control experiments, run only when asked (--kinds): floor-st burning the CPU a language
    # layer would (FLOOR_SPIN_WF_US per activation, FLOOR_SPIN_ACT_US per activity), and floor-st
    # sending the request contents Tempest had before it reported a build ID; floor-st with its
    # workflow loop in a LocalSet.
    "floor-spin": FLOOR_BIN / "core-floor-nogzip-st-spin",
    "floor-mimic": FLOOR_BIN / "core-floor-nogzip-st-mimic",
    "floor-local": FLOOR_BIN / "core-floor-nogzip-st-local",
}
FLOOR_MEMORY = FLOOR_BIN / "core-floor-memory"
TEMPEST = Path(os.environ.get("TEMPEST_BIN") or ROOT / "target/release/tempest")
# A second Tempest binary for A/B comparisons of a change (kind tempest-b, same project).
TEMPEST_B = Path(os.environ["TEMPEST_B_BIN"]) if os.environ.get("TEMPEST_B_BIN") else None
KINDS = ("floor", "floor-nogzip", "floor-st", "floor-spin", "floor-mimic", "floor-local", "tempest", "tempest-b", "python", "typescript")

# What each worker runs with; shown under the table and stored in the JSON.
COMMON = "1000 cached wf, 100 wf-task / 100 activity slots, 5+5 pollers, sticky 10s"
SETTINGS = {
    "floor": f"core-floor (Core 0.10.1, hard-coded state machine): {COMMON}; eager activities on (Core default); gzip on (Core default)",
    "floor-nogzip": f"core-floor with gRPC compression off, as Tempest uses on loopback, built as Tempest (LTO): {COMMON}",
    "floor-st": f"core-floor with gRPC compression off on a single-threaded tokio runtime, as Tempest runs, built as Tempest (LTO): {COMMON}",
    "floor-spin": "floor-st plus a busy loop of FLOOR_SPIN_WF_US µs per activation and FLOOR_SPIN_ACT_US µs per activity "
                  f"(now {os.environ.get('FLOOR_SPIN_WF_US', '0')} and {os.environ.get('FLOOR_SPIN_ACT_US', '0')})",
    "floor-local": "floor-st with its workflow loop and completions in a LocalSet, as Tempest runs them",
    "floor-mimic": "floor-st with Tempest's request contents before 0b8fa9b (no build ID, pid@vm identity, "
                   "client name tempest, activity type bench:echo)",
    "tempest": f"tempest run bench/tempest: {COMMON}; up to 20000 parked (command logs kept); eager activities on (Tempest default); gzip off on loopback, "
               "one thread for Core and Lua (Tempest defaults); RUST_LOG unset (Tempest's default filter)",
    "tempest-b": "as tempest, with the binary in TEMPEST_B_BIN (A/B of a change)",
    "python": f"Python SDK 1.35.0 (sandboxed workflows): {COMMON}",
    "typescript": f"TypeScript SDK 1.24.0 (reuseV8Context default): {COMMON}",
}


# The memory section: which workers, and Tempest's two cache set-ups (bench/tempest-memory reads
# them): every run in Core's cache, or 1,000 in Core's cache and the rest parked (Lua state only).
MEMORY_KINDS = ("floor", "tempest", "tempest-parked", "python")
MEMORY_CACHE = {
    "tempest": {"BENCH_MAX_CACHED": "12000", "BENCH_MAX_PARKED": "0"},
    "tempest-parked": {"BENCH_MAX_CACHED": "1000", "BENCH_MAX_PARKED": "20000"},
}
# Workers whose BenchSignalWorkflow completes on `go` (the memory floor's never does).
WAKES = ("tempest", "tempest-parked", "python")

# Kinds that run only when --kinds names them: an A/B binary and the control experiments.
ONLY_WHEN_ASKED = ("tempest-b", "floor-spin", "floor-mimic", "floor-local")

# The floor variant with the same Core settings as each kind (no gzip on loopback, one thread).
LIKE_FLOOR = {"tempest": "floor-st", "tempest-b": "floor-st", "floor-spin": "floor-st", "floor-mimic": "floor-st",
              "floor-local": "floor-st"}


def worker_argv(kind: str, task_queue: str, address: str, memory: bool = False):
    """argv, extra env and ready marker of one worker process."""
    env = {"TEMPORAL_ADDRESS": address, "BENCH_TASK_QUEUE": task_queue}
    if kind in FLOORS:
        binary = FLOOR_MEMORY if memory else FLOORS[kind]
        return [str(binary), task_queue, address], {}, "READY"
    if kind in ("tempest", "tempest-b", "tempest-parked"):
        if kind == "tempest-b" and TEMPEST_B is None:
            raise SystemExit("kind tempest-b needs TEMPEST_B_BIN=/path/to/another/tempest")
        project = BENCH / ("tempest-memory" if memory else "tempest")
        if memory:
            env.update(MEMORY_CACHE[kind])
        binary = TEMPEST_B if kind == "tempest-b" else TEMPEST
        return [str(binary), "run", str(project)], env, "worker started"
    if kind == "python":
        argv = [str(PYTHON), str(BENCH / "python/worker.py"), task_queue, address]
        return argv + (["--memory"] if memory else []), {}, "READY"
    if kind == "typescript":
        return ["node", str(BENCH / "typescript/worker.js"), task_queue, address], {}, "READY"
    raise ValueError(kind)


async def gather_limited(limit: int, coros):
    sem = asyncio.Semaphore(limit)

    async def one(c):
        async with sem:
            return await c

    return await asyncio.gather(*(one(c) for c in coros))


async def wait_count(client: Client, query: str, want, timeout: float, every: float = 0.2) -> float:
    """Polls CountWorkflowExecutions until `want(count)`; returns the time it became true."""
    deadline = time.time() + timeout
    while True:
        count = (await client.count_workflows(query)).count
        if want(count):
            return time.time()
        if time.time() > deadline:
            raise TimeoutError(f"`{query}`: count {count} after {timeout}s")
        await asyncio.sleep(every)


async def start_workflows(client: Client, workflow: str, task_queue: str, n: int, prefix: str):
    return await gather_limited(64, (
        client.start_workflow(workflow, f"{prefix}{i}", id=f"{task_queue}-{i}", task_queue=task_queue)
        for i in range(n)
    ))


class Bench:
    def __init__(self, args, client: Client, address: str, server: Proc):
        self.args = args
        self.client = client
        self.address = address
        self.server = server
        self.stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        self.logs = OUT / f"logs-{self.stamp}"
        self.logs.mkdir(parents=True, exist_ok=True)

    def spawn(self, kind: str, task_queue: str, memory: bool = False) -> Proc:
        argv, env, ready = worker_argv(kind, task_queue, self.address, memory)
        return Proc(kind, argv, self.logs / f"{task_queue}.log", ready, env=env, cwd=ROOT)

    async def throughput(self, kind: str, run_index: int) -> dict:
        n, client = self.args.n, self.client
        tq = f"bench-{kind}-{run_index}-{uuid.uuid4().hex[:6]}"
        handles = await start_workflows(client, "BenchWorkflow", tq, n, "w")
        await wait_count(client, f"TaskQueue='{tq}' AND ExecutionStatus='Running'", lambda c: c == n, 60)

        server_cpu0, counters0 = self.server.cpu(), server_counters(self.server)
        worker = self.spawn(kind, tq)
        try:
            worker.wait_ready(120)
            cpu_ready = worker.cpu()
            running = f"TaskQueue='{tq}' AND ExecutionStatus='Running'"
            await wait_count(client, running, lambda c: c == 0, self.args.timeout)
            # Sampled the moment the last run closed (within one 0.2 s poll), before stopping.
            cpu_end, hwm, activity = worker.cpu(), worker.status_mb("VmHWM"), worker.activity()
            server_cpu = self.server.cpu() - server_cpu0
            matching = server_delta(counters0, server_counters(self.server), n)

            closes = [wf.close_time async for wf in client.list_workflows(f"TaskQueue='{tq}'")]
            last_close = max(c.timestamp() for c in closes)
            results = await gather_limited(32, (h.result() for h in handles))
            bad = [(h.id, r) for i, (h, r) in enumerate(zip(handles, results)) if r != f"w{i}|0|1|2"]
            sample = handles[:: max(1, n // self.args.sample)][: self.args.sample]
            described = await gather_limited(16, (h.describe() for h in sample))
            transitions = [d.raw_description.workflow_execution_info.state_transition_count
                           for d in described]
            statuses = {d.status for d in described}
        except BaseException:
            print(f"\n{kind}: failed; worker log {worker.log_path}:\n{worker.tail()}", file=sys.stderr)
            raise
        finally:
            exit_code = worker.stop()

        wall = last_close - worker.started
        lua = tempest_lua_ms(worker.log_path) if kind.startswith("tempest") else {}
        lua_ms = lua["workflow_lua_ms"] + lua.get("activity_lua_ms", 0) if "workflow_lua_ms" in lua else None
        processing = last_close - worker.ready_at
        row = {
            "kind": kind, "run": run_index, "task_queue": tq, "n": n, "settings": SETTINGS[kind],
            "wall_s": wall, "startup_s": worker.ready_at - worker.started,
            "wf_per_s": n / processing,
            "cpu_s": cpu_end, "cpu_ms_per_wf": cpu_end * 1000 / n,
            "cpu_startup_s": cpu_ready,
            "cpu_ms_per_wf_after_ready": (cpu_end - cpu_ready) * 1000 / n,
            "peak_rss_mb": hwm,
            "per_wf": {key: value / n for key, value in activity.items()},
            "lua_ms_per_wf": lua_ms / n if lua_ms is not None else None, "lua": lua,
            "transitions_per_wf": statistics.mean(transitions),
            "transitions_sample": transitions,
            "server_cpu_ms_per_wf": server_cpu * 1000 / n, "server": matching,
            "wrong_results": len(bad), "wrong_examples": bad[:3],
            "exit_code": exit_code, "log": str(worker.log_path),
        }
        if bad or statuses != {WorkflowExecutionStatus.COMPLETED}:
            raise RuntimeError(f"{kind}: {len(bad)} wrong results (e.g. {bad[:3]}), statuses {statuses}")
        print(f"  {kind:<10} run {run_index}: {wall:6.2f} s, {row['wf_per_s']:6.1f} wf/s, "
              f"{row['cpu_ms_per_wf']:6.2f} ms CPU/wf, {hwm:6.1f} MB peak, "
              f"{row['transitions_per_wf']:.1f} transitions/wf"
              + (f", {row['lua_ms_per_wf']:.3f} ms Lua/wf" if lua_ms is not None else "")
              + f"; server {row['server_cpu_ms_per_wf']:.1f} ms CPU/wf, sync match wf "
              f"{pct(matching['workflow_sync_match'])} act {pct(matching['activity_sync_match'])}, "
              f"{matching['persistence_requests_per_wf']:.0f} persistence calls/wf; worker per wf: "
              f"{row['per_wf']['read_calls']:.1f} reads, {row['per_wf']['write_calls']:.1f} writes, "
              f"{row['per_wf']['voluntary_switches']:.1f}+{row['per_wf']['involuntary_switches']:.1f} "
              "context switches", flush=True)
        return row

    async def record_history(self, kind: str) -> Path:
        """Runs one BenchWorkflow on `kind` and saves `temporal workflow show --output json`."""
        tq = f"bench-history-{kind}-{uuid.uuid4().hex[:6]}"
        worker = self.spawn(kind, tq)
        try:
            worker.wait_ready(120)
            handle = await self.client.start_workflow("BenchWorkflow", "w0", id=f"{tq}-0", task_queue=tq)
            if await handle.result() != "w0|0|1|2":
                raise RuntimeError(f"{kind}: wrong result while recording the replay history")
        finally:
            worker.stop()
        path = OUT / f"history-{kind}-{self.stamp}.json"
        shown = subprocess.run(
            [str(TEMPORAL), "workflow", "show", "--output", "json", "--workflow-id", handle.id,
             "--address", self.address],
            check=True, capture_output=True, text=True)
        path.write_text(shown.stdout)
        return path

    async def replay(self) -> dict:
        count, out = self.args.replay_count, {}
        if "python" in self.args.kinds.split(","):
            out["python"] = await self.replay_python(count)
        if "tempest" in self.args.kinds.split(","):
            out["tempest"] = self.replay_tempest(await self.record_history("tempest"), count)
        return out

    async def replay_python(self, count: int) -> dict:
        python_history = await self.record_history("python")
        done = subprocess.run([str(PYTHON), str(BENCH / "python/replay.py"), str(python_history), str(count)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"python replay failed:\n{done.stdout}{done.stderr}")
        py = json.loads(done.stdout.strip().splitlines()[-1])
        return {**py, "histories_per_s": count / py["seconds"], "history": str(python_history),
                "note": "Replayer.replay_workflows in one process, imports excluded"}

    def replay_tempest(self, history: Path, count: int) -> dict:
        env = {**os.environ, "TEMPORAL_ADDRESS": self.address, "BENCH_TASK_QUEUE": "bench-replay"}
        argv = [str(TEMPEST), "replay", str(BENCH / "tempest")]
        probe = subprocess.run(argv + [str(history)], capture_output=True, text=True, env=env)
        if probe.returncode != 0:
            # TODO(issue 4): `tempest replay DIR HISTORY...` is being built in parallel; until it
            # replays this history with exit 0, Tempest's replay speed is reported as n/a.
            return {"histories_per_s": None, "history": str(history),
                    "note": f"tempest replay unavailable (exit {probe.returncode}): "
                            f"{(probe.stderr or probe.stdout).strip()[-300:]}"}
        started = time.perf_counter()
        done = subprocess.run(argv + [str(history)] * count, capture_output=True, text=True, env=env)
        seconds = time.perf_counter() - started
        if done.returncode != 0:
            raise RuntimeError(f"tempest replay of {count} histories failed:\n{done.stderr[-2000:]}")
        return {"histories": count, "seconds": seconds, "histories_per_s": count / seconds,
                "history": str(history), "note": "one `tempest replay` process, start-up included"}

    async def memory(self, kind: str) -> dict:
        n, client = self.args.memory_n, self.client
        tq = f"bench-memory-{kind}-{uuid.uuid4().hex[:6]}"
        worker = self.spawn(kind, tq, memory=True)
        try:
            worker.wait_ready(120)
            await asyncio.sleep(3)
            idle = worker.status_mb("VmRSS")
            started = time.time()
            handles = await start_workflows(client, "BenchSignalWorkflow", tq, n, "m")
            await self.wait_first_tasks(handles, worker)
            seconds = time.time() - started
            await asyncio.sleep(2)
            rss, hwm = worker.status_mb("VmRSS"), worker.status_mb("VmHWM")
            woken = await self.wake(kind, handles, worker) if kind in WAKES else {}
        except BaseException:
            print(f"\n{kind}: failed; worker log {worker.log_path}:\n{worker.tail()}", file=sys.stderr)
            raise
        finally:
            worker.stop()
        if kind.startswith("tempest"):
            woken["parking"] = tempest_parking(worker.log_path)
        cache = MEMORY_CACHE.get(kind, {"BENCH_MAX_CACHED": "12000", "BENCH_MAX_PARKED": "0"})
        parked = int(cache["BENCH_MAX_PARKED"])
        settings = (f"{cache['BENCH_MAX_CACHED']} wf in Core's cache"
                    + (f", up to {parked} parked" if parked else "") + ", otherwise as in the throughput run")
        row = {"kind": kind, "n": n, "idle_rss_mb": idle, "rss_mb": rss, "peak_rss_mb": hwm,
               "kb_per_workflow": (rss - idle) * 1024 / n, "seconds_to_cache_all": seconds,
               "settings": settings, **woken}
        print(f"  {kind:<14} memory: idle {idle:.1f} MB, {n} cached {rss:.1f} MB -> "
              f"{row['kb_per_workflow']:.1f} KB per cached workflow"
              + (f"; woken by `go`: all {n} done in {woken['wake_s']:.1f} s, "
                 f"{woken['wake_cpu_ms_per_wf']:.2f} ms worker CPU/wf" if woken else ""), flush=True)
        return row

    async def wake(self, kind: str, handles, worker: Proc) -> dict:
        """Signals `go` to every blocked run and waits for all results: parked runs must wake."""
        cpu, started = worker.cpu(), time.time()
        await gather_limited(64, (h.signal("go") for h in handles))
        results = await gather_limited(64, (h.result() for h in handles))
        seconds, cpu = time.time() - started, worker.cpu() - cpu
        bad = [(h.id, r) for i, (h, r) in enumerate(zip(handles, results)) if r != f"m{i}"]
        if bad:
            raise RuntimeError(f"{kind}: {len(bad)} wrong results after `go` (e.g. {bad[:3]})")
        return {"wake_s": seconds, "wake_cpu_ms_per_wf": cpu * 1000 / len(handles)}

    async def wait_first_tasks(self, handles, worker: Proc) -> None:
        """Waits until every run's first workflow task has completed (it then blocks on `go`)."""
        pending = list(handles)
        deadline = time.time() + self.args.timeout
        while pending:
            if time.time() > deadline:
                raise TimeoutError(f"{len(pending)} runs still have a pending workflow task")
            cpu = worker.cpu()
            await asyncio.sleep(2)
            if worker.cpu() - cpu > 0.2:  # still busy: checking now would only slow it down
                continue
            described = await gather_limited(64, (h.describe() for h in pending))
            pending = [h for h, d in zip(pending, described)
                       if d.raw_description.HasField("pending_workflow_task")
                       or d.history_length < 4]


def stopped_fields(log: Path) -> dict[str, str]:
    """The key=value fields of Tempest's `worker stopped` line."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", log.read_text(errors="replace"))
    found = re.search(r"worker stopped.*", text)
    return dict(re.findall(r"(\w+)=([\w.]+)", found.group(0))) if found else {}


def tempest_lua_ms(log: Path) -> dict:
    """Lua time Tempest reports in its `worker stopped` line (workflow and activity Lua, in ms)."""
    fields = stopped_fields(log)
    return {k: float(fields[k]) for k in ("activations", "workflow_lua_ms", "activity_calls", "activity_lua_ms")
            if k in fields}


def tempest_parking(log: Path) -> dict:
    """What parking did: the counters of Tempest's `worker stopped` line."""
    return {k: int(v) for k, v in stopped_fields(log).items() if k in ("parked", "woken", "rebuilt")}


def pct(share) -> str:
    return f"{share * 100:.0f}%" if share is not None else "n/a"


def ratio(value, base):
    return value / base if value is not None and base else None


def summarize(rows: list[dict]) -> list[dict]:
    """One line per kind: the mean over its runs, with ratios against the floor's mean."""
    kinds = [k for k in KINDS if any(r["kind"] == k for r in rows)]
    keys = ("wall_s", "startup_s", "wf_per_s", "cpu_ms_per_wf", "cpu_ms_per_wf_after_ready",
            "peak_rss_mb", "transitions_per_wf", "server_cpu_ms_per_wf")
    means = []
    for kind in kinds:
        runs = [r for r in rows if r["kind"] == kind]
        means.append({"kind": kind, "runs": len(runs), **{k: statistics.mean(r[k] for r in runs) for k in keys}})
    by_kind = {m["kind"]: m for m in means}
    floor = by_kind.get("floor")
    for m in means:
        m["cpu_x_floor"] = ratio(m["cpu_ms_per_wf"], floor and floor["cpu_ms_per_wf"])
        m["wf_per_s_x_floor"] = ratio(m["wf_per_s"], floor and floor["wf_per_s"])
        m["rss_x_floor"] = ratio(m["peak_rss_mb"], floor and floor["peak_rss_mb"])
        # Against the floor built with the same Core settings (transport, runtime): the cost of
        # the language layer alone.
        like = by_kind.get(LIKE_FLOOR.get(m["kind"], ""))
        m["like_floor"] = like and like["kind"]
        m["cpu_x_like_floor"] = ratio(m["cpu_ms_per_wf"], like and like["cpu_ms_per_wf"])
        m["wf_per_s_x_like_floor"] = ratio(m["wf_per_s"], like and like["wf_per_s"])
        if like:
            m["rounds_x_like_floor"] = round_ratios(rows, m["kind"], like["kind"])
    return means


def round_ratios(rows: list[dict], kind: str, base: str) -> dict | None:
    """Ratios of `kind` to `base` within each round (runs with the same number, next to each
    other in time): the machine's drift between rounds cancels out. Mean with its 95% interval,
    median and range over rounds."""
    pairs = round_pairs(rows, kind, base)
    if len(pairs) < 2:
        return None
    return {"rounds": len(pairs), **pair_ratios(pairs)}


def fmt(v, spec):
    return "n/a" if v is None else format(v, spec)


def print_throughput(rows, means, n):
    print(f"\nBenchWorkflow, N={n} per run, one in-memory dev server; runs:")
    header = (f"{'worker':<13}{'run':>4}{'wall s':>8}{'start s':>8}{'wf/s':>8}{'CPU ms/wf':>10}"
              f"{'peak MB':>9}{'trans/wf':>9}{'Lua ms/wf':>10}{'srv ms/wf':>10}")
    print(header)
    for r in rows:
        print(f"{r['kind']:<13}{r['run']:>4}{r['wall_s']:>8.2f}{r['startup_s']:>8.2f}{r['wf_per_s']:>8.1f}"
              f"{r['cpu_ms_per_wf']:>10.2f}{r['peak_rss_mb']:>9.1f}{r['transitions_per_wf']:>9.1f}"
              f"{fmt(r['lua_ms_per_wf'], '.3f'):>10}{r['server_cpu_ms_per_wf']:>10.2f}")
    print("\nMeans per worker, ratios against the floor's mean (x) and against the floor variant with the "
          "same Core settings (x=: tempest vs floor-st):")
    print(f"{'worker':<13}{'runs':>5}{'wf/s':>8}{'CPU ms/wf':>10}{'peak MB':>9}{'trans/wf':>9}"
          f"{'CPU x':>8}{'wf/s x':>8}{'RSS x':>8}{'CPU x=':>8}{'wf/s x=':>9}")
    for m in means:
        print(f"{m['kind']:<13}{m['runs']:>5}{m['wf_per_s']:>8.1f}{m['cpu_ms_per_wf']:>10.2f}"
              f"{m['peak_rss_mb']:>9.1f}{m['transitions_per_wf']:>9.1f}{fmt(m['cpu_x_floor'], '.2f'):>8}"
              f"{fmt(m['wf_per_s_x_floor'], '.2f'):>8}{fmt(m['rss_x_floor'], '.2f'):>8}"
              f"{fmt(m['cpu_x_like_floor'], '.2f'):>8}{fmt(m['wf_per_s_x_like_floor'], '.2f'):>9}")
    for m in means:
        rounds = m.get("rounds_x_like_floor")
        if rounds:
            cpu, wfs = rounds["cpu_ms_per_wf"], rounds["wf_per_s"]
            print(f"{m['kind']} against {m['like_floor']} round by round ({rounds['rounds']} rounds): "
                  f"CPU x {describe(cpu)}, wf/s x {describe(wfs)}")
    print("\nSettings:")
    for kind in dict.fromkeys(r["kind"] for r in rows):
        print(f"  {kind}: {SETTINGS[kind]}")


def print_table(rows, means, replay, memory, n):
    if rows:
        print_throughput(rows, means, n)
    if replay:
        print("\nReplay of one BenchWorkflow history:")
        for kind, r in replay.items():
            print(f"  {kind:<10} {fmt(r.get('histories_per_s'), '.0f'):>8} histories/s"
                  + (f"  ({r['note']})" if r.get("note") else ""))
    if memory:
        print("\nMemory per cached idle workflow (BenchSignalWorkflow blocked on signal `go`):")
        for r in memory:
            print(f"  {r['kind']:<14} {r['kb_per_workflow']:8.1f} KB/wf  (idle {r['idle_rss_mb']:.1f} MB, "
                  f"{r['n']} cached {r['rss_mb']:.1f} MB; {r['settings']})"
                  + (f"; wake-up {r['wake_cpu_ms_per_wf']:.2f} ms CPU/wf" if "wake_s" in r else ""))


def plan(args) -> list[tuple[str, int]]:
    kinds = [k for k in args.kinds.split(",") if k]
    unknown = set(kinds) - set(KINDS)
    if unknown:
        sys.exit(f"unknown worker kinds {sorted(unknown)}; known: {', '.join(KINDS)}")
    order = []
    for i in range(args.interleave):
        forward = ("floor", "floor-nogzip", "floor-st", "floor-spin", "floor-mimic", "floor-local", "tempest", "tempest-b")
        pair = forward[::-1] if args.abba and i % 2 else forward
        order += [(k, i + 1) for k in pair if k in kinds]
    order += [(k, 1) for k in ("python", "typescript") if k in kinds]
    return order


def start_server() -> tuple[Proc, str]:
    port, metrics_port = free_port(), free_port()
    server = Proc("dev server", [str(TEMPORAL), "server", "start-dev", "--headless", "--ip", "127.0.0.1",
                                 "--port", str(port), "--metrics-port", str(metrics_port),
                                 "--log-level", "warn"],
                  OUT / "dev-server.log", "", cwd=ROOT)
    server.metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
    return server, f"127.0.0.1:{port}"


# Server counters read before and after each throughput run: how many workflow and activity tasks
# were matched to a waiting poller (sync) versus stored and dispatched later, and the persistence
# calls the run cost the server.
SERVER_COUNTERS = ("poll_success", "poll_success_sync", "persistence_requests", "service_requests")


def server_counters(server: Proc) -> dict[str, float]:
    """Sums of SERVER_COUNTERS from the dev server's Prometheus endpoint, by name and task type."""
    with urllib.request.urlopen(server.metrics_url, timeout=10) as response:
        text = response.read().decode()
    totals: dict[str, float] = {}
    for line in text.splitlines():
        found = re.match(r"(\w+)(\{[^}]*\})? ([0-9.e+-]+)$", line)
        if not found or found.group(1) not in SERVER_COUNTERS:
            continue
        name, labels, value = found.groups()
        if name in ("persistence_requests", "service_requests"):
            operation = re.search(r'operation="(\w+)"', labels or "")
            key = f"{name}:{operation.group(1) if operation else '?'}"
        else:
            task_type = re.search(r'task_type="(\w+)"', labels or "")
            key = f"{name}:{task_type.group(1) if task_type else '?'}"
        totals[key] = totals.get(key, 0.0) + float(value)
    return totals


def server_delta(before: dict[str, float], after: dict[str, float], n: int) -> dict:
    delta = {k: after.get(k, 0.0) - before.get(k, 0.0) for k in set(before) | set(after)}
    persistence = {k.split(":", 1)[1]: v / n for k, v in sorted(delta.items())
                   if k.startswith("persistence_requests:") and v}
    requests = {k.split(":", 1)[1]: v / n for k, v in sorted(delta.items())
                if k.startswith("service_requests:") and v}
    out = {"persistence_requests_per_wf": sum(persistence.values()), "persistence_per_wf": persistence,
           "requests_per_wf": requests}
    for task_type in ("Workflow", "Activity"):
        polls = delta.get(f"poll_success:{task_type}", 0.0)
        sync = delta.get(f"poll_success_sync:{task_type}", 0.0)
        out[f"{task_type.lower()}_tasks_per_wf"] = polls / n
        out[f"{task_type.lower()}_sync_match"] = sync / polls if polls else None
    return out


async def run(args) -> None:
    # SIGTERM (e.g. `pkill -f driver.py`) cancels the run, so its `finally` blocks stop the worker
    # and the server instead of leaving them running (a left-over worker keeps its binary busy).
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, asyncio.current_task().cancel)
    OUT.mkdir(exist_ok=True)
    server, address, client = await serve()
    try:
        bench = Bench(args, client, address, server)
        rows, replay, memory = [], None, []
        if not args.skip_throughput:
            print(f"throughput: N={args.n}, order {' '.join(f'{k}#{i}' for k, i in plan(args))}", flush=True)
            for index, (kind, i) in enumerate(plan(args)):
                if args.fresh_server and index > 0:
                    # A new in-memory server per run: no drift from the runs before.
                    server.stop()
                    server, address, bench.client = await serve()
                    bench.address, bench.server = address, server
                rows.append(await bench.throughput(kind, i))
        if args.replay:
            print(f"replay: {args.replay_count} x one BenchWorkflow history", flush=True)
            replay = await bench.replay()
        if args.memory:
            print(f"memory: {args.memory_n} BenchSignalWorkflows blocked on `go`", flush=True)
            kinds = args.kinds.split(",")
            for kind in MEMORY_KINDS:
                if kind in kinds or (kind == "tempest-parked" and "tempest" in kinds):
                    memory.append(await bench.memory(kind))
        means = summarize(rows)
        print_table(rows, means, replay, memory, args.n)
        path = OUT / f"results-{bench.stamp}.json"
        path.write_text(json.dumps({
            "date": datetime.datetime.now().isoformat(timespec="seconds"),
            "command": " ".join(["bench/run"] + sys.argv[1:]),
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
            "git": git_head(), "runs": rows, "means": means, "replay": replay, "memory": memory,
        }, indent=2, default=str))
        print(f"\nresults: {path.relative_to(ROOT)}  (worker logs: {bench.logs.relative_to(ROOT)})")
    finally:
        server.stop()


async def serve(attempts: int = 3) -> tuple[Proc, str, Client]:
    """A dev server and a client connected to it. A server that exits while starting (its port
    was taken between choosing and binding it) is started again on new ports."""
    for attempt in range(attempts):
        server, address = start_server()
        try:
            return server, address, await connect(address, server)
        except RuntimeError:
            exited = server.popen.poll() is not None
            server.stop()
            if not exited or attempt == attempts - 1:
                raise
            print(f"dev server on {address} exited while starting; retrying on new ports", flush=True)
    raise AssertionError("unreachable")


async def connect(address: str, server: Proc) -> Client:
    deadline = time.time() + 60
    while True:
        try:
            client = await Client.connect(address, namespace="default")
            await client.count_workflows("")
            return client
        except Exception:
            if server.popen.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"dev server did not come up on {address}:\n{server.tail()}")
            await asyncio.sleep(0.3)


def git_head() -> str:
    done = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return done.stdout.strip()


def main() -> None:
    p = argparse.ArgumentParser(prog="bench/run", description=__doc__.split("\n\n")[1])
    p.add_argument("--n", type=int, default=1000, help="workflows per throughput run (default 1000)")
    p.add_argument("--interleave", type=int, default=1, metavar="K",
                   help="run floor,tempest K times, alternating (default 1)")
    p.add_argument("--abba", action="store_true",
                   help="with --interleave: reverse every second pair (floor,tempest,tempest,floor,...) "
                        "so a server that slows down over the run does not favour the floor")
    p.add_argument("--fresh-server", action="store_true",
                   help="start a new dev server before every throughput run (no drift between runs)")
    p.add_argument("--kinds", default=",".join(k for k in KINDS if k not in ONLY_WHEN_ASKED),
                   help="workers to run (default: %(default)s; tempest-b needs TEMPEST_B_BIN; floor-spin, "
                        "floor-mimic, floor-local are control experiments, see bench/floor_variants.py)")
    p.add_argument("--sample", type=int, default=20, help="workflows described for state transitions")
    p.add_argument("--timeout", type=float, default=900, help="seconds allowed per run")
    p.add_argument("--skip-throughput", action="store_true", help="only the --replay / --memory sections")
    p.add_argument("--replay", action="store_true", help="also measure replay speed (histories/s)")
    p.add_argument("--replay-count", type=int, default=1000)
    p.add_argument("--memory", action="store_true", help="also measure memory per cached idle workflow")
    p.add_argument("--memory-n", type=int, default=10000)
    asyncio.run(run(p.parse_args()))


if __name__ == "__main__":
    main()
