"""AsyncCheckpointLog natively (no bridges): the sync log's requests, fencing and retries, awaited.

The saver contract also runs on the async log (tests/contract/test_async_saver_contract.py);
here the async log runs on async stores directly, against the sync log on the same
operations: the same requests, one for one, the same results and the same errors.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from cairnflow.core import steps
from cairnflow.core.checkpoint import Checkpoint, CheckpointInfo
from cairnflow.core.counting import AsyncCountingStore, CountingStore
from cairnflow.core.errors import ConflictError, ThreadNotFoundError, TransientStoreError
from cairnflow.core.log import AsyncCheckpointLog, CheckpointLog
from cairnflow.core.retry import RetryPolicy
from cairnflow.core.store import CREATE, AsyncObjectStore, ObjectStore, PutMode
from cairnflow.savers.local import AsyncLocalStore, LocalStore
from cairnflow.savers.memory import AsyncMemoryStore, MemoryStore
from tests.support.forwarding import AsyncForwardingStore, ForwardingStore

PREFIX = "app/"


def rec(n: int) -> dict[str, Any]:
    return {"op": "task", "pos": n, "name": "t", "args": "x", "value": "v" * (n % 7) + str(n)}


@pytest.fixture(params=["memory", "local"])
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[ObjectStore, AsyncObjectStore]:
    """A sync store and an async store of the same backend, on separate (empty) objects."""
    if request.param == "memory":
        return MemoryStore(), AsyncMemoryStore()
    return LocalStore(tmp_path / "sync"), AsyncLocalStore(tmp_path / "async")


# --------------------------------------------------------------------------- the same requests

#: One operation of the script: (method, args, kwargs). "HEAD:t" in args stands for the
#: checkpoint the last successful append/fork on thread t returned ("PREV:t" for the one before).
Op = tuple[str, tuple[Any, ...], dict[str, Any]]


def script() -> list[Op]:
    ops: list[Op] = [("append", ("t1", None, [rec(0)]), {"status": "running", "workflow": "wf"})]
    ops += [("append", ("t1", "HEAD:t1", [rec(n)]), {"status": "running"}) for n in range(1, 12)]
    ops += [
        ("latest", ("t1",), {}),
        ("get", ("t1", 3), {}),
        ("get", ("t1", "0"), {}),
        ("get", ("t1", 99), {}),  # ThreadNotFoundError
        ("history", ("t1",), {"limit": 5}),
        ("history", ("t1",), {"before": 6}),
        ("fork", ("t1", 2), {}),
        ("append", ("t1", "HEAD:t1", [rec(50), rec(51)]), {"status": "completed"}),
        ("index_stop", ("HEAD:t1", "PREV:t1"), {}),
        ("append", ("t1", "PREV:t1", [rec(99)]), {"status": "running"}),  # stale head: ConflictError
        ("append", ("t2", None, [rec(0)]), {"status": "interrupted"}),
        ("append", ("t2", None, [rec(1)]), {"status": "running"}),  # second "new thread": ConflictError
        ("threads", (), {}),
        ("delete_thread", ("t2",), {}),
        ("latest", ("t2",), {}),
        ("delete_thread", ("t1",), {"purge": True, "expected_head": 13}),
        ("latest", ("t1",), {}),
        ("threads", (), {"limit": 1}),
    ]
    return ops


def _summary(value: Any) -> Any:
    """What must be equal between the two logs (not the writer's clock)."""
    if isinstance(value, Checkpoint):
        return (_summary(value.info), value.records, value.base_seq, value.base_len)
    if isinstance(value, CheckpointInfo):
        return (value.thread_id, value.seq, value.kind, value.status, value.total_records, value.parent)
    if isinstance(value, list):
        return [_summary(v) for v in value]
    return value


def _resolve(arg: Any, heads: dict[str, list[Checkpoint]]) -> Any:
    if isinstance(arg, str) and arg.startswith(("HEAD:", "PREV:")):
        which, _, thread = arg.partition(":")
        return heads[thread][-1 if which == "HEAD" else -2]
    return arg


def _record(heads: dict[str, list[Checkpoint]], name: str, result: Any) -> None:
    if name in ("append", "fork") and isinstance(result, Checkpoint):
        heads.setdefault(result.thread_id, []).append(result)


def run_sync(saver: CheckpointLog, counting: CountingStore) -> list[tuple[str, Any, Counter[str], int]]:
    heads: dict[str, list[Checkpoint]] = {}
    out = []
    for name, args, kwargs in script():
        counting.reset()
        try:
            result = getattr(saver, name)(*[_resolve(a, heads) for a in args], **kwargs)
            if name in ("history", "threads"):
                result = list(result)
        except (ConflictError, ThreadNotFoundError) as exc:
            result = type(exc).__name__
        _record(heads, name, result)
        out.append((name, _summary(result), Counter(counting.counts), counting.bytes_written))
    return out


async def run_async(
    saver: AsyncCheckpointLog, counting: AsyncCountingStore
) -> list[tuple[str, Any, Counter[str], int]]:
    heads: dict[str, list[Checkpoint]] = {}
    out = []
    for name, args, kwargs in script():
        counting.reset()
        try:
            call = getattr(saver, name)(*[_resolve(a, heads) for a in args], **kwargs)
            result = [x async for x in call] if name in ("history", "threads") else await call
        except (ConflictError, ThreadNotFoundError) as exc:
            result = type(exc).__name__
        _record(heads, name, result)
        out.append((name, _summary(result), Counter(counting.counts), counting.bytes_written))
    return out


def test_async_log_makes_the_sync_logs_requests_and_returns_its_results(
    stores: tuple[ObjectStore, AsyncObjectStore],
) -> None:
    sync_store, async_store = stores
    counting, acounting = CountingStore(sync_store), AsyncCountingStore(async_store)
    expected = run_sync(CheckpointLog(counting, prefix=PREFIX, snapshot_every=4), counting)
    got = asyncio.run(run_async(AsyncCheckpointLog(acounting, prefix=PREFIX, snapshot_every=4), acounting))
    for (name, result, counts, written), (_, aresult, acounts, awritten) in zip(expected, got, strict=True):
        assert (aresult, acounts) == (result, counts), name
        # Same bytes written, give or take the clock's digits and writer tokens in each header.
        assert abs(awritten - written) <= 16 * counts["PUT"], name
    # The script exercised what it claims to: deltas and snapshots, conflicts, a missing checkpoint.
    assert "ConflictError" in [r for _, r, _, _ in expected] and "ThreadNotFoundError" in [
        r for _, r, _, _ in expected
    ]
    assert dict(expected[0][2]) == {"PUT": 1}  # a step costs one write
    latest = next(c for n, _, c, _ in expected if n == "latest")
    assert latest["LIST"] == 1 and latest["GET"] <= 2


# --------------------------------------------------------------------------- faults, natively


class AsyncFlaky(AsyncForwardingStore):
    """The next ``fail_puts`` puts fail ambiguously: the write lands (or not), the answer is lost."""

    def __init__(self, inner: AsyncObjectStore, *, land: bool) -> None:
        super().__init__(inner)
        self.land = land
        self.fail_puts = 0
        self.puts = 0

    async def put(self, key: str, data: bytes, mode: PutMode = CREATE) -> str:
        self.puts += 1
        if self.fail_puts:
            self.fail_puts -= 1
            if self.land:
                await self.inner.put(key, data, mode)
            raise TransientStoreError("timed out", key=key, ambiguous=True)
        return await self.inner.put(key, data, mode)


class Flaky(ForwardingStore):
    """The same faults for the sync log."""

    def __init__(self, inner: ObjectStore, *, land: bool) -> None:
        super().__init__(inner)
        self.land = land
        self.fail_puts = 0
        self.puts = 0

    def put(self, key: str, data: bytes, mode: PutMode = CREATE) -> str:
        self.puts += 1
        if self.fail_puts:
            self.fail_puts -= 1
            if self.land:
                self.inner.put(key, data, mode)
            raise TransientStoreError("timed out", key=key, ambiguous=True)
        return self.inner.put(key, data, mode)


NO_WAIT = RetryPolicy(max_attempts=5, initial_interval=0.0, retry_on=(TransientStoreError,))


@pytest.mark.parametrize("land", [True, False], ids=["write-landed", "write-lost"])
def test_ambiguous_write_is_recognised_with_the_sync_logs_requests(
    stores: tuple[ObjectStore, AsyncObjectStore], land: bool
) -> None:
    sync_store, async_store = stores
    flaky, aflaky = Flaky(sync_store, land=land), AsyncFlaky(async_store, land=land)
    log = CheckpointLog(flaky, store_retry=NO_WAIT)
    alog = AsyncCheckpointLog(aflaky, store_retry=NO_WAIT)
    head = log.append("t", None, [rec(0)], status="running")
    flaky.fail_puts = 2
    log.append("t", head, [rec(1)], status="running")

    async def main() -> list[int]:
        ahead = await alog.append("t", None, [rec(0)], status="running")
        aflaky.fail_puts = 2
        await alog.append("t", ahead, [rec(1)], status="running")  # no false conflict
        latest = await alog.latest("t")
        assert latest is not None and [r["pos"] for r in latest.records] == [0, 1]
        return [i.seq async for i in alog.history("t")]

    assert asyncio.run(main()) == [1, 0]  # no duplicate checkpoint
    assert aflaky.puts == flaky.puts == (1 + 2 if land else 1 + 3)


class Yielding(AsyncForwardingStore):
    """Hands the loop to other tasks before every request, so that concurrent appends interleave."""

    async def put(self, key: str, data: bytes, mode: PutMode = CREATE) -> str:
        await asyncio.sleep(0)
        return await self.inner.put(key, data, mode)


def test_concurrent_appends_on_one_head_one_wins_the_other_conflicts_nothing_overwritten(
    stores: tuple[ObjectStore, AsyncObjectStore],
) -> None:
    _, async_store = stores
    log = AsyncCheckpointLog(Yielding(async_store))

    async def main() -> None:
        h0 = await log.append("t", None, [rec(0)], status="running")
        outcomes = await asyncio.gather(
            *(log.append("t", h0, [rec(n)], status="running") for n in (1, 2, 3)), return_exceptions=True
        )
        winners = [o for o in outcomes if isinstance(o, Checkpoint)]
        assert len(winners) == 1 and all(isinstance(o, ConflictError) for o in outcomes if o not in winners)
        latest = await log.latest("t")
        assert latest is not None and latest.records == winners[0].records
        assert [i.seq async for i in log.history("t")] == [1, 0]

    asyncio.run(main())


class FailingPuts(AsyncForwardingStore):
    def __init__(self, inner: AsyncObjectStore, failures: int) -> None:
        super().__init__(inner)
        self.failures = failures

    async def put(self, key: str, data: bytes, mode: PutMode = CREATE) -> str:
        if self.failures:
            self.failures -= 1
            raise TransientStoreError("busy", key=key, ambiguous=False)
        return await self.inner.put(key, data, mode)


def test_retries_wait_with_asyncio_sleep_as_long_as_the_sync_driver(monkeypatch: pytest.MonkeyPatch) -> None:
    policy = RetryPolicy(max_attempts=4, initial_interval=0.5, jitter=False, retry_on=(TransientStoreError,))
    waited: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        waited.append(seconds)

    def no_blocking_sleep(seconds: float) -> None:
        raise AssertionError("the async log must not block the loop with time.sleep")

    monkeypatch.setattr(asyncio, "sleep", fake_sleep)
    monkeypatch.setattr("time.sleep", no_blocking_sleep)
    log = AsyncCheckpointLog(FailingPuts(AsyncMemoryStore(), 3), store_retry=policy)
    head = asyncio.run(log.append("t", None, [rec(0)], status="running"))
    assert head.seq == 0 and waited == [0.5, 1.0, 2.0]

    # The sync driver waits the same (its sleep passed in, to count rather than wait).
    slept: list[float] = []
    sync_log = CheckpointLog(MemoryStore(), store_retry=policy)
    failing = _SyncFailingPuts(sync_log.store, 3)
    step = sync_log._append("t", None, [rec(0)], "running", None)
    assert steps.run(step, failing, sleep=slept.append).seq == 0
    assert slept == waited


class _SyncFailingPuts(ForwardingStore):
    def __init__(self, inner: ObjectStore, failures: int) -> None:
        super().__init__(inner)
        self.failures = failures

    def put(self, key: str, data: bytes, mode: PutMode = CREATE) -> str:
        if self.failures:
            self.failures -= 1
            raise TransientStoreError("busy", key=key, ambiguous=False)
        return self.inner.put(key, data, mode)


def test_retries_give_up_with_the_stores_error(monkeypatch: pytest.MonkeyPatch) -> None:
    async def fake_sleep(seconds: float) -> None:
        pass

    monkeypatch.setattr(asyncio, "sleep", fake_sleep)
    store = FailingPuts(AsyncMemoryStore(), 10)
    log = AsyncCheckpointLog(store)
    with pytest.raises(TransientStoreError, match="busy"):
        asyncio.run(log.append("t", None, [rec(0)], status="running"))
    assert store.failures == 10 - 5  # DEFAULT_STORE_RETRY: five attempts
    assert asyncio.run(log.latest("t")) is None  # nothing written


def test_cancelled_append_closes_its_step_and_leaves_the_log_usable() -> None:
    class Hold(AsyncForwardingStore):
        def __init__(self, inner: AsyncObjectStore) -> None:
            super().__init__(inner)
            self.entered: asyncio.Event | None = None
            self.release: asyncio.Event | None = None

        async def put(self, key: str, data: bytes, mode: PutMode = CREATE) -> str:
            if self.entered is not None and self.release is not None:
                self.entered.set()
                await self.release.wait()
            return await self.inner.put(key, data, mode)

    async def main() -> None:
        store = Hold(AsyncMemoryStore())
        log = AsyncCheckpointLog(store)
        store.entered, store.release = asyncio.Event(), asyncio.Event()
        task = asyncio.create_task(log.append("t", None, [rec(0)], status="running"))
        await store.entered.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        store.entered = store.release = None
        assert await log.latest("t") is None  # the cancelled write never reached the store
        head = await log.append("t", None, [rec(1)], status="running")
        assert head.seq == 0

    asyncio.run(main())
