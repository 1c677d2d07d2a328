"""Loading checkpoints: channel values (inline, by reference, suffixes, format 1 objects),
pending writes (format 2 objects next to their entry, format 1 objects) and tuples.

Values and writes of several checkpoints are fetched in parallel rounds; entries and
writes objects are immutable, so a saver fetches each once.
"""

from __future__ import annotations

import builtins
import functools
from collections.abc import Callable, Sequence
from typing import Any, cast

from langgraph.checkpoint.base import Checkpoint, CheckpointMetadata, CheckpointTuple

from cairnflow.core.errors import CorruptCheckpointError, NotFoundError
from cairnflow.langgraph import _layout as lay
from cairnflow.langgraph._entries import (
    Entry,
    Loaded,
    Typed,
    Write,
    check,
    decode_writes,
    write_order,
)
from cairnflow.langgraph._read import Reader
from cairnflow.langgraph._values import load_parts, needed_positions, value_parts

__all__ = ["Loader"]


class Loader(Reader):
    """Values, writes and tuples (a base class of :class:`~cairnflow.langgraph.LangGraphSaver`)."""

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
