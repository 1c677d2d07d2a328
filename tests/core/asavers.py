"""Async savers for the executor tests, by backend name, plus a sync saver on the same store.

Tests take the saver from here (through the ``flavour``/``backend`` fixtures), so that the
emulator backends are one more name once the async cloud stores land.

Until ``AsyncCheckpointLog``'s protocol steps land it is a placeholder; meanwhile
:class:`AsyncOverSync` stands in: the sync log called directly from the event loop
(test code: fine for memory and local, whose requests do not block for long).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from cairnflow.core import CheckpointLog
from cairnflow.core.checkpoint import (
    AsyncCheckpointSaver,
    Checkpoint,
    CheckpointInfo,
    CheckpointSaver,
    Status,
)
from cairnflow.core.log import AsyncCheckpointLog
from cairnflow.core.store import ObjectStore
from cairnflow.savers import open_async_saver, open_saver

#: Backends the in-process async executor tests run on.
ASYNC_BACKENDS = ["memory", "local"]


def async_log_ready() -> bool:
    """Whether ``AsyncCheckpointLog`` is the real log rather than the placeholder."""
    return "placeholder" not in (AsyncCheckpointLog.__doc__ or "")


class AsyncOverSync(AsyncCheckpointSaver):
    """An :class:`AsyncCheckpointSaver` in front of a sync one (stand-in, see the module docs)."""

    def __init__(self, inner: CheckpointSaver) -> None:
        self.inner = inner
        self.serializer = getattr(inner, "serializer", None)

    def __repr__(self) -> str:
        return f"AsyncOverSync({self.inner!r})"

    async def latest(self, thread_id: str) -> Checkpoint | None:
        return self.inner.latest(thread_id)

    async def get(self, thread_id: str, checkpoint_id: str | int) -> Checkpoint:
        return self.inner.get(thread_id, checkpoint_id)

    async def append(
        self,
        thread_id: str,
        head: Checkpoint | None,
        records: Sequence[Any],
        *,
        status: Status,
        workflow: str | None = None,
    ) -> Checkpoint:
        return self.inner.append(thread_id, head, records, status=status, workflow=workflow)

    async def fork(self, thread_id: str, checkpoint_id: str | int) -> Checkpoint:
        return self.inner.fork(thread_id, checkpoint_id)

    async def history(
        self, thread_id: str, *, limit: int | None = None, before: str | int | None = None
    ) -> AsyncIterator[CheckpointInfo]:
        for item in self.inner.history(thread_id, limit=limit, before=before):
            yield item

    async def threads(self, *, limit: int | None = None) -> AsyncIterator[str]:
        for item in self.inner.threads(limit=limit):
            yield item

    async def delete_thread(
        self, thread_id: str, *, purge: bool = False, expected_head: int | None = None
    ) -> int | None:
        return self.inner.delete_thread(thread_id, purge=purge, expected_head=expected_head)

    async def index_stop(self, head: Checkpoint, previous: Checkpoint | None) -> None:
        self.inner.index_stop(head, previous)


def async_twin(saver: CheckpointLog, url: str, wrapped: bool = False) -> AsyncCheckpointSaver:
    """An async saver on what the sync ``saver`` (opened on ``url``) reads; ``wrapped``: its
    store was wrapped by a test (a barrier), so the async saver goes through that wrapper."""
    if not async_log_ready():
        return AsyncOverSync(saver)
    if wrapped:
        from tests.support.async_bridge import AsyncStore

        return AsyncCheckpointLog(
            AsyncStore(saver.store), prefix=saver.prefix, serializer=saver.serializer, cipher=saver.cipher
        )
    return open_async_saver(url)


def url_of(backend: str, tmp_path: Path) -> str:
    if backend == "memory":
        return "memory://"
    if backend == "local":
        return f"file://{tmp_path / 'store'}"
    raise AssertionError(f"no async saver for backend {backend!r} yet")


def on_store(store: ObjectStore, **options: Any) -> tuple[AsyncCheckpointSaver, CheckpointSaver]:
    """An async saver and a sync saver on ``store`` (a sync store, e.g. a counting wrapper);
    ``options`` go to both logs (e.g. ``store_retry``)."""
    sync = CheckpointLog(store, **options)
    if async_log_ready():
        from tests.support.async_bridge import AsyncStore

        return AsyncCheckpointLog(AsyncStore(store), **options), sync
    return AsyncOverSync(sync), sync


def open_pair(backend: str, tmp_path: Path) -> tuple[AsyncCheckpointSaver, CheckpointSaver]:
    """An async saver on ``backend`` and a sync saver on the same objects (to inspect, or to
    complete callbacks with)."""
    url = url_of(backend, tmp_path)
    if backend == "memory":
        from cairnflow.savers.memory import MemoryStore

        return on_store(MemoryStore())
    sync = open_saver(url)
    if async_log_ready():
        return open_async_saver(url), sync
    return AsyncOverSync(sync), sync


class Flavoured:
    """Drive a workflow in the flavour under test, so one test body covers both executors.

    ``twins`` maps a name to ``(plain def workflow, async def twin)``; :meth:`run` and
    :meth:`resume` call ``run``/``resume`` on the sync saver, or ``await arun``/``aresume``
    on the async saver (each in a fresh event loop).
    """

    def __init__(
        self,
        flavour: str,
        twins: dict[str, tuple[Any, Any]],
        sync_saver: CheckpointSaver,
        async_saver: AsyncCheckpointSaver,
    ) -> None:
        self.flavour = flavour
        self.twins = twins
        self.saver = sync_saver
        self.async_saver = async_saver

    def run(self, name: str, *args: Any, **kwargs: Any) -> Any:
        plain, twin = self.twins[name]
        if self.flavour == "sync":
            return plain.run(*args, saver=self.saver, **kwargs)
        return asyncio.run(twin.arun(*args, saver=self.async_saver, **kwargs))

    def resume(self, name: str, *args: Any, **kwargs: Any) -> Any:
        plain, twin = self.twins[name]
        if self.flavour == "sync":
            return plain.resume(*args, saver=self.saver, **kwargs)
        return asyncio.run(twin.aresume(*args, saver=self.async_saver, **kwargs))
