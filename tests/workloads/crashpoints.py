"""A 10-task workflow that can SIGKILL itself at a chosen store request boundary.

    python -m tests.workloads.crashpoints --url URL --thread ID --ledger PATH
        [--op run|resume|auto] [--durability sync|exit] [--trace]
        [--crash-at K --crash-side before|after]

``ten`` runs 10 sequential ``work`` tasks; each appends one line
``work:<index>,<acc>`` to the LEDGER file (``O_APPEND`` + fsync, see
:mod:`tests.workloads.pipeline`) before it returns ``[line, value]``.

The saver's store is wrapped in :class:`CrashStore`, which numbers every
request of the store seam (PUT, GET, LIST, DELETE) from 0 in the order the
process makes them. With ``--crash-at K --crash-side before`` the process
kills itself with SIGKILL just before request K is sent; with ``after``, just
after request K returned (a write has landed, its answer never reaches the
code). ``--trace`` prints the requests made (``OPS [...]``) so that a parent can
count the boundaries of a clean run. A LIST is materialised inside the
boundary, so "after" means after the whole listing was read.

:func:`prepare_crashed` (used in-process by the tests) leaves a thread as a
crash at the start of task ``index`` would: tasks before it recorded, status
``running``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

from cairnflow.core import task, workflow
from cairnflow.core.log import CheckpointLog
from cairnflow.core.store import CREATE, ObjectInfo, ObjectStore, PutMode, StoredObject
from tests.support.forwarding import ForwardingStore
from tests.workloads.pipeline import ledger_append

TASKS = 10
MOD = 1_000_003


class _Config:
    ledger: str = ""
    stop_at_task: int | None = None
    task_ms: float = 0.0


CONFIG = _Config()


class SimulatedCrash(BaseException):
    """Raised (in-process) where a real run would be killed; BaseException so nothing records it."""


@task(name="work")
def work(index: int, acc: int) -> list[Any]:
    if CONFIG.stop_at_task == index:
        raise SimulatedCrash(f"stopped at task {index}")
    if CONFIG.task_ms:
        time.sleep(CONFIG.task_ms / 1000)  # the task's "work" (lets concurrent workers overlap)
    line = f"work:{index},{acc}"
    ledger_append(CONFIG.ledger, line)
    return [line, (acc * 131 + index * 17 + 3) % MOD]


@workflow(name="ten")
def ten(seed: int) -> dict[str, Any]:
    acc = seed
    trail = []
    for i in range(TASKS):
        _, acc = work(i, acc).result()
        trail.append(acc)
    return {"last": acc, "sum": sum(trail) % MOD}


def expected_result(seed: int) -> dict[str, Any]:
    acc, trail = seed, []
    for i in range(TASKS):
        acc = (acc * 131 + i * 17 + 3) % MOD
        trail.append(acc)
    return {"last": acc, "sum": sum(trail) % MOD}


def ledger_line_of(record: dict[str, Any]) -> str:
    return str(record["value"][0])


def prepare_crashed(saver: CheckpointLog, thread: str, ledger: str, index: int, seed: int) -> None:
    """Record tasks ``0 .. index-1`` of a sync run, then stop as a kill at task ``index`` would."""
    CONFIG.ledger, CONFIG.stop_at_task = ledger, index
    try:
        ten.run(seed, thread_id=thread, saver=saver)
    except SimulatedCrash:
        pass
    else:
        raise AssertionError("the run was expected to stop")
    finally:
        CONFIG.stop_at_task = None


class CrashStore(ForwardingStore):
    """Numbers the store requests; SIGKILLs the process before or after request ``crash_at``."""

    def __init__(self, inner: ObjectStore, crash_at: int | None, side: str) -> None:
        super().__init__(inner)
        self.crash_at = crash_at
        self.side = side
        self.ops: list[str] = []
        self._lock = threading.Lock()

    def _boundary(self, what: str) -> int:
        with self._lock:
            n = len(self.ops)
            self.ops.append(what)
        if n == self.crash_at and self.side == "before":
            self._die()
        return n

    def _after(self, n: int) -> None:
        if n == self.crash_at and self.side == "after":
            self._die()

    @staticmethod
    def _die() -> None:
        sys.stdout.flush()
        os.kill(os.getpid(), signal.SIGKILL)

    def put(self, key: str, data: bytes, mode: PutMode = CREATE) -> str:
        # The status index (one entry per run stop) is not a checkpoint: named apart.
        n = self._boundary("PUT-INDEX" if "v1/index/" in key else "PUT")
        etag = self.inner.put(key, data, mode)
        self._after(n)
        return etag

    def get(self, key: str) -> StoredObject:
        n = self._boundary("GET")
        obj = self.inner.get(key)
        self._after(n)
        return obj

    def list(
        self, prefix: str, *, start_after: str | None = None, limit: int | None = None
    ) -> Iterator[ObjectInfo]:
        n = self._boundary("LIST")
        items = list(self.inner.list(prefix, start_after=start_after, limit=limit))
        self._after(n)
        return iter(items)

    def delete(self, key: str) -> None:
        n = self._boundary("DELETE")
        self.inner.delete(key)
        self._after(n)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.workloads.crashpoints")
    parser.add_argument("--url", required=True)
    parser.add_argument("--thread", required=True)
    parser.add_argument("--ledger", required=True)
    parser.add_argument(
        "--op",
        choices=["run", "resume", "auto"],
        default="run",
        help="auto: run() if the thread does not exist yet, else resume()",
    )
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--durability", choices=["sync", "exit"], default="sync")
    parser.add_argument("--crash-at", type=int, default=None)
    parser.add_argument("--crash-side", choices=["before", "after"], default="before")
    parser.add_argument("--trace", action="store_true")
    args = parser.parse_args(argv)

    from cairnflow.savers import open_saver

    CONFIG.ledger = args.ledger
    saver = open_saver(args.url)
    op = args.op
    if op == "auto":
        op = "run" if saver.latest(args.thread) is None else "resume"
    crash = CrashStore(saver.store, args.crash_at, args.crash_side)
    saver.store = crash  # boundaries are numbered from the run's (or resume's) first request
    if op == "run":
        run = ten.run(args.seed, thread_id=args.thread, saver=saver, durability=args.durability)
    else:
        run = ten.resume(thread_id=args.thread, saver=saver, durability=args.durability)
    outcome: dict[str, Any] = {"status": run.status, "result": run.result, "op": op}
    if args.trace:
        outcome["ops"] = crash.ops
    print(f"OUTCOME {json.dumps(outcome, sort_keys=True)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
