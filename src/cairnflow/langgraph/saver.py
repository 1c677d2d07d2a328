"""A fenced LangGraph checkpointer on any cairnflow object store.

See ``docs/langgraph.md`` for the design; in short:

* **Storage** (:mod:`._layout`, :mod:`._entries`). Per (thread, namespace): a log
  of immutable entries with newest-first sequence keys (a *checkpoint* without its
  channel values, or a *pointer*, written by deletes), an id -> position index, one
  object per (channel, version) holding a channel value, and one object per pending
  write. Every object is written create-only, in the cairnflow envelope (checksum
  verified on every read). A step writes only the channel values whose version changed.

* **Fencing** (:mod:`._fence`). Appending checkpoint ``n + 1`` is a create-only PUT
  of log key ``n + 1``. Which ``n`` a put must follow is decided from what this saver
  loaded and wrote (never from anything added to configs): a run that loaded the
  latest checkpoint at position ``n`` commits exactly at ``n + 1``, and each later
  put of the run exactly after the previous one; a put on a checkpoint addressed by
  id that is no longer the head is time travel and is appended as a recorded fork.
  A writer that lost its position gets :class:`~cairnflow.core.errors.ConflictError`.

The parts: :mod:`._io` (requests), :mod:`._read` (reads), :mod:`._maintenance`
(deletes, prune, copy), :mod:`._delta` (delta channels), this module (the
checkpointer API: get_tuple, list, put, put_writes and their async forms).
"""

from __future__ import annotations

import asyncio
import builtins
import functools
import random
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any, cast

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    get_checkpoint_id,
    get_checkpoint_metadata,
)
from langgraph.checkpoint.serde.base import SerializerProtocol

from cairnflow.core import codec
from cairnflow.core.errors import AlreadyExistsError, ConflictError, PruneRefusedError
from cairnflow.core.log import DEFAULT_STORE_RETRY as CORE_STORE_RETRY
from cairnflow.core.retry import RetryPolicy
from cairnflow.core.store import CREATE, ObjectStore
from cairnflow.langgraph import _layout as lay
from cairnflow.langgraph._delta import DeltaHistory
from cairnflow.langgraph._entries import Entry, Typed, encode_entry, encode_index, metadata_matches
from cairnflow.langgraph._fence import Fences, Target, conflict
from cairnflow.langgraph._io import LRU
from cairnflow.langgraph._maintenance import Maintenance

__all__ = ["LangGraphSaver", "PruneRefusedError"]

#: Retries of store requests: the core's policy (transient errors only; a conditional
#: write is retried only together with a read-back that recognises our own landed attempt).
DEFAULT_STORE_RETRY = CORE_STORE_RETRY

_APPEND_ATTEMPTS = 64
_MARKER_CACHE_SIZE = 4096
_LIST_BATCH = 16


