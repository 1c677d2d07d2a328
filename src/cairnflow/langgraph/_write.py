"""``put`` and ``put_writes``: one create-only object each (entry format 2).

A put writes one log entry holding the checkpoint, its metadata and the values of
the channels that changed (:mod:`._values`), at the position the fencing rule picks
(:mod:`._fence`). A put_writes call writes one object holding all of its writes,
right after its checkpoint's entry in the log listing.
"""

from __future__ import annotations

import builtins
import functools
import threading
from collections.abc import Callable, Sequence
from typing import Any, cast

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    get_checkpoint_metadata,
)

from cairnflow.core import codec
from cairnflow.core.errors import AlreadyExistsError, ConflictError
from cairnflow.core.store import CREATE
from cairnflow.langgraph import _layout as lay
from cairnflow.langgraph._bridge import Flight
from cairnflow.langgraph._entries import Entry, Typed, encode_entry_v2, encode_writes
from cairnflow.langgraph._fence import Target, conflict
from cairnflow.langgraph._io import LRU
from cairnflow.langgraph._load import Loader
from cairnflow.langgraph._values import Chain, digest, plan_values

__all__ = ["Writer"]

_APPEND_ATTEMPTS = 64
#: How long put_writes waits for a put of the same checkpoint still in flight in this saver.
_INFLIGHT_WAIT = 60.0


#: A put_writes call held until its checkpoint is stored: (task id, task path, writes).
_Deferred = tuple[str, str, builtins.list[tuple[str, int, Typed]]]


