"""Real workflows that leave threads in every state, for the CLI tests.

:func:`populate` runs them on a store URL and returns what each thread should
show. ``CALLS`` counts every real execution of a task, by task name and
arguments, so a test can prove that a resume re-ran nothing recorded.
"""

from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass
from typing import Any

from cairnflow.core import interrupt, task, workflow
from cairnflow.core.log import CheckpointLog
from cairnflow.savers import open_saver, open_store

CALLS: collections.Counter[tuple[str, Any]] = collections.Counter()
_lock = threading.Lock()


def _count(name: str, *args: Any) -> None:
    with _lock:
        CALLS[(name, args)] += 1


class SimulatedCrash(BaseException):
    """Stands for the process dying mid-run: not an Exception, so nothing records a failure."""


@task
def add(a: int, b: int) -> int:
    _count("add", a, b)
    return a + b


@task
def boom(x: int) -> int:
    _count("boom", x)
    raise ValueError(f"boom {x}")


@task
def crash() -> None:
    _count("crash")
    raise SimulatedCrash()


@workflow(name="order")
def order(inp: dict[str, int]) -> dict[str, Any]:
    x = add(inp["a"], inp["b"]).result()
    answer = interrupt({"question": "ship?", "x": x})
    return {"x": x, "answer": answer, "raw": b"ok", "pair": (x, answer)}


@workflow(name="fragile")
def fragile(x: int) -> int:
    y = add(x, 1).result()
    return boom(y).result()


@workflow(name="crashy")
def crashy(x: int) -> None:
    add(x, 100).result()
    crash().result()


@workflow(name="long")
def long(n: int) -> int:
    total = 0
    for i in range(n):
        total = add(total, i).result()
    return total


@workflow(name="review")
def review(n: int) -> dict[str, Any]:
    total = 0
    for i in range(n):
        total = add(total, i).result()
    answer = interrupt({"question": "approve?", "total": total})
    return {"total": total, "answer": answer}


LONG_TASKS = 30


@dataclass(frozen=True)
class Expected:
    thread_id: str
    status: str
    workflow: str
    steps: int
    head: int
    records: int
    error: str | None = None
    waiting_for: Any = None


#: What each populated thread shows (checkpoint ids are deterministic in sync mode).
#: A run's start record is written on its own before its first task starts (so a run
#: killed in its first task can be resumed): checkpoint 0 holds just the start.
EXPECTED = {
    "done-1": Expected("done-1", "completed", "order", 2, 4, 5),
    "wait-1": Expected("wait-1", "interrupted", "order", 2, 2, 3, waiting_for={"question": "ship?", "x": 7}),
    "fail-1": Expected("fail-1", "failed", "fragile", 2, 3, 4, error="ValueError: boom 4"),
    "run-1": Expected("run-1", "running", "crashy", 1, 1, 2),
    "susp-1": Expected("susp-1", "suspended", "order", 0, 0, 2),
    "long-1": Expected("long-1", "completed", "long", LONG_TASKS, LONG_TASKS + 1, LONG_TASKS + 2),
}


def small_snapshot_saver(url: str) -> CheckpointLog:
    """A saver writing snapshots often, so that long threads hold several snapshots."""
    store, prefix = open_store(url)
    return CheckpointLog(store, prefix=prefix, snapshot_every=4)


def populate(url: str) -> dict[str, Expected]:
    """Leave one thread in each state on ``url``: completed, interrupted, failed, running, suspended."""
    saver = open_saver(url)
    order.run({"a": 1, "b": 2}, thread_id="done-1", saver=saver)
    order.resume("yes", thread_id="done-1", saver=saver)
    order.run({"a": 5, "b": 2}, thread_id="wait-1", saver=saver)
    try:
        fragile.run(3, thread_id="fail-1", saver=saver)
    except ValueError:
        pass
    else:
        raise AssertionError("fragile should fail")
    try:
        crashy.run(1, thread_id="run-1", saver=saver)
    except SimulatedCrash:
        pass
    else:
        raise AssertionError("crashy should crash")
    order.run({"a": 0, "b": 0}, thread_id="susp-1", saver=saver, deadline=time.time() - 1)
    long.run(LONG_TASKS, thread_id="long-1", saver=small_snapshot_saver(url))
    return dict(EXPECTED)
