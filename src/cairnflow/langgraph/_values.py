"""Channel values in format 2 entries: inline, by reference, or as a suffix of a list.

A format 2 entry's header maps each channel that has a value to a reference:

* ``["i", type, offset, length]``: the value is inline in this entry's body;
* ``["s", base, type, offset, length]``: the value is a list: the inline value of
  the entry at position ``base`` (a *snapshot*) followed by the elements inline here
  (the *suffix*: every element appended since the snapshot);
* ``["r", seq, base]``: unchanged since the entry at ``seq``, whose own reference is
  ``i`` or ``s`` (then ``base`` names its snapshot, so both are fetched at once);
* ``["b", version]``: unchanged since a format 1 entry: the ``b/`` object.

So a value costs at most two objects besides the entry. A put stores inline only the
channels whose version changed; an append-only list channel (``add_messages``,
``operator.add``) stores only its suffix while the list still starts with the
snapshot's elements, compared *serialized* (a node may mutate an element in place)
and by digest (so this works with encrypting serializers too), and while the suffix
stays under :func:`suffix_limit` bytes; otherwise it writes a new snapshot.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from langgraph.checkpoint.serde.base import SerializerProtocol
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

from cairnflow.core.errors import CorruptCheckpointError
from cairnflow.langgraph._entries import Entry, Typed

__all__ = [
    "Chain",
    "ValuePlan",
    "load_parts",
    "needed_positions",
    "plan_values",
    "resolved_ref",
    "shift_ref",
    "suffix_limit",
    "value_parts",
]

_MIN_SUFFIX = 4 * 1024
_MAX_SUFFIX = 256 * 1024


def suffix_limit(snapshot_bytes: int) -> int:
    """How many serialized bytes a list's suffix may grow to before a new snapshot.

    Every put of the list stores the whole suffix, and a snapshot costs its size once
    per cycle: with ``m`` bytes appended per put, a limit ``L`` costs about ``L / 2 +
    snapshot * m / L`` bytes per put, least near ``L = sqrt(snapshot * m)``. Taking
    ``m`` as 512 bytes (a chat message) keeps a 1,000-turn chat near 40 KiB per turn.
    """
    return max(_MIN_SUFFIX, min(_MAX_SUFFIX, math.isqrt(snapshot_bytes * 512)))


_PLAIN = JsonPlusSerializer()


def digest(element: Any) -> bytes:
    """A digest of one list element as the plain (unencrypted) serializer writes it."""
    typ, data = _PLAIN.dumps_typed(element)
    return hashlib.blake2b(typ.encode() + b"\x00" + data, digest_size=16).digest()


@dataclass
class Chain:
    """What a list value's next version needs to store only a suffix."""

    snap_seq: int | None  # the entry holding the snapshot (None: the put being written)
    digests: list[bytes]  # of the snapshot's elements
    snap_bytes: int  # serialized size of the snapshot


@dataclass
class ValuePlan:
    """The value references of one put, before its position is known."""

    vals: dict[str, list[Any]]  # offsets relative to ``inline``
    inline: bytes
    chains: dict[tuple[str, str], Chain]  # (channel, version) -> chain of the new values


def resolved_ref(entry: Entry, channel: str, version: str) -> list[Any]:
    """A reference to ``channel``'s value (at ``version``) in ``entry``, usable from a later entry."""
    if entry.fmt < 2:
        return ["b", version]
    ref = entry.vals[channel]
    if ref[0] == "i":
        return ["r", entry.seq, None]
    if ref[0] == "s":
        return ["r", entry.seq, int(ref[1])]
    return list(ref)


