"""The checkpoint log's contract, run unchanged against :class:`AsyncCheckpointLog`.

The test bodies are those of :mod:`tests.contract.test_saver_contract`. Here the
name ``CheckpointLog`` those bodies call is, for the duration of each test, a
factory of :class:`AsyncCheckpointLog` seen through
:class:`tests.support.async_bridge.SyncSaver`, and ``store`` is an async store
(:data:`tests.conftest.ASYNC_BACKENDS`) seen through ``SyncStore``. A log opened
on the bare fixture store drives the async store directly; one opened on a test's
wrapper (the fault-injecting ``FlakyStore``, ``CountingStore``...) drives it
through :class:`~tests.support.async_bridge.AsyncStore`, so the same faults reach
the async log's retries and ambiguous-write recognition.
"""

from __future__ import annotations

from typing import Any

import pytest

import tests.contract.test_saver_contract as sync_contract
from cairnflow.core.log import AsyncCheckpointLog
from cairnflow.core.store import AsyncObjectStore, ObjectStore
from tests.conftest import ASYNC_BACKENDS
from tests.contract.test_saver_contract import *  # noqa: F403 - the same tests, collected here again
from tests.support.async_bridge import AsyncStore, SyncSaver, SyncStore


def async_log(store: ObjectStore, **options: Any) -> SyncSaver:
    """``CheckpointLog(store, ...)`` as the contract calls it, built on the async log."""
    inner: AsyncObjectStore = store.inner if isinstance(store, SyncStore) else AsyncStore(store)
    return SyncSaver(AsyncCheckpointLog(inner, **options))


@pytest.fixture(params=ASYNC_BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(autouse=True)
def _async_log(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sync_contract, "CheckpointLog", async_log)


def test_the_contract_here_really_runs_the_async_log(store: ObjectStore) -> None:
    saver = sync_contract.CheckpointLog(store, prefix=sync_contract.PREFIX)
    assert isinstance(saver, SyncSaver) and isinstance(saver.inner, AsyncCheckpointLog)
    assert isinstance(store, SyncStore) and saver.inner.store is store.inner
