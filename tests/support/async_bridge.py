"""Run the sync test suites unchanged against asyncio stores and savers.

* :class:`LoopThread`: one event loop in a daemon thread; :func:`shared_loop` is
  the process's. Every bridge below runs its coroutines there, so an async store
  (and the asyncio client inside it, which belongs to one loop) always sees the
  same loop, while the calling test thread just blocks for the answer. Many test
  threads may call at once (the racing-writer contract tests do).
* :class:`SyncStore`: an :class:`ObjectStore` in front of an
  :class:`AsyncObjectStore`, so ``tests/contract/test_store_contract.py`` runs on
  async backends (a backend's ``<name>_async_store`` fixture returns one).
* :class:`AsyncStore`: an :class:`AsyncObjectStore` in front of a sync
  :class:`ObjectStore` (each call in a worker thread, so that a sync store that is
  itself a :class:`SyncStore` can wait on the loop), so the fault-injecting and
  counting wrappers written for sync stores serve async savers too.
* :class:`SyncSaver`: a :class:`CheckpointSaver` in front of an
  :class:`AsyncCheckpointSaver`, so the saver contract runs on the async log.

Test code only: a thread per call is fine here, never in cairnflow itself.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Coroutine, Iterator, Sequence
from typing import Any, TypeVar

from cairnflow.core.checkpoint import AsyncCheckpointSaver, Checkpoint, CheckpointInfo, CheckpointSaver
from cairnflow.core.format import Status
from cairnflow.core.store import CREATE, AsyncObjectStore, ObjectInfo, ObjectStore, PutMode, StoredObject

__all__ = ["AsyncStore", "LoopThread", "SyncSaver", "SyncStore", "shared_loop"]

T = TypeVar("T")


class LoopThread:
    """An event loop running forever in a daemon thread; :meth:`run` waits for a coroutine there."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="async-bridge", daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("a bridge was called from its own loop: use the async API there")
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.close()


_shared: LoopThread | None = None
_shared_lock = threading.Lock()


def shared_loop() -> LoopThread:
    """The one loop thread of this test process (created on first use)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = LoopThread()
        return _shared


async def _collect(items: AsyncIterator[T]) -> list[T]:
    return [item async for item in items]


class SyncStore(ObjectStore):
    """A sync :class:`ObjectStore` whose every request is an async store's, run on the loop thread."""

    def __init__(self, inner: AsyncObjectStore, loop: LoopThread | None = None) -> None:
        self.inner = inner
        self.url = inner.url
        self.loop = loop or shared_loop()

    def put(self, key: str, data: bytes, mode: PutMode = CREATE) -> str:
        return self.loop.run(self.inner.put(key, data, mode))

    def get(self, key: str) -> StoredObject:
        return self.loop.run(self.inner.get(key))

    def list(
        self, prefix: str, *, start_after: str | None = None, limit: int | None = None
    ) -> Iterator[ObjectInfo]:
        # Collected on the loop in one go: a listing is one call of the async store either way.
        return iter(self.loop.run(_collect(self.inner.list(prefix, start_after=start_after, limit=limit))))

    def list_prefixes(self, prefix: str) -> Iterator[str]:
        return iter(self.loop.run(_collect(self.inner.list_prefixes(prefix))))

    def delete(self, key: str) -> None:
        self.loop.run(self.inner.delete(key))

    def close(self) -> None:
        self.loop.run(self.inner.aclose())


class AsyncStore(AsyncObjectStore):
    """An :class:`AsyncObjectStore` whose every request is a sync store's, run in a worker thread."""

    def __init__(self, inner: ObjectStore) -> None:
        self.inner = inner
        self.url = inner.url

    async def put(self, key: str, data: bytes, mode: PutMode = CREATE) -> str:
        return await asyncio.to_thread(self.inner.put, key, data, mode)

    async def get(self, key: str) -> StoredObject:
        return await asyncio.to_thread(self.inner.get, key)

    async def list(
        self, prefix: str, *, start_after: str | None = None, limit: int | None = None
    ) -> AsyncIterator[ObjectInfo]:
        def listing() -> list[ObjectInfo]:  # even calling list() may make a request: in the thread too
            return list(self.inner.list(prefix, start_after=start_after, limit=limit))

        for info in await asyncio.to_thread(listing):
            yield info

    async def list_prefixes(self, prefix: str) -> AsyncIterator[str]:
        for folder in await asyncio.to_thread(lambda: list(self.inner.list_prefixes(prefix))):
            yield folder

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self.inner.delete, key)

    async def aclose(self) -> None:
        await asyncio.to_thread(self.inner.close)


class SyncSaver(CheckpointSaver):
    """A sync :class:`CheckpointSaver` whose every call is an async saver's, run on the loop thread.

    Attributes the tests read (``store``, ``prefix``, ``serializer``...) are the async saver's.
    """

    def __init__(self, inner: AsyncCheckpointSaver, loop: LoopThread | None = None) -> None:
        self.inner = inner
        self.loop = loop or shared_loop()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def latest(self, thread_id: str) -> Checkpoint | None:
        return self.loop.run(self.inner.latest(thread_id))

    def get(self, thread_id: str, checkpoint_id: str | int) -> Checkpoint:
        return self.loop.run(self.inner.get(thread_id, checkpoint_id))

    def append(
        self,
        thread_id: str,
        head: Checkpoint | None,
        records: Sequence[Any],
        *,
        status: Status,
        workflow: str | None = None,
    ) -> Checkpoint:
        return self.loop.run(self.inner.append(thread_id, head, records, status=status, workflow=workflow))

    def fork(self, thread_id: str, checkpoint_id: str | int) -> Checkpoint:
        return self.loop.run(self.inner.fork(thread_id, checkpoint_id))

    def history(
        self, thread_id: str, *, limit: int | None = None, before: str | int | None = None
    ) -> Iterator[CheckpointInfo]:
        return iter(self.loop.run(_collect(self.inner.history(thread_id, limit=limit, before=before))))

    def threads(self, *, limit: int | None = None) -> Iterator[str]:
        return iter(self.loop.run(_collect(self.inner.threads(limit=limit))))

    def delete_thread(
        self, thread_id: str, *, purge: bool = False, expected_head: int | None = None
    ) -> int | None:
        return self.loop.run(self.inner.delete_thread(thread_id, purge=purge, expected_head=expected_head))

    def index_stop(self, head: Checkpoint, previous: Checkpoint | None) -> None:
        self.loop.run(self.inner.index_stop(head, previous))
