"""Reading the LangGraph layout: heads, lookups by id, values, pending writes, tuples.

Every read is checked against the key it came from (:mod:`._entries`); values and
writes of several checkpoints are fetched in parallel rounds.
"""

from __future__ import annotations

import builtins
import functools
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, cast

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import Checkpoint, CheckpointMetadata, CheckpointTuple

from cairnflow.core import codec
from cairnflow.core.errors import ConflictError, CorruptCheckpointError, NotFoundError
from cairnflow.core.keys import decode_thread_id
from cairnflow.core.store import ObjectInfo
from cairnflow.langgraph import _layout as lay
from cairnflow.langgraph._entries import (
    Entry,
    Loaded,
    Typed,
    Write,
    check,
    decode_entry,
    decode_writes,
    write_order,
)
from cairnflow.langgraph._fence import Fences
from cairnflow.langgraph._io import LRU, StoreIO
from cairnflow.langgraph._values import load_parts, needed_positions, value_parts

__all__ = ["Head", "Reader"]

#: Keys read by the LIST that finds a head: the head entry and the first of its pending writes.
_HEAD_PAGE = 16

#: (physical head position, head entry, effective checkpoint entry or None for a tombstone)
Head = tuple[int, Entry, Entry | None]


class Reader(StoreIO):
    """The read side of the saver (a base class of :class:`~cairnflow.langgraph.LangGraphSaver`)."""

    _fences: Fences
    _entry_cache: LRU
    _writes_cache: LRU  # writes object key -> decoded (version, checkpoint id, writes)

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
        return lay.log_name(infos[0].key[len(base) :])[0] if infos else None

    def _cached_entry(self, thread_id: str, ns: str, seq: int, tag: object = None) -> Entry | None:
        hit = self._entry_cache.get((thread_id, ns, seq))
        if hit is None or (tag is not None and hit[0] is not None and hit[0] != tag):
            return None
        return cast(Entry, hit[1])

    def _remember(self, entry: Entry, tag: object = None) -> None:
        self._entry_cache.put((entry.header["thread"], entry.header["ns"], entry.seq), (tag, entry))

    def _entries_at(self, thread_id: str, ns: str, seqs: Iterable[int]) -> dict[int, Entry]:
        """The entries (or value holders) at these positions: cached, else GETs in parallel."""
        found: dict[int, Entry] = {}
        missing = []
        for seq in sorted(set(seqs)):
            cached = self._cached_entry(thread_id, ns, seq)
            if cached is not None:
                found[seq] = cached
            else:
                missing.append(seq)
        fetched = self._parallel(
            [functools.partial(self._read_holding, thread_id, ns, seq) for seq in missing]
        )
        for seq, entry in zip(missing, fetched, strict=True):
            if entry is None:
                raise CorruptCheckpointError(
                    f"log position {seq} holding a value is missing",
                    key=lay.log_key(self.prefix, thread_id, ns, seq),
                )
            found[seq] = entry
        return found

    def _read_holding(self, thread_id: str, ns: str, seq: int) -> Entry | None:
        """The entry at ``seq``, or the value holder a delete left in its place."""
        entry = self._read_entry(thread_id, ns, seq)
        if entry is None:
            key = lay.holder_key(self.prefix, thread_id, ns, seq)
            data = self._get_or_none(key)
            if data is None:
                return None
            entry = decode_entry(thread_id, ns, seq, data, key, kinds=("val",))
        self._remember(entry)
        return entry

    def _head(self, thread_id: str, ns: str) -> Head | None:
        """The head of a log, or None for an empty log (see :meth:`_head_and_writes`)."""
        return self._head_and_writes(thread_id, ns)[0]

    def _head_and_writes(self, thread_id: str, ns: str) -> tuple[Head | None, builtins.list[str] | None]:
        """The head of a log and, for a format 2 head, the keys of its pending writes.

        The effective checkpoint is the head itself, or what a pointer at the head names
        (None for a tombstone). Costs 1 LIST (which also shows the head's writes), + 1 GET
        unless this saver already holds the head entry, + 1 GET behind a pointer.
        """
        base = lay.log_prefix(self.prefix, thread_id, ns)
        for _ in range(8):
            infos = self._list(base, limit=_HEAD_PAGE)
            if not infos:
                return None, None
            entries = [(lay.log_name(i.key[len(base) :]), i) for i in infos]
            head_seq, info = next(((n[0], i) for n, i in entries if n[1] is None), (entries[0][0][0], None))
            writes = [i.key for n, i in entries if n[0] == head_seq and n[1] is not None]
            if len(infos) == _HEAD_PAGE and entries[-1][0][0] == head_seq:
                more = self._iter_keys(f"{base}{lay.inv(head_seq)}.", start_after=infos[-1].key)
                writes += builtins.list(more)
            tag = (info.etag, info.size) if info is not None else None
            head = self._cached_entry(thread_id, ns, head_seq, tag)
            if head is None:
                head = self._read_entry(thread_id, ns, head_seq)
                if head is None:
                    continue  # deleted while we looked: look again
                self._remember(head, tag)
            if not head.is_pointer:
                return (head_seq, head, head), (writes if head.fmt >= 2 else None)
            target = head.header.get("target")
            if target is None:
                return (head_seq, head, None), None
            effective = self._read_entry(thread_id, ns, int(target))
            if effective is None or effective.is_pointer:
                raise CorruptCheckpointError("pointer names a missing checkpoint", key=head.key)
            return (head_seq, head, effective), None
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
        """A checkpoint entry by id, None if there is none.

        A position this saver knows costs at most 1 GET. Otherwise the format 1 index
        (1 LIST), then the log, newest first (1 LIST + parallel GETs per page, pages
        growing from 8 to 256 entries), are searched: the cost grows with the distance
        from the head, never with anything else.
        """
        seq = self._fences.seq_of(thread_id, ns, checkpoint_id)
        if seq is not None:
            known = self._entries_at_or_none(thread_id, ns, seq)
            if known is not None and known.header.get("k") == "cp" and known.checkpoint_id == checkpoint_id:
                return known
        indexed = self._index_seqs(thread_id, ns, checkpoint_id)
        found = self._find(thread_id, ns, checkpoint_id, indexed)
        if found is None:
            found = self._scan_for(thread_id, ns, checkpoint_id)
        if found is not None:
            self._fences.seen(thread_id, ns, checkpoint_id, found.seq)
        return found

    def _entries_at_or_none(self, thread_id: str, ns: str, seq: int) -> Entry | None:
        cached = self._cached_entry(thread_id, ns, seq)
        if cached is not None:
            return cached
        entry = self._read_entry(thread_id, ns, seq)
        if entry is not None:
            self._remember(entry)
        return entry

    def _scan_for(self, thread_id: str, ns: str, checkpoint_id: str) -> Entry | None:
        page = 8
        cursor: str | None = None
        while True:
            batch = builtins.list(self._log_entries(thread_id, ns, cursor, page, one_page=True))
            for entry in batch:
                if not entry.is_pointer and entry.checkpoint_id == checkpoint_id:
                    return entry
            if len(batch) < page:
                return None
            cursor = batch[-1].key
            page = min(page * 4, 256)

    def _log_entries(
        self,
        thread_id: str,
        ns: str,
        start_after: str | None,
        page: int,
        *,
        one_page: bool = False,
        writes: dict[int, builtins.list[str]] | None = None,
    ) -> Iterator[Entry]:
        """Log entries newest first (``page`` keys per LIST, fetched in parallel), stopping at a
        tombstone. Pending-write keys in the listing go to ``writes`` (per position, for
        the entries whose writes the page shows in full)."""
        base = lay.log_prefix(self.prefix, thread_id, ns)
        cursor = start_after
        while True:
            infos = self._list(base, start_after=cursor, limit=page)
            if not infos:
                return
            cursor = infos[-1].key
            entries, ended = self._page_entries(thread_id, ns, infos, len(infos) == page, writes)
            yield from entries
            if ended or len(infos) < page or one_page:
                return

    def _page_entries(
        self,
        thread_id: str,
        ns: str,
        infos: Sequence[ObjectInfo],
        full: bool,
        writes: dict[int, builtins.list[str]] | None,
    ) -> tuple[builtins.list[Entry], bool]:
        """The entries of one log listing page (held ones not fetched again), up to a
        tombstone; True if one ended the log."""
        base = lay.log_prefix(self.prefix, thread_id, ns)
        named = [(lay.log_name(i.key[len(base) :]), i) for i in infos]
        seqs = [n[0] for n, _ in named if n[1] is None]
        tags = {n[0]: (i.etag, i.size) for n, i in named if n[1] is None}
        if writes is not None:
            complete = set(seqs[:-1]) if full else set(seqs)
            for seq in complete:
                writes[seq] = []
            for n, i in named:
                if n[1] is not None and n[0] in complete:
                    writes[n[0]].append(i.key)
        cached = {seq: self._cached_entry(thread_id, ns, seq, tags[seq]) for seq in seqs}
        todo = [seq for seq in seqs if cached[seq] is None]
        datas = self._parallel(
            [functools.partial(self._get_or_none, lay.log_key(self.prefix, thread_id, ns, q)) for q in todo]
        )
        for seq, data in zip(todo, datas, strict=True):
            if data is not None:
                fresh = self._entry(thread_id, ns, seq, data)
                self._remember(fresh, tags[seq])
                cached[seq] = fresh
        out: builtins.list[Entry] = []
        for seq in seqs:
            found = cached[seq]
            if found is None:
                continue  # deleted meanwhile
            if found.is_tombstone:
                return out, True  # everything older was deleted
            out.append(found)
        return out, False

    def _all_entries(self, thread_id: str, ns: str) -> builtins.list[Entry]:
        """Every log entry of (thread, ns), newest first (1 LIST per 1000 keys + 1 GET each)."""
        base = lay.log_prefix(self.prefix, thread_id, ns)
        named = [(lay.log_name(k[len(base) :]), k) for k in self._iter_keys(base)]
        keys = [(n[0], k) for n, k in named if n[1] is None]
        datas = self._parallel([functools.partial(self._get_or_none, k) for _, k in keys])
        return [
            self._entry(thread_id, ns, seq, d, k)
            for (seq, k), d in zip(keys, datas, strict=True)
            if d is not None
        ]

    def _page_below(
        self, thread_id: str, ns: str, start_after: str, size: int, writes: dict[int, builtins.list[str]]
    ) -> tuple[builtins.list[Entry], str | None]:
        """Log entries after the key ``start_after`` (older), newest first, from one LIST of
        ``size`` keys (+ parallel GETs of the entries not held), and the key to continue
        after (None at the end). Pending-write keys seen go to ``writes``."""
        infos = self._list(lay.log_prefix(self.prefix, thread_id, ns), start_after=start_after, limit=size)
        entries, ended = self._page_entries(thread_id, ns, infos, len(infos) == size, writes)
        return entries, (infos[-1].key if len(infos) == size and not ended else None)

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

    def _read_writes_v2(
        self, thread_id: str, ns: str, entry: Entry, keys: Sequence[str]
    ) -> builtins.list[Write]:
        """The pending writes of a format 2 entry: per (task, index), the first recorded
        regular write and the last recorded special one. Writes stored next to a position
        another checkpoint won (they name their own checkpoint) are ignored."""
        held = {k: self._writes_cache.get(k) for k in keys}
        todo = [k for k in keys if held[k] is None]
        datas = self._parallel([functools.partial(self._get_or_none, k) for k in todo])
        for k, d in zip(todo, datas, strict=True):
            if d is not None:
                held[k] = decode_writes(k, d, thread_id, ns, entry.seq)
                self._writes_cache.put(k, held[k])  # immutable, like the entries
        decoded = [held[k] for k in keys if held[k] is not None]
        objects = sorted(
            ((n, ws) for n, cid, ws in decoded if cid == entry.checkpoint_id), key=lambda item: item[0]
        )
        merged: dict[tuple[str, int], Write] = {}
        for _, writes in objects:
            for write in writes:
                slot = (write[1], write[3])
                if write[3] < 0 or slot not in merged:
                    merged[slot] = write
        return builtins.list(merged.values())

    def _write_keys_v2(self, thread_id: str, ns: str, seq: int) -> builtins.list[str]:
        return builtins.list(self._iter_keys(f"{lay.log_key(self.prefix, thread_id, ns, seq)}."))

    def _complete(
        self,
        thread_id: str,
        ns: str,
        entries: Sequence[Entry],
        *,
        write_keys: dict[str, builtins.list[str]] | None = None,
        blob_cache: dict[tuple[str, str], Typed] | None = None,
    ) -> builtins.list[Loaded]:
        """Fetch the channel values and pending writes of checkpoint entries, in parallel rounds.

        ``write_keys`` gives the pending-write keys already known per checkpoint id (from
        the LIST that found the head); the others are listed.
        """
        blob_cache = {} if blob_cache is None else blob_cache
        write_keys = dict(write_keys or {})
        holders = self._entries_at(
            thread_id, ns, {q for e in entries for q in needed_positions(e)} - {e.seq for e in entries}
        )
        holders.update({e.seq: e for e in entries})
        parts: builtins.list[dict[str, builtins.list[Typed] | tuple[str, str]]] = []
        checkpoints: builtins.list[dict[str, Any]] = []
        for entry in entries:
            checkpoint = self._checkpoint_of(entry)
            checkpoints.append(checkpoint)
            if entry.fmt >= 2:
                parts.append({ch: value_parts(entry, ch, holders.__getitem__) for ch in entry.vals})
            else:
                versions = checkpoint.get("channel_versions", {})
                parts.append({ch: ("b", str(versions[ch])) for ch in entry.channels if ch in versions})
        wanted = sorted(
            {(ch, p[1]) for ps in parts for ch, p in ps.items() if isinstance(p, tuple)} - blob_cache.keys()
        )
        calls: builtins.list[Callable[[], Any]] = [
            functools.partial(self._read_blob, thread_id, ns, ch, ver) for ch, ver in wanted
        ]
        listing = [e for e in entries if e.checkpoint_id not in write_keys]
        calls += [functools.partial(self._writes_of, thread_id, ns, e, None) for e in listing]
        calls += [
            functools.partial(self._writes_of, thread_id, ns, e, write_keys[e.checkpoint_id])
            for e in entries
            if e.checkpoint_id in write_keys
        ]
        results = self._parallel(calls)
        for (ch, ver), typed in zip(wanted, results[: len(wanted)], strict=True):
            blob_cache[(ch, ver)] = typed
        writes_by_entry = results[len(wanted) :]
        order = [*listing, *(e for e in entries if e.checkpoint_id in write_keys)]
        by_seq = {e.seq: w for e, w in zip(order, writes_by_entry, strict=True)}
        loaded = []
        for entry, checkpoint, ps in zip(entries, checkpoints, parts, strict=True):
            values = {ch: [blob_cache[(ch, p[1])]] if isinstance(p, tuple) else p for ch, p in ps.items()}
            loaded.append(Loaded(entry, checkpoint, values, sorted(by_seq[entry.seq], key=write_order)))
        return loaded

    def _writes_of(
        self, thread_id: str, ns: str, entry: Entry, keys: builtins.list[str] | None
    ) -> builtins.list[Write]:
        """Pending writes of a checkpoint entry (keys: format 2 keys already listed)."""
        if entry.fmt >= 2:
            keys = self._write_keys_v2(thread_id, ns, entry.seq) if keys is None else keys
            return self._read_writes_v2(thread_id, ns, entry, keys)
        cid = entry.checkpoint_id
        found = self._read_writes(thread_id, ns, [(cid, k) for k in self._list_writes(thread_id, ns, cid)])
        return [w for w in found if w is not None]

    def _tuple(self, thread_id: str, ns: str, loaded: Loaded) -> CheckpointTuple:
        entry = loaded.entry
        checkpoint = cast(Checkpoint, loaded.checkpoint)
        loads = self.serde.loads_typed
        checkpoint["channel_values"] = {ch: load_parts(self.serde, ps) for ch, ps in loaded.blobs.items()}
        parent = entry.parent_id
        return CheckpointTuple(
            config=self._config(thread_id, ns, entry.checkpoint_id),
            checkpoint=checkpoint,
            metadata=cast(CheckpointMetadata, loads(entry.parts()[1])),
            parent_config=self._config(thread_id, ns, parent) if parent else None,
            pending_writes=[(task, ch, loads(typed)) for _, task, ch, _, typed in loaded.writes],
        )
