"""Deleting, pruning and copying LangGraph threads without breaking what survives.

Deletes first append a tombstone (or a pointer) at the head of a log, so a writer
still holding the old head is fenced (ConflictError) instead of resurrecting the
thread; then they remove objects, keeping every value a surviving checkpoint names.
"""

from __future__ import annotations

import builtins
import functools
from collections.abc import Sequence
from typing import Any

from cairnflow.core import codec
from cairnflow.core.errors import CorruptCheckpointError, PruneRefusedError
from cairnflow.langgraph import _layout as lay
from cairnflow.langgraph._entries import Entry, encode_index, encode_pointer, writer_token
from cairnflow.langgraph._fence import conflict
from cairnflow.langgraph._load import Loader
from cairnflow.langgraph._values import needed_positions, shift_ref

__all__ = ["Maintenance"]

_ATTEMPTS = 64


def _above_tombstone(entries: builtins.list[Entry]) -> builtins.list[Entry]:
    """The entries newer than the newest tombstone (entries are newest first)."""
    for i, e in enumerate(entries):
        if e.is_tombstone:
            return entries[:i]
    return entries


def _moved(header: dict[str, Any], thread_id: str, offset: int) -> dict[str, Any]:
    """A header copied to another thread whose log positions are ``offset`` higher."""
    moved = {**header, "thread": thread_id}
    if offset:
        for name in ("seq", "pseq"):
            if isinstance(moved.get(name), int):
                moved[name] += offset
        if isinstance(moved.get("vals"), dict):
            moved["vals"] = {ch: shift_ref(ref, offset) for ch, ref in moved["vals"].items()}
    return moved


