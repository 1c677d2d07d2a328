"""Async writers contending for every step of one thread, under injected store faults.

The asyncio twin of ``test_contended_faults.py`` at the log level, in one process:
four tasks of one event loop, each with its own :class:`AsyncCheckpointLog`, append
to one thread until it has :data:`STEPS` checkpoints, reloading on ``ConflictError``,
while 20 % of store requests fail transiently (:class:`tests.reliability.faults.FaultyStore`),
including writes that land while their answer is lost. Then:

* the history is linear and sound (``verify()``): checkpoints 0..STEPS-1, each
  adding one record that names its own sequence number;
* every checkpoint was claimed by exactly one writer (the ``wrote`` lists partition
  the sequence numbers), and it holds that writer's record: a retried write
  recognised its own object and never took a rival's for its own;
* contention and faults (landed-but-lost writes among them) really happened.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from cairnflow.core.errors import ConflictError, TransientStoreError
from cairnflow.core.log import AsyncCheckpointLog, CheckpointLog
from cairnflow.core.retry import RetryPolicy
from cairnflow.core.store import AsyncObjectStore, ObjectStore
from cairnflow.core.verify import verify
from cairnflow.savers.local import AsyncLocalStore
from cairnflow.savers.memory import AsyncMemoryStore
from tests.reliability.faults import FaultyStore
from tests.support.async_bridge import AsyncStore, SyncStore

WRITERS = 4
STEPS = 60
THREAD = "contended"
#: Enough attempts that a 20 % fault rate never exhausts them (the test is about fencing).
PATIENT = RetryPolicy(max_attempts=30, initial_interval=0.0, retry_on=(TransientStoreError,))

STORES: dict[str, Callable[[Path], AsyncObjectStore]] = {
    "memory_async": lambda _: AsyncMemoryStore(),
    "local_async": lambda tmp: AsyncLocalStore(tmp / "store", fsync=False),
}


@pytest.mark.parametrize("seed", [3, 11])
@pytest.mark.parametrize("backend", list(STORES))
def test_async_writers_contending_for_every_step_under_faults(
    backend: str, seed: int, tmp_path: Path
) -> None:
    plain: ObjectStore = SyncStore(STORES[backend](tmp_path))
    faulty = FaultyStore(plain, seed, rate=0.2)
    wrote: dict[int, list[int]] = {w: [] for w in range(WRITERS)}
    conflicts = 0

    async def writer(w: int) -> None:
        nonlocal conflicts
        log = AsyncCheckpointLog(AsyncStore(faulty), snapshot_every=4, store_retry=PATIENT)
        while True:
            head = await log.latest(THREAD)
            seq = 0 if head is None else head.seq + 1
            if seq >= STEPS:
                return
            try:
                new = await log.append(THREAD, head, [{"writer": w, "seq": seq}], status="running")
            except ConflictError:
                conflicts += 1
                continue
            assert new.seq == seq
            wrote[w].append(seq)

    async def main() -> None:
        await asyncio.gather(*(writer(w) for w in range(WRITERS)))

    asyncio.run(main())
    faulty.enabled = False

    log = CheckpointLog(plain)
    latest = log.latest(THREAD)
    assert latest is not None and latest.seq == STEPS - 1, f"seed {seed}"
    assert [r["seq"] for r in latest.records] == list(range(STEPS)), f"seed {seed}: not linear"
    assert [i.seq for i in log.history(THREAD)] == list(range(STEPS))[::-1]
    claimed = sorted(s for seqs in wrote.values() for s in seqs)
    twice = sorted({s for s in claimed if claimed.count(s) > 1})
    assert claimed == list(range(STEPS)), f"seed {seed}: steps claimed twice {twice}, of {len(claimed)}"
    owner = {s: w for w, seqs in wrote.items() for s in seqs}
    assert all(r["writer"] == owner[r["seq"]] for r in latest.records), f"seed {seed}: a write misclaimed"
    report = verify(log, THREAD)
    assert report.ok, report.errors
    assert conflicts > 0 and len([w for w, seqs in wrote.items() if seqs]) > 1, "no contention"
    assert faulty.faults["PUT landed"] > 0 and faulty.injected > 10, faulty.faults
