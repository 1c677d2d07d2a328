"""What listing threads with their status costs, before and after the status index.

    .venv/bin/python -m benchmarks.listing_bench            # writes benchmarks/results/listing.json
    .venv/bin/python -m benchmarks.listing_bench --threads 1000   # a quicker run

Requests are counted on the store seam (:class:`CountingStore`, one LIST per
1,000 keys or folders, as S3, GCS and Azure page), not timed; wall times are
given too but the machine is shared. The store is a local directory seeded
with N finished executor threads (two checkpoints each: the start, then a
stop cycling through interrupted, completed, failed, suspended) and their
status index entries, written as the executor writes them.

Cases:

* ``before``: the listing as it was before the index (one LIST per thread to
  find its head, then one or two GETs), which ``list_threads`` still does when
  asked for ``corrupt`` threads (only a read tells);
* ``after``: ``list_threads(details=False)`` (``cairnflow threads --brief``),
  all threads and ``--status interrupted``; and with details for the threads
  listed (``--status interrupted``, and ``--sort updated --limit 20``);
* ``old store``: the index removed (a store written before it existed), then
  ``reindex`` and the listing again;
* ``per stop``: the index's own writes when a run stops.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cairnflow import ops
from cairnflow.core import CheckpointLog, interrupt, status_index, task, workflow
from cairnflow.core.counting import CountingStore
from cairnflow.savers.local import LocalStore
from cairnflow.savers.memory import MemoryStore

RESULTS = Path(__file__).parent / "results" / "listing.json"
STOPS = ("interrupted", "completed", "failed", "suspended")


def seed(saver: CheckpointLog, count: int) -> None:
    """``count`` threads that started, ran, and stopped; index entries as the executor writes them."""
    for n in range(count):
        thread_id, name = f"thread-{n:05d}", "order" if n % 3 else "refund"
        start = {"op": "start", "workflow": name, "input": n, "input_digest": f"{n:032x}"}
        head = saver.append(thread_id, None, [start], status="running", workflow=name)
        stop_record = {"op": "task", "pos": 0, "name": "step", "args": "0" * 32, "value": n}
        stop = saver.append(thread_id, head, [stop_record], status=STOPS[n % 4], workflow=name)  # type: ignore[arg-type]
        saver.index_stop(stop, head)


def measure(counting: CountingStore, what: Callable[[], Any]) -> dict[str, Any]:
    counting.reset()
    began = time.perf_counter()
    result = what()
    seconds = time.perf_counter() - began
    found = len(result) if isinstance(result, list) else result
    return {"requests": dict(sorted(counting.counts.items())), "found": found, "seconds": round(seconds, 2)}


@task
def step(x: int) -> int:
    return x + 1


@workflow(name="bench_stop")
def approval(n: int) -> int:
    total = step(n).result()
    return total + int(interrupt("ok?"))


def per_stop() -> dict[str, Any]:
    """PUTs and DELETEs of one run that stops at an interrupt, then of its resume."""
    counting = CountingStore(MemoryStore())
    saver = CheckpointLog(counting)
    counting.reset()
    approval.run(1, thread_id="t", saver=saver)
    first = dict(counting.counts)
    counting.reset()
    approval.resume(1, thread_id="t", saver=saver)
    resumed = dict(counting.counts)
    return {
        "run_to_interrupt": first,
        "resume_to_end": resumed,
        "index_writes_per_stop": "1 PUT, plus 1 DELETE of the entry the run started from",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=10_000)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    n = args.threads
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "store"
        seeding = time.perf_counter()
        seed(CheckpointLog(LocalStore(root, fsync=False)), n)  # same requests, written faster
        seeded_in = time.perf_counter() - seeding
        counting = CountingStore(LocalStore(root, fsync=False))
        saver = CheckpointLog(counting)
        every = set(ops.STATUSES)
        cases: dict[str, Any] = {
            "before: every thread with its status (the scan)": measure(
                counting, lambda: ops.list_threads(saver, statuses=every)
            ),
            "before: --status interrupted (the scan)": measure(
                counting, lambda: ops.list_threads(saver, statuses={"interrupted", "corrupt"})
            ),
            "after: every thread with its status (--brief)": measure(
                counting, lambda: ops.list_threads(saver, details=False)
            ),
            "after: --status interrupted (--brief)": measure(
                counting, lambda: ops.list_threads(saver, statuses={"interrupted"}, details=False)
            ),
            "after: --workflow refund --newer-than (--brief)": measure(
                counting,
                lambda: ops.list_threads(
                    saver, workflow="refund", updated_after=time.time() - 3600, details=False
                ),
            ),
            "after: --status interrupted, with details": measure(
                counting, lambda: ops.list_threads(saver, statuses={"interrupted"})
            ),
            "after: --sort updated --limit 20, with details": measure(
                counting, lambda: ops.list_threads(saver, sort="updated", limit=20)
            ),
        }
        shutil.rmtree(root / status_index.index_prefix("").rstrip("/"))
        old: dict[str, Any] = {
            "old store, no index: every thread (--brief)": measure(
                counting, lambda: ops.list_threads(saver, details=False)
            ),
            "reindex": measure(counting, lambda: ops.reindex(saver)[0]),
            "after reindex: every thread (--brief)": measure(
                counting, lambda: ops.list_threads(saver, details=False)
            ),
        }
    results = {
        "threads": n,
        "store": "local directory through CountingStore (1 LIST per 1,000 keys or folders)",
        "seeded_in_s": round(seeded_in, 1),
        "listing": cases,
        "old_store": old,
        "per_stop": per_stop(),
        "command": "python -m benchmarks.listing_bench" + ("" if n == 10_000 else f" --threads {n}"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    json.dump(results, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
