"""A fenced LangGraph checkpointer on any cairnflow object store.

See ``docs/langgraph.md`` for the design; in short:

* **Storage.** Per (thread, namespace): a log of immutable entries with
  newest-first sequence keys (a *checkpoint* without its channel values, or
  a *pointer*, written by deletes), an id -> seq index, one object per
  (channel, version) holding a channel value, and one object per pending
  write keyed by (checkpoint id, task id, index). Every object is written
  create-only, in the cairnflow envelope (checksum verified on every read).
  A step writes only the channel values whose version changed.

* **Fencing.** Appending checkpoint ``n + 1`` is a create-only PUT of log
  key ``n + 1``. Which ``n`` a put must follow comes from the config
  LangGraph hands back to :meth:`~LangGraphSaver.put`: :meth:`get_tuple`
  without a checkpoint id returns a config carrying a fence token (``L``:
  "loaded the latest, at log position n"), and pregel merges that config
  into every put of the run. A put whose parent is the fenced checkpoint
  goes exactly to ``n + 1``; a put whose parent is the run's own previous
  checkpoint goes exactly after it. Either fails with
  :class:`~cairnflow.core.errors.ConflictError` when another writer got
  there first. Configs that name a specific checkpoint (get_tuple with an
  id, list, parent configs, put's result) carry an ``F`` token instead:
  a put from there is explicit time travel and is appended at the head as a
  recorded fork.
"""

from __future__ import annotations

import asyncio
import builtins
import collections
import concurrent.futures
import contextlib
import functools
import hashlib
import random
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    DeltaChannelHistory,
    PendingWrite,
    get_checkpoint_id,
    get_checkpoint_metadata,
    writes_sort_key,
)
from langgraph.checkpoint.serde.base import SerializerProtocol

from cairnflow.core import codec
from cairnflow.core.errors import (
    AlreadyExistsError,
    ConflictError,
    CorruptCheckpointError,
    NotFoundError,
    PruneRefusedError,
)
from cairnflow.core.keys import decode_thread_id
from cairnflow.core.log import DEFAULT_STORE_RETRY as CORE_STORE_RETRY
from cairnflow.core.retry import RetryPolicy, call_with_retry
from cairnflow.core.store import CREATE, ObjectInfo, ObjectStore
from cairnflow.langgraph import _layout as lay

__all__ = ["FENCE_KEY", "LangGraphSaver", "PruneRefusedError"]

T = TypeVar("T")

#: The configurable key carrying the fence token. It starts with ``__`` so that neither
#: LangGraph (``get_checkpoint_metadata``) nor langchain-core copy it into metadata.
FENCE_KEY = "__cairnflow_fence"

#: Retries of store requests: the core's policy (transient errors only; a conditional
#: write is retried only together with a read-back that recognises our own landed attempt).
DEFAULT_STORE_RETRY = CORE_STORE_RETRY

_APPEND_ATTEMPTS = 64
_SEQ_CACHE_SIZE = 4096
_MARKER_CACHE_SIZE = 4096
_LIST_BATCH = 16
_KIND_ORDER = {"i": 0, "c": 1, "w": 2, "b": 3}


# --------------------------------------------------------------------------- fence tokens


@dataclass(frozen=True)
class _Fence:
    mode: str  # "L": loaded as the latest (strict); "F": a handle on a specific checkpoint (fork)
    seq: int
    scope: str
    checkpoint_id: str


def _scope(thread_id: str, ns: str) -> str:
    return hashlib.sha256(f"{thread_id}\x00{ns}".encode("utf-8", "surrogatepass")).hexdigest()[:12]


def _fence(mode: str, seq: int, thread_id: str, ns: str, checkpoint_id: str) -> str:
    return f"{mode}.{seq}.{_scope(thread_id, ns)}.{checkpoint_id}"


def _parse_fence(value: object) -> _Fence | None:
    if not isinstance(value, str):
        return None
    parts = value.split(".", 3)
    if len(parts) != 4 or parts[0] not in ("L", "F"):
        return None
    try:
        seq = int(parts[1])
    except ValueError:
        return None
    return _Fence(parts[0], seq, parts[2], parts[3])


# --------------------------------------------------------------------------- entries


@dataclass(frozen=True)
class _Entry:
    """One decoded log entry."""

    seq: int
    key: str
    header: dict[str, Any]
    body: bytes

    @property
    def is_pointer(self) -> bool:
        return bool(self.header.get("k") == "ptr")

    @property
    def checkpoint_id(self) -> str:
        return str(self.header["id"])

    @property
    def channels(self) -> list[str]:
        return list(self.header.get("blobs", []))


@dataclass
class _Loaded:
    """A checkpoint entry, its decoded checkpoint, and the raw (typed) bytes of its values and writes."""

    entry: _Entry
    checkpoint: dict[str, Any]
    blobs: dict[str, tuple[str, bytes]]
    writes: list[tuple[str, str, str, int, tuple[str, bytes]]]  # path, task, channel, idx, typed


class _LRU:
    def __init__(self, size: int) -> None:
        self._data: collections.OrderedDict[Any, Any] = collections.OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get(self, key: Any) -> Any:
        with self._lock:
            value = self._data.get(key)
            if value is not None:
                self._data.move_to_end(key)
            return value

    def put(self, key: Any, value: Any) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self._size:
                self._data.popitem(last=False)

    def discard_where(self, predicate: Callable[[Any], bool]) -> None:
        with self._lock:
            for key in [k for k in self._data if predicate(k)]:
                del self._data[key]


def _write_order(write: tuple[str, str, str, int, tuple[str, bytes]]) -> tuple[str, str, int]:
    path, task, _, idx, _ = write
    return writes_sort_key(path, task, idx)


def _first_is(value: object, key: tuple[object, ...]) -> bool:
    return key[0] == value


def _metadata_matches(metadata: dict[str, Any], query: dict[str, Any]) -> bool:
    """Equality on top-level keys; a missing key never matches; ``True`` is not ``1``."""
    for name, wanted in query.items():
        if name not in metadata:
            return False
        value = metadata[name]
        if isinstance(value, bool) != isinstance(wanted, bool) or value != wanted:
            return False
    return True


