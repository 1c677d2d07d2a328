"""Ambiguous writes under the executor, in both flavours: a write whose answer was lost is
recognised as its own (nothing recorded twice), whichever executor drives the run.

The store raises ``TransientStoreError`` at 30 % of requests (tests/reliability/faults.py
``FaultyStore``): refused, lost before landing, or lost after the write landed (the
ambiguous case). The log retries; each run goes through its interrupt to completion.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from cairnflow.core import CheckpointLog, RetryPolicy, interrupt, task, workflow
from cairnflow.core.errors import TransientStoreError
from cairnflow.core.store import ObjectStore
from cairnflow.savers.local import LocalStore
from cairnflow.savers.memory import MemoryStore
from tests.core.asavers import Flavoured, on_store
from tests.reliability.faults import FaultyStore

RUNS = 12
#: The log's retries of transient store errors, without the default's backoff (a test).
QUICK_RETRY = RetryPolicy(max_attempts=8, initial_interval=0.0005, retry_on=(TransientStoreError,))
effects: list[str] = []


@task
def charge(order: int) -> int:
    effects.append(f"charge:{order}")
    return order * 10


@task
async def ship(order: int, amount: int) -> str:
    effects.append(f"ship:{order}")
    return f"{order}:{amount}"


@workflow(name="orderflow")
def orderflow(order: int) -> list[Any]:
    amounts = [charge(order * 100 + i) for i in range(3)]
    total = sum(f.result() for f in amounts)
    ok = interrupt(total)
    return [ok, ship(order, total).result()]


@workflow(name="orderflow")
async def aorderflow(order: int) -> list[Any]:
    total = sum(await asyncio.gather(*[charge(order * 100 + i) for i in range(3)]))
    ok = interrupt(total)
    return [ok, await ship(order, total)]


@pytest.mark.parametrize("flavour", ["sync", "async"])
@pytest.mark.parametrize("backend", ["memory", "local"])
def test_ambiguous_writes_are_recognised_and_nothing_is_recorded_twice(
    backend: str, flavour: str, tmp_path: Path
) -> None:
    inner: ObjectStore = MemoryStore() if backend == "memory" else LocalStore(tmp_path / "store")
    faulty = FaultyStore(inner, seed=1234, rate=0.3)
    async_saver, sync_saver = on_store(faulty, store_retry=QUICK_RETRY)
    flows = Flavoured(flavour, {"orderflow": (orderflow, aorderflow)}, sync_saver, async_saver)
    effects.clear()
    for order in range(RUNS):
        first = flows.run("orderflow", order, thread_id=f"o{order}")
        assert first.status == "interrupted" and first.interrupt == sum(
            (order * 100 + i) * 10 for i in range(3)
        )
        done = flows.resume("orderflow", "yes", thread_id=f"o{order}")
        assert done.result == ["yes", f"{order}:{first.interrupt}"]
    assert faulty.faults["PUT landed"] > 0, faulty.faults  # the ambiguous case did happen
    direct = CheckpointLog(inner)
    for order in range(RUNS):
        head = direct.latest(f"o{order}")
        assert head is not None and head.status == "completed"
        positions = [r["pos"] for r in head.records if r["op"] in ("task", "resume", "interrupt")]
        assert sorted(positions) == [0, 1, 2, 3, 3, 4], positions  # each once (3: asked, answered)
        seqs = [info.seq for info in direct.history(f"o{order}")]
        assert seqs == list(range(head.seq, -1, -1))
    # No error escaped the retries, so every side effect ran exactly once.
    assert sorted(effects) == sorted(
        [f"charge:{o * 100 + i}" for o in range(RUNS) for i in range(3)] + [f"ship:{o}" for o in range(RUNS)]
    )
