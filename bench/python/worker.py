"""BenchWorkflow and echo on the official Temporal Python SDK, for `bench/run` (issue 4).

Usage: worker.py TASK_QUEUE HOST:PORT [--memory]
Prints READY once polling; SIGINT/SIGTERM shut it down gracefully (then prints STOPPED).
Worker settings match the core-floor: 1000 cached workflows (12000 with --memory), 100
workflow-task / 100 activity slots, 5 + 5 pollers, 10s sticky schedule-to-start.
"""

import asyncio
import os
import signal
import sys
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import Worker

ACTIVITIES = 3


@activity.defn(name="echo")
async def echo(s: str) -> str:
    return s


@workflow.defn(name="BenchWorkflow")
class BenchWorkflow:
    @workflow.run
    async def run(self, arg: str) -> str:
        s = arg
        for i in range(ACTIVITIES):
            s = await workflow.execute_activity(
                echo, f"{s}|{i}", start_to_close_timeout=timedelta(seconds=30)
            )
        await workflow.sleep(timedelta(0))  # a real StartTimer(0s), like the floor's
        return s


@workflow.defn(name="BenchSignalWorkflow")
class BenchSignalWorkflow:
    def __init__(self) -> None:
        self._go = False

    @workflow.run
    async def run(self, arg: str) -> str:
        await workflow.wait_condition(lambda: self._go)
        return arg

    @workflow.signal(name="go")
    def go(self) -> None:
        self._go = True


async def main() -> None:
    task_queue, address = sys.argv[1], sys.argv[2]
    memory = "--memory" in sys.argv[3:]
    client = await Client.connect(address, namespace="default")
    worker = Worker(
        client,
        task_queue=task_queue,
        workflows=[BenchSignalWorkflow] if memory else [BenchWorkflow],
        activities=[] if memory else [echo],
        max_cached_workflows=12000 if memory else 1000,
        max_concurrent_workflow_tasks=100,
        max_concurrent_activities=100,
        max_concurrent_local_activities=100,
        max_concurrent_workflow_task_polls=5,
        max_concurrent_activity_task_polls=5,
        sticky_queue_schedule_to_start_timeout=timedelta(seconds=10),
        graceful_shutdown_timeout=timedelta(seconds=2),
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with worker:
        print("READY", flush=True)
        await stop.wait()
    print("STOPPED", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
    # The worker has shut down cleanly by now; skip interpreter finalization, where the SDK's
    # native runtime threads can abort the process (PyGILState_Release, SIGABRT).
    os._exit(0)
