"""What the executor and the checkpoint log cost, counted request by request.

Every test wraps a :class:`MemoryStore` in a :class:`CountingStore` and runs
an :class:`CheckpointLog` on it, so the counts are those the saver would
send to S3, GCS or Azure. The executor's costs are checked in both flavours
(``flows``: the sync executor, and the asyncio one with the ``async def`` twins
on an async saver over the same counting store): the same requests per step.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from typing import Any

import pytest

from cairnflow.core import CheckpointLog, interrupt, task, workflow
from cairnflow.core.counting import CountingStore
from cairnflow.savers.memory import MemoryStore
from tests.core.asavers import Flavoured, on_store

N = 10

calls: Counter[str] = Counter()
_calls_lock = threading.Lock()


def _count(name: str) -> None:
    with _calls_lock:
        calls[name] += 1


@task
def step(i: int, acc: int) -> int:
    _count(f"step:{i}")
    return acc * 3 + i


@task
def slow_square(i: int) -> int:
    _count(f"square:{i}")
    time.sleep(0.01)  # the task's work: lets the parallel tasks overlap
    return i * i


@workflow(name="sequential")
def sequential(n: int) -> int:
    acc = 1
    for i in range(n):
        acc = step(i, acc).result()
    return acc


@workflow(name="fan_out")
def fan_out(n: int) -> int:
    futures = [slow_square(i) for i in range(n)]
    return sum(f.result() for f in futures)


@workflow(name="mixed")
def mixed(n: int) -> int:
    acc = sequential.fn(n)  # the same sequential tasks, inline
    futures = [slow_square(i) for i in range(n)]
    return acc + sum(f.result() for f in futures)


@workflow(name="approval")
def approval(n: int) -> int:
    acc = 1
    for i in range(n):
        acc = step(i, acc).result()
    factor = interrupt("factor?")
    for i in range(n, n + 3):
        acc = step(i, acc * factor).result()
    return acc


# The async twins: the same calls, awaited (the asyncio executor must cost the same).


@workflow(name="sequential")
async def asequential(n: int) -> int:
    acc = 1
    for i in range(n):
        acc = await step(i, acc)
    return acc


@workflow(name="fan_out")
async def afan_out(n: int) -> int:
    return sum(await asyncio.gather(*[slow_square(i) for i in range(n)]))


@workflow(name="mixed")
async def amixed(n: int) -> int:
    acc = await asequential.fn(n)
    return acc + sum(await asyncio.gather(*[slow_square(i) for i in range(n)]))


@workflow(name="approval")
async def aapproval(n: int) -> int:
    acc = 1
    for i in range(n):
        acc = await step(i, acc)
    factor = interrupt("factor?")
    for i in range(n, n + 3):
        acc = await step(i, acc * factor)
    return acc


TWINS = {
    "sequential": (sequential, asequential),
    "fan_out": (fan_out, afan_out),
    "mixed": (mixed, amixed),
    "approval": (approval, aapproval),
}


def _expected_sequential(n: int, start: int = 1) -> int:
    acc = start
    for i in range(n):
        acc = acc * 3 + i
    return acc


@pytest.fixture
def counting() -> CountingStore:
    calls.clear()
    return CountingStore(MemoryStore())


@pytest.fixture
def saver(counting: CountingStore) -> CheckpointLog:
    return CheckpointLog(counting)


@pytest.fixture(params=["sync", "async"])
def flows(request: pytest.FixtureRequest, counting: CountingStore, saver: CheckpointLog) -> Flavoured:
    """The workflows above in either flavour, on the counting store."""
    async_saver, _ = on_store(counting)
    return Flavoured(request.param, TWINS, saver, async_saver)


def _task_positions(saver: CheckpointLog, thread: str) -> list[int]:
    head = saver.latest(thread)
    assert head is not None
    return sorted(r["pos"] for r in head.records if r.get("op") == "task")


@pytest.mark.parametrize("n", [1, 3, N])
def test_sync_sequential_run_costs_one_put_per_task_plus_end(
    counting: CountingStore, saver: CheckpointLog, flows: Flavoured, n: int
) -> None:
    run = flows.run("sequential", n, thread_id="t", durability="sync")
    assert run.result == _expected_sequential(n)
    # The start record (written before the first task runs, so that a run killed in it
    # can be resumed), one PUT per task, the end, and the end's status index entry
    # (cairnflow.core.status_index: one create-only PUT per run stop, not per step).
    assert counting.counts["PUT"] == 1 + n + 1 + 1
    assert counting.counts["DELETE"] == 0
    assert [info.seq for info in saver.history("t")] == list(range(n + 1, -1, -1))


def test_replayed_tasks_cost_no_put(counting: CountingStore, saver: CheckpointLog, flows: Flavoured) -> None:
    first = flows.run("approval", N, thread_id="t", durability="sync")
    assert first.status == "interrupted"
    # the start, N task writes, the interrupt, the interrupt's status index entry
    assert counting.counts["PUT"] == 1 + N + 1 + 1
    assert sum(calls.values()) == N

    counting.reset()
    calls.clear()
    done = flows.resume("approval", 2, thread_id="t", durability="sync")
    assert done.status == "completed"
    acc = _expected_sequential(N)
    for i in range(N, N + 3):
        acc = acc * 2 * 3 + i
    assert done.result == acc
    # The N recorded tasks are replayed from the log: not run, not written.
    assert sorted(calls) == [f"step:{i}" for i in range(N, N + 3)]
    # The answer (the fence), the 3 new tasks, the end: nothing for the replayed tasks.
    # Plus the end's status index entry, and one DELETE of the interrupt's (superseded) entry.
    assert counting.counts["PUT"] == 1 + 3 + 1 + 1
    assert counting.counts["DELETE"] == 1

    counting.reset()
    calls.clear()
    again = flows.run("approval", N, thread_id="t", durability="sync")
    assert again.result == acc
    assert counting.counts["PUT"] == 0
    assert not calls


def test_exit_mode_makes_one_put_for_the_whole_run(
    counting: CountingStore, saver: CheckpointLog, flows: Flavoured
) -> None:
    run = flows.run("mixed", N, thread_id="t", durability="exit")
    assert run.result == _expected_sequential(N) + sum(i * i for i in range(N))
    assert counting.counts["PUT"] == 1 + 1  # the run, and its status index entry
    assert _task_positions(saver, "t") == list(range(2 * N))


def test_async_mode_makes_at_most_one_put_per_task_plus_end(
    counting: CountingStore, saver: CheckpointLog, flows: Flavoured
) -> None:
    run = flows.run("sequential", N, thread_id="t", durability="async")
    assert run.result == _expected_sequential(N)
    assert 1 + 1 <= counting.counts["PUT"] <= 1 + N + 1 + 1  # + the status index entry
    assert _task_positions(saver, "t") == list(range(N))
    head = saver.latest("t")
    assert head is not None and head.status == "completed"


def test_sync_parallel_fan_out_makes_at_most_one_put_per_task_plus_end(
    counting: CountingStore, saver: CheckpointLog, flows: Flavoured
) -> None:
    run = flows.run("fan_out", N, thread_id="t", durability="sync", max_workers=N)
    assert run.result == sum(i * i for i in range(N))
    # the start, at most one per task, the end, the end's status index entry
    assert counting.counts["PUT"] <= 1 + N + 1 + 1
    assert _task_positions(saver, "t") == list(range(N))
    assert sorted(calls) == sorted(f"square:{i}" for i in range(N))


def _synthetic_task(pos: int) -> dict[str, Any]:
    return {"op": "task", "pos": pos, "name": "synthetic", "args": f"{pos:032x}", "value": pos * 7}


def test_latest_costs_the_same_for_10_and_10000_records(
    counting: CountingStore, saver: CheckpointLog
) -> None:
    small = sequential.run(N, thread_id="small", saver=saver, durability="sync")
    assert small.status == "completed"

    start = {"op": "start", "workflow": "synthetic", "input": None, "input_digest": "0" * 32}
    everything: list[Any] = [start]
    head = saver.append("big", None, [start], status="running", workflow="synthetic")
    for batch_start in range(0, 10_000, 500):
        batch = [_synthetic_task(p) for p in range(batch_start, batch_start + 500)]
        head = saver.append("big", head, batch, status="running")
        everything.extend(batch)
    tail = [{"op": "end", "status": "completed", "value": None}]
    head = saver.append("big", head, tail, status="completed")
    everything.extend(tail)

    costs = {}
    states = {}
    for thread in ("small", "big"):
        counting.reset()
        states[thread] = saver.latest(thread)
        costs[thread] = dict(counting.counts)
    # Both heads are deltas (the most expensive case): 1 LIST + 2 GETs, whatever the length.
    assert states["small"] is not None and states["small"].info.kind == "delta"
    assert states["big"] is not None and states["big"].info.kind == "delta"
    assert costs["small"] == costs["big"] == {"LIST": 1, "GET": 2}

    big = states["big"]
    assert len(big.records) == 10_002
    assert list(big.records) == everything
    assert big.info.total_records == 10_002
    assert big.status == "completed"
    assert [r["pos"] for r in big.records if r.get("op") == "task"] == list(range(10_000))


def test_get_of_an_old_checkpoint_and_history_costs(counting: CountingStore, saver: CheckpointLog) -> None:
    run = sequential.run(40, thread_id="t", saver=saver, durability="sync")
    assert run.status == "completed"
    latest = saver.latest("t")
    assert latest is not None and latest.seq == 41  # the start, 40 tasks, the end

    for seq in (0, 3, 17, 25, 40):
        counting.reset()
        old = saver.get("t", str(seq))
        assert counting.counts["GET"] <= 2 and counting.counts["LIST"] == 0 and counting.counts["PUT"] == 0
        assert counting.counts["GET"] == (2 if old.info.kind == "delta" else 1)
        assert old.seq == seq
        # Checkpoint k holds the start record plus the results of tasks 0..k-1.
        assert old.records == latest.records[: seq + 1]

    counting.reset()
    infos = list(saver.history("t", limit=5))
    assert [i.seq for i in infos] == [41, 40, 39, 38, 37]
    assert dict(counting.counts) == {"LIST": 1, "GET": 5}
