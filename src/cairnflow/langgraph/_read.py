"""Reading the LangGraph layout: heads, lookups by id, values, pending writes, tuples.

Every read is checked against the key it came from (:mod:`._entries`); values and
writes of several checkpoints are fetched in parallel rounds.
"""

from __future__ import annotations

import builtins
import collections
import functools
from collections.abc import Callable, Iterator, Sequence
from typing import Any, cast

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import Checkpoint, CheckpointMetadata, CheckpointTuple

from cairnflow.core import codec
from cairnflow.core.errors import ConflictError, CorruptCheckpointError, NotFoundError
from cairnflow.core.keys import decode_thread_id
from cairnflow.langgraph import _layout as lay
from cairnflow.langgraph._entries import Entry, Loaded, Typed, Write, check, decode_entry, write_order
from cairnflow.langgraph._fence import Fences
from cairnflow.langgraph._io import StoreIO

__all__ = ["Head", "Reader"]

#: (physical head position, head entry, effective checkpoint entry or None for a tombstone)
Head = tuple[int, Entry, Entry | None]


class Reader(StoreIO):
    """The read side of the saver (a base class of :class:`~cairnflow.langgraph.LangGraphSaver`)."""

    _fences: Fences

    # ------------------------------------------------------------------ names and configs

    @staticmethod
    def _thread(value: object) -> str:
        return value if isinstance(value, str) else str(value)

    def _config_scope(self, config: RunnableConfig) -> tuple[str, str]:
        conf = config["configurable"]
        return self._thread(conf["thread_id"]), str(conf.get("checkpoint_ns") or "")

    @staticmethod
    def _config(thread_id: str, ns: str, checkpoint_id: str) -> RunnableConfig:
        return {"configurable": {"thread_id": thread_id, "checkpoint_ns": ns, "checkpoint_id": checkpoint_id}}

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

    def _namespaces(self, thread_id: str) -> Iterator[tuple[str, str]]:
        """(segment, namespace) for each namespace of the thread (unknown ones skipped)."""
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

    # ------------------------------------------------------------------ log entries

    def _entry(self, thread_id: str, ns: str, seq: int, data: bytes, key: str | None = None) -> Entry:
        return decode_entry(thread_id, ns, seq, data, key or lay.log_key(self.prefix, thread_id, ns, seq))

    def _read_entry(self, thread_id: str, ns: str, seq: int) -> Entry | None:
        key = lay.log_key(self.prefix, thread_id, ns, seq)
        data = self._get_or_none(key)
        return None if data is None else self._entry(thread_id, ns, seq, data, key)

    def _head_seq(self, thread_id: str, ns: str) -> int | None:
        """Position of the newest log entry (1 LIST), None for an empty log."""
        base = lay.log_prefix(self.prefix, thread_id, ns)
        infos = self._list(base, limit=1)
        return lay.parse_inv(infos[0].key[len(base) :]) if infos else None

    def _head(self, thread_id: str, ns: str) -> Head | None:
        """The head of a log, or None for an empty log.

        The effective checkpoint is the head itself, or what a pointer at the head names
        (None for a tombstone). Costs 1 LIST + 1 GET, + 1 GET behind a pointer.
        """
        for _ in range(8):
            seq = self._head_seq(thread_id, ns)
            if seq is None:
                return None
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

    def _index_seqs(self, thread_id: str, ns: str, checkpoint_id: str) -> builtins.list[int]:
        base = lay.index_prefix(self.prefix, thread_id, ns, checkpoint_id)
        return [lay.parse_inv(info.key[len(base) :]) for info in self._list(base)]

    def _find(self, thread_id: str, ns: str, checkpoint_id: str, seqs: Sequence[int]) -> Entry | None:
        for seq in seqs:  # newest first; a stale index entry (a lost attempt) is skipped
            entry = self._read_entry(thread_id, ns, seq)
            if entry is not None and not entry.is_pointer and entry.checkpoint_id == checkpoint_id:
                return entry
        return None

    def _lookup(self, thread_id: str, ns: str, checkpoint_id: str) -> Entry | None:
        """A checkpoint entry by id (index LIST + GET), None if there is none."""
        found = self._find(thread_id, ns, checkpoint_id, self._index_seqs(thread_id, ns, checkpoint_id))
        if found is not None:
            self._fences.seen(thread_id, ns, checkpoint_id, found.seq)
        return found

    def _log_entries(
        self, thread_id: str, ns: str, start_after: str | None, page: int, *, one_page: bool = False
    ) -> Iterator[Entry]:
        """Log entries newest first (fetched ``page`` at a time, in parallel), stopping at a tombstone."""
        base = lay.log_prefix(self.prefix, thread_id, ns)
        cursor = start_after
        while True:
            infos = self._list(base, start_after=cursor, limit=page)
            if not infos:
                return
            cursor = infos[-1].key
            datas = self._parallel([functools.partial(self._get_or_none, info.key) for info in infos])
            for info, data in zip(infos, datas, strict=True):
                if data is None:
                    continue  # deleted meanwhile
                entry = self._entry(thread_id, ns, lay.parse_inv(info.key[len(base) :]), data, info.key)
                if entry.is_tombstone:
                    return  # everything older was deleted
                yield entry
            if len(infos) < page or one_page:
                return

    def _all_entries(self, thread_id: str, ns: str) -> builtins.list[Entry]:
        """Every log entry of (thread, ns), newest first (1 LIST per 1000 + 1 GET each)."""
        base = lay.log_prefix(self.prefix, thread_id, ns)
        keys = builtins.list(self._iter_keys(base))
        datas = self._parallel([functools.partial(self._get_or_none, k) for k in keys])
        return [
            self._entry(thread_id, ns, lay.parse_inv(k[len(base) :]), d, k)
            for k, d in zip(keys, datas, strict=True)
            if d is not None
        ]

    def _page_below(self, thread_id: str, ns: str, seq: int, size: int) -> builtins.list[Entry]:
        """Up to ``size`` log entries older than ``seq``, newest first (1 LIST + parallel GETs)."""
        if seq <= 0:
            return []
        start = lay.log_key(self.prefix, thread_id, ns, seq)
        return builtins.list(self._log_entries(thread_id, ns, start, size, one_page=True))

    # ------------------------------------------------------------------ values and writes

    def _checkpoint_of(self, entry: Entry) -> dict[str, Any]:
        return cast(dict[str, Any], self.serde.loads_typed(entry.parts()[0]))

    def _metadata(self, entry: Entry) -> dict[str, Any]:
        return cast(dict[str, Any], self.serde.loads_typed(entry.parts()[1]))

    def _blob_refs(self, entry: Entry) -> set[tuple[str, str]]:
        versions = self._checkpoint_of(entry).get("channel_versions", {})
        return {(ch, str(versions[ch])) for ch in entry.channels if ch in versions}

    def _list_writes(self, thread_id: str, ns: str, checkpoint_id: str) -> builtins.list[str]:
        """The newest version of each (task, idx) write slot."""
        newest: dict[str, str] = {}
        for key in self._iter_keys(lay.writes_prefix(self.prefix, thread_id, ns, checkpoint_id)):
            slot, _ = lay.write_slot_of(key)
            newest.setdefault(slot, key)  # newest-first within a slot
        return builtins.list(newest.values())

    def _read_write(self, thread_id: str, ns: str, checkpoint_id: str, key: str) -> Write | None:
        data = self._get_or_none(key)
        if data is None:
            return None
        env = check(key, data, "wr", thread=thread_id, ns=ns, cid=checkpoint_id)
        h = env.header
        return str(h.get("path", "")), str(h["task"]), str(h["ch"]), int(h["idx"]), (str(h["type"]), env.body)

    def _read_blob(self, thread_id: str, ns: str, channel: str, version: str) -> Typed:
        key = lay.blob_key(self.prefix, thread_id, ns, channel, version)
        try:
            data = self._get(key)
        except NotFoundError:
            raise CorruptCheckpointError(
                f"value of channel {channel!r} at version {version} is missing", key=key
            ) from None
        env = check(key, data, "blob", thread=thread_id, ns=ns, ch=channel, ver=version)
        return str(env.header["type"]), env.body

    def _read_writes(
        self, thread_id: str, ns: str, jobs: Sequence[tuple[str, str]]
    ) -> builtins.list[Write | None]:
        """Fetch writes given as (checkpoint id, key) pairs, in parallel."""
        return self._parallel(
            [functools.partial(self._read_write, thread_id, ns, cid, key) for cid, key in jobs]
        )

    def _complete(
        self,
        thread_id: str,
        ns: str,
        entries: Sequence[Entry],
        *,
        write_keys: dict[str, builtins.list[str]] | None = None,
        blob_cache: dict[tuple[str, str], Typed] | None = None,
    ) -> builtins.list[Loaded]:
        """Fetch the channel values and pending writes of checkpoint entries, in parallel."""
        blob_cache = {} if blob_cache is None else blob_cache
        write_keys = dict(write_keys or {})
        versions: builtins.list[dict[str, str]] = []
        checkpoints: builtins.list[dict[str, Any]] = []
        for entry in entries:
            checkpoint = self._checkpoint_of(entry)
            checkpoints.append(checkpoint)
            channel_versions = checkpoint.get("channel_versions", {})
            versions.append(
                {ch: str(channel_versions[ch]) for ch in entry.channels if ch in channel_versions}
            )
        wanted = sorted({(ch, ver) for vs in versions for ch, ver in vs.items()} - blob_cache.keys())
        calls: builtins.list[Callable[[], Any]] = [
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
        fetched_later = self._read_writes(thread_id, ns, later)
        by_cid: dict[str, builtins.list[Write]] = collections.defaultdict(builtins.list)
        for (cid, _), write in zip([*known, *later], [*fetched_known, *fetched_later], strict=True):
            if write is not None:
                by_cid[cid].append(write)
        loaded = []
        for entry, checkpoint, vs in zip(entries, checkpoints, versions, strict=True):
            writes = sorted(by_cid.get(entry.checkpoint_id, []), key=write_order)
            blobs = {ch: blob_cache[(ch, ver)] for ch, ver in vs.items()}
            loaded.append(Loaded(entry, checkpoint, blobs, writes))
        return loaded

    def _tuple(self, thread_id: str, ns: str, loaded: Loaded) -> CheckpointTuple:
        entry = loaded.entry
        checkpoint = cast(Checkpoint, loaded.checkpoint)
        loads = self.serde.loads_typed
        checkpoint["channel_values"] = {ch: loads(typed) for ch, typed in loaded.blobs.items()}
        parent = entry.parent_id
        return CheckpointTuple(
            config=self._config(thread_id, ns, entry.checkpoint_id),
            checkpoint=checkpoint,
            metadata=cast(CheckpointMetadata, loads(entry.parts()[1])),
            parent_config=self._config(thread_id, ns, parent) if parent else None,
            pending_writes=[(task, ch, loads(typed)) for _, task, ch, _, typed in loaded.writes],
        )
