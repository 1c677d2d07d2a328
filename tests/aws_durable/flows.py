"""Handlers the command-line and process tests import by name (``tests.aws_durable.flows:NAME``)."""

from __future__ import annotations

import os
from typing import Any

from aws_durable_execution_sdk_python import DurableContext, durable_execution
from aws_durable_execution_sdk_python.config import Duration


@durable_execution
def approval(event: dict[str, Any], context: DurableContext) -> dict[str, Any]:
    """A step, then a callback an outside party completes, then the answer."""
    total = context.step(lambda _: sum(event["items"]), name="sum")
    verdict = context.wait_for_callback(lambda _cid, _ctx: None, name="review")
    return {"total": total, "verdict": verdict, "pid": os.getpid()}


def _work(ledger: str, index: int, value: int) -> int:
    # O_APPEND: every run of a step body leaves a line, even in a process killed right after.
    fd = os.open(ledger, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{index}\n".encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    return value * 2 + index


@durable_execution
def chain(event: dict[str, Any], context: DurableContext) -> int:
    """``event["steps"]`` steps (each appends to ``event["ledger"]``), a 1 s wait in the middle."""
    value = int(event.get("start", 1))
    for index in range(int(event["steps"])):
        value = context.step(
            lambda _, i=index, v=value: _work(event["ledger"], i, v) % 1_000_003, name=f"s{index}"
        )
        if index == int(event["steps"]) // 2 and event.get("wait"):
            context.wait(Duration.from_seconds(int(event["wait"])), name="pause")
    return value


def expected_chain(steps: int, start: int = 1) -> int:
    value = start
    for index in range(steps):
        value = (value * 2 + index) % 1_000_003
    return value
