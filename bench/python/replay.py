"""Replays one BenchWorkflow history COUNT times through the Python SDK's Replayer.

Usage: replay.py HISTORY_JSON COUNT   (HISTORY_JSON as written by WorkflowHistory.to_json)
Prints one JSON line: {"histories": COUNT, "seconds": ..., "cpu_seconds": ...}; exit 1 if any
replay fails. Timed from the first history handed over to the last result; imports excluded.
"""

import asyncio
import json
import sys
import time
from pathlib import Path

from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

sys.path.insert(0, str(Path(__file__).parent))
from worker import BenchWorkflow  # noqa: E402


async def main() -> None:
    path, count = sys.argv[1], int(sys.argv[2])
    history = WorkflowHistory.from_json("bench-replay", Path(path).read_text())

    async def histories():
        for i in range(count):
            yield WorkflowHistory(f"bench-replay-{i}", history.events)

    replayer = Replayer(workflows=[BenchWorkflow])
    wall, cpu = time.perf_counter(), time.process_time()
    results = await replayer.replay_workflows(histories(), raise_on_replay_failure=False)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    failures = {run: str(err) for run, err in results.replay_failures.items()}
    print(json.dumps({"histories": count, "seconds": wall, "cpu_seconds": cpu,
                      "failures": len(failures), "first_failure": next(iter(failures.values()), None)}))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    asyncio.run(main())