class Maintenance(Loader):
    """delete_thread, delete_for_runs, prune and copy_thread (a base of the saver)."""

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
        for segment in builtins.list(self._skip_scan(base)):
            seg_base = f"{base}{segment}/"
            doomed = [k for k in self._iter_keys(seg_base) if purge or k not in tombstones]
            self._delete_keys(doomed, seg_base)
        self._fences.forget(thread_id)
        self._entry_cache.discard_where(lambda k: k[0] == thread_id)
        self._writes_cache.discard_where(lambda k: k.startswith(base))

    def _tombstone(self, thread_id: str, ns: str) -> str | None:
        """Append a tombstone (unless the head is one); return its key, None for an empty log."""
        for _ in range(_ATTEMPTS):
            head = self._head(thread_id, ns)
            if head is None:
                return None
            seq, _, effective = head
            if effective is None:
                return lay.log_key(self.prefix, thread_id, ns, seq)
            key = lay.log_key(self.prefix, thread_id, ns, seq + 1)
            if self._create_exact(key, encode_pointer(thread_id, ns, seq + 1, None)):
                return key
        raise conflict(thread_id, ns, -1, "too many concurrent appends while deleting")

    def _remove_entries(
        self, thread_id: str, ns: str, doomed: builtins.list[Entry], kept: builtins.list[Entry]
    ) -> None:
        """Delete checkpoint entries with their writes and the values no survivor needs.

        A doomed format 2 entry holding a value a kept entry references is first copied
        to a value holder (``h/``), which readers use when the entry is gone; holders no
        survivor references are deleted.
        """
        if not doomed:
            return
        kept_ids = {e.checkpoint_id for e in kept if not e.is_pointer}
        keep_blobs: set[tuple[str, str]] = set()
        needed: set[int] = set()
        for e in kept:
            if not e.is_pointer:
                needed |= needed_positions(e)
                if e.fmt < 2:
                    keep_blobs |= self._blob_refs(e)
        doomed_seqs = {e.seq for e in doomed}
        holders = [e for e in doomed if e.seq in needed and not e.is_pointer and e.fmt >= 2]
        self._parallel([functools.partial(self._hold, thread_id, ns, e) for e in holders])
        keys: set[str] = set()
        for e in doomed:
            keys.add(e.key)
            if e.is_pointer:
                continue
            if e.fmt >= 2:
                keys.update(self._write_keys_v2(thread_id, ns, e.seq))
                continue
            keys.add(lay.index_key(self.prefix, thread_id, ns, e.checkpoint_id, e.seq))
            for ch, ver in self._blob_refs(e) - keep_blobs:
                keys.add(lay.blob_key(self.prefix, thread_id, ns, ch, ver))
        holder_base = f"{lay.ns_prefix(self.prefix, thread_id, ns)}h/"
        for key in self._iter_keys(holder_base):
            if lay.parse_inv(key[len(holder_base) :]) not in needed:
                keys.add(key)
        doomed_ids = {e.checkpoint_id for e in doomed if not e.is_pointer} - kept_ids
        for cid in doomed_ids:
            keys.update(self._iter_keys(lay.index_prefix(self.prefix, thread_id, ns, cid)))
            keys.update(self._iter_keys(lay.writes_prefix(self.prefix, thread_id, ns, cid)))
        self._delete_keys(sorted(keys), lay.ns_prefix(self.prefix, thread_id, ns))
        self._fences.forget(thread_id, ns, doomed_ids)
        self._entry_cache.discard_where(lambda k: k[0] == thread_id and k[1] == ns and k[2] in doomed_seqs)

    def _hold(self, thread_id: str, ns: str, entry: Entry) -> None:
        """Keep a doomed entry's values readable for the survivors that reference them."""
        header = {**entry.header, "k": "val"}
        self._create_ignore(
            lay.holder_key(self.prefix, thread_id, ns, entry.seq), codec.encode(header, entry.body)
        )

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Delete the checkpoints (with their writes and the values no survivor needs)
        created by the given runs.

        Entries carry their run id in the header, so every namespace of every thread
        under the prefix is read in full (1 LIST per 1,000 keys + 1 GET per entry): this
        is a maintenance operation, not one for a request path. If a deleted checkpoint
        was a thread's latest, a pointer to the newest surviving one is appended first,
        so a writer still running that run is fenced.
        """
        runs = {r for r in run_ids if isinstance(r, str) and r}
        if not runs:
            return
        scopes = {(thread_id, ns) for thread_id in self._threads() for _, ns in self._namespaces(thread_id)}
        for thread_id, ns in sorted(scopes):
            self._delete_runs_in(thread_id, ns, runs)
        for run_id in sorted(runs):  # format 1 run markers
            base = lay.run_prefix(self.prefix, run_id)
            self._parallel([functools.partial(self._delete, k) for k in self._iter_keys(base)])

    def _delete_runs_in(self, thread_id: str, ns: str, runs: set[str]) -> None:
        for _ in range(_ATTEMPTS):
            entries = self._all_entries(thread_id, ns)
            live = _above_tombstone(entries)
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
                pointer = encode_pointer(thread_id, ns, head.seq + 1, target_seq)
                if not self._create_exact(lay.log_key(self.prefix, thread_id, ns, head.seq + 1), pointer):
                    continue  # the thread moved meanwhile: look again
                entries.insert(0, self._entry(thread_id, ns, head.seq + 1, pointer))
                self._fences.forget(thread_id, ns)
            doomed_seqs = {d.seq for d in doomed}
            stale_pointers = [e for e in live[1:] if e.is_pointer and e.header.get("target") in doomed_seqs]
            gone = doomed_seqs | {e.seq for e in stale_pointers}
            kept = [e for e in entries if e.seq not in gone]
            self._remove_entries(thread_id, ns, doomed + stale_pointers, kept)
            return
        raise conflict(thread_id, ns, -1, "too many concurrent appends while deleting runs")

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
        plans: builtins.list[tuple[str, str, builtins.list[Entry], builtins.list[Entry]]] = []
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
        for segment, ns in builtins.list(self._namespaces(src)):
            live = builtins.list(reversed(_above_tombstone(self._all_entries(src, ns))))  # oldest first
            if not live:
                continue
            head = self._head(dst, ns)
            if head is not None and head[2] is not None:
                raise ValueError(f"target thread {dst!r} already has checkpoints in namespace {ns!r}")
            offset = 0 if head is None else head[0] + 1 - live[0].seq
            seg_base = f"{src_base}{segment}/"
            log_base = f"{seg_base}c/"
            others = [
                k
                for k in self._iter_keys(seg_base)
                if k[len(seg_base) :].split("/")[0] in ("b", "w", "h")
                or (k.startswith(log_base) and "." in k[len(log_base) :])
            ]
            self._parallel([functools.partial(self._copy_object, k, src, dst, ns, offset) for k in others])
            self._parallel(
                [
                    functools.partial(
                        self._create_ignore,
                        lay.index_key(self.prefix, dst, ns, e.checkpoint_id, e.seq + offset),
                        encode_index(dst, ns, e.checkpoint_id, e.seq + offset),
                    )
                    for e in live
                    if not e.is_pointer and e.fmt < 2
                ]
            )
            for e in live:
                header = _moved(e.header, dst, offset)
                header["w"] = writer_token()
                if e.is_pointer and e.header.get("target") is not None:
                    header["target"] = int(e.header["target"]) + offset
                key = lay.log_key(self.prefix, dst, ns, e.seq + offset)
                if not self._create_exact(key, codec.encode(header, e.body)):
                    raise conflict(dst, ns, e.seq + offset, "a writer appended while copying")
                if not e.is_pointer:
                    self._fences.seen(dst, ns, e.checkpoint_id, e.seq + offset)

    def _copy_object(self, key: str, src: str, dst: str, ns: str, offset: int) -> None:
        data = self._get_or_none(key)
        if data is None:
            return
        env = codec.decode(data, key=key)
        header = env.header
        if header.get("thread") != src or header.get("ns") != ns:
            raise CorruptCheckpointError("object does not belong at this key", key=key)
        header = _moved(header, dst, offset)
        kind = header.get("k")
        if kind == "blob":
            new_key = lay.blob_key(self.prefix, dst, ns, str(header["ch"]), str(header["ver"]))
        elif kind == "wr":
            new_key = lay.write_key(
                self.prefix,
                dst,
                ns,
                str(header["cid"]),
                str(header["task"]),
                int(header["idx"]),
                int(header.get("n", 0)),
            )
        elif kind == "wrs":
            new_key = lay.writes_key(
                self.prefix, dst, ns, int(header["seq"]), str(header["task"]), int(header.get("n", 0))
            )
        elif kind == "val":
            new_key = lay.holder_key(self.prefix, dst, ns, int(header["seq"]))
        else:
            raise CorruptCheckpointError("unexpected object kind", key=key)
        self._create_ignore(new_key, codec.encode(header, env.body))
