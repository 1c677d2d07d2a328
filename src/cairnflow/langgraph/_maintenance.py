"""Deleting, pruning and copying LangGraph threads without breaking what survives.

Deletes first append a tombstone (or a pointer) at the head of a log, so a writer
still holding the old head is fenced (ConflictError) instead of resurrecting the
thread; then they remove objects, keeping every value a surviving checkpoint names.
"""

from __future__ import annotations

import builtins
import functools
import uuid
from collections.abc import Sequence

from cairnflow.core import codec
from cairnflow.core.errors import CorruptCheckpointError, PruneRefusedError
from cairnflow.langgraph import _layout as lay
from cairnflow.langgraph._entries import Entry, check, encode_index, encode_pointer
from cairnflow.langgraph._fence import conflict
from cairnflow.langgraph._io import LRU
from cairnflow.langgraph._read import Reader

__all__ = ["Maintenance"]

_ATTEMPTS = 64


def _above_tombstone(entries: builtins.list[Entry]) -> builtins.list[Entry]:
    """The entries newer than the newest tombstone (entries are newest first)."""
    for i, e in enumerate(entries):
        if e.is_tombstone:
            return entries[:i]
    return entries


def _run_is(run_id: str, memo: tuple[str, str, str]) -> bool:
    return memo[0] == run_id


class Maintenance(Reader):
    """delete_thread, delete_for_runs, prune and copy_thread (a base of the saver)."""

    _markers: LRU

    def _write_marker(self, run_id: str, thread_id: str, ns: str) -> None:
        """Record "run has checkpoints in (thread, ns)" once per process (for delete_for_runs)."""
        memo = (run_id, thread_id, ns)
        if self._markers.get(memo):
            return
        key = lay.run_marker_key(self.prefix, run_id, thread_id, ns)
        marker = {"k": "run", "run": run_id, "thread": thread_id, "ns": ns}
        self._create_ignore(key, codec.encode(marker, b""))
        self._markers.put(memo, True)

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
        doomed_ids = {e.checkpoint_id for e in doomed if not e.is_pointer} - kept_ids
        for cid in doomed_ids:
            keys.update(self._iter_keys(lay.index_prefix(self.prefix, thread_id, ns, cid)))
            keys.update(self._iter_keys(lay.writes_prefix(self.prefix, thread_id, ns, cid)))
        self._delete_keys(sorted(keys), lay.ns_prefix(self.prefix, thread_id, ns))
        self._fences.forget(thread_id, ns, doomed_ids)

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
            markers = builtins.list(self._iter_keys(base))
            scopes: set[tuple[str, str]] = set()
            datas = self._parallel([functools.partial(self._get_or_none, k) for k in markers])
            for key, data in zip(markers, datas, strict=True):
                if data is not None:
                    header = check(key, data, "run", run=run_id).header
                    scopes.add((str(header["thread"]), str(header["ns"])))
            for thread_id, ns in sorted(scopes):
                self._delete_runs_in(thread_id, ns, runs)
            self._parallel([functools.partial(self._delete, k) for k in markers])
            self._markers.discard_where(functools.partial(_run_is, run_id))

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
            others = [k for k in self._iter_keys(seg_base) if k[len(seg_base) :].split("/")[0] in ("b", "w")]
            self._parallel([functools.partial(self._copy_object, k, src, dst, ns) for k in others])
            runs = {str(e.header["run"]) for e in live if e.header.get("run")}
            index_jobs = [
                functools.partial(
                    self._create_ignore,
                    lay.index_key(self.prefix, dst, ns, e.checkpoint_id, e.seq + offset),
                    encode_index(dst, ns, e.checkpoint_id, e.seq + offset),
                )
                for e in live
                if not e.is_pointer
            ]
            marker_jobs = [functools.partial(self._write_marker, r, dst, ns) for r in runs]
            self._parallel([*index_jobs, *marker_jobs])
            for e in live:
                header = {**e.header, "thread": dst, "seq": e.seq + offset, "w": uuid.uuid4().hex}
                if e.is_pointer and e.header.get("target") is not None:
                    header["target"] = int(e.header["target"]) + offset
                key = lay.log_key(self.prefix, dst, ns, e.seq + offset)
                if not self._create_exact(key, codec.encode(header, e.body)):
                    raise conflict(dst, ns, e.seq + offset, "a writer appended while copying")
                if not e.is_pointer:
                    self._fences.seen(dst, ns, e.checkpoint_id, e.seq + offset)

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
