"""Quickstart: an order workflow that pauses for a human, then resumes in another process.

    python examples/quickstart.py                 # start, pause, resume in a child process
    python examples/quickstart.py start ORDER     # just start (prints the question)
    python examples/quickstart.py answer ORDER yes

State lives under ./.cairnflow (override with CAIRNFLOW_STORE, e.g. s3://bucket/prefix).
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from typing import Any

from cairnflow.core import RetryPolicy, interrupt, task, workflow
from cairnflow.savers import open_saver

STORE = os.environ.get("CAIRNFLOW_STORE", "file://./.cairnflow")


@task(retry=RetryPolicy(max_attempts=3, initial_interval=0.2))
def reserve_stock(order: dict[str, Any]) -> dict[str, Any]:
    print(f"  [task] reserving {order['qty']} x {order['sku']}")
    return {"reservation": f"res-{order['id']}", "sku": order["sku"], "qty": order["qty"]}


@task
def price(order: dict[str, Any]) -> int:
    print("  [task] pricing the order")
    return order["qty"] * 1250


@task(retry=RetryPolicy(max_attempts=5))
def charge(order_id: str, cents: int) -> str:
    print(f"  [task] charging {cents / 100:.2f} for {order_id}")
    return f"rcpt-{order_id}"


@task
def ship(reservation: str) -> str:
    print(f"  [task] shipping {reservation}")
    return f"track-{reservation}"


@workflow(name="quickstart-order")
def order_flow(order: dict[str, Any]) -> dict[str, Any]:
    # Two tasks in parallel: each result is recorded as soon as it is known.
    reservation, cents = reserve_stock(order), price(order)
    receipt = charge(order["id"], cents.result()).result()
    answer = interrupt(
        {"question": f"Ship order {order['id']} ({cents.result() / 100:.2f})?", "receipt": receipt}
    )
    if answer != "yes":
        return {"order": order["id"], "status": "held", "receipt": receipt}
    tracking = ship(reservation.result()["reservation"]).result()
    return {"order": order["id"], "status": "shipped", "receipt": receipt, "tracking": tracking}


def start(order_id: str) -> None:
    saver = open_saver(STORE)
    run = order_flow.run({"id": order_id, "sku": "BOOT-42", "qty": 2}, thread_id=order_id, saver=saver)
    print(f"process {os.getpid()}: status={run.status} question={run.interrupt['question']!r}")


def answer(order_id: str, reply: str) -> None:
    saver = open_saver(STORE)
    run = order_flow.resume(reply, thread_id=order_id, saver=saver)
    print(f"process {os.getpid()}: status={run.status} result={run.result}")


def main(argv: list[str]) -> int:
    if argv[:1] == ["start"] and len(argv) == 2:
        start(argv[1])
    elif argv[:1] == ["answer"] and len(argv) == 3:
        answer(argv[1], argv[2])
    elif not argv:
        order_id = f"order-{uuid.uuid4().hex[:8]}"
        print(f"Starting {order_id} on {STORE}")
        start(order_id)
        print("The workflow is paused; its state is only in the store. Resuming in a new process:")
        subprocess.run([sys.executable, __file__, "answer", order_id, "yes"], check=True)
    else:
        print(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