class LangGraphSaver(BaseCheckpointSaver[str]):
    """A LangGraph checkpointer storing immutable, fenced checkpoints in an object store.

    >>> saver = LangGraphSaver.from_url("s3://my-bucket/agents")   # doctest: +SKIP
    >>> graph = builder.compile(checkpointer=saver)                 # doctest: +SKIP

    ``store`` is any :class:`~cairnflow.core.store.ObjectStore`; ``prefix`` scopes
    every key (one prefix per application or tenant). ``serde`` is LangGraph's
    serializer protocol (default ``JsonPlusSerializer``; ``EncryptedSerializer``
    and strict msgpack allowlists work). ``max_workers`` bounds the parallel
    requests one call makes (channel values and writes are read in parallel).
    """

    def __init__(
        self,
        store: ObjectStore,
        *,
        prefix: str = "",
        serde: SerializerProtocol | None = None,
        max_workers: int = 16,
        store_retry: RetryPolicy = DEFAULT_STORE_RETRY,
    ) -> None:
        super().__init__(serde=serde)
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        self.store = store
        self.prefix = prefix
        self.store_retry = store_retry
        self.max_workers = max(1, max_workers)
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        self._seqs = _LRU(_SEQ_CACHE_SIZE)  # (thread, ns, checkpoint id) -> log seq
        self._markers = _LRU(_MARKER_CACHE_SIZE)  # (run, thread, ns) -> True once written

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        serde: SerializerProtocol | None = None,
        max_workers: int = 16,
        **store_options: Any,
    ) -> LangGraphSaver:
        """Open the store named by ``url`` (``s3://``, ``gs://``, ``az://``, ``file://``, ``memory://``).

        ``store_options`` go to the backend (for example ``client=`` or ``endpoint_url=``).
        """
        from cairnflow.savers import open_store

        store, prefix = open_store(url, **store_options)
        return cls(store, prefix=prefix, serde=serde, max_workers=max_workers)

    def __repr__(self) -> str:
        return f"LangGraphSaver({self.store.url!r}, prefix={self.prefix!r})"

    def close(self) -> None:
        """Stop the worker threads (the store stays open: close it yourself if you own it)."""
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)

    def __enter__(self) -> LangGraphSaver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ store requests

    def _retry(self, fn: Callable[[], T]) -> T:
        return call_with_retry(fn, self.store_retry)

    def _get(self, key: str) -> bytes:
        return self._retry(lambda: self.store.get(key)).data

    def _get_or_none(self, key: str) -> bytes | None:
        try:
            return self._get(key)
        except NotFoundError:
            return None

    def _list(
        self, prefix: str, *, start_after: str | None = None, limit: int | None = None
    ) -> list[ObjectInfo]:
        return self._retry(lambda: list(self.store.list(prefix, start_after=start_after, limit=limit)))

    def _iter_keys(self, prefix: str, *, start_after: str | None = None, page: int = 1000) -> Iterator[str]:
        """Every key under ``prefix`` after ``start_after``, fetched ``page`` at a time."""
        cursor = start_after
        while True:
            infos = self._list(prefix, start_after=cursor, limit=page)
            for info in infos:
                yield info.key
            if len(infos) < page:
                return
            cursor = infos[-1].key

    def _create_ignore(self, key: str, data: bytes) -> None:
        """Create-only write where an existing object wins (channel values, regular writes)."""
        with contextlib.suppress(AlreadyExistsError):
            self._retry(lambda: self.store.put(key, data, CREATE))

    def _create_exact(self, key: str, data: bytes) -> bool:
        """Create-only write; True if the object holds our bytes afterwards, False if another's."""
        try:
            self._retry(lambda: self.store.put(key, data, CREATE))
            return True
        except AlreadyExistsError:
            existing = self._get_or_none(key)
            return existing == data

    def _delete(self, key: str) -> None:
        self._retry(lambda: self.store.delete(key))

    def _executor(self) -> concurrent.futures.ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = concurrent.futures.ThreadPoolExecutor(
                    max_workers=self.max_workers, thread_name_prefix="cairnflow-lg"
                )
            return self._pool

    def _parallel(self, calls: Sequence[Callable[[], T]]) -> list[T]:
        """Run independent requests concurrently; never called from a worker thread."""
        if len(calls) <= 1:
            return [call() for call in calls]
        pool = self._executor()
        futures = [pool.submit(call) for call in calls]
        concurrent.futures.wait(futures)
        return [f.result() for f in futures]

    def _delete_keys(self, keys: Iterable[str], base: str) -> None:
        """Delete keys under ``base``: index entries first, then log, writes, values."""

        def order(key: str) -> int:
            rest = key[len(base) :].split("/")
            return _KIND_ORDER.get(rest[1] if len(rest) > 1 else "", 9)

        keys = list(keys)
        for group in sorted({order(k) for k in keys}):
            self._parallel([functools.partial(self._delete, k) for k in keys if order(k) == group])

    # ------------------------------------------------------------------ decoding

    @staticmethod
    def _check(key: str, data: bytes, kind: str, **expected: Any) -> codec.Envelope:
        env = codec.decode(data, key=key)
        header = env.header
        if header.get("k") != kind:
            raise CorruptCheckpointError(f"expected a {kind!r} object", key=key)
        for name, value in expected.items():
            if header.get(name) != value:
                raise CorruptCheckpointError(
                    "object does not belong at this key (copied from another thread or position?)",
                    key=key,
                )
        return env

    def _entry(self, thread_id: str, ns: str, seq: int, data: bytes, key: str | None = None) -> _Entry:
        key = key or lay.log_key(self.prefix, thread_id, ns, seq)
        env = codec.decode(data, key=key)
        header = env.header
        if header.get("k") not in ("cp", "ptr"):
            raise CorruptCheckpointError("not a checkpoint log entry", key=key)
        if header.get("thread") != thread_id or header.get("ns") != ns or header.get("seq") != seq:
            raise CorruptCheckpointError(
                "object does not belong at this key (copied from another thread or position?)", key=key
            )
        return _Entry(seq, key, header, env.body)

    def _read_entry(self, thread_id: str, ns: str, seq: int) -> _Entry | None:
        key = lay.log_key(self.prefix, thread_id, ns, seq)
        data = self._get_or_none(key)
        return None if data is None else self._entry(thread_id, ns, seq, data, key)

    def _parts(self, entry: _Entry) -> tuple[tuple[str, bytes], tuple[str, bytes]]:
        parts = entry.header.get("parts")
        if not isinstance(parts, list) or len(parts) != 2:
            raise CorruptCheckpointError("checkpoint entry names no parts", key=entry.key)
        (cp_type, cp_len), (md_type, md_len) = parts
        if cp_len + md_len != len(entry.body):
            raise CorruptCheckpointError("checkpoint parts do not match the body", key=entry.key)
        return (cp_type, entry.body[:cp_len]), (md_type, entry.body[cp_len:])

    def _metadata(self, entry: _Entry) -> dict[str, Any]:
        metadata = self.serde.loads_typed(self._parts(entry)[1])
        return cast(dict[str, Any], metadata)

    # ------------------------------------------------------------------ names

    @staticmethod
    def _thread(value: object) -> str:
        return value if isinstance(value, str) else str(value)

    def _config_scope(self, config: RunnableConfig) -> tuple[str, str]:
        conf = config["configurable"]
        return self._thread(conf["thread_id"]), str(conf.get("checkpoint_ns") or "")

    def _config(self, thread_id: str, ns: str, checkpoint_id: str, fence: str | None) -> RunnableConfig:
        configurable: dict[str, Any] = {
            "thread_id": thread_id,
            "checkpoint_ns": ns,
            "checkpoint_id": checkpoint_id,
        }
        if fence is not None:
            configurable[FENCE_KEY] = fence
        return {"configurable": configurable}

    def _ns_of_segment(self, thread_id: str, segment: str) -> str | None:
        """The namespace a key segment stands for (hashed ones are read from a log entry)."""
        if segment == lay.ROOT_NS:
            return ""
        if segment.startswith("~"):
            base = f"{lay.thread_prefix(self.prefix, thread_id)}{segment}/c/"
            infos = self._list(base, limit=1)
            if not infos:
                return None
            header = codec.decode(self._get(infos[0].key), key=infos[0].key).header
            ns = header.get("ns")
            return ns if isinstance(ns, str) and lay.ns_segment(ns) == segment else None
        try:
            return decode_thread_id(segment)
        except ValueError:
            return None

    def _skip_scan(self, base: str) -> Iterator[str]:
        """Each distinct segment directly below ``base``: one LIST per segment."""
        cursor: str | None = None
        while True:
            infos = self._list(base, start_after=cursor, limit=1)
            if not infos:
                return
            segment = infos[0].key[len(base) :].partition("/")[0]
            yield segment
            cursor = f"{base}{segment}0"  # '0' is the byte after '/': skip this segment's keys

    def _namespaces(self, thread_id: str) -> Iterator[tuple[str, str]]:
        """(segment, namespace) for each namespace of the thread (namespace None if unknown)."""
        for segment in self._skip_scan(lay.thread_prefix(self.prefix, thread_id)):
            ns = self._ns_of_segment(thread_id, segment)
            if ns is not None:
                yield segment, ns

    def _threads(self) -> Iterator[str]:
        for segment in self._skip_scan(lay.threads_prefix(self.prefix)):
            try:
                yield decode_thread_id(segment)
            except ValueError:
                continue

    # ------------------------------------------------------------------ lookups

    def _head(self, thread_id: str, ns: str) -> tuple[int, _Entry | None, _Entry | None] | None:
        """(physical head seq, head entry, effective checkpoint entry) or None for an empty log.

        The effective checkpoint is the head itself, or what a pointer at the head names
        (None for a tombstone). Costs 1 LIST + 1 GET, + 1 GET behind a pointer.
        """
        base = lay.log_prefix(self.prefix, thread_id, ns)
        for _ in range(8):
            infos = self._list(base, limit=1)
            if not infos:
                return None
            seq = lay.parse_inv(infos[0].key[len(base) :])
            head = self._read_entry(thread_id, ns, seq)
            if head is None:
                continue  # deleted while we looked: look again
            if not head.is_pointer:
                return seq, head, head
            target = head.header.get("target")
            if target is None:
                return seq, head, None
            effective = self._read_entry(thread_id, ns, int(target))
            if effective is None or effective.is_pointer:
                raise CorruptCheckpointError("pointer names a missing checkpoint", key=head.key)
            return seq, head, effective
        raise ConflictError(f"the log of thread {thread_id!r} keeps changing", thread_id=thread_id)

    def _index_seqs(self, thread_id: str, ns: str, checkpoint_id: str) -> list[int]:
        base = lay.index_prefix(self.prefix, thread_id, ns, checkpoint_id)
        return [lay.parse_inv(info.key[len(base) :]) for info in self._list(base)]

    def _seq_of(self, thread_id: str, ns: str, checkpoint_id: str) -> int | None:
        """Log position of a checkpoint id: from the cache, else one LIST of the index."""
        cached = self._seqs.get((thread_id, ns, checkpoint_id))
        if cached is not None:
            return int(cached)
        seqs = self._index_seqs(thread_id, ns, checkpoint_id)
        return seqs[0] if seqs else None

    def _find(self, thread_id: str, ns: str, checkpoint_id: str, seqs: Sequence[int]) -> _Entry | None:
        for seq in seqs:  # newest first; a stale index entry (a lost attempt) is skipped
            entry = self._read_entry(thread_id, ns, seq)
            if entry is not None and not entry.is_pointer and entry.checkpoint_id == checkpoint_id:
                self._seqs.put((thread_id, ns, checkpoint_id), seq)
                return entry
        return None

    def _list_writes(self, thread_id: str, ns: str, checkpoint_id: str) -> list[str]:
        """The newest version of each (task, idx) write slot."""
        keys = self._iter_keys(lay.writes_prefix(self.prefix, thread_id, ns, checkpoint_id))
        newest: dict[str, str] = {}
        for key in keys:
            slot, _ = lay.write_slot_of(key)
            newest.setdefault(slot, key)  # newest-first within a slot
        return list(newest.values())

    def _read_write(
        self, thread_id: str, ns: str, checkpoint_id: str, key: str
    ) -> tuple[str, str, str, int, tuple[str, bytes]] | None:
        data = self._get_or_none(key)
        if data is None:
            return None
        env = self._check(key, data, "wr", thread=thread_id, ns=ns, cid=checkpoint_id)
        h = env.header
        return str(h.get("path", "")), str(h["task"]), str(h["ch"]), int(h["idx"]), (str(h["type"]), env.body)

    def _read_blob(self, thread_id: str, ns: str, channel: str, version: str) -> tuple[str, bytes]:
        key = lay.blob_key(self.prefix, thread_id, ns, channel, version)
        try:
            data = self._get(key)
        except NotFoundError:
            raise CorruptCheckpointError(
                f"value of channel {channel!r} at version {version} is missing", key=key
            ) from None
        env = self._check(key, data, "blob", thread=thread_id, ns=ns, ch=channel, ver=version)
        return str(env.header["type"]), env.body

    def _complete(
        self,
        thread_id: str,
        ns: str,
        entries: Sequence[_Entry],
        *,
        write_keys: dict[str, list[str]] | None = None,
        blob_cache: dict[tuple[str, str], tuple[str, bytes]] | None = None,
    ) -> list[_Loaded]:
        """Fetch the channel values and pending writes of checkpoint entries, in parallel."""
        blob_cache = {} if blob_cache is None else blob_cache
        write_keys = dict(write_keys or {})
        versions: list[dict[str, str]] = []
        checkpoints: list[dict[str, Any]] = []
        for entry in entries:
            checkpoint = cast(dict[str, Any], self.serde.loads_typed(self._parts(entry)[0]))
            checkpoints.append(checkpoint)
            channel_versions = checkpoint.get("channel_versions", {})
            present = [ch for ch in entry.channels if ch in channel_versions]
            versions.append({ch: str(channel_versions[ch]) for ch in present})
        wanted = sorted({(ch, ver) for vs in versions for ch, ver in vs.items()} - blob_cache.keys())
        calls: list[Callable[[], Any]] = [
            functools.partial(self._read_blob, thread_id, ns, ch, ver) for ch, ver in wanted
        ]
        # Writes whose keys are known are fetched in the same round as the values.
        known = sorted({(cid, key) for cid, keys in write_keys.items() for key in keys})
        calls += [functools.partial(self._read_write, thread_id, ns, cid, key) for cid, key in known]
        listing = [e.checkpoint_id for e in entries if e.checkpoint_id not in write_keys]
        calls += [functools.partial(self._list_writes, thread_id, ns, cid) for cid in listing]
        results = self._parallel(calls)
        for (ch, ver), typed in zip(wanted, results[: len(wanted)], strict=True):
            blob_cache[(ch, ver)] = typed
        fetched_known = results[len(wanted) : len(wanted) + len(known)]
        listed = results[len(wanted) + len(known) :]
        later = sorted({(cid, key) for cid, keys in zip(listing, listed, strict=True) for key in keys})
        fetched_later = self._parallel(
            [functools.partial(self._read_write, thread_id, ns, cid, key) for cid, key in later]
        )
        by_cid: dict[str, list[tuple[str, str, str, int, tuple[str, bytes]]]] = collections.defaultdict(list)
        for (cid, _), write in zip([*known, *later], [*fetched_known, *fetched_later], strict=True):
            if write is not None:
                by_cid[cid].append(write)
        loaded = []
        for entry, checkpoint, vs in zip(entries, checkpoints, versions, strict=True):
            writes = sorted(by_cid.get(entry.checkpoint_id, []), key=_write_order)
            blobs = {ch: blob_cache[(ch, ver)] for ch, ver in vs.items()}
            loaded.append(_Loaded(entry, checkpoint, blobs, writes))
        return loaded

    def _tuple(self, thread_id: str, ns: str, loaded: _Loaded, fence: str) -> CheckpointTuple:
        entry = loaded.entry
        md_typed = self._parts(entry)[1]
        checkpoint = cast(Checkpoint, loaded.checkpoint)
        loads = self.serde.loads_typed
        checkpoint["channel_values"] = {ch: loads(typed) for ch, typed in loaded.blobs.items()}
        metadata = cast(CheckpointMetadata, self.serde.loads_typed(md_typed))
        parent = entry.header.get("parent")
        return CheckpointTuple(
            config=self._config(thread_id, ns, entry.checkpoint_id, fence),
            checkpoint=checkpoint,
            metadata=metadata,
            parent_config=(
                self._config(thread_id, ns, parent, _fence("F", -1, thread_id, ns, parent))
                if parent
                else None
            ),
            pending_writes=[(task, ch, loads(typed)) for _, task, ch, _, typed in loaded.writes],
        )

    # ------------------------------------------------------------------ get_tuple / list

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """The checkpoint named by ``config``, or the latest of (thread, namespace).

        Latest: 1 LIST + 1 GET, then the channel values (1 GET each) and the pending
        writes (1 LIST + 1 GET each), in parallel; never more with a longer history.
        By id: 2 LISTs (index and writes) + 1 GET + the same values and writes.
        """
        thread_id, ns = self._config_scope(config)
        checkpoint_id = get_checkpoint_id(config)
        if checkpoint_id:
            seqs, write_keys = self._parallel(
                [
                    lambda: self._index_seqs(thread_id, ns, checkpoint_id),
                    lambda: self._list_writes(thread_id, ns, checkpoint_id),
                ]
            )
            entry = self._find(thread_id, ns, checkpoint_id, cast(list[int], seqs))
            if entry is None:
                return None
            (loaded,) = self._complete(
                thread_id, ns, [entry], write_keys={checkpoint_id: cast(list[str], write_keys)}
            )
            return self._tuple(thread_id, ns, loaded, _fence("F", entry.seq, thread_id, ns, checkpoint_id))
        head = self._head(thread_id, ns)
        if head is None:
            return None
        head_seq, _, effective = head
        if effective is None:
            return None
        self._seqs.put((thread_id, ns, effective.checkpoint_id), effective.seq)
        (loaded,) = self._complete(thread_id, ns, [effective])
        return self._tuple(
            thread_id, ns, loaded, _fence("L", head_seq, thread_id, ns, effective.checkpoint_id)
        )

    def _scopes(self, config: RunnableConfig | None) -> Iterator[tuple[str, str]]:
        if config is None:
            for thread_id in self._threads():
                for _, ns in self._namespaces(thread_id):
                    yield thread_id, ns
            return
        conf = config["configurable"]
        thread_id = self._thread(conf["thread_id"])
        wanted = conf.get("checkpoint_ns")
        if wanted is None:
            for _, found in self._namespaces(thread_id):
                yield thread_id, found
        else:
            yield thread_id, str(wanted)

    def _log_entries(
        self,
        thread_id: str,
        ns: str,
        start_after: str | None,
        page: int,
        *,
        stop_after_one_page: bool = False,
    ) -> Iterator[_Entry]:
        """Log entries newest first (fetched ``page`` at a time, in parallel), stopping at a tombstone."""
        base = lay.log_prefix(self.prefix, thread_id, ns)
        cursor = start_after
        while True:
            infos = self._list(base, start_after=cursor, limit=page)
            if not infos:
                return
            cursor = infos[-1].key
            seqs = [lay.parse_inv(info.key[len(base) :]) for info in infos]
            datas = self._parallel([functools.partial(self._get_or_none, info.key) for info in infos])
            for seq, info, data in zip(seqs, infos, datas, strict=True):
                if data is None:
                    continue  # deleted meanwhile
                entry = self._entry(thread_id, ns, seq, data, info.key)
                if entry.is_pointer and entry.header.get("target") is None:
                    return  # a tombstone: everything older was deleted
                yield entry
            if len(infos) < page or stop_after_one_page:
                return

    @staticmethod
    def _handle(thread_id: str, ns: str, entry: _Entry) -> str:
        return _fence("F", entry.seq, thread_id, ns, entry.checkpoint_id)

    def _load_batch(
        self,
        thread_id: str,
        ns: str,
        batch: list[_Entry],
        blob_cache: dict[tuple[str, str], tuple[str, bytes]],
    ) -> list[CheckpointTuple]:
        loaded = self._complete(thread_id, ns, batch, blob_cache=blob_cache)
        return [self._tuple(thread_id, ns, item, self._handle(thread_id, ns, item.entry)) for item in loaded]

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        """Checkpoints newest first (in commit order), per thread and namespace.

        ``config=None`` lists every thread; a config without ``checkpoint_ns`` every
        namespace of its thread. ``before`` is strict, ``filter`` is equality on
        top-level metadata keys, ``limit`` counts results after filtering. Without a
        filter, listing ``limit`` checkpoints reads only those (1 LIST + their objects).
        """
        remaining = limit
        if remaining is not None and remaining <= 0:
            return
        only_id = get_checkpoint_id(config) if config else None
        before_id = get_checkpoint_id(before) if before else None
        for thread_id, ns in self._scopes(config):
            if only_id:
                found = self.get_tuple(self._config(thread_id, ns, only_id, None))
                if found is None:
                    continue
                if before_id and not only_id < before_id:
                    continue
                if filter and not _metadata_matches(cast(dict[str, Any], found.metadata), filter):
                    continue
                yield found
                if remaining is not None:
                    remaining -= 1
                    if remaining <= 0:
                        return
                continue
            start_after: str | None = None
            id_cut: str | None = None
            if before_id:
                seq = self._seq_of(thread_id, ns, before_id)
                if seq is not None:
                    start_after = lay.log_key(self.prefix, thread_id, ns, seq)
                else:
                    id_cut = before_id
            page = _LIST_BATCH if remaining is None or filter or id_cut else max(1, min(remaining, 1000))
            blob_cache: dict[tuple[str, str], tuple[str, bytes]] = {}
            seen: set[str] = set()
            batch: builtins.list[_Entry] = []
            for entry in self._log_entries(thread_id, ns, start_after, page):
                if entry.is_pointer or entry.checkpoint_id in seen:
                    continue
                seen.add(entry.checkpoint_id)
                if id_cut is not None and not entry.checkpoint_id < id_cut:
                    continue
                if filter and not _metadata_matches(self._metadata(entry), filter):
                    continue
                self._seqs.put((thread_id, ns, entry.checkpoint_id), entry.seq)
                batch.append(entry)
                if (remaining is not None and len(batch) >= remaining) or len(batch) >= _LIST_BATCH:
                    for item in self._load_batch(thread_id, ns, batch, blob_cache):
                        yield item
                        if remaining is not None:
                            remaining -= 1
                    batch = []
                    if remaining is not None and remaining <= 0:
                        return
            if batch:
                for item in self._load_batch(thread_id, ns, batch, blob_cache):
                    yield item
                    if remaining is not None:
                        remaining -= 1
                if remaining is not None and remaining <= 0:
                    return

    # ------------------------------------------------------------------ put / put_writes

    def _log_data(
        self,
        thread_id: str,
        ns: str,
        seq: int,
        checkpoint_id: str,
        parent: str | None,
        cp_typed: tuple[str, bytes],
        md_typed: tuple[str, bytes],
        channels: builtins.list[str],
        run_id: str | None,
        delta: bool,
    ) -> bytes:
        header: dict[str, Any] = {
            "k": "cp",
            "thread": thread_id,
            "ns": ns,
            "seq": seq,
            "id": checkpoint_id,
            "parent": parent,
            "w": uuid.uuid4().hex,
            "t": int(time.time() * 1000),
            "parts": [[cp_typed[0], len(cp_typed[1])], [md_typed[0], len(md_typed[1])]],
            "blobs": channels,
        }
        if run_id is not None:
            header["run"] = run_id
        if delta:
            header["delta"] = True
        return codec.encode(header, cp_typed[1] + md_typed[1])

    def _index_data(self, thread_id: str, ns: str, checkpoint_id: str, seq: int) -> bytes:
        return codec.encode({"k": "idx", "thread": thread_id, "ns": ns, "id": checkpoint_id, "seq": seq}, b"")

    def _pointer_data(self, thread_id: str, ns: str, seq: int, target: int | None) -> bytes:
        header = {"k": "ptr", "thread": thread_id, "ns": ns, "seq": seq, "target": target}
        header["w"] = uuid.uuid4().hex
        header["t"] = int(time.time() * 1000)
        return codec.encode(header, b"")

    def _write_marker(self, run_id: str, thread_id: str, ns: str) -> None:
        memo = (run_id, thread_id, ns)
        if self._markers.get(memo):
            return
        key = lay.run_marker_key(self.prefix, run_id, thread_id, ns)
        marker = {"k": "run", "run": run_id, "thread": thread_id, "ns": ns}
        self._create_ignore(key, codec.encode(marker, b""))
        self._markers.put(memo, True)

    def _conflict(self, thread_id: str, ns: str, seq: int, why: str) -> ConflictError:
        where = f"thread {thread_id!r}" + (f" namespace {ns!r}" if ns else "")
        return ConflictError(
            f"{where} was advanced by another writer: {why} (log position {seq}); "
            "load the thread again to continue from its latest checkpoint",
            thread_id=thread_id,
        )

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Store a checkpoint; ``config["configurable"]["checkpoint_id"]`` is its parent.

        Writes the values of the channels named in ``new_versions`` (1 PUT each) and
        an index entry, then the log entry (1 PUT, create-only): 2 round trips. Where the
        entry goes (the fencing rule):

        * parent fenced by an ``L`` token (the run loaded it as the latest, at log
          position n): exactly n + 1;
        * parent fenced by an ``F`` token (a checkpoint addressed by id: time travel,
          ``update_state`` on an old checkpoint): appended at the head, as a fork;
        * any other parent (the run's own previous checkpoint, or a hand-written
          config): exactly right after the parent;
        * no parent, at step -1 or -2 (LangGraph's first checkpoint of a new thread):
          only if the thread is empty (or deleted); with step >= 0: appended.

        "Exactly" means create-only: if another writer took that position first,
        :class:`~cairnflow.core.errors.ConflictError` and nothing becomes visible.
        """
        conf = config["configurable"]
        thread_id = self._thread(conf["thread_id"])
        ns = str(conf.get("checkpoint_ns") or "")
        parent = conf.get("checkpoint_id") or None
        fence = _parse_fence(conf.get(FENCE_KEY))
        if fence is not None and fence.scope != _scope(thread_id, ns):
            fence = None  # inherited from another graph's config: not ours
        checkpoint_id = str(checkpoint["id"])
        copy: dict[str, Any] = dict(checkpoint)
        values: dict[str, Any] = copy.pop("channel_values")
        versions = checkpoint["channel_versions"]
        channels = sorted(ch for ch in versions if ch in values)
        full_metadata = cast(dict[str, Any], get_checkpoint_metadata(config, metadata))
        run_id = full_metadata.get("run_id")
        run_id = run_id if isinstance(run_id, str) and run_id else None
        delta = bool(full_metadata.get("counters_since_delta_snapshot"))
        cp_typed = self.serde.dumps_typed(copy)
        md_typed = self.serde.dumps_typed(full_metadata)
        jobs: builtins.list[Callable[[], Any]] = []
        for channel, version in new_versions.items():
            if channel not in values:
                continue  # an empty channel: recorded by its absence from the entry's "blobs"
            typ, data = self.serde.dumps_typed(values[channel])
            header = {"k": "blob", "thread": thread_id, "ns": ns, "ch": channel, "ver": str(version)}
            header["type"] = typ
            key = lay.blob_key(self.prefix, thread_id, ns, channel, str(version))
            blob = codec.encode(header, data)
            jobs.append(functools.partial(self._create_ignore, key, blob))
        if run_id is not None:
            jobs.append(functools.partial(self._write_marker, run_id, thread_id, ns))

        def entry_data(seq: int) -> bytes:
            return self._log_data(
                thread_id, ns, seq, checkpoint_id, parent, cp_typed, md_typed, channels, run_id, delta
            )

        def index(seq: int) -> None:
            self._create_ignore(
                lay.index_key(self.prefix, thread_id, ns, checkpoint_id, seq),
                self._index_data(thread_id, ns, checkpoint_id, seq),
            )

        exact: int | None = None
        mode = "append"
        if parent is None:
            step = metadata.get("step")
            if isinstance(step, int) and not isinstance(step, bool) and step < 0:
                mode = "empty"
        elif fence is not None and fence.checkpoint_id == parent:
            if fence.mode == "L":
                exact = fence.seq + 1
        else:
            parent_seq = self._seq_of(thread_id, ns, parent)
            if parent_seq is not None:
                exact = parent_seq + 1

        if exact is not None:
            seq = exact
            self._parallel([*jobs, lambda: index(seq)])
            if not self._create_exact(lay.log_key(self.prefix, thread_id, ns, seq), entry_data(seq)):
                raise self._conflict(thread_id, ns, seq, f"another checkpoint follows {parent!r}")
        else:
            results = self._parallel([*jobs, lambda: self._head(thread_id, ns)])
            head = cast("tuple[int, _Entry | None, _Entry | None] | None", results[-1])
            for _ in range(_APPEND_ATTEMPTS):
                if mode == "empty" and head is not None and head[2] is not None:
                    raise self._conflict(
                        thread_id, ns, head[0], "it already has checkpoints, but this run started it afresh"
                    )
                seq = 0 if head is None else head[0] + 1
                index(seq)
                if self._create_exact(lay.log_key(self.prefix, thread_id, ns, seq), entry_data(seq)):
                    break
                head = self._head(thread_id, ns)
            else:
                raise self._conflict(thread_id, ns, seq, "too many concurrent appends")
        self._seqs.put((thread_id, ns, checkpoint_id), seq)
        return self._config(thread_id, ns, checkpoint_id, _fence("F", seq, thread_id, ns, checkpoint_id))

    def _put_special(self, slot_prefix: str, make: Callable[[int], tuple[str, bytes]]) -> None:
        """Overwrite semantics with immutable objects: each version is a new key, the newest wins.

        The first write of a slot is 1 PUT; overwriting costs 1 PUT + 1 LIST (+ 1 PUT).
        """
        version = 0
        for _ in range(_APPEND_ATTEMPTS):
            key, data = make(version)
            try:
                self._retry(functools.partial(self.store.put, key, data, CREATE))
                return
            except AlreadyExistsError:
                infos = self._list(slot_prefix, limit=1)
                version = lay.write_slot_of(infos[0].key)[1] + 1 if infos else version + 1
        raise ConflictError(f"too many concurrent overwrites of {slot_prefix!r}")

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """Store a task's pending writes for a checkpoint (which need not exist yet).

        One object per (task id, index), written in parallel. A regular write is
        create-only and the first one recorded wins, so a task's result is never
        recorded twice; the special channels (``__error__``, ``__interrupt__``, ...)
        keep their fixed negative index and the last write wins (as a new version).
        """
        thread_id, ns = self._config_scope(config)
        checkpoint_id = str(config["configurable"]["checkpoint_id"])
        jobs: builtins.list[Callable[[], None]] = []
        for position, (channel, value) in enumerate(writes):
            idx = WRITES_IDX_MAP.get(channel, position)
            typ, data = self.serde.dumps_typed(value)
            header = {
                "k": "wr",
                "thread": thread_id,
                "ns": ns,
                "cid": checkpoint_id,
                "task": task_id,
                "idx": idx,
                "ch": channel,
                "path": task_path,
                "type": typ,
            }
            if idx >= 0:
                key = lay.write_key(self.prefix, thread_id, ns, checkpoint_id, task_id, idx, 0)
                blob = codec.encode(header, data)
                jobs.append(functools.partial(self._create_ignore, key, blob))
            else:
                slot = lay.write_slot_prefix(self.prefix, thread_id, ns, checkpoint_id, task_id, idx)

                def make(
                    version: int, idx: int = idx, header: dict[str, Any] = header, data: bytes = data
                ) -> tuple[str, bytes]:
                    key = lay.write_key(self.prefix, thread_id, ns, checkpoint_id, task_id, idx, version)
                    return key, codec.encode({**header, "n": version}, data)

                jobs.append(functools.partial(self._put_special, slot, make))
        self._parallel(jobs)

    # ------------------------------------------------------------------ deletes and copies

    def delete_thread(self, thread_id: str, *, purge: bool = False) -> None:
        """Delete every checkpoint, value and write of a thread, in every namespace.

        Each namespace first gets a tombstone at the head of its log, so a writer still
        holding the old head gets :class:`ConflictError` instead of resurrecting the
        thread; then everything else is deleted. The tombstones stay (a new run of the
        same thread id starts above them) unless ``purge=True``.
        """
        thread_id = self._thread(thread_id)
        base = lay.thread_prefix(self.prefix, thread_id)
        tombstones: set[str] = set()
        for _, ns in self._namespaces(thread_id):
            tomb = self._tombstone(thread_id, ns)
            if tomb is not None:
                tombstones.add(tomb)
        for segment in list(self._skip_scan(base)):
            seg_base = f"{base}{segment}/"
            doomed = [k for k in self._iter_keys(seg_base) if purge or k not in tombstones]
            self._delete_keys(doomed, seg_base)
        self._seqs.discard_where(lambda k: k[0] == thread_id)

    def _tombstone(self, thread_id: str, ns: str) -> str | None:
        """Append a tombstone (unless the head is one); return its key, None for an empty log."""
        for _ in range(_APPEND_ATTEMPTS):
            head = self._head(thread_id, ns)
            if head is None:
                return None
            seq, _, effective = head
            if effective is None:
                return lay.log_key(self.prefix, thread_id, ns, seq)
            key = lay.log_key(self.prefix, thread_id, ns, seq + 1)
            if self._create_exact(key, self._pointer_data(thread_id, ns, seq + 1, None)):
                return key
        raise self._conflict(thread_id, ns, -1, "too many concurrent appends while deleting")

    def _all_entries(self, thread_id: str, ns: str) -> builtins.list[_Entry]:
        """Every log entry of (thread, ns), newest first (1 LIST per 1000 + 1 GET each)."""
        base = lay.log_prefix(self.prefix, thread_id, ns)
        keys = list(self._iter_keys(base))
        datas = self._parallel([functools.partial(self._get_or_none, k) for k in keys])
        return [
            self._entry(thread_id, ns, lay.parse_inv(k[len(base) :]), d, k)
            for k, d in zip(keys, datas, strict=True)
            if d is not None
        ]

    @staticmethod
    def _above_tombstone(entries: builtins.list[_Entry]) -> builtins.list[_Entry]:
        """The entries newer than the newest tombstone (entries are newest first)."""
        for i, e in enumerate(entries):
            if e.is_pointer and e.header.get("target") is None:
                return entries[:i]
        return entries

    def _blob_refs(self, entry: _Entry) -> set[tuple[str, str]]:
        checkpoint = self.serde.loads_typed(self._parts(entry)[0])
        versions = checkpoint.get("channel_versions", {})
        return {(ch, str(versions[ch])) for ch in entry.channels if ch in versions}

    def _remove_entries(
        self, thread_id: str, ns: str, doomed: builtins.list[_Entry], kept: builtins.list[_Entry]
    ) -> None:
        """Delete checkpoint entries with their index entries, writes and unshared values."""
        if not doomed:
            return
        kept_ids = {e.checkpoint_id for e in kept if not e.is_pointer}
        keep_blobs: set[tuple[str, str]] = set()
        for e in kept:
            if not e.is_pointer:
                keep_blobs |= self._blob_refs(e)
        keys: set[str] = set()
        for e in doomed:
            keys.add(e.key)
            if e.is_pointer:
                continue
            keys.add(lay.index_key(self.prefix, thread_id, ns, e.checkpoint_id, e.seq))
            for ch, ver in self._blob_refs(e) - keep_blobs:
                keys.add(lay.blob_key(self.prefix, thread_id, ns, ch, ver))
        for cid in {e.checkpoint_id for e in doomed if not e.is_pointer} - kept_ids:
            base = lay.index_prefix(self.prefix, thread_id, ns, cid)
            keys.update(self._iter_keys(base))
            keys.update(self._iter_keys(lay.writes_prefix(self.prefix, thread_id, ns, cid)))
        self._delete_keys(sorted(keys), lay.ns_prefix(self.prefix, thread_id, ns))
        doomed_ids = {e.checkpoint_id for e in doomed if not e.is_pointer} - kept_ids
        self._seqs.discard_where(lambda k: k[0] == thread_id and k[1] == ns and k[2] in doomed_ids)

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Delete the checkpoints (with their writes and values) created by the given runs.

        Runs are found through small marker objects written with a run's first
        checkpoint in each (thread, namespace); the affected logs are read in full. If
        a deleted checkpoint was a thread's latest, a pointer to the newest surviving
        one is appended first, so a writer still running that run is fenced.
        """
        runs = {r for r in run_ids if isinstance(r, str) and r}
        for run_id in sorted(runs):
            base = lay.run_prefix(self.prefix, run_id)
            markers = list(self._iter_keys(base))
            scopes: set[tuple[str, str]] = set()
            for key, data in zip(
                markers,
                self._parallel([functools.partial(self._get_or_none, k) for k in markers]),
                strict=True,
            ):
                if data is None:
                    continue
                header = self._check(key, data, "run", run=run_id).header
                scopes.add((str(header["thread"]), str(header["ns"])))
            for thread_id, ns in sorted(scopes):
                self._delete_runs_in(thread_id, ns, runs)
            self._delete_keys(markers, base)
            self._markers.discard_where(functools.partial(_first_is, run_id))

    def _delete_runs_in(self, thread_id: str, ns: str, runs: set[str]) -> None:
        for _ in range(_APPEND_ATTEMPTS):
            entries = self._all_entries(thread_id, ns)
            live = self._above_tombstone(entries)
            doomed = [e for e in live if not e.is_pointer and e.header.get("run") in runs]
            if not doomed:
                return
            survivors = [e for e in live if not e.is_pointer and e.header.get("run") not in runs]
            head = entries[0]
            effective = head
            if head.is_pointer:
                target = head.header.get("target")
                effective = next((e for e in entries if e.seq == target), head)
            if not effective.is_pointer and effective.header.get("run") in runs:
                target_seq = max((e.seq for e in survivors), default=None)
                pointer = self._pointer_data(thread_id, ns, head.seq + 1, target_seq)
                if not self._create_exact(lay.log_key(self.prefix, thread_id, ns, head.seq + 1), pointer):
                    continue  # the thread moved meanwhile: look again
                entries.insert(0, self._entry(thread_id, ns, head.seq + 1, pointer))
            doomed_seqs = {d.seq for d in doomed}
            stale_pointers = [e for e in live[1:] if e.is_pointer and e.header.get("target") in doomed_seqs]
            gone = doomed_seqs | {e.seq for e in stale_pointers}
            kept = [e for e in entries if e.seq not in gone]
            self._remove_entries(thread_id, ns, doomed + stale_pointers, kept)
            return
        raise self._conflict(thread_id, ns, -1, "too many concurrent appends while deleting runs")

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """Prune threads: ``"keep_latest"`` keeps each namespace's latest checkpoint
        (with its pending writes and values); ``"delete"`` deletes the threads.

        ``keep_latest`` refuses (:class:`PruneRefusedError`, nothing deleted) when a
        latest checkpoint's delta channels are rebuilt from older checkpoints' writes
        (LangGraph's ``DeltaChannel``: its metadata counts updates since a snapshot).
        """
        if strategy == "delete":
            for thread_id in thread_ids:
                self.delete_thread(thread_id)
            return
        if strategy != "keep_latest":
            raise ValueError(f"unknown prune strategy {strategy!r} (use 'keep_latest' or 'delete')")
        plans: builtins.list[tuple[str, str, builtins.list[_Entry], builtins.list[_Entry]]] = []
        refused: builtins.list[tuple[str, str]] = []
        for thread_id in (self._thread(t) for t in thread_ids):
            for _, ns in self._namespaces(thread_id):
                entries = self._all_entries(thread_id, ns)
                if not entries:
                    continue
                head = entries[0]
                keep = [head]
                if head.is_pointer and head.header.get("target") is not None:
                    target = next((e for e in entries if e.seq == head.header["target"]), None)
                    if target is not None:
                        keep.append(target)
                if any(not e.is_pointer and e.header.get("delta") for e in keep):
                    refused.append((thread_id, ns))
                    continue
                kept_seqs = {e.seq for e in keep}
                plans.append((thread_id, ns, [e for e in entries if e.seq not in kept_seqs], keep))
        if refused:
            raise PruneRefusedError(
                "prune(keep_latest) would cut delta channels off the writes they are rebuilt from in "
                + ", ".join(f"thread {t!r} namespace {n!r}" for t, n in refused)
                + "; nothing was pruned",
                refused,
            )
        for thread_id, ns, doomed, keep in plans:
            self._remove_entries(thread_id, ns, doomed, keep)

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy every checkpoint, pending write and value of a thread to another thread id.

        The target must have no checkpoints (a deleted one is fine). The copies keep
        their checkpoint ids, order, metadata and parents; the log entries are written
        last, oldest first, create-only (a concurrent writer on the target gets or
        causes :class:`ConflictError`).
        """
        src = self._thread(source_thread_id)
        dst = self._thread(target_thread_id)
        if src == dst:
            raise ValueError("source and target thread are the same")
        src_base = lay.thread_prefix(self.prefix, src)
        for segment, ns in list(self._namespaces(src)):
            entries = self._all_entries(src, ns)
            live = list(reversed(self._above_tombstone(entries)))  # oldest first
            if not live:
                continue
            head = self._head(dst, ns)
            if head is not None and head[2] is not None:
                raise ValueError(f"target thread {dst!r} already has checkpoints in namespace {ns!r}")
            offset = 0 if head is None else head[0] + 1 - live[0].seq
            seg_base = f"{src_base}{segment}/"
            others = [k for k in self._iter_keys(seg_base) if k[len(seg_base) :].split("/")[0] in ("b", "w")]
            self._parallel([functools.partial(self._copy_object, k, src, dst, ns) for k in others])
            runs = {str(e.header["run"]) for e in live if e.header.get("run")}
            self._parallel(
                [
                    *[
                        functools.partial(
                            self._create_ignore,
                            lay.index_key(self.prefix, dst, ns, e.checkpoint_id, e.seq + offset),
                            self._index_data(dst, ns, e.checkpoint_id, e.seq + offset),
                        )
                        for e in live
                        if not e.is_pointer
                    ],
                    *[functools.partial(self._write_marker, r, dst, ns) for r in runs],
                ]
            )
            for e in live:
                header = {**e.header, "thread": dst, "seq": e.seq + offset, "w": uuid.uuid4().hex}
                if e.is_pointer and e.header.get("target") is not None:
                    header["target"] = int(e.header["target"]) + offset
                key = lay.log_key(self.prefix, dst, ns, e.seq + offset)
                if not self._create_exact(key, codec.encode(header, e.body)):
                    raise self._conflict(dst, ns, e.seq + offset, "a writer appended while copying")
                if not e.is_pointer:
                    self._seqs.put((dst, ns, e.checkpoint_id), e.seq + offset)

    def _copy_object(self, key: str, src: str, dst: str, ns: str) -> None:
        data = self._get_or_none(key)
        if data is None:
            return
        env = codec.decode(data, key=key)
        header = env.header
        if header.get("thread") != src or header.get("ns") != ns:
            raise CorruptCheckpointError("object does not belong at this key", key=key)
        header = {**header, "thread": dst}
        if header.get("k") == "blob":
            new_key = lay.blob_key(self.prefix, dst, ns, str(header["ch"]), str(header["ver"]))
        elif header.get("k") == "wr":
            new_key = lay.write_key(
                self.prefix,
                dst,
                ns,
                str(header["cid"]),
                str(header["task"]),
                int(header["idx"]),
                int(header.get("n", 0)),
            )
        else:
            raise CorruptCheckpointError("unexpected object kind", key=key)
        self._create_ignore(new_key, codec.encode(header, env.body))

    # ------------------------------------------------------------------ delta channels

    def _page_below(self, thread_id: str, ns: str, seq: int, size: int) -> builtins.list[_Entry]:
        """Up to ``size`` log entries older than ``seq``, newest first (1 LIST + parallel GETs)."""
        if seq <= 0:
            return []
        start = lay.log_key(self.prefix, thread_id, ns, seq)
        return builtins.list(self._log_entries(thread_id, ns, start, size, stop_after_one_page=True))

    def get_delta_channel_history(
        self, *, config: RunnableConfig, channels: Sequence[str]
    ) -> Mapping[str, DeltaChannelHistory]:
        """Writes and seed for ``DeltaChannel`` reconstruction, walking the parent chain.

        Same result as LangGraph's default walk (one ``get_tuple`` per ancestor, one
        after the other), in a few parallel rounds: the chain is followed through log
        entries only (read 64 at a time), then the ancestors' pending writes and the
        seed values are fetched together. The work still grows with the distance to the
        channel's last snapshot (``snapshot_frequency``).
        """
        if not channels:
            return {}
        thread_id, ns = self._config_scope(config)
        checkpoint_id = get_checkpoint_id(config)
        target: _Entry | None
        if checkpoint_id:
            target = self._find(thread_id, ns, checkpoint_id, self._index_seqs(thread_id, ns, checkpoint_id))
        else:
            head = self._head(thread_id, ns)
            target = head[2] if head else None
        result: dict[str, DeltaChannelHistory] = {ch: {"writes": []} for ch in channels}
        if target is None:
            return result
        window: dict[str, _Entry] = {}
        cursor: int | None = target.seq

        def lookup(wanted: str) -> _Entry | None:
            nonlocal cursor
            if wanted not in window and cursor is not None:
                page = self._page_below(thread_id, ns, cursor, 64)
                for e in page:
                    if not e.is_pointer:
                        window.setdefault(e.checkpoint_id, e)
                cursor = page[-1].seq if len(page) == 64 else None
            if wanted not in window:  # off the line (a fork's parent): jump there through the index
                found = self._find(thread_id, ns, wanted, self._index_seqs(thread_id, ns, wanted))
                if found is None:
                    return None
                window[wanted] = found
                cursor = found.seq
            return window[wanted]

        remaining = set(channels)
        chain: builtins.list[tuple[_Entry, set[str]]] = []  # nearest ancestor first
        parent = target.header.get("parent")
        while parent and remaining:
            entry = lookup(str(parent))
            if entry is None:
                break
            seeded = remaining & set(entry.channels)
            chain.append((entry, seeded))
            remaining -= seeded
            parent = entry.header.get("parent")
        seeds = [(entry, ch) for entry, seeded in chain for ch in sorted(seeded)]
        seed_versions = []
        for entry, ch in seeds:
            versions = self.serde.loads_typed(self._parts(entry)[0]).get("channel_versions", {})
            seed_versions.append(str(versions[ch]))
        calls: builtins.list[Callable[[], Any]] = [
            functools.partial(self._list_writes, thread_id, ns, e.checkpoint_id) for e, _ in chain
        ]
        calls += [
            functools.partial(self._read_blob, thread_id, ns, ch, ver)
            for (_, ch), ver in zip(seeds, seed_versions, strict=True)
        ]
        listings = self._parallel(calls)
        write_keys = cast(builtins.list[builtins.list[str]], listings[: len(chain)])
        seed_values = cast(builtins.list[tuple[str, bytes]], listings[len(chain) :])
        jobs = [(i, key) for i, keys in enumerate(write_keys) for key in keys]
        fetched = self._parallel(
            [
                functools.partial(self._read_write, thread_id, ns, chain[i][0].checkpoint_id, k)
                for i, k in jobs
            ]
        )
        per_ancestor: builtins.list[builtins.list[tuple[str, str, str, int, tuple[str, bytes]]]] = [
            [] for _ in chain
        ]
        for (i, _), write in zip(jobs, fetched, strict=True):
            if write is not None:
                per_ancestor[i].append(write)
        live = set(channels)
        collected: dict[str, builtins.list[PendingWrite]] = {ch: [] for ch in channels}
        for (_, seeded), writes in zip(chain, per_ancestor, strict=True):
            for _, task, ch, _, typed in sorted(writes, key=_write_order, reverse=True):
                if ch in live:
                    collected[ch].append((task, ch, self.serde.loads_typed(typed)))
            live -= seeded
        for (_, ch), typed in zip(seeds, seed_values, strict=True):
            result[ch]["seed"] = self.serde.loads_typed(typed)
        for ch in channels:
            result[ch]["writes"] = builtins.list(reversed(collected[ch]))
        return result

    async def aget_delta_channel_history(
        self, *, config: RunnableConfig, channels: Sequence[str]
    ) -> Mapping[str, DeltaChannelHistory]:
        return await asyncio.to_thread(self.get_delta_channel_history, config=config, channels=channels)

    # ------------------------------------------------------------------ versions

    def get_next_version(self, current: str | int | None, channel: None) -> str:
        """A new version: an increasing, zero-padded counter plus a random tie-breaker.

        The random part keeps the versions of two branches (forks) of one thread apart,
        so their values never share a key. The format is InMemorySaver's and PostgresSaver's
        (with a fixed-width random part).
        """
        if current is None:
            current_v = 0
        elif isinstance(current, int):
            current_v = current
        else:
            current_v = int(str(current).split(".")[0])
        return f"{current_v + 1:032}.{random.random():.16f}"

    # ------------------------------------------------------------------ async

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return await asyncio.to_thread(self.get_tuple, config)

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        iterator = self.list(config, filter=filter, before=before, limit=limit)
        while True:
            item = await asyncio.to_thread(next, iterator, None)
            if item is None:
                return
            yield item

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        return await asyncio.to_thread(self.put, config, checkpoint, metadata, new_versions)

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        await asyncio.to_thread(self.put_writes, config, writes, task_id, task_path)

    async def adelete_thread(self, thread_id: str, *, purge: bool = False) -> None:
        await asyncio.to_thread(self.delete_thread, thread_id, purge=purge)

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        await asyncio.to_thread(self.delete_for_runs, run_ids)

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        await asyncio.to_thread(self.copy_thread, source_thread_id, target_thread_id)

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        await asyncio.to_thread(self.prune, thread_ids, strategy=strategy)
