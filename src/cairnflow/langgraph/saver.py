"""A fenced LangGraph checkpointer on any cairnflow object store.

See ``docs/langgraph.md`` for the design; in short:

* **Storage** (:mod:`._layout`, :mod:`._entries`, :mod:`._values`). Per (thread,
  namespace): a log of immutable entries with newest-first sequence keys (a
  *checkpoint* holding the values of the channels that changed and references to the
  entries holding the others, an append-only list as a suffix of a snapshot; or a
  *pointer*, written by deletes), and one object per ``put_writes`` call right after its
  checkpoint's entry. Every object is written create-only, in the cairnflow envelope
  (checksum verified on every read). A put is one PUT; loading the latest checkpoint
  on a warm saver one LIST. Stores written by entry format 1 are still read.

* **Fencing** (:mod:`._fence`). Appending checkpoint ``n + 1`` is a create-only PUT
  of log key ``n + 1``. Which ``n`` a put must follow is decided from what this saver
  loaded and wrote (never from anything added to configs): a run that loaded the
  latest checkpoint at position ``n`` commits exactly at ``n + 1``, and each later
  put of the run exactly after the previous one; a put on a checkpoint addressed by
  id that is no longer the head is time travel and is appended as a recorded fork.
  A writer that lost its position gets :class:`~cairnflow.core.errors.ConflictError`.

The parts: :mod:`._io` (requests), :mod:`._layout` (keys), :mod:`._entries` (objects),
:mod:`._values` (value references and list suffixes), :mod:`._fence` (where a put
goes), :mod:`._read` (log, heads, lookups by id), :mod:`._load` (values, writes,
tuples), :mod:`._write` (put, put_writes), :mod:`._maintenance` (deletes, prune,
copy), :mod:`._delta` (delta channels), and this module (the checkpointer API:
get_tuple, list, inventory, async forms).
"""

from __future__ import annotations

import builtins
import random
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any, cast

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    get_checkpoint_id,
)
from langgraph.checkpoint.serde.base import SerializerProtocol

from cairnflow.core.errors import PruneRefusedError
from cairnflow.core.log import DEFAULT_STORE_RETRY as CORE_STORE_RETRY
from cairnflow.core.retry import RetryPolicy
from cairnflow.core.store import AsyncObjectStore, ObjectStore
from cairnflow.langgraph import _layout as lay
from cairnflow.langgraph._bridge import BridgedStore
from cairnflow.langgraph._delta import DeltaHistory
from cairnflow.langgraph._entries import Entry, Typed, metadata_matches
from cairnflow.langgraph._fence import Fences
from cairnflow.langgraph._io import LRU
from cairnflow.langgraph._maintenance import Maintenance
from cairnflow.langgraph._write import Writer

__all__ = ["LangGraphSaver", "PruneRefusedError"]

#: Retries of store requests: the core's policy (transient errors only; a conditional
#: write is retried only together with a read-back that recognises our own landed attempt).
DEFAULT_STORE_RETRY = CORE_STORE_RETRY


_CACHE_SIZE = 4096
#: Log entries kept in memory (they are immutable; a value snapshot can be large).
_ENTRY_CACHE_SIZE = 256
_LIST_BATCH = 16
#: Keys per LIST when listing without a limit (entries and their pending-write objects).
_LIST_PAGE = 64


