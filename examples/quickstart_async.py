"""Quickstart, asyncio flavour: the order workflow as ``async def``, paused for a human,
resumed in another process.

    python examples/quickstart_async.py                 # start, pause, resume in a child process
    python examples/quickstart_async.py start ORDER     # just start (prints the question)
    python examples/quickstart_async.py answer ORDER yes

State lives under ./.cairnflow (override with CAIRNFLOW_STORE). The same workflow as
examples/quickstart.py, written for an event loop: ``async def`` tasks are awaited,
``asyncio.gather`` runs two at once, the plain ``price`` task runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from typing import Any

from cairnflow.core import RetryPolicy, interrupt, task, workflow
from cairnflow.savers import open_async_saver

STORE = os.environ.get("CAIRNFLOW_STORE", "file://./.cairnflow")


@task(retry=RetryPolicy(max_attempts=3, initial_interval=0.2))
async def reserve_stock(order: dict[str, Any]) -> dict[str, Any]:
    print(f"  [task] reserving {order['qty']} x {order['sku']}")
    await asyncio.sleep(0.01)  # e.g. an HTTP call to the warehouse
    return {"reservation": f"res-{order['id']}", "sku": order["sku"], "qty": order["qty"]}


@task
def price(order: dict[str, Any]) -> int:  # a plain function: runs in a worker thread
    print("  [task] pricing the order")
    return order["qty"] * 1250


@task(retry=RetryPolicy(max_attempts=5))
async def charge(order_id: str, cents: int) -> str:
    print(f"  [task] charging {cents / 100:.2f} for {order_id}")
    return f"rcpt-{order_id}"


@task
async def ship(reservation: str) -> str:
    print(f"  [task] shipping {reservation}")
    return f"track-{reservation}"


@workflow(name="quickstart-order-async")
async def order_flow(order: dict[str, Any]) -> dict[str, Any]:
    # Two tasks at once: each result is recorded as soon as it is known.
    reservation, cents = await asyncio.gather(reserve_stock(order), price(order))
    receipt = await charge(order["id"], cents)
    answer = interrupt({"question": f"Ship order {order['id']} ({cents / 100:.2f})?", "receipt": receipt})
    if answer != "yes":
        return {"order": order["id"], "status": "held", "receipt": receipt}
    tracking = await ship(reservation["reservation"])
    return {"order": order["id"], "status": "shipped", "receipt": receipt, "tracking": tracking}


async def start(order_id: str) -> None:
    async with open_async_saver(STORE) as saver:
        order = {"id": order_id, "sku": "BOOT-42", "qty": 2}
        run = await order_flow.arun(order, thread_id=order_id, saver=saver)
    print(f"process {os.getpid()}: status={run.status} question={run.interrupt['question']!r}")


async def answer(order_id: str, reply: str) -> None:
    async with open_async_saver(STORE) as saver:
        run = await order_flow.aresume(reply, thread_id=order_id, saver=saver)
    print(f"process {os.getpid()}: status={run.status} result={run.result}")


def main(argv: list[str]) -> int:
    if argv[:1] == ["start"] and len(argv) == 2:
        asyncio.run(start(argv[1]))
    elif argv[:1] == ["answer"] and len(argv) == 3:
        asyncio.run(answer(argv[1], argv[2]))
    elif not argv:
        order_id = f"order-{uuid.uuid4().hex[:8]}"
        print(f"Starting {order_id} on {STORE}")
        asyncio.run(start(order_id))
        print("The workflow is paused; its state is only in the store. Resuming in a new process:")
        subprocess.run([sys.executable, __file__, "answer", order_id, "yes"], check=True)
    else:
        print(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
