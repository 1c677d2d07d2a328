"""Reading the LangGraph layout: heads, lookups by id, values, pending writes, tuples.

Every read is checked against the key it came from (:mod:`._entries`); values and
writes of several checkpoints are fetched in parallel rounds.
"""

from __future__ import annotations

import builtins
import functools
from collections.abc import Iterable, Iterator, Sequence
from typing import cast

from langchain_core.runnables import RunnableConfig

from cairnflow.core import codec
from cairnflow.core.errors import ConflictError, CorruptCheckpointError
from cairnflow.core.keys import decode_thread_id
from cairnflow.core.store import ObjectInfo
from cairnflow.langgraph import _layout as lay
from cairnflow.langgraph._entries import (
    Entry,
    decode_entry,
)
from cairnflow.langgraph._fence import Fences
from cairnflow.langgraph._io import LRU, StoreIO

__all__ = ["Head", "Reader"]

#: Keys of the first log page a lookup by id reads (the checkpoint is usually near the head).
_FIRST_SCAN = 4
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
        (1 LIST) and the log, newest first (1 LIST + parallel GETs of the entries not
        held per page, pages growing from 4 to 1,000 keys), are searched: the cost grows
        with the distance from the head, never with anything else.
        """
        seq = self._fences.seq_of(thread_id, ns, checkpoint_id)
        if seq is not None:
            known = self._entries_at_or_none(thread_id, ns, seq)
            if known is not None and known.header.get("k") == "cp" and known.checkpoint_id == checkpoint_id:
                return known
        base = lay.log_prefix(self.prefix, thread_id, ns)
        indexed, first = self._parallel(
            [
                lambda: self._index_seqs(thread_id, ns, checkpoint_id),
                lambda: self._list(base, limit=_FIRST_SCAN),
            ]
        )
        found = self._find(thread_id, ns, checkpoint_id, cast(builtins.list[int], indexed))
        if found is None:
            found = self._scan_for(thread_id, ns, checkpoint_id, cast(builtins.list[ObjectInfo], first))
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

    def _scan_for(
        self, thread_id: str, ns: str, checkpoint_id: str, infos: builtins.list[ObjectInfo]
    ) -> Entry | None:
        """Search the log newest first, starting from its first listing page ``infos``."""
        base = lay.log_prefix(self.prefix, thread_id, ns)
        size = _FIRST_SCAN
        while True:
            entries, ended = self._page_entries(thread_id, ns, infos, len(infos) == size, None)
            for entry in entries:
                if not entry.is_pointer and entry.checkpoint_id == checkpoint_id:
                    return entry
            if ended or len(infos) < size:
                return None
            size = min(size * 4, 1000)
            infos = self._list(base, start_after=infos[-1].key, limit=size)

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