class LangGraphSaver(Writer, Maintenance, DeltaHistory, BaseCheckpointSaver[str]):
    """A LangGraph checkpointer storing immutable, fenced checkpoints in an object store.

    >>> saver = LangGraphSaver.from_url("s3://my-bucket/agents")   # doctest: +SKIP
    >>> graph = builder.compile(checkpointer=saver)                 # doctest: +SKIP

    ``store`` is any :class:`~cairnflow.core.store.ObjectStore`; ``prefix`` scopes
    every key (one prefix per application or tenant). ``async_store``, an
    :class:`~cairnflow.core.store.AsyncObjectStore` on the same bucket and prefix,
    serves the ``a*`` methods (``ainvoke``, ``astream``) with no thread per request;
    :meth:`from_url` opens it on first use. Without one, the ``a*`` methods run the
    sync ones in a worker thread. ``serde`` is LangGraph's
    serializer protocol (default ``JsonPlusSerializer``; ``EncryptedSerializer``
    and strict msgpack allowlists work). ``max_workers`` bounds the parallel
    requests one call makes (channel values and writes are read in parallel).
    """

    def __init__(
        self,
        store: ObjectStore,
        *,
        async_store: AsyncObjectStore | None = None,
        prefix: str = "",
        serde: SerializerProtocol | None = None,
        max_workers: int = 16,
        store_retry: RetryPolicy = DEFAULT_STORE_RETRY,
    ) -> None:
        BaseCheckpointSaver.__init__(self, serde=serde)
        self._init_io(store, prefix, store_retry, max_workers)
        self._fences = Fences()
        self._entry_cache = LRU(_ENTRY_CACHE_SIZE)  # (thread, ns, seq) -> (listing tag, Entry)
        self._writes_cache = LRU(_CACHE_SIZE)  # writes object key -> decoded
        self._chains = LRU(_CACHE_SIZE)  # (thread, ns, channel, version) -> Chain
        self._loaded_lists = LRU(_CACHE_SIZE)  # (thread, ns, channel, version) -> (snapshot seq, typed)
        self._inflight = {}
        self._deferred = {}
        self._inflight_lock = threading.Lock()
        if async_store is not None:
            self.bridged_store = BridgedStore(async_store)

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
        saver = cls(store, prefix=prefix, serde=serde, max_workers=max_workers)
        saver._async_recipe = (url, store_options)
        return saver

    def __repr__(self) -> str:
        return f"LangGraphSaver({self.store.url!r}, prefix={self.prefix!r})"

    def __enter__(self) -> LangGraphSaver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ inventory (operator tools)

    def thread_ids(self) -> Iterator[str]:
        """Every thread id with objects under this saver's prefix, in key order.

        One LIST per thread (a skip-scan), whatever the threads hold. Deleted threads
        whose tombstones remain are included (``get_tuple`` then returns None).
        """
        return self._threads()

    def namespaces(self, thread_id: str) -> Iterator[str]:
        """Every checkpoint namespace of a thread (``""`` is the root graph's)."""
        return (ns for _, ns in self._namespaces(self._thread(thread_id)))

    def thread_keys(self, thread_id: str) -> Iterator[str]:
        """Every object key of a thread, in every namespace and both entry formats: what a
        raw copy of the thread must carry (the objects name their thread and positions,
        never the prefix, so they can be copied to another store or prefix as they are).
        Format 1 run markers live outside the thread and are not needed by readers.
        """
        return self._iter_keys(lay.thread_prefix(self.prefix, self._thread(thread_id)))

    # ------------------------------------------------------------------ get_tuple / list

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """The checkpoint named by ``config``, or the latest of (thread, namespace).

        Latest: 1 LIST (the head and its pending writes), + 1 GET for the head entry
        unless this saver holds it, + the entries holding unchanged values (at most two
        per value, often none) and the pending-write objects, in parallel; never more
        with a longer history. By id: see :meth:`_lookup`, then the same.
        """
        thread_id, ns = self._config_scope(config)
        checkpoint_id = get_checkpoint_id(config)
        if checkpoint_id:
            entry = self._lookup(thread_id, ns, checkpoint_id)
            if entry is None:
                return None
            self._fences.handed_out(thread_id, ns, checkpoint_id, entry.seq)
            if entry.parent_id:
                self._fences.handed_out(thread_id, ns, entry.parent_id)
            (loaded,) = self._complete(thread_id, ns, [entry])
            self._note_lists(thread_id, ns, loaded.entry)
            return self._tuple(thread_id, ns, loaded)
        head, writes = self._head_and_writes(thread_id, ns)
        if head is None:
            self._fences.loaded_latest(thread_id, ns, None, None, -1)
            return None
        head_seq, _, effective = head
        if effective is None:
            self._fences.loaded_latest(thread_id, ns, None, None, head_seq)
            return None
        known = (
            {effective.checkpoint_id: writes} if writes is not None and effective.seq == head_seq else None
        )
        (loaded,) = self._complete(thread_id, ns, [effective], write_keys=known)
        if effective.parent_id:
            self._fences.handed_out(thread_id, ns, effective.parent_id)
        self._fences.loaded_latest(thread_id, ns, effective.checkpoint_id, effective.seq, head_seq)
        self._note_lists(thread_id, ns, loaded.entry)
        return self._tuple(thread_id, ns, loaded)

    def _note_lists(self, thread_id: str, ns: str, entry: Entry) -> None:
        """Remember where each loaded value's snapshot is, so a put can store only a suffix."""
        if entry.fmt < 2:
            return
        versions = self._checkpoint_of(entry).get("channel_versions", {})
        for ch, ref in entry.vals.items():
            if ch not in versions or ref[0] == "b":
                continue
            if ref[0] == "i":
                snap_seq, owner = entry.seq, entry
            elif ref[0] == "s":
                snap_seq, owner = int(ref[1]), None
            else:
                snap_seq, owner = (int(ref[2]) if ref[2] is not None else int(ref[1])), None
            holder = owner or self._cached_entry(thread_id, ns, snap_seq)
            snap_ref = holder.vals.get(ch) if holder is not None and holder.fmt >= 2 else None
            if snap_ref is not None and snap_ref[0] == "i":
                typed = (str(snap_ref[1]), holder.inline(int(snap_ref[2]), int(snap_ref[3])))  # type: ignore[union-attr]
                self._loaded_lists.put((thread_id, ns, ch, str(versions[ch])), (snap_seq, typed))

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
        page = _LIST_PAGE if limit is None or filter or id_cut else max(1, min(limit, 1000))
        blob_cache: dict[tuple[str, str], Typed] = {}
        seen: set[str] = set()
        batch: builtins.list[Entry] = []
        writes: dict[int, builtins.list[str]] = {}
        for entry in self._log_entries(thread_id, ns, start_after, page, writes=writes):
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
                yield from self._load_batch(thread_id, ns, batch, blob_cache, writes)
                if limit is not None:
                    limit -= len(batch)
                    if limit <= 0:
                        return
                batch = []
        if batch:
            yield from self._load_batch(thread_id, ns, batch, blob_cache, writes)

    def _load_batch(
        self,
        thread_id: str,
        ns: str,
        batch: builtins.list[Entry],
        blob_cache: dict[tuple[str, str], Typed],
        writes: dict[int, builtins.list[str]],
    ) -> builtins.list[CheckpointTuple]:
        known = {e.checkpoint_id: writes[e.seq] for e in batch if e.fmt >= 2 and e.seq in writes}
        loaded = self._complete(thread_id, ns, batch, blob_cache=blob_cache, write_keys=known)
        return [self._tuple(thread_id, ns, item) for item in loaded]

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
        return await self._call(self.get_tuple, config)

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
            item = await self._call(next, iterator, None)
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
        return await self._call(self.put, config, checkpoint, metadata, new_versions)

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        await self._call(self.put_writes, config, writes, task_id, task_path)

    async def adelete_thread(self, thread_id: str, *, purge: bool = False) -> None:
        await self._call(self.delete_thread, thread_id, purge=purge)

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        await self._call(self.delete_for_runs, run_ids)

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        await self._call(self.copy_thread, source_thread_id, target_thread_id)

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        await self._call(self.prune, thread_ids, strategy=strategy)

    async def aclose(self) -> None:
        """Close the async store this saver opened (``from_url``) and stop its worker threads."""
        self.close()
        if self.bridged_store is not None:
            await self.bridged_store.inner.aclose()

    async def __aenter__(self) -> LangGraphSaver:
        """Open the async store and its client now, so the first ``ainvoke`` does not pay for it.

        ``async with LangGraphSaver.from_url(url) as saver:`` is the asyncio form of
        opening a saver (as ``AsyncSqliteSaver.from_conn_string``); without it the
        async client is created on the first a* call. Makes no request.
        """
        if self._async_ready() and self.bridged_store is not None:
            await self.bridged_store.inner.aopen()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
