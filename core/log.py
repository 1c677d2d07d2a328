"""The checkpoint log on any object store with conditional writes.

Layout (see :mod:`cairnflow.core.keys`)::

    {prefix}v1/threads/{encoded thread}/{999999999999 - seq}

Every checkpoint object is written once, create-only, and never modified.

**Snapshot + tail.** A checkpoint is either a *snapshot* (its body holds
every record of the state) or a *delta* (its body holds the records added
since its base snapshot, i.e. the whole tail, and names the base). So the
state at any checkpoint is at most two objects: the checkpoint and its base.
A writer turns an append into a snapshot when the tail would exceed
``snapshot_every`` records or ``snapshot_bytes`` bytes, which bounds the size
of a delta independently of the history length.

**Costs** (requests to the store):

===========================  ===============================================
operation                    requests
===========================  ===============================================
``latest(thread)``           1 LIST (limit 1) + 1 GET, + 1 GET if a delta
``append`` (common case)     1 PUT (create-only)
``append`` lost race         1 PUT + 1 GET (to tell our own write from theirs)
``get(thread, id)``          1 GET, + 1 GET if a delta
``history(limit=n)``         1 LIST + n GETs
``threads()``                1 LIST per 1,000 threads (delimiter listing)
``index_stop`` (a run stops) 1 PUT, + 1 DELETE (the entry it supersedes)
===========================  ===============================================

**Ambiguous writes.** Every checkpoint body carries a fresh random writer
token. When a create-only PUT is refused because the key exists, the saver
reads the object back: if its bytes are ours (an earlier attempt, or the
SDK's own retry, landed after all) the append succeeded; otherwise another
writer won and the append raises :class:`ConflictError`.

**Two front ends, one protocol.** :class:`CheckpointLog` (on an
:class:`ObjectStore`) and :class:`AsyncCheckpointLog` (on an
:class:`AsyncObjectStore`, for asyncio) are thin drivers of the same steps
(:class:`cairnflow.core.protocol.LogSteps`, see :mod:`cairnflow.core.steps`):
the same requests, in the same order, with the same errors.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any, TypeVar

from cairnflow.core.checkpoint import (
    AsyncCheckpointSaver,
    Checkpoint,
    CheckpointInfo,
    CheckpointSaver,
    Status,
)
from cairnflow.core.cipher import Cipher
from cairnflow.core.errors import TransientStoreError
from cairnflow.core.format import state_records
from cairnflow.core.protocol import LogSteps
from cairnflow.core.retry import RetryPolicy
from cairnflow.core.serde import Serializer
from cairnflow.core.steps import Step, arun, run
from cairnflow.core.store import AsyncObjectStore, ObjectStore

__all__ = ["DEFAULT_STORE_RETRY", "AsyncCheckpointLog", "CheckpointLog", "state_records"]

T = TypeVar("T")

#: Retries of the protocol's own store requests: transient errors only.
DEFAULT_STORE_RETRY = RetryPolicy(
    max_attempts=5, initial_interval=0.05, max_interval=2.0, retry_on=(TransientStoreError,)
)


class CheckpointLog(LogSteps, CheckpointSaver):
    """A :class:`CheckpointSaver` on an :class:`ObjectStore`.

    ``prefix`` scopes every key (use one prefix per application or tenant).
    ``serializer`` turns records into bytes (default: safe JSON).
    ``cipher`` encrypts every body (see :mod:`cairnflow.encryption`); with a
    cipher, unencrypted objects are refused unless ``require_encryption`` is
    false (for migrating a store to encryption).
    """

    def __init__(
        self,
        store: ObjectStore,
        *,
        prefix: str = "",
        serializer: Serializer | None = None,
        snapshot_every: int = 16,
        snapshot_bytes: int = 64 * 1024,
        store_retry: RetryPolicy = DEFAULT_STORE_RETRY,
        cipher: Cipher | None = None,
        require_encryption: bool = True,
    ) -> None:
        self.store = store
        self._configure(
            prefix=prefix,
            serializer=serializer,
            snapshot_every=snapshot_every,
            snapshot_bytes=snapshot_bytes,
            store_retry=store_retry,
            cipher=cipher,
            require_encryption=require_encryption,
        )

    def __repr__(self) -> str:
        return f"CheckpointLog({self.store.url!r}, prefix={self.prefix!r})"

    def _run(self, step: Step[T]) -> T:
        return run(step, self.store)

    def latest(self, thread_id: str) -> Checkpoint | None:
        return self._run(self._latest(thread_id))

    def get(self, thread_id: str, checkpoint_id: str | int) -> Checkpoint:
        return self._run(self._get(thread_id, checkpoint_id))

    def history(
        self, thread_id: str, *, limit: int | None = None, before: str | int | None = None
    ) -> Iterator[CheckpointInfo]:
        for entry in self._run(self._history_listing(thread_id, limit, before)):
            yield self._run(self._history_item(thread_id, entry))

    def threads(self, *, limit: int | None = None) -> Iterator[str]:
        yield from self._thread_ids(self._run(self._thread_folders()), limit)

    def append(
        self,
        thread_id: str,
        head: Checkpoint | None,
        records: Sequence[Any],
        *,
        status: Status,
        workflow: str | None = None,
    ) -> Checkpoint:
        return self._run(self._append(thread_id, head, records, status, workflow))

    def fork(self, thread_id: str, checkpoint_id: str | int) -> Checkpoint:
        return self._run(self._fork(thread_id, checkpoint_id))

    def index_stop(self, head: Checkpoint, previous: Checkpoint | None) -> None:
        """Record the stop in the status index: one PUT, plus one DELETE of ``previous``'s entry."""
        self._run(self._index_stop(head, previous))

    def delete_thread(
        self, thread_id: str, *, purge: bool = False, expected_head: int | None = None
    ) -> int | None:
        """Tombstone the thread, then delete every checkpoint below the tombstone.

        See :func:`cairnflow.core.tombstone.delete_thread`.
        """
        return self._run(self._delete_thread(thread_id, purge, expected_head))


