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
"""

from __future__ import annotations

import functools
import math
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any, TypeVar

from cairnflow.core import codec, keys, observe
from cairnflow.core.checkpoint import (
    AsyncCheckpointSaver,
    Checkpoint,
    CheckpointInfo,
    CheckpointSaver,
    Kind,
    Status,
)
from cairnflow.core.cipher import Cipher
from cairnflow.core.errors import (
    AlreadyExistsError,
    ConflictError,
    CorruptCheckpointError,
    DecryptionError,
    NotFoundError,
    SerializationError,
    ThreadNotFoundError,
    TransientStoreError,
)
from cairnflow.core.format import (
    Header,
    base_problem,
    body_problem,
    build_header,
    parse_header,
)
from cairnflow.core.retry import RetryPolicy, call_with_retry
from cairnflow.core.serde import Serializer, default_serializer
from cairnflow.core.store import CREATE, AsyncObjectStore, ObjectInfo, ObjectStore, StoredObject

__all__ = ["AsyncCheckpointLog", "CheckpointLog", "state_records"]

T = TypeVar("T")

#: Retries of the protocol's own store requests: transient errors only.
DEFAULT_STORE_RETRY = RetryPolicy(
    max_attempts=5, initial_interval=0.05, max_interval=2.0, retry_on=(TransientStoreError,)
)


class CheckpointLog(CheckpointSaver):
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
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        self.store = store
        self.prefix = prefix
        self.serializer: Serializer = serializer or default_serializer
        self.snapshot_every = snapshot_every
        self.snapshot_bytes = snapshot_bytes
        self.store_retry = store_retry
        self.cipher = cipher
        self.require_encryption = require_encryption

    def __repr__(self) -> str:
        return f"CheckpointLog({self.store.url!r}, prefix={self.prefix!r})"

    # ------------------------------------------------------------------ low level

    def _retry(self, fn: Callable[[], T]) -> T:
        return call_with_retry(fn, self.store_retry)

    def _first(self, prefix: str, *, start_after: str | None = None) -> ObjectInfo | None:
        """The first key under ``prefix`` (after ``start_after``): one LIST request."""
        listing = functools.partial(self.store.list, prefix, start_after=start_after, limit=1)
        return self._retry(lambda: next(iter(listing()), None))

    def _head_key(self, thread_id: str) -> str | None:
        found = self._first(keys.thread_prefix(self.prefix, thread_id))
        return found.key if found else None

    def _decode(self, thread_id: str, seq: int, key: str, obj: StoredObject) -> tuple[Header, list[Any], int]:
        """Check an object and return its header, its records and its body's size."""
        env = codec.decode(obj.data, key=key)
        header = parse_header(env, key=key, thread_id=thread_id, seq=seq)
        body = env.body
        if env.flags & codec.FLAG_ENCRYPTED:
            if self.cipher is None:
                raise DecryptionError("object is encrypted and this saver has no cipher", key=key)
            if header.key_id is None:
                raise DecryptionError("encrypted object names no key id", key=key)
            body = self.cipher.decrypt(body, env.header_bytes, header.key_id)
        elif self.cipher is not None and self.require_encryption:
            raise DecryptionError(
                "object is not encrypted but this saver requires encryption (planted or old object?)",
                key=key,
            )
        serde_name = header.serde
        if serde_name != self.serializer.name:
            raise SerializationError(
                f"checkpoint {key!r} was written with serializer {serde_name!r}, this saver uses "
                f"{self.serializer.name!r}; refusing to load it"
            )
        try:
            records = self.serializer.loads(body)
        except SerializationError as exc:  # name the object, like every other corrupt-object error
            raise SerializationError(f"{exc} (key={key!r})") from exc
        if not isinstance(records, list):
            raise CorruptCheckpointError("checkpoint body is not a list of records", key=key)
        return header, records, len(body)

    def _read(self, thread_id: str, seq: int) -> tuple[Header, list[Any], int]:
        key = keys.checkpoint_key(self.prefix, thread_id, seq)
        try:
            obj = self._retry(lambda: self.store.get(key))
        except NotFoundError:
            raise ThreadNotFoundError(f"no checkpoint {seq} in thread {thread_id!r}") from None
        return self._decode(thread_id, seq, key, obj)

    @staticmethod
    def info_of(header: Header) -> CheckpointInfo:
        """A stored header as the :class:`CheckpointInfo` the saver hands out."""
        return CheckpointInfo(
            thread_id=header.thread,
            seq=header.seq,
            kind=header.kind,
            status=header.status,
            created_at=header.time,
            new_records=header.new,
            total_records=header.total,
            parent=header.parent,
            workflow=header.workflow,
        )

    def _load(self, thread_id: str, seq: int, header: Header, body: list[Any], body_bytes: int) -> Checkpoint:
        """Build the full state at ``seq`` from its object and, for a delta, its base."""
        base_bytes = body_bytes

        def read_base(base_seq: int) -> tuple[Header, list[Any]]:
            nonlocal base_bytes
            base_header, base_body, base_bytes = self._read(thread_id, base_seq)
            return base_header, base_body

        key = keys.checkpoint_key(self.prefix, thread_id, seq)
        state = state_records(header, body, key=key, read_base=read_base)
        assert state is not None  # this log loads every body it reads
        records, base_len = state
        base_seq = header.base if header.kind == "delta" and header.base is not None else seq
        return Checkpoint(self.info_of(header), records, base_seq, base_len, base_bytes)

    def _create(self, thread_id: str, key: str, data: bytes) -> None:
        """Create-only write that recognises its own earlier attempts; ConflictError otherwise."""
        try:
            self._retry(lambda: self.store.put(key, data, CREATE))
        except AlreadyExistsError:
            existing = self._retry(lambda: self.store.get(key))
            if existing.data != data:
                observe.event("cairnflow.conflict", thread_id=thread_id)
                raise ConflictError(
                    f"thread {thread_id!r} was advanced by another writer (checkpoint key {key!r} "
                    "exists); reload the thread and try again",
                    thread_id=thread_id,
                ) from None
            # Our own write landed on an earlier (ambiguous) attempt.
            observe.event("cairnflow.write_recognised", thread_id=thread_id)

    # ------------------------------------------------------------------ reads

    def latest(self, thread_id: str) -> Checkpoint | None:
        key = self._head_key(thread_id)
        if key is None:
            return None
        try:
            found_thread, seq = keys.parse_checkpoint_key(self.prefix, key)
        except ValueError:
            raise CorruptCheckpointError("foreign object under the thread's prefix", key=key) from None
        if found_thread != thread_id:  # cannot happen with a sound encoding; refuse rather than guess
            raise CorruptCheckpointError("object under the wrong thread prefix", key=key)
        obj = self._retry(lambda: self.store.get(key))
        return self._load(thread_id, seq, *self._decode(thread_id, seq, key, obj))

    def get(self, thread_id: str, checkpoint_id: str | int) -> Checkpoint:
        seq = _parse_id(checkpoint_id)
        return self._load(thread_id, seq, *self._read(thread_id, seq))

    def history(
        self, thread_id: str, *, limit: int | None = None, before: str | int | None = None
    ) -> Iterator[CheckpointInfo]:
        prefix = keys.thread_prefix(self.prefix, thread_id)
        start_after = (
            keys.checkpoint_key(self.prefix, thread_id, _parse_id(before)) if before is not None else None
        )
        listing = self._retry(lambda: list(self.store.list(prefix, start_after=start_after, limit=limit)))
        for entry in listing:
            try:
                _, seq = keys.parse_checkpoint_key(self.prefix, entry.key)
            except ValueError:
                raise CorruptCheckpointError(
                    "foreign object under the thread's prefix", key=entry.key
                ) from None
            yield self.info_of(self._read(thread_id, seq)[0])

    def threads(self, *, limit: int | None = None) -> Iterator[str]:
        base = keys.threads_prefix(self.prefix)
        count = 0
        for folder in self._retry(lambda: iter(list(self.store.list_prefixes(base)))):
            if limit is not None and count >= limit:
                return
            try:
                thread_id = keys.decode_thread_id(folder[len(base) : -1])
            except ValueError:
                continue  # a foreign folder, not a thread of ours
            yield thread_id
            count += 1

    # ------------------------------------------------------------------ writes

    def _write(
        self,
        thread_id: str,
        seq: int,
        body: bytes,
        *,
        kind: Kind,
        status: Status,
        new: int,
        total: int,
        base: int,
        workflow: str | None,
        parent: int | None = None,
    ) -> Header:
        """Write one checkpoint object create-only; return the header it carries."""
        header = build_header(
            thread=thread_id,
            seq=seq,
            kind=kind,
            status=status,
            base=base,
            new=new,
            total=total,
            serde=self.serializer.name,
            workflow=workflow,
            parent=parent,
            key_id=None if self.cipher is None else self.cipher.key_id,
        )
        key = keys.checkpoint_key(self.prefix, thread_id, seq)
        if self.cipher is None:
            data = codec.encode(header.to_dict(), body)
        else:
            # The header (thread, seq, kind, key id...) is the associated data: an object
            # moved to another key, or whose header was edited, fails to decrypt.
            head = codec.encode_header(header.to_dict())
            data = codec.encode(head, self.cipher.encrypt(body, head), codec.FLAG_ENCRYPTED)
        self._create(thread_id, key, data)
        return header

    def append(
        self,
        thread_id: str,
        head: Checkpoint | None,
        records: Sequence[Any],
        *,
        status: Status,
        workflow: str | None = None,
    ) -> Checkpoint:
        keys.encode_thread_id(thread_id)  # validate early, before any request
        new = list(records)
        seq = 0 if head is None else head.seq + 1
        previous: tuple[Any, ...] = () if head is None else head.records
        everything = previous + tuple(new)
        if head is not None and head.info.workflow is not None and workflow is None:
            workflow = head.info.workflow
        if head is not None and head.info.kind != "tombstone":
            tail = list(previous[head.base_len :]) + new
            body = self.serializer.dumps(tail)
            if len(tail) == len(new) or not self._snapshot_due(head, len(tail), len(body), len(everything)):
                header = self._write(
                    thread_id,
                    seq,
                    body,
                    kind="delta",
                    status=status,
                    new=len(new),
                    total=len(everything),
                    base=head.base_seq,
                    workflow=workflow,
                )
                return Checkpoint(
                    self.info_of(header), everything, head.base_seq, head.base_len, head.base_bytes
                )
        if head is not None and head.info.kind == "tombstone":
            everything = tuple(new)  # a deleted thread starts afresh
        body = self.serializer.dumps(list(everything))
        header = self._write(
            thread_id,
            seq,
            body,
            kind="snapshot",
            status=status,
            new=len(new),
            total=len(everything),
            base=seq,
            workflow=workflow,
        )
        return Checkpoint(self.info_of(header), everything, seq, len(everything), len(body))

    def _snapshot_due(self, head: Checkpoint, tail_len: int, tail_bytes: int, total: int) -> bool:
        """Should this append write a full snapshot instead of a delta?

        A delta rewrites the tail (records since the snapshot); a snapshot
        rewrites everything. Letting the tail grow to about sqrt(2 * total)
        records (and its bytes in proportion) minimises the bytes written
        over a run to O(N * sqrt(N)) instead of the O(N^2) of a fixed cap,
        while a read still touches at most two objects.
        """
        max_len = max(self.snapshot_every, math.isqrt(2 * total))
        max_bytes = self.snapshot_bytes
        if head.base_len:
            max_bytes = max(max_bytes, head.base_bytes * max_len // head.base_len)
        return tail_len > max_len or tail_bytes > max_bytes

    def fork(self, thread_id: str, checkpoint_id: str | int) -> Checkpoint:
        source = self.get(thread_id, checkpoint_id)
        head = self.latest(thread_id)
        assert head is not None  # source exists, so the thread has a head
        seq = head.seq + 1
        body = self.serializer.dumps(list(source.records))
        header = self._write(
            thread_id,
            seq,
            body,
            kind="fork",
            status=source.status,
            new=0,
            total=len(source.records),
            base=seq,
            workflow=source.info.workflow,
            parent=source.seq,
        )
        forked = Checkpoint(self.info_of(header), source.records, seq, len(source.records), len(body))
        self.index_stop(forked, head)  # the head changed status: keep listings right
        return forked

    def index_stop(self, head: Checkpoint, previous: Checkpoint | None) -> None:
        """Record the stop in the status index: one PUT, plus one DELETE of ``previous``'s entry."""
        from cairnflow.core.status_index import record_stop

        if head.status != "running":
            prev = None if previous is None else previous.info
            record_stop(self.store, self.prefix, head.info, prev, retry=self.store_retry)

    def delete_thread(
        self, thread_id: str, *, purge: bool = False, expected_head: int | None = None
    ) -> int | None:
        """Tombstone the thread, then delete every checkpoint below the tombstone.

        See :func:`cairnflow.core.tombstone.delete_thread`.
        """
        from cairnflow.core.tombstone import delete_thread

        return delete_thread(self, thread_id, purge=purge, expected_head=expected_head)


def state_records(
    header: Header,
    body: Sequence[T] | None,
    *,
    key: str,
    read_base: Callable[[int], tuple[Header, Sequence[T] | None]],
) -> tuple[tuple[T, ...], int] | None:
    """Every record of the state at one checkpoint, and how many of them come from its base.

    THE delta + base reconstruction (the log, ``verify`` and the operator tools
    use it). ``header``/``body`` are the checkpoint's own (``body`` None when it
    cannot be read, e.g. encrypted or another serializer's); ``read_base(seq)``
    reads the base of a delta, raising ``ThreadNotFoundError`` if it is gone.
    Returns None when a body needed is unreadable; raises CorruptCheckpointError
    naming ``key`` when the two objects do not make a state.
    """
    if body is None:
        return None
    problem = body_problem(header, len(body))
    if problem is None and header.kind != "delta":
        return tuple(body), len(body)
    if problem is None:
        assert header.base is not None  # parse_header refuses a delta without a valid base
        try:
            base, base_body = read_base(header.base)
        except ThreadNotFoundError:
            raise CorruptCheckpointError(
                f"history has a gap: base checkpoint {header.base} is missing", key=key
            ) from None
        problem = base_problem(header, base, len(body), None if base_body is None else len(base_body))
        if problem is None:
            if base_body is None:
                return None
            return tuple(base_body) + tuple(body), len(base_body)
    raise CorruptCheckpointError(problem.message, key=key)


def _parse_id(checkpoint_id: str | int) -> int:
    try:
        seq = int(checkpoint_id)
    except (TypeError, ValueError):
        raise ThreadNotFoundError(f"not a checkpoint id: {checkpoint_id!r}") from None
    if not 0 <= seq <= keys.MAX_SEQ:
        raise ThreadNotFoundError(f"checkpoint id out of range: {checkpoint_id!r}")
    return seq


class AsyncCheckpointLog(AsyncCheckpointSaver):
    """The checkpoint log on an :class:`AsyncObjectStore` (placeholder until the sans-IO steps land)."""

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
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        self.store = store
        self.prefix = prefix
        self.serializer: Serializer = serializer or default_serializer
        self.snapshot_every = snapshot_every
        self.snapshot_bytes = snapshot_bytes
        self.store_retry = store_retry
        self.cipher = cipher
        self.require_encryption = require_encryption

    def __repr__(self) -> str:
        return f"AsyncCheckpointLog({self.store.url!r}, prefix={self.prefix!r})"

    async def latest(self, thread_id: str) -> Checkpoint | None:
        raise NotImplementedError("AsyncCheckpointLog lands with the sans-IO protocol steps")

    async def get(self, thread_id: str, checkpoint_id: str | int) -> Checkpoint:
        raise NotImplementedError("AsyncCheckpointLog lands with the sans-IO protocol steps")

    async def append(
        self,
        thread_id: str,
        head: Checkpoint | None,
        records: Sequence[Any],
        *,
        status: Status,
        workflow: str | None = None,
    ) -> Checkpoint:
        raise NotImplementedError("AsyncCheckpointLog lands with the sans-IO protocol steps")

    async def fork(self, thread_id: str, checkpoint_id: str | int) -> Checkpoint:
        raise NotImplementedError("AsyncCheckpointLog lands with the sans-IO protocol steps")

    async def history(
        self, thread_id: str, *, limit: int | None = None, before: str | int | None = None
    ) -> AsyncIterator[CheckpointInfo]:
        async for item in _not_yet():
            yield item

    async def threads(self, *, limit: int | None = None) -> AsyncIterator[str]:
        async for item in _not_yet():
            yield item

    async def delete_thread(
        self, thread_id: str, *, purge: bool = False, expected_head: int | None = None
    ) -> int | None:
        raise NotImplementedError("AsyncCheckpointLog lands with the sans-IO protocol steps")

    async def aclose(self) -> None:
        await self.store.aclose()


async def _not_yet() -> AsyncIterator[Any]:
    nothing: tuple[Any, ...] = ()
    for item in nothing:  # an async generator that raises at its first step
        yield item
    raise NotImplementedError("AsyncCheckpointLog lands with the sans-IO protocol steps")
