"""What waking runs costs: requests per idle worker poll, and the delay from due time to resumption.

    .venv/bin/python -m benchmarks.driver_bench            # writes benchmarks/results/driver.json

Requests are counted on the store seam (CountingStore), not timed. The store
is a local directory: the due index's request pattern is the same on every
backend (one LIST per idle poll), so the cloud emulators would only add noise.

1. Idle poll cost with 10 and 10,000 finished threads in the store (plus a
   few pending future wake-ups), for the worker's due index and, for contrast,
   for finding due runs by listing threads with their status (the operator
   tools' scan, which is what a worker without an index would have to do).
2. Due-to-resumption delay: wake-ups due at known times, a worker polling
   every ``interval`` seconds; the delay is clock time, so it is reported as
   median and maximum over many wake-ups, next to the poll interval.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from cairnflow.core.counting import CountingStore
from cairnflow.core.log import CheckpointLog
from cairnflow.core.wake import Wakeup
from cairnflow.driver import DueIndex, Worker
from cairnflow.savers import open_saver
from tests.driver import flows

RESULTS = Path(__file__).parent / "results" / "driver.json"


def seed_finished(saver: CheckpointLog, count: int) -> None:
    """``count`` completed threads, written through the log (what finished runs leave)."""
    for n in range(count):
        head = saver.append(
            f"done-{n:05d}", None, [{"op": "start", "workflow": "five_steps"}], status="running"
        )
        saver.append(f"done-{n:05d}", head, [{"op": "end", "value": 0}], status="completed")


def idle_poll_cost(finished: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        base = open_saver(f"file://{tmp}/store")
        seed_finished(base, finished)
        counting = CountingStore(base.store)
        saver = CheckpointLog(counting)
        index = DueIndex(saver)
        for n in range(5):  # pending, not yet due: e.g. leases of running runs
            index.schedule(Wakeup(f"later-{n}", "five_steps", time.time() + 3600, "lease"))
        worker = Worker(saver, [flows.five_steps])
        counting.reset()
        assert worker.poll().due == 0
        index_requests = dict(counting.counts)

        from cairnflow import ops

        counting.reset()
        listed = list(ops.list_threads(saver, statuses={"suspended", "running"}))
        scan_requests = dict(counting.counts)
        return {
            "finished_threads": finished,
            "due_index_poll": index_requests,
            "status_scan": scan_requests,
            "status_scan_found": len(listed),
        }


def resume_delay(count: int, interval: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        saver = open_saver(f"file://{tmp}/store")
        worker = Worker(saver, [flows.five_steps])
        handled_at: dict[str, float] = {}
        original = worker.driver.handle

        def timed(wakeup: Wakeup, **options: Any) -> Any:
            handled_at[wakeup.thread_id] = time.time()
            return original(wakeup, **options)

        worker.driver.handle = timed  # type: ignore[method-assign]
        start = time.time() + 0.5  # threads that do not exist: handling costs a lookup, no run
        due = {f"t-{n}": start + n * 0.137 for n in range(count)}
        for thread_id, at in due.items():
            worker.index.schedule(Wakeup(thread_id, "five_steps", at, "timer"))
        stop = threading.Event()
        serving = threading.Thread(target=worker.run, kwargs={"interval": interval, "stop": stop})
        serving.start()
        last = max(due.values())
        while time.time() < last + 5 * interval + 2 and len(handled_at) < count:
            stop.wait(0.05)
        stop.set()
        serving.join()
        delays = [handled_at[t] - at for t, at in due.items() if t in handled_at and handled_at[t] >= at]
        return {
            "wakeups": count,
            "handled": len(delays),
            "poll_interval_s": interval,
            "median_delay_s": round(statistics.median(delays), 3),
            "max_delay_s": round(max(delays), 3),
        }


def main() -> int:
    results = {
        "idle_poll": [idle_poll_cost(n) for n in (10, 10_000)],
        "resume_delay": resume_delay(40, 0.5),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    json.dump(results, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