class AsyncCheckpointLog(LogSteps, AsyncCheckpointSaver):
    """The checkpoint log on an :class:`AsyncObjectStore`: :class:`CheckpointLog` for asyncio.

    The same arguments, layout, costs and errors as :class:`CheckpointLog` (it
    drives the same steps); its methods are coroutines, ``history`` and
    ``threads`` async iterators. Retries wait with ``asyncio.sleep``. The log
    owns nothing but its store: ``aclose()`` (or ``async with``) closes that.
    """

    def __init__(
        self,
        store: AsyncObjectStore,
        *,
        prefix: str = "",
        serializer: Serializer | None = None,
        snapshot_every: int = 16,
        snapshot_bytes: int = 64 * 1024,
        store_retry: RetryPolicy = DEFAULT_STORE_RETRY,
        cipher: Cipher | None = None,
        require_encryption: bool = True,
    ) -> None:
        self.store = store
        self._configure(
            prefix=prefix,
            serializer=serializer,
            snapshot_every=snapshot_every,
            snapshot_bytes=snapshot_bytes,
            store_retry=store_retry,
            cipher=cipher,
            require_encryption=require_encryption,
        )

    def __repr__(self) -> str:
        return f"AsyncCheckpointLog({self.store.url!r}, prefix={self.prefix!r})"

    async def _run(self, step: Step[T]) -> T:
        return await arun(step, self.store)

    async def latest(self, thread_id: str) -> Checkpoint | None:
        return await self._run(self._latest(thread_id))

    async def get(self, thread_id: str, checkpoint_id: str | int) -> Checkpoint:
        return await self._run(self._get(thread_id, checkpoint_id))

    async def history(
        self, thread_id: str, *, limit: int | None = None, before: str | int | None = None
    ) -> AsyncIterator[CheckpointInfo]:
        for entry in await self._run(self._history_listing(thread_id, limit, before)):
            yield await self._run(self._history_item(thread_id, entry))

    async def threads(self, *, limit: int | None = None) -> AsyncIterator[str]:
        for thread_id in self._thread_ids(await self._run(self._thread_folders()), limit):
            yield thread_id

    async def append(
        self,
        thread_id: str,
        head: Checkpoint | None,
        records: Sequence[Any],
        *,
        status: Status,
        workflow: str | None = None,
    ) -> Checkpoint:
        return await self._run(self._append(thread_id, head, records, status, workflow))

    async def fork(self, thread_id: str, checkpoint_id: str | int) -> Checkpoint:
        return await self._run(self._fork(thread_id, checkpoint_id))

    async def index_stop(self, head: Checkpoint, previous: Checkpoint | None) -> None:
        """Record the stop in the status index: one PUT, plus one DELETE of ``previous``'s entry."""
        await self._run(self._index_stop(head, previous))

    async def delete_thread(
        self, thread_id: str, *, purge: bool = False, expected_head: int | None = None
    ) -> int | None:
        """Tombstone the thread, then delete every checkpoint below the tombstone (as the sync log)."""
        return await self._run(self._delete_thread(thread_id, purge, expected_head))

    async def aopen(self) -> None:
        await self.store.aopen()

    async def aclose(self) -> None:
        await self.store.aclose()