def plan_values(
    serde: SerializerProtocol,
    values: dict[str, Any],
    versions: dict[str, Any],
    base: Entry | None,
    base_versions: dict[str, Any],
    chains: Callable[[str, str], Chain | None],
) -> ValuePlan:
    """References for every channel with a value: reused from ``base`` where the version
    is unchanged, else inline (a suffix for an append-only list)."""
    vals: dict[str, list[Any]] = {}
    parts: list[bytes] = []
    offset = 0
    new_chains: dict[tuple[str, str], Chain] = {}
    base_channels = set(base.channels) if base is not None else set()
    for ch in sorted(ch for ch in versions if ch in values):
        version = str(versions[ch])
        prior = base_versions.get(ch)
        if base is not None and ch in base_channels and prior is not None and str(prior) == version:
            vals[ch] = resolved_ref(base, ch, version)
            continue
        value = values[ch]
        chain = chains(ch, str(prior)) if prior is not None else None
        ref: list[Any] | None = None
        new_chain: Chain | None = None
        if type(value) is list:
            try:
                ref, new_chain = _suffix_or_snapshot(serde, value, chain, offset)
            except Exception:  # noqa: BLE001 - an element the plain serializer cannot digest: store it whole
                ref, new_chain = None, None
            if new_chain is not None:
                new_chains[(ch, version)] = new_chain
        if ref is None:
            typ, data = serde.dumps_typed(value)
            ref = ["i", typ, offset, len(data)]
            parts.append(data)
            if new_chain is not None:
                new_chain.snap_bytes = len(data)
        else:
            parts.append(ref.pop())  # the suffix bytes ride at the end of the ref
        vals[ch] = ref
        offset += len(parts[-1])
    return ValuePlan(vals, b"".join(parts), new_chains)


def _suffix_or_snapshot(
    serde: SerializerProtocol, value: list[Any], chain: Chain | None, offset: int
) -> tuple[list[Any] | None, Chain | None]:
    """A suffix reference (its bytes appended last) when ``value`` extends the chain's
    snapshot; else None and the chain the whole value starts."""
    if chain is not None and chain.snap_seq is not None and len(value) >= len(chain.digests):
        n = len(chain.digests)
        if [digest(e) for e in value[:n]] == chain.digests:
            typ, data = serde.dumps_typed(value[n:])
            if len(data) <= suffix_limit(chain.snap_bytes):
                return ["s", chain.snap_seq, typ, offset, len(data), data], chain
    return None, Chain(None, [digest(e) for e in value], 0)


def shift_ref(ref: list[Any], offset: int) -> list[Any]:
    """A reference moved with its thread to log positions ``offset`` higher (copy_thread)."""
    if ref[0] == "s":
        return [ref[0], int(ref[1]) + offset, *ref[2:]]
    if ref[0] == "r":
        return [ref[0], int(ref[1]) + offset, None if ref[2] is None else int(ref[2]) + offset]
    return list(ref)


def needed_positions(entry: Entry) -> set[int]:
    """Other log positions whose entries hold this entry's values."""
    seqs: set[int] = set()
    if entry.fmt < 2:
        return seqs
    for ref in entry.vals.values():
        if ref[0] == "s":
            seqs.add(int(ref[1]))
        elif ref[0] == "r":
            seqs.add(int(ref[1]))
            if ref[2] is not None:
                seqs.add(int(ref[2]))
    return seqs


def value_parts(entry: Entry, channel: str, entries: Callable[[int], Entry]) -> list[Typed] | tuple[str, str]:
    """The typed parts of a value (one, or a snapshot and a suffix to concatenate), or
    ``("b", version)`` for a format 1 object still to be read."""
    ref = entry.vals[channel]
    kind = ref[0]
    if kind == "i":
        return [(str(ref[1]), entry.inline(int(ref[2]), int(ref[3])))]
    if kind == "s":
        base = entries(int(ref[1]))
        base_ref = base.vals.get(channel) if base.fmt >= 2 else None
        if not base_ref or base_ref[0] != "i":
            raise CorruptCheckpointError(f"snapshot of channel {channel!r} is missing", key=base.key)
        snapshot = (str(base_ref[1]), base.inline(int(base_ref[2]), int(base_ref[3])))
        return [snapshot, (str(ref[2]), entry.inline(int(ref[3]), int(ref[4])))]
    if kind == "r":
        target = entries(int(ref[1]))
        target_ref = target.vals.get(channel) if target.fmt >= 2 else None
        if not target_ref or target_ref[0] not in ("i", "s"):
            raise CorruptCheckpointError(f"value of channel {channel!r} is missing", key=target.key)
        return value_parts(target, channel, entries)
    if kind == "b":
        return ("b", str(ref[1]))
    raise CorruptCheckpointError(f"unknown value reference {kind!r} for channel {channel!r}", key=entry.key)


def load_parts(serde: SerializerProtocol, parts: list[Typed]) -> Any:
    """Decode a value from its parts (a snapshot plus a suffix is their concatenation)."""
    value = serde.loads_typed(parts[0])
    for extra in parts[1:]:
        value = [*value, *serde.loads_typed(extra)]
    return value