class Writer(Loader):
    """put / put_writes (a base of the saver)."""

    _chains: LRU  # (thread, ns, channel, version) -> Chain
    _loaded_lists: LRU  # (thread, ns, channel, version) -> (snapshot position, snapshot typed)
    _inflight: dict[tuple[str, str, str], Flight]
    _inflight_lock: threading.Lock
    _deferred: dict[tuple[str, str, str], builtins.list[_Deferred]]  # writes awaiting their put

    def _chain(self, thread_id: str, ns: str, channel: str, version: str) -> Chain | None:
        key = (thread_id, ns, channel, version)
        chain = self._chains.get(key)
        if chain is None:
            loaded = self._loaded_lists.get(key)
            if loaded is None:
                return None
            snap_seq, typed = loaded
            value = self.serde.loads_typed(typed)
            if type(value) is not list:
                return None
            chain = Chain(snap_seq, [digest(e) for e in value], len(typed[1]))
            self._chains.put(key, chain)
        return cast(Chain, chain)

    def _base_entry(self, thread_id: str, ns: str, parent: str | None, target: Target) -> Entry | None:
        """The entry whose values a put can reference: its parent's, if this saver holds it."""
        if parent is None:
            return None
        seq = self._fences.seq_of(thread_id, ns, parent)
        if seq is None:
            seq = self._fences.plan_seq(thread_id, ns) if target.exact is not None else None
        entry = self._cached_entry(thread_id, ns, seq) if seq is not None else None
        if entry is None or entry.is_pointer or entry.header.get("k") != "cp":
            return None
        return entry

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Store a checkpoint; ``config["configurable"]["checkpoint_id"]`` is its parent.

        One create-only PUT of a log entry holding the checkpoint, its metadata and the
        values of the channels whose version changed (1 round trip; + 1 LIST for a fork
        or a put this saver cannot place from memory). Where the entry goes is the
        fencing rule of :mod:`cairnflow.langgraph._fence`; a writer that lost its position
        gets :class:`~cairnflow.core.errors.ConflictError` and nothing becomes visible.
        """
        conf = config["configurable"]
        thread_id = self._thread(conf["thread_id"])
        ns = str(conf.get("checkpoint_ns") or "")
        parent = conf.get("checkpoint_id") or None
        checkpoint_id = str(checkpoint["id"])
        flight = (thread_id, ns, checkpoint_id)
        event = Flight()
        with self._inflight_lock:
            self._inflight[flight] = event
            deferred = self._deferred.pop(flight, [])
        try:
            return self._put(thread_id, ns, parent, checkpoint, config, metadata, deferred)
        finally:
            with self._inflight_lock:
                self._inflight.pop(flight, None)
            event.set()

    def _put(
        self,
        thread_id: str,
        ns: str,
        parent: str | None,
        checkpoint: Checkpoint,
        config: RunnableConfig,
        metadata: CheckpointMetadata,
        deferred: builtins.list[_Deferred],
    ) -> RunnableConfig:
        checkpoint_id = str(checkpoint["id"])
        copy: dict[str, Any] = dict(checkpoint)
        values: dict[str, Any] = copy.pop("channel_values")
        full_metadata = cast(dict[str, Any], get_checkpoint_metadata(config, metadata))
        extra: dict[str, Any] = {}
        run_id = full_metadata.get("run_id")
        if isinstance(run_id, str) and run_id:
            extra["run"] = run_id
        if full_metadata.get("counters_since_delta_snapshot"):
            extra["delta"] = True
        cp_typed = self.serde.dumps_typed(copy)
        md_typed = self.serde.dumps_typed(full_metadata)

        target = self._fences.target(thread_id, ns, parent)
        base: Entry | None = None
        if target.lookup and parent is not None:
            base = self._lookup(thread_id, ns, parent)
            target = Target(parent_seq=None if base is None else base.seq)
        base = base or self._base_entry(thread_id, ns, parent, target)
        base_versions = self._checkpoint_of(base).get("channel_versions", {}) if base is not None else {}
        plan = plan_values(
            self.serde,
            values,
            dict(checkpoint["channel_versions"]),
            base,
            base_versions,
            lambda ch, ver: self._chain(thread_id, ns, ch, ver),
        )
        if base is not None:
            extra["pseq"] = base.seq

        def commit(seq: int) -> bool:
            data = encode_entry_v2(
                thread_id, ns, seq, checkpoint_id, parent, cp_typed, md_typed, plan.vals, plan.inline, extra
            )
            if self._create_exact(lay.log_key(self.prefix, thread_id, ns, seq), data):
                self._remember(self._entry(thread_id, ns, seq, data))
                return True
            return False

        if target.exact is not None:
            seq = target.exact
            # Writes that arrived before their checkpoint go next to it, in the same round trip
            # (if the entry loses its position, they carry our checkpoint id and are ignored).
            calls: builtins.list[Callable[[], object]] = [functools.partial(commit, seq)]
            calls += self._flushes(thread_id, ns, seq, checkpoint_id, deferred)
            if not self._parallel(calls)[0]:
                raise conflict(thread_id, ns, seq, f"another checkpoint follows {parent!r}")
            deferred = []
        else:
            head = self._head_seq(thread_id, ns)
            # A parent that is still the head is continued exactly; otherwise this is a fork.
            strict = target.parent_seq is not None and head == target.parent_seq
            for _ in range(_APPEND_ATTEMPTS):
                seq = 0 if head is None else head + 1
                if commit(seq):
                    break
                if strict:
                    raise conflict(thread_id, ns, seq, f"another checkpoint follows {parent!r}")
                head = self._head_seq(thread_id, ns)
            else:
                raise conflict(thread_id, ns, seq, "too many concurrent appends")
        for (ch, version), chain in plan.chains.items():
            self._chains.put(
                (thread_id, ns, ch, version),
                Chain(seq if chain.snap_seq is None else chain.snap_seq, chain.digests, chain.snap_bytes),
            )
        self._fences.wrote(thread_id, ns, checkpoint_id, seq)
        self._parallel(self._flushes(thread_id, ns, seq, checkpoint_id, deferred))
        return self._config(thread_id, ns, checkpoint_id)

    # ------------------------------------------------------------------ put_writes

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """Store a task's pending writes for a checkpoint: one create-only object per call,
        right after the checkpoint's entry in the log.

        Per (task id, index), the first regular write recorded wins (a task's result is
        never recorded twice) and the last write of a special channel (``__error__``,
        ``__interrupt__``, ...) wins: a second call for the same task adds a new version
        (1 LIST + 1 PUT) that readers merge. Writes for a checkpoint this saver has not
        stored yet (LangGraph submits a put and the next writes concurrently) are held
        until its put, which stores them in the same round trip.
        """
        thread_id, ns = self._config_scope(config)
        checkpoint_id = str(config["configurable"]["checkpoint_id"])
        flight = (thread_id, ns, checkpoint_id)
        items: builtins.list[tuple[str, int, Typed]] = [
            (channel, WRITES_IDX_MAP.get(channel, position), self.serde.dumps_typed(value))
            for position, (channel, value) in enumerate(writes)
        ]
        searched = False
        for _ in range(_APPEND_ATTEMPTS):
            with self._inflight_lock:
                event = self._inflight.get(flight)
                known = self._fences.seq_of(thread_id, ns, checkpoint_id) is not None
                if (
                    not known
                    and event is None
                    and (searched or self._fences.is_future(thread_id, ns, checkpoint_id))
                ):
                    self._deferred.setdefault(flight, []).append((task_id, task_path, items))
                    return
            if event is not None:
                event.wait(_INFLIGHT_WAIT)
                continue
            entry = self._lookup(thread_id, ns, checkpoint_id)
            if entry is None:
                searched = True
                continue
            if entry.fmt < 2:
                self._put_writes_v1(thread_id, ns, checkpoint_id, writes, task_id, task_path)
            else:
                self._write_task(thread_id, ns, entry.seq, checkpoint_id, task_id, task_path, items)
            return
        raise ConflictError(f"checkpoint {checkpoint_id!r} keeps changing while writing task {task_id!r}")

    def _flushes(
        self, thread_id: str, ns: str, seq: int, checkpoint_id: str, deferred: builtins.list[_Deferred]
    ) -> builtins.list[Callable[[], object]]:
        """One call per task writing its held put_writes calls in their order (first wins)."""
        by_task: dict[str, builtins.list[_Deferred]] = {}
        for item in deferred:
            by_task.setdefault(item[0], []).append(item)

        def flush(items: builtins.list[_Deferred]) -> None:
            for task_id, task_path, writes in items:
                self._write_task(thread_id, ns, seq, checkpoint_id, task_id, task_path, writes)

        return [functools.partial(flush, items) for items in by_task.values()]

    def _write_task(
        self,
        thread_id: str,
        ns: str,
        seq: int,
        checkpoint_id: str,
        task_id: str,
        task_path: str,
        items: builtins.list[tuple[str, int, Typed]],
    ) -> None:
        version = 0
        for _ in range(_APPEND_ATTEMPTS):
            key = lay.writes_key(self.prefix, thread_id, ns, seq, task_id, version)
            data = encode_writes(thread_id, ns, seq, checkpoint_id, task_id, task_path, version, items)
            try:
                self._retry(functools.partial(self.store.put, key, data, CREATE))
                return
            except AlreadyExistsError:
                if self._get_or_none(key) == data:
                    return  # our own attempt landed before its answer was lost
                slot = key[: key.rindex(".") + 1]
                infos = self._list(slot, limit=1)
                version = (
                    (lay.log_name(infos[0].key[len(lay.log_prefix(self.prefix, thread_id, ns)) :])[2] + 1)
                    if infos
                    else version + 1
                )
        raise ConflictError(f"too many concurrent writes of task {task_id!r} on checkpoint {checkpoint_id!r}")

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

    def _put_writes_v1(
        self,
        thread_id: str,
        ns: str,
        checkpoint_id: str,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str,
    ) -> None:
        """Format 1 writes (for a format 1 checkpoint, or one not stored yet): one object per
        (task id, index); a special channel's write is overwritten as a new version."""
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