class LangGraphSaver(Maintenance, DeltaHistory, BaseCheckpointSaver[str]):
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
        BaseCheckpointSaver.__init__(self, serde=serde)
        self._init_io(store, prefix, store_retry, max_workers)
        self._fences = Fences()
        self._markers = LRU(_MARKER_CACHE_SIZE)  # (run, thread, ns) -> True once written

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

    def __enter__(self) -> LangGraphSaver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

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
            self._fences.handed_out(thread_id, ns, checkpoint_id, entry.seq)
            if entry.parent_id:
                self._fences.handed_out(thread_id, ns, entry.parent_id)
            (loaded,) = self._complete(
                thread_id, ns, [entry], write_keys={checkpoint_id: cast(list[str], write_keys)}
            )
            return self._tuple(thread_id, ns, loaded)
        head = self._head(thread_id, ns)
        if head is None:
            self._fences.loaded_latest(thread_id, ns, None, None, -1)
            return None
        head_seq, _, effective = head
        if effective is None:
            self._fences.loaded_latest(thread_id, ns, None, None, head_seq)
            return None
        (loaded,) = self._complete(thread_id, ns, [effective])
        if effective.parent_id:
            self._fences.handed_out(thread_id, ns, effective.parent_id)
        self._fences.loaded_latest(thread_id, ns, effective.checkpoint_id, effective.seq, head_seq)
        return self._tuple(thread_id, ns, loaded)

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
        remaining = [limit]
        if limit is not None and limit <= 0:
            return
        only_id = get_checkpoint_id(config) if config else None
        before_id = get_checkpoint_id(before) if before else None
        for thread_id, ns in self._scopes(config):
            if only_id:
                found = self.get_tuple(self._config(thread_id, ns, only_id))
                if found is None or (before_id and not only_id < before_id):
                    continue
                if filter and not metadata_matches(cast(dict[str, Any], found.metadata), filter):
                    continue
                batch: Iterator[CheckpointTuple] = iter([found])
            else:
                batch = self._list_scope(thread_id, ns, filter, before_id, remaining[0])
            for item in batch:
                yield item
                if remaining[0] is not None:
                    remaining[0] -= 1
                    if remaining[0] <= 0:
                        return

    def _list_scope(
        self, thread_id: str, ns: str, filter: dict[str, Any] | None, before_id: str | None, limit: int | None
    ) -> Iterator[CheckpointTuple]:
        start_after: str | None = None
        id_cut: str | None = None
        if before_id:
            seq = self._fences.seq_of(thread_id, ns, before_id)
            if seq is None:
                found = self._lookup(thread_id, ns, before_id)
                seq = None if found is None else found.seq
            if seq is not None:
                start_after = lay.log_key(self.prefix, thread_id, ns, seq)
            else:
                id_cut = before_id  # not in this namespace (a parent graph's id): compare ids
        page = _LIST_BATCH if limit is None or filter or id_cut else max(1, min(limit, 1000))
        blob_cache: dict[tuple[str, str], Typed] = {}
        seen: set[str] = set()
        batch: builtins.list[Entry] = []
        for entry in self._log_entries(thread_id, ns, start_after, page):
            if entry.is_pointer or entry.checkpoint_id in seen:
                continue
            seen.add(entry.checkpoint_id)
            if id_cut is not None and not entry.checkpoint_id < id_cut:
                continue
            if filter and not metadata_matches(self._metadata(entry), filter):
                continue
            self._fences.handed_out(thread_id, ns, entry.checkpoint_id, entry.seq)
            if entry.parent_id:
                self._fences.handed_out(thread_id, ns, entry.parent_id)
            batch.append(entry)
            if (limit is not None and len(batch) >= limit) or len(batch) >= _LIST_BATCH:
                yield from self._load_batch(thread_id, ns, batch, blob_cache)
                if limit is not None:
                    limit -= len(batch)
                    if limit <= 0:
                        return
                batch = []
        if batch:
            yield from self._load_batch(thread_id, ns, batch, blob_cache)

    def _load_batch(
        self, thread_id: str, ns: str, batch: builtins.list[Entry], blob_cache: dict[tuple[str, str], Typed]
    ) -> builtins.list[CheckpointTuple]:
        loaded = self._complete(thread_id, ns, batch, blob_cache=blob_cache)
        return [self._tuple(thread_id, ns, item) for item in loaded]

    # ------------------------------------------------------------------ put / put_writes

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
        entry goes is the fencing rule of :mod:`cairnflow.langgraph._fence`; a writer
        that lost the position it had to take gets
        :class:`~cairnflow.core.errors.ConflictError` and nothing becomes visible.
        """
        conf = config["configurable"]
        thread_id = self._thread(conf["thread_id"])
        ns = str(conf.get("checkpoint_ns") or "")
        parent = conf.get("checkpoint_id") or None
        checkpoint_id = str(checkpoint["id"])
        copy: dict[str, Any] = dict(checkpoint)
        values: dict[str, Any] = copy.pop("channel_values")
        channels = sorted(ch for ch in checkpoint["channel_versions"] if ch in values)
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
            header = {
                "k": "blob",
                "thread": thread_id,
                "ns": ns,
                "ch": channel,
                "ver": str(version),
                "type": typ,
            }
            key = lay.blob_key(self.prefix, thread_id, ns, channel, str(version))
            jobs.append(functools.partial(self._create_ignore, key, codec.encode(header, data)))
        if run_id is not None:
            jobs.append(functools.partial(self._write_marker, run_id, thread_id, ns))

        def index(seq: int) -> None:
            self._create_ignore(
                lay.index_key(self.prefix, thread_id, ns, checkpoint_id, seq),
                encode_index(thread_id, ns, checkpoint_id, seq),
            )

        def commit(seq: int) -> bool:
            data = encode_entry(
                thread_id, ns, seq, checkpoint_id, parent, cp_typed, md_typed, channels, run_id, delta
            )
            return self._create_exact(lay.log_key(self.prefix, thread_id, ns, seq), data)

        target = self._fences.target(thread_id, ns, parent)
        if target.lookup and parent is not None:
            found = self._lookup(thread_id, ns, parent)
            target = Target(parent_seq=None if found is None else found.seq)
        if target.exact is not None:
            seq = target.exact
            jobs.append(functools.partial(index, seq))
            self._parallel(jobs)
            if not commit(seq):
                raise conflict(thread_id, ns, seq, f"another checkpoint follows {parent!r}")
        else:
            results = self._parallel([*jobs, lambda: self._head_seq(thread_id, ns)])
            head = cast("int | None", results[-1])
            # A parent that is still the head is continued exactly; otherwise this is a fork.
            strict = target.parent_seq is not None and head == target.parent_seq
            for _ in range(_APPEND_ATTEMPTS):
                seq = 0 if head is None else head + 1
                index(seq)
                if commit(seq):
                    break
                if strict:
                    raise conflict(thread_id, ns, seq, f"another checkpoint follows {parent!r}")
                head = self._head_seq(thread_id, ns)
            else:
                raise conflict(thread_id, ns, seq, "too many concurrent appends")
        self._fences.wrote(thread_id, ns, checkpoint_id, seq)
        return self._config(thread_id, ns, checkpoint_id)

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
                jobs.append(functools.partial(self._create_ignore, key, codec.encode(header, data)))
            else:
                slot = lay.write_slot_prefix(self.prefix, thread_id, ns, checkpoint_id, task_id, idx)

                def make(
                    version: int, idx: int = idx, header: dict[str, Any] = header, data: bytes = data
                ) -> tuple[str, bytes]:
                    key = lay.write_key(self.prefix, thread_id, ns, checkpoint_id, task_id, idx, version)
                    return key, codec.encode({**header, "n": version}, data)

                jobs.append(functools.partial(self._put_special, slot, make))
        self._parallel(jobs)

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
