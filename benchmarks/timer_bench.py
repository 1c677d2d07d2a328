"""Durable timers through a worker: the delay from a sleep's wake time to the run going on,
and the requests a sleeping run costs.

    .venv/bin/python -m benchmarks.timer_bench            # writes benchmarks/results/timers.json

Each run sleeps ``nap`` seconds (no deadline, so it stops as ``waiting``), then a task
stamps the clock. One worker polls every ``interval`` seconds. The delay (stamp minus
the recorded wake time) is clock time: reported as median and maximum next to the
interval. Requests are counted on the store seam for one run, start to end.
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

from cairnflow.core import sleep, task, workflow
from cairnflow.core.counting import CountingStore
from cairnflow.core.log import CheckpointLog
from cairnflow.driver import Worker
from cairnflow.savers import open_saver

RESULTS = Path(__file__).parent / "results" / "timers.json"


@task
def stamp() -> float:
    return time.time()


@workflow
def nap(seconds: float) -> float:
    sleep(seconds)
    return stamp().result()


def delays(runs: int, seconds: float, interval: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        saver = open_saver(f"file://{tmp}/store")
        assert isinstance(saver, CheckpointLog)
        worker = Worker(saver, [nap])
        for n in range(runs):
            assert worker.driver.start(nap, seconds, thread_id=f"n-{n}").status == "waiting"
        stop = threading.Event()
        polling = threading.Thread(target=worker.run, kwargs={"interval": interval, "stop": stop})
        polling.start()
        out: list[float] = []
        deadline = time.time() + seconds + 60
        while len(out) < runs and time.time() < deadline:
            time.sleep(interval)
            out = []
            for n in range(runs):
                run = nap.get_run(thread_id=f"n-{n}", saver=saver)
                head = saver.latest(f"n-{n}")
                if run is None or run.status != "completed" or head is None:
                    break
                wake_at = next(r["wake_at"] for r in head.records if r.get("op") == "timer")
                out.append(run.result - wake_at)
        stop.set()
        polling.join()
    return {
        "runs": runs,
        "sleep_s": seconds,
        "poll_interval_s": interval,
        "completed": len(out),
        "delay_median_s": round(statistics.median(out), 4) if out else None,
        "delay_max_s": round(max(out), 4) if out else None,
    }


def requests_per_run(seconds: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        counting = CountingStore(open_saver(f"file://{tmp}/store").store)
        saver = CheckpointLog(counting)
        worker = Worker(saver, [nap])
        worker.driver.start(nap, seconds, thread_id="r")
        started = dict(counting.counts)
        time.sleep(seconds)
        while worker.poll().handled == 0:
            time.sleep(0.05)
        total = dict(counting.counts)
    return {"start_until_waiting": started, "start_to_end_with_worker": total}


def main() -> int:
    report = {
        "delay": [delays(20, 1.0, 0.1), delays(20, 1.0, 1.0)],
        "requests": requests_per_run(0.5),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
