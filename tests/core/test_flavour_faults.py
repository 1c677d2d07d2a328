"""Ambiguous writes under the executor, in both flavours: a write whose answer was lost is
recognised as its own (nothing recorded twice), whichever executor drives the run.

On memory and local the store raises ``TransientStoreError`` at 30 % of requests
(tests/reliability/faults.py ``FaultyStore``): refused, lost before landing, or lost
after the write landed (the ambiguous case). On each emulator the faults are on the
wire: a :class:`~tests.support.faultproxy.FaultProxy` between the SDK and the emulator
drops the connection of 25 % of writes, before forwarding them or after the emulator
applied them (the ambiguous case), and the SDK's retry meets the object its first
attempt created. The async flavour runs there on the cloud's asyncio backend, once it
exists. The log retries; each run goes through its interrupt to completion.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import threading
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cairnflow.core import CheckpointLog, RetryPolicy, interrupt, task, workflow
from cairnflow.core.errors import TransientStoreError
from cairnflow.core.store import ObjectStore
from cairnflow.savers.local import LocalStore
from cairnflow.savers.memory import MemoryStore
from tests.core.asavers import CLOUD_SCHEMES, Flavoured, on_store
from tests.emulators import StoreLocation
from tests.reliability.faults import FaultyStore
from tests.support.faultproxy import DropAfterForward, DropBeforeForward, FaultProxy, Request

RUNS = 12
#: Runs on an emulator: each fault there costs the SDK's retry backoff.
CLOUD_RUNS = 4
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


@dataclass
class Rig:
    """The savers a test drives (faults on), a view of the same objects, and the faults seen."""

    sync_saver: Any
    async_saver: Any
    view: CheckpointLog
    landed_lost: Callable[[], int]
    faults: Callable[[], Counter[str]]
    stop_faults: Callable[[], None]


class WireFaults:
    """A FaultProxy fault function: drops the connection of ``rate`` of the writes (PUT/POST),
    after the upstream applied them (``landed``: the ambiguous case) or before (``lost``)."""

    def __init__(self, seed: int, rate: float) -> None:
        self.rate = rate
        self.enabled = True
        self.faults: Counter[str] = Counter()
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def __call__(self, request: Request) -> DropAfterForward | DropBeforeForward | None:
        if request.method not in ("PUT", "POST"):
            return None
        with self._lock:
            if not self.enabled or self._rng.random() >= self.rate:
                return None
            landed = self._rng.random() < 2 / 3
            self.faults["PUT landed" if landed else "PUT lost"] += 1
        return DropAfterForward() if landed else DropBeforeForward()


def _quick_options(backend: str, flavour: str = "sync") -> dict[str, Any]:
    """Store options with short SDK backoffs (the defaults wait seconds per retry; Azure's 15 s)."""
    if backend == "gcs" and flavour == "sync":
        from google.cloud.storage.retry import DEFAULT_RETRY  # type: ignore[import-untyped]

        return {"retry": DEFAULT_RETRY.with_delay(initial=0.01, maximum=0.05, multiplier=2.0)}
    if backend == "azure":
        from tests.emulators.azure import FAST_RETRY

        return {"retry_total": 3, "client_options": FAST_RETRY}
    return {}


@contextlib.contextmanager
def rig_for(
    backend: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    use_env: Callable[[StoreLocation], StoreLocation],
) -> Iterator[Rig]:
    if backend in ("memory", "local"):
        inner: ObjectStore = MemoryStore() if backend == "memory" else LocalStore(tmp_path / "store")
        faulty = FaultyStore(inner, seed=1234, rate=0.3)
        async_saver, sync_saver = on_store(faulty, store_retry=QUICK_RETRY)

        def stop() -> None:
            faulty.enabled = False

        yield Rig(
            sync_saver,
            async_saver,
            CheckpointLog(inner),
            lambda: faulty.faults["PUT landed"],
            lambda: faulty.faults,
            stop,
        )
        return
    location: StoreLocation = request.getfixturevalue(f"{backend}_location")
    # The emulator's endpoint is the one http://127.0.0.1:PORT in the location's environment.
    (upstream,) = {m for v in location.env.values() for m in re.findall(r"http://127\.0\.0\.1:\d+", v)}
    policy = WireFaults(seed=1234, rate=0.25)
    with FaultProxy(upstream) as proxy:
        proxy.set_fault(policy)
        use_env(
            StoreLocation(location.url, {k: v.replace(upstream, proxy.url) for k, v in location.env.items()})
        )
        from cairnflow.savers import _ASYNC_SCHEMES, open_async_saver, open_saver

        sync_saver = open_saver(location.url, **_quick_options(backend))
        has_async = CLOUD_SCHEMES[backend] in _ASYNC_SCHEMES
        async_saver = (
            open_async_saver(location.url, **_quick_options(backend, "async")) if has_async else None
        )

        def stop_wire() -> None:
            policy.enabled = False

        yield Rig(
            sync_saver,
            async_saver,
            sync_saver,
            lambda: policy.faults["PUT landed"],
            lambda: policy.faults,
            stop_wire,
        )


def _cases() -> list[tuple[str, str]]:
    """Both flavours on memory, local and each emulator (async: once the cloud's async backend exists)."""
    from cairnflow.savers import _ASYNC_SCHEMES

    local = [(b, f) for b in ("memory", "local") for f in ("sync", "async")]
    clouds = [(c, "sync") for c in CLOUD_SCHEMES]
    return local + clouds + [(c, "async") for c, scheme in CLOUD_SCHEMES.items() if scheme in _ASYNC_SCHEMES]


@pytest.mark.parametrize(("backend", "flavour"), _cases())
def test_ambiguous_writes_are_recognised_and_nothing_is_recorded_twice(
    backend: str,
    flavour: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    use_env: Callable[[StoreLocation], StoreLocation],
) -> None:
    runs = RUNS if backend in ("memory", "local") else CLOUD_RUNS
    # One event loop for the test: an asyncio client belongs to the loop it first ran on.
    loop = asyncio.new_event_loop()

    def on_loop(work: Awaitable[Any]) -> Any:
        return loop.run_until_complete(work)

    try:
        with rig_for(backend, request, tmp_path, use_env) as rig:
            flows = Flavoured(
                flavour,
                {"orderflow": (orderflow, aorderflow)},
                rig.sync_saver,
                rig.async_saver,
                runner=on_loop,
            )
            try:
                _drive(flows, runs)
            finally:
                rig.stop_faults()
                if rig.async_saver is not None:
                    on_loop(rig.async_saver.aclose())
            assert rig.landed_lost() > 0, rig.faults()  # the ambiguous case did happen
            _check(rig.view, runs)
    finally:
        loop.close()


def _drive(flows: Flavoured, runs: int) -> None:
    effects.clear()
    for order in range(runs):
        first = flows.run("orderflow", order, thread_id=f"o{order}")
        assert first.status == "interrupted" and first.interrupt == sum(
            (order * 100 + i) * 10 for i in range(3)
        )
        done = flows.resume("orderflow", "yes", thread_id=f"o{order}")
        assert done.result == ["yes", f"{order}:{first.interrupt}"]


def _check(direct: CheckpointLog, runs: int) -> None:
    for order in range(runs):
        head = direct.latest(f"o{order}")
        assert head is not None and head.status == "completed"
        positions = [r["pos"] for r in head.records if r["op"] in ("task", "resume", "interrupt")]
        assert sorted(positions) == [0, 1, 2, 3, 3, 4], positions  # each once (3: asked, answered)
        seqs = [info.seq for info in direct.history(f"o{order}")]
        assert seqs == list(range(head.seq, -1, -1))
    # No error escaped the retries, so every side effect ran exactly once.
    assert sorted(effects) == sorted(
        [f"charge:{o * 100 + i}" for o in range(runs) for i in range(3)] + [f"ship:{o}" for o in range(runs)]
    )
