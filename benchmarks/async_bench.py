"""One process driving many concurrent workflows: the asyncio executor next to the sync one.

    .venv/bin/python -m benchmarks.async_bench                    # 1,000 runs x 10 tasks, memory://bench
    .venv/bin/python -m benchmarks.async_bench --runs 200 --url file:///tmp/bench

Each flavour runs in a child process of its own (so its peak memory is its own):

* ``async``: ``asyncio.gather`` of ``--runs`` ``await flow.arun(...)`` on one event loop;
  each run awaits ``--tasks`` sequential ``async def`` tasks that each wait
  ``--task-ms`` (an ``asyncio.sleep``: the stand-in for an LLM or HTTP call);
* ``sync``: the same runs, each ``flow.run(...)`` in a thread of its own (a pool of
  ``--runs`` threads), tasks doing a ``time.sleep``.

Requests are counted on the store seam (``CountingStore`` / ``AsyncCountingStore``):
the PUTs, GETs and LISTs per run and per step must be the same in both flavours.
Threads are sampled every 5 ms (peak ``threading.active_count()``, the sampler
included); memory is the child's peak RSS (``ru_maxrss``). Results go to
``benchmarks/results/async.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from cairnflow.core import task, workflow
from cairnflow.core.counting import AsyncCountingStore, CountingStore
from cairnflow.core.log import AsyncCheckpointLog, CheckpointLog

RESULTS = Path(__file__).parent / "results" / "async.json"
SETTINGS = {"task_ms": 20.0}


@task(name="call")
async def acall(i: int, acc: int) -> int:
    await asyncio.sleep(SETTINGS["task_ms"] / 1000)
    return (acc * 31 + i) % 1_000_003


@task(name="call")
def call(i: int, acc: int) -> int:
    time.sleep(SETTINGS["task_ms"] / 1000)
    return (acc * 31 + i) % 1_000_003


@workflow(name="chain")
async def achain(n: int) -> int:
    acc = 1
    for i in range(n):
        acc = await acall(i, acc)
    return acc


@workflow(name="chain")
def chain(n: int) -> int:
    acc = 1
    for i in range(n):
        acc = call(i, acc).result()
    return acc


class PeakThreads:
    """Samples ``threading.active_count()`` every 5 ms in a thread of its own."""

    def __init__(self) -> None:
        self.peak = threading.active_count()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, threading.active_count())

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def _child(flavour: str, url: str, runs: int, tasks: int) -> dict[str, Any]:
    from cairnflow.savers import open_async_store, open_store

    url = f"{url.rstrip('/')}/{flavour}"  # each flavour its own threads (a thread has one flavour)
    sampler = PeakThreads()
    started = time.perf_counter()
    if flavour == "async":
        astore, prefix = open_async_store(url)
        acounting = AsyncCountingStore(astore)

        async def drive() -> list[Any]:
            saver = AsyncCheckpointLog(acounting, prefix=prefix)
            return list(
                await asyncio.gather(
                    *[achain.arun(tasks, thread_id=f"r{i}", saver=saver) for i in range(runs)]
                )
            )

        done = asyncio.run(drive())
        counts = dict(acounting.counts)
    else:
        store, prefix = open_store(url)
        counting = CountingStore(store)
        saver = CheckpointLog(counting, prefix=prefix)
        with ThreadPoolExecutor(max_workers=runs) as pool:
            done = list(pool.map(lambda i: chain.run(tasks, thread_id=f"r{i}", saver=saver), range(runs)))
        counts = dict(counting.counts)
    seconds = time.perf_counter() - started
    peak_threads = sampler.stop()
    assert all(r.status == "completed" for r in done) and len({r.result for r in done}) == 1
    steps = runs * tasks
    return {
        "flavour": flavour,
        "runs": runs,
        "tasks_per_run": tasks,
        "seconds": round(seconds, 2),
        "requests": counts,
        "puts_per_run": counts.get("PUT", 0) / runs,
        "puts_per_step": round(counts.get("PUT", 0) / steps, 3),
        "gets_per_run": counts.get("GET", 0) / runs,
        "lists_per_run": counts.get("LIST", 0) / runs,
        "peak_threads": peak_threads,
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.async_bench")
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--tasks", type=int, default=10)
    parser.add_argument("--task-ms", type=float, default=20.0)
    parser.add_argument("--url", default="memory://bench")
    parser.add_argument("--child", choices=["sync", "async"], default=None)
    args = parser.parse_args(argv)
    SETTINGS["task_ms"] = args.task_ms
    if args.child is not None:
        print(json.dumps(_child(args.child, args.url, args.runs, args.tasks)))
        return 0
    rows = []
    for flavour in ("async", "sync"):
        cmd = [sys.executable, "-m", "benchmarks.async_bench", "--child", flavour, "--url", args.url]
        cmd += ["--runs", str(args.runs), "--tasks", str(args.tasks), "--task-ms", str(args.task_ms)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]))
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps({"url": args.url, "task_ms": args.task_ms, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
