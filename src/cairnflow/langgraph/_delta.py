"""``get_delta_channel_history``: the writes and seed LangGraph's ``DeltaChannel`` rebuilds from."""

from __future__ import annotations

import builtins
import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import DeltaChannelHistory, PendingWrite, get_checkpoint_id

from cairnflow.langgraph import _layout as lay
from cairnflow.langgraph._entries import Entry, Write, write_order
from cairnflow.langgraph._load import Loader
from cairnflow.langgraph._values import load_parts, needed_positions, value_parts

__all__ = ["DeltaHistory"]

_PAGE = 128


class DeltaHistory(Loader):
    """The delta-channel walk (a base of the saver)."""

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
        target: Entry | None
        if checkpoint_id:
            target = self._lookup(thread_id, ns, checkpoint_id)
        else:
            head = self._head(thread_id, ns)
            target = head[2] if head else None
        result: dict[str, DeltaChannelHistory] = {ch: {"writes": []} for ch in channels}
        if target is None:
            return result
        listed: dict[int, builtins.list[str]] = {}
        chain = self._ancestors(thread_id, ns, target, set(channels), listed)
        seeds = [(entry, ch) for entry, seeded in chain for ch in sorted(seeded)]
        calls: builtins.list[Callable[[], Any]] = [
            functools.partial(self._writes_of, thread_id, ns, e, listed.get(e.seq) if e.fmt >= 2 else None)
            for e, _ in chain
        ]
        calls += [functools.partial(self._seed, thread_id, ns, e, ch) for e, ch in seeds]
        results = self._parallel(calls)
        per_ancestor = cast(builtins.list[builtins.list[Write]], results[: len(chain)])
        seed_values = results[len(chain) :]
        live = set(channels)
        collected: dict[str, builtins.list[PendingWrite]] = {ch: [] for ch in channels}
        for (_, seeded), writes in zip(chain, per_ancestor, strict=True):
            for _, task, ch, _, typed in sorted(writes, key=write_order, reverse=True):
                if ch in live:
                    collected[ch].append((task, ch, self.serde.loads_typed(typed)))
            live -= seeded
        for (_, ch), value in zip(seeds, seed_values, strict=True):
            result[ch]["seed"] = value
        for ch in channels:
            result[ch]["writes"] = builtins.list(reversed(collected[ch]))
        return result

    def _seed(self, thread_id: str, ns: str, entry: Entry, channel: str) -> Any:
        """The value of ``channel`` in ``entry``."""
        if entry.fmt >= 2:
            holders = self._entries_at(thread_id, ns, needed_positions(entry) - {entry.seq})
            holders[entry.seq] = entry
            parts = value_parts(entry, channel, holders.__getitem__)
            if isinstance(parts, builtins.list):
                return load_parts(self.serde, parts)
            version = parts[1]
        else:
            version = str(self._checkpoint_of(entry).get("channel_versions", {})[channel])
        return self.serde.loads_typed(self._read_blob(thread_id, ns, channel, version))

    def _ancestors(
        self,
        thread_id: str,
        ns: str,
        target: Entry,
        remaining: set[str],
        writes: dict[int, builtins.list[str]],
    ) -> builtins.list[tuple[Entry, set[str]]]:
        """The parent chain of ``target`` up to a value of every channel, nearest first,
        each with the channels whose seed it holds (pending-write keys seen go to ``writes``)."""
        window: dict[str, Entry] = {}
        cursor: str | None = lay.log_key(self.prefix, thread_id, ns, target.seq)

        def lookup(wanted: str) -> Entry | None:
            nonlocal cursor
            while wanted not in window and cursor is not None:
                page, cursor = self._page_below(thread_id, ns, cursor, _PAGE, writes)
                for e in page:
                    if not e.is_pointer:
                        window.setdefault(e.checkpoint_id, e)
            if wanted not in window:  # off the line (a fork's parent): jump there by id
                found = self._lookup(thread_id, ns, wanted)
                if found is None:
                    return None
                window[wanted] = found
                cursor = lay.log_key(self.prefix, thread_id, ns, found.seq)
            return window[wanted]

        chain: builtins.list[tuple[Entry, set[str]]] = []
        parent = target.parent_id
        while parent and remaining:
            entry = lookup(parent)
            if entry is None:
                break
            seeded = remaining & set(entry.channels)
            chain.append((entry, seeded))
            remaining = remaining - seeded
            parent = entry.parent_id
        return chain

    async def aget_delta_channel_history(
        self, *, config: RunnableConfig, channels: Sequence[str]
    ) -> Mapping[str, DeltaChannelHistory]:
        return await self._call(self.get_delta_channel_history, config=config, channels=channels)
