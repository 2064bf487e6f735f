"""The Python SDK side of Tempest's interop tests.

    python_peer.py client ADDRESS TASK_QUEUE WORKFLOW_ID   -> starts app:greet with a dict, prints the result as JSON
    python_peer.py worker ADDRESS TASK_QUEUE               -> serves activity `py_shout` until stdin closes; prints READY
"""
import asyncio
import json
import os
import sys

from temporalio import activity
from temporalio.client import Client
from temporalio.worker import Worker


@activity.defn(name="py_shout")
async def py_shout(payload: dict) -> dict:
    return {"shouted": payload["text"].upper(), "by": "python"}


async def run_client(address: str, task_queue: str, workflow_id: str) -> None:
    client = await Client.connect(address)
    result = await client.execute_workflow(
        "app:greet", {"name": "Ada", "tags": ["x", "y"], "count": 2}, id=workflow_id, task_queue=task_queue
    )
    assert isinstance(result, dict), f"expected a dict, got {type(result)}"
    print(json.dumps(result, sort_keys=True))


async def run_worker(address: str, task_queue: str) -> None:
    client = await Client.connect(address)
    async with Worker(client, task_queue=task_queue, activities=[py_shout]):
        print("READY", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


if __name__ == "__main__":
    mode, *args = sys.argv[1:]
    asyncio.run(run_client(*args) if mode == "client" else run_worker(*args))
    # The SDK's native threads can abort the interpreter's own shutdown (PyGILState_Release);
    # the work is done and flushed, so leave without it.
    sys.stdout.flush()
    os._exit(0)
