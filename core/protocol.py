"""The checkpoint log's logic, written once as steps (see :mod:`cairnflow.core.steps`).

:class:`LogSteps` holds everything the log decides: keys, encoding and
decoding, the snapshot policy, the delta + base reconstruction, conflict
detection and the recognition of an ambiguous write's own object. Its
``_*`` step methods yield store requests; :class:`~cairnflow.core.log.CheckpointLog`
runs them with :func:`~cairnflow.core.steps.run` on an ``ObjectStore`` and
:class:`~cairnflow.core.log.AsyncCheckpointLog` with
:func:`~cairnflow.core.steps.arun` on an ``AsyncObjectStore``. The layout,
costs and ambiguity rules are those described in :mod:`cairnflow.core.log`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from cairnflow.core import codec, keys, observe
from cairnflow.core.checkpoint import Checkpoint, CheckpointInfo, Kind, Status
from cairnflow.core.cipher import Cipher
from cairnflow.core.errors import (
    AlreadyExistsError,
    ConflictError,
    CorruptCheckpointError,
    DecryptionError,
    NotFoundError,
    SerializationError,
    ThreadNotFoundError,
)
from cairnflow.core.format import Header, base_needed, build_header, parse_header, state_records
from cairnflow.core.retry import RetryPolicy
from cairnflow.core.serde import Serializer, default_serializer
from cairnflow.core.steps import Get, List, ListPrefixes, Put, Request, Step, retried
from cairnflow.core.store import CREATE, ObjectInfo, StoredObject

__all__ = ["LogSteps", "parse_id"]


class LogSteps:
    """The checkpoint log's configuration and its operations as steps (a base of both logs)."""

    prefix: str
    serializer: Serializer
    snapshot_every: int
    snapshot_bytes: int
    store_retry: RetryPolicy
    cipher: Cipher | None
    require_encryption: bool

    def _configure(
        self,
        *,
        prefix: str,
        serializer: Serializer | None,
        snapshot_every: int,
        snapshot_bytes: int,
        store_retry: RetryPolicy,
        cipher: Cipher | None,
        require_encryption: bool,
    ) -> None:
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        self.prefix = prefix
        self.serializer = serializer or default_serializer
        self.snapshot_every = snapshot_every
        self.snapshot_bytes = snapshot_bytes
        self.store_retry = store_retry
        self.cipher = cipher
        self.require_encryption = require_encryption

    # ------------------------------------------------------------------ low level

    def _retried(self, request: Request) -> Step[Any]:
        return retried(request, self.store_retry)

    def _first(self, prefix: str, *, start_after: str | None = None) -> Step[ObjectInfo | None]:
        """The first key under ``prefix`` (after ``start_after``): one LIST request."""
        found: list[ObjectInfo] = yield from self._retried(List(prefix, start_after, 1))
        return found[0] if found else None

    def _head_key(self, thread_id: str) -> Step[str | None]:
        found = yield from self._first(keys.thread_prefix(self.prefix, thread_id))
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

    def _read(self, thread_id: str, seq: int) -> Step[tuple[Header, list[Any], int]]:
        key = keys.checkpoint_key(self.prefix, thread_id, seq)
        try:
            obj = yield from self._retried(Get(key))
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

    def _load(
        self, thread_id: str, seq: int, header: Header, body: list[Any], body_bytes: int
    ) -> Step[Checkpoint]:
        """Build the full state at ``seq`` from its object and, for a delta, its base."""
        base_bytes = body_bytes
        base: tuple[Header, list[Any]] | None = None
        missing: ThreadNotFoundError | None = None
        wanted = base_needed(header, body)
        if wanted is not None:  # read it here (a request), hand it to the one reconstruction below
            try:
                base_header, base_body, base_bytes = yield from self._read(thread_id, wanted)
                base = (base_header, base_body)
            except ThreadNotFoundError as exc:
                missing = exc

        def read_base(base_seq: int) -> tuple[Header, list[Any]]:
            if missing is not None:
                raise missing
            assert base is not None and base_seq == wanted  # base_needed names what is read
            return base

        key = keys.checkpoint_key(self.prefix, thread_id, seq)
        state = state_records(header, body, key=key, read_base=read_base)
        assert state is not None  # this log loads every body it reads
        records, base_len = state
        base_seq = header.base if header.kind == "delta" and header.base is not None else seq
        return Checkpoint(self.info_of(header), records, base_seq, base_len, base_bytes)

    def _create(self, thread_id: str, key: str, data: bytes) -> Step[None]:
        """Create-only write that recognises its own earlier attempts; ConflictError otherwise."""
        try:
            yield from self._retried(Put(key, data, CREATE))
        except AlreadyExistsError:
            existing: StoredObject = yield from self._retried(Get(key))
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

    def _latest(self, thread_id: str) -> Step[Checkpoint | None]:
        key = yield from self._head_key(thread_id)
        if key is None:
            return None
        try:
            found_thread, seq = keys.parse_checkpoint_key(self.prefix, key)
        except ValueError:
            raise CorruptCheckpointError("foreign object under the thread's prefix", key=key) from None
        if found_thread != thread_id:  # cannot happen with a sound encoding; refuse rather than guess
            raise CorruptCheckpointError("object under the wrong thread prefix", key=key)
        obj = yield from self._retried(Get(key))
        return (yield from self._load(thread_id, seq, *self._decode(thread_id, seq, key, obj)))

    def _get(self, thread_id: str, checkpoint_id: str | int) -> Step[Checkpoint]:
        seq = parse_id(checkpoint_id)
        return (yield from self._load(thread_id, seq, *(yield from self._read(thread_id, seq))))

    def _history_listing(
        self, thread_id: str, limit: int | None, before: str | int | None
    ) -> Step[list[ObjectInfo]]:
        """The LIST of ``history``: the thread's checkpoint keys, newest first."""
        prefix = keys.thread_prefix(self.prefix, thread_id)
        start_after = (
            keys.checkpoint_key(self.prefix, thread_id, parse_id(before)) if before is not None else None
        )
        listing: list[ObjectInfo] = yield from self._retried(List(prefix, start_after, limit))
        return listing

    def _history_item(self, thread_id: str, entry: ObjectInfo) -> Step[CheckpointInfo]:
        """One entry of ``history``: the header of a listed checkpoint (one GET)."""
        try:
            _, seq = keys.parse_checkpoint_key(self.prefix, entry.key)
        except ValueError:
            raise CorruptCheckpointError("foreign object under the thread's prefix", key=entry.key) from None
        header, _, _ = yield from self._read(thread_id, seq)
        return self.info_of(header)

    def _thread_folders(self) -> Step[list[str]]:
        """The delimiter listing of ``threads`` (one LIST per 1,000 threads)."""
        folders: list[str] = yield from self._retried(ListPrefixes(keys.threads_prefix(self.prefix)))
        return folders

    def _thread_ids(self, folders: Iterable[str], limit: int | None) -> Iterator[str]:
        """The thread ids of the folders, foreign folders skipped, at most ``limit``."""
        base = keys.threads_prefix(self.prefix)
        count = 0
        for folder in folders:
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
    ) -> Step[Header]:
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
        yield from self._create(thread_id, key, data)
        return header

    def _append(
        self,
        thread_id: str,
        head: Checkpoint | None,
        records: Sequence[Any],
        status: Status,
        workflow: str | None,
    ) -> Step[Checkpoint]:
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
                header = yield from self._write(
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
        header = yield from self._write(
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

    def _fork(self, thread_id: str, checkpoint_id: str | int) -> Step[Checkpoint]:
        source = yield from self._get(thread_id, checkpoint_id)
        head = yield from self._latest(thread_id)
        assert head is not None  # source exists, so the thread has a head
        seq = head.seq + 1
        body = self.serializer.dumps(list(source.records))
        header = yield from self._write(
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
        yield from self._index_stop(forked, head)  # the head changed status: keep listings right
        return forked

    def _index_stop(self, head: Checkpoint, previous: Checkpoint | None) -> Step[None]:
        """Record the stop in the status index: one PUT, plus one DELETE of ``previous``'s entry."""
        from cairnflow.core.status_index import record_stop_steps

        if head.status != "running":
            prev = None if previous is None else previous.info
            yield from record_stop_steps(self.prefix, head.info, prev, retry=self.store_retry)

    def _delete_thread(self, thread_id: str, purge: bool, expected_head: int | None) -> Step[int | None]:
        from cairnflow.core.tombstone import delete_thread_steps

        return (yield from delete_thread_steps(self, thread_id, purge=purge, expected_head=expected_head))


def parse_id(checkpoint_id: str | int) -> int:
    """A checkpoint id as its sequence number; ``ThreadNotFoundError`` if it cannot be one."""
    try:
        seq = int(checkpoint_id)
    except (TypeError, ValueError):
        raise ThreadNotFoundError(f"not a checkpoint id: {checkpoint_id!r}") from None
    if not 0 <= seq <= keys.MAX_SEQ:
        raise ThreadNotFoundError(f"checkpoint id out of range: {checkpoint_id!r}")
    return seq
