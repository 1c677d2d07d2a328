"""What a child workflow costs in requests: inline, and dispatched to other invocations.

    .venv/bin/python -m benchmarks.children_bench          # writes benchmarks/results/children.json
    .venv/bin/python -m benchmarks.children_bench 1000     # other sizes: prints them, writes nothing

A parent fans out ``N`` children of one step each (``tests.driver.flows.squares``) and adds
up their results; ``N`` in 1, 10, 50. Requests are counted on the store seam
(CountingStore), on a local store (the request pattern is the same on every backend).

- ``inline``: ``other.start(x)``, the whole run in one ``run()`` call.
- ``dispatched``: ``other.start(x, dispatch=True)`` started through a ``Driver`` on the
  store's ``DueIndex``, then one ``Worker`` polling until the parent has completed. The
  requests are split into the starting invocation's and the worker's; the worker's
  include everything the due index costs (its LISTs, claims, deletes), as a cloud
  scheduler's would not (there the wake-ups are queue messages, counted apart as
  ``wakeups_scheduled``).
- ``dispatched_async``: the same with ``async def`` parent and children
  (``tests.driver.aflows``), their requests made on asyncio savers, counted alike.
"""

from __future__ import annotations

import json
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from cairnflow.core import workflow
from cairnflow.core.counting import AsyncCountingStore, CountingStore
from cairnflow.core.log import AsyncCheckpointLog, CheckpointLog
from cairnflow.driver import Driver, DueIndex, Worker
from cairnflow.savers import open_async_store, open_saver
from tests.driver import aflows, flows

RESULTS = Path(__file__).parent / "results" / "children.json"
SIZES = (1, 10, 50)


@workflow
def inline_fan_out(count: int) -> int:
    """The same fan-out as ``flows.dispatches``, children run inline."""
    futures = [flows.squares.start([f"i{n}", n]) for n in range(count)]
    return sum(f.result() for f in futures)


def _total(counts: dict[str, int]) -> int:
    return sum(counts.values())


def inline_cost(count: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        counting = CountingStore(open_saver(f"file://{tmp}/store").store)
        saver = CheckpointLog(counting)
        run = inline_fan_out.run(count, thread_id="inline", saver=saver)
        assert run.result == sum(n * n for n in range(count))
        counts = dict(counting.counts)
        return {"children": count, "requests": counts, "total": _total(counts)}


class _Scheduled(DueIndex):
    """A due index that counts the wake-ups scheduled (one queue message each, on a cloud)."""

    scheduled = 0

    def schedule(self, wakeup: Any) -> None:
        _Scheduled.scheduled += 1
        super().schedule(wakeup)


class _AsyncRuns:
    """The async savers a driver opens (one per event loop), counted together."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.opened: list[AsyncCountingStore] = []

    def __call__(self) -> AsyncCheckpointLog:
        self.opened.append(AsyncCountingStore(open_async_store(self.url)[0]))
        return AsyncCheckpointLog(self.opened[-1])

    def counts(self) -> Counter[str]:
        return sum((store.counts for store in self.opened), Counter())

    def reset(self) -> None:
        self.opened.clear()


def dispatched_cost(count: int, flavour: str = "sync") -> dict[str, Any]:
    """A dispatched fan-out of ``count`` children; ``flavour="async"``: ``async def`` parent and children."""
    with tempfile.TemporaryDirectory() as tmp:
        url = f"file://{tmp}/store"
        inner = open_saver(url).store
        # Threads' requests and the due index's apart: on a cloud, the index is the queue.
        runs, due = CountingStore(inner), CountingStore(inner)
        saver, due_saver = CheckpointLog(runs), CheckpointLog(due)
        aruns = _AsyncRuns(url)  # an async workflow's requests (its parent's head reads are `runs`')
        parent, child = (
            (aflows.adispatches, aflows.asquares) if flavour == "async" else (flows.dispatches, flows.squares)
        )
        workflows = [parent, child]
        _Scheduled.scheduled = 0
        driver = Driver(saver, _Scheduled(due_saver), workflows, async_saver=aruns)
        run = driver.start(parent, count, thread_id="fan")
        assert run.status == "waiting"
        starting = {"threads": dict(runs.counts + aruns.counts()), "due_index": dict(due.counts)}
        scheduled_by_start = _Scheduled.scheduled
        runs.reset()
        aruns.reset()
        due.reset()
        worker = Worker(saver, workflows, async_saver=aruns)
        worker.index = _Scheduled(due_saver, claim_seconds=worker.index.claim_seconds)
        worker.driver.scheduler = worker.index
        polls = handled = 0
        while (result := worker.poll()).due:
            polls += 1
            handled += result.handled
        serving = {"threads": dict(runs.counts + aruns.counts()), "due_index": dict(due.counts)}
        done = parent.get_run(thread_id="fan", saver=CheckpointLog(inner))
        assert done is not None and done.result == sum(n * n for n in range(count)), done
        thread_total = _total(starting["threads"]) + _total(serving["threads"])
        return {
            "children": count,
            "starting_invocation": starting,
            "worker": serving,
            "wakeups_scheduled": {
                "by_start": scheduled_by_start,
                "by_worker": _Scheduled.scheduled - scheduled_by_start,
            },
            "wakeups_handled": handled,
            "polls_with_work": polls,
            "thread_requests_total": thread_total,
            "thread_requests_per_child": round(thread_total / count, 1),
            "due_index_requests_total": _total(starting["due_index"]) + _total(serving["due_index"]),
        }


def main(argv: list[str] | None = None) -> int:
    asked = [int(n) for n in (sys.argv[1:] if argv is None else argv)]
    sizes = asked or list(SIZES)
    results = {
        "inline": [inline_cost(n) for n in sizes],
        "dispatched": [dispatched_cost(n) for n in sizes],
        "dispatched_async": [dispatched_cost(n, "async") for n in sizes],
    }
    if not asked:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    json.dump(results, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
