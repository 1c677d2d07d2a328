"""The objects of the LangGraph layout: log entries, pointers, index entries, values, writes.

Encoding and checking only (no store requests). Every object is a cairnflow
envelope (:mod:`cairnflow.core.codec`) whose JSON header says what it is and
where it belongs; a header that does not match its key is refused with
:class:`~cairnflow.core.errors.CorruptCheckpointError`.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

from langgraph.checkpoint.base import writes_sort_key

from cairnflow.core import codec
from cairnflow.core.errors import CorruptCheckpointError

__all__ = [
    "Entry",
    "Loaded",
    "Typed",
    "Write",
    "check",
    "decode_entry",
    "decode_writes",
    "encode_entry_v2",
    "encode_index",
    "encode_pointer",
    "encode_writes",
    "metadata_matches",
    "write_order",
    "writer_token",
]

#: A serialized value with its type tag, as LangGraph's serializer protocol makes it.
Typed = tuple[str, bytes]
#: A pending write as read: (task path, task id, channel, index, typed value).
Write = tuple[str, str, str, int, Typed]


@dataclass(frozen=True)
class Entry:
    """One decoded log entry: a checkpoint, or a pointer (a tombstone when it names nothing)."""

    seq: int
    key: str
    header: dict[str, Any]
    body: bytes

    @property
    def is_pointer(self) -> bool:
        return bool(self.header.get("k") == "ptr")

    @property
    def is_tombstone(self) -> bool:
        return self.is_pointer and self.header.get("target") is None

    @property
    def checkpoint_id(self) -> str:
        return str(self.header["id"])

    @property
    def parent_id(self) -> str | None:
        parent = self.header.get("parent")
        return str(parent) if parent else None

    @property
    def fmt(self) -> int:
        """Entry format: 1 (values in ``b/`` objects, writes in ``w/``) or 2 (values inline)."""
        return int(self.header.get("fv", 1))

    @property
    def channels(self) -> list[str]:
        if self.fmt >= 2:
            return sorted(self.vals)
        return list(self.header.get("blobs", []))

    @property
    def vals(self) -> dict[str, list[Any]]:
        """Format 2: where each channel's value is (see :mod:`cairnflow.langgraph._values`)."""
        vals = self.header.get("vals", {})
        if not isinstance(vals, dict):
            raise CorruptCheckpointError("checkpoint entry has malformed value references", key=self.key)
        return vals

    def parts(self) -> tuple[Typed, Typed]:
        """(typed checkpoint without values, typed metadata)."""
        parts = self.header.get("parts")
        if not isinstance(parts, list) or len(parts) != 2:
            raise CorruptCheckpointError("checkpoint entry names no parts", key=self.key)
        (cp_type, cp_len), (md_type, md_len) = parts
        if cp_len + md_len != len(self.body) and not (self.fmt >= 2 and cp_len + md_len <= len(self.body)):
            raise CorruptCheckpointError("checkpoint parts do not match the body", key=self.key)
        return (str(cp_type), self.body[:cp_len]), (str(md_type), self.body[cp_len : cp_len + md_len])

    def inline(self, offset: int, length: int) -> bytes:
        """Bytes of an inline value (format 2), checked against the body."""
        if offset < 0 or length < 0 or offset + length > len(self.body):
            raise CorruptCheckpointError("value reference points outside the entry", key=self.key)
        return self.body[offset : offset + length]


@dataclass
class Loaded:
    """A checkpoint entry, its decoded checkpoint, and the typed bytes of its values and writes."""

    entry: Entry
    checkpoint: dict[str, Any]
    blobs: dict[str, list[Typed]]  # per channel: the value, or a snapshot and a suffix to concatenate
    writes: list[Write]


def writer_token() -> str:
    """A random token telling two writers' bytes apart. Not ``uuid.uuid4()``: tests (LangGraph's
    own among them) patch uuid4 to make a graph's ids deterministic, and must not see ours."""
    return secrets.token_hex(16)


def write_order(write: Write) -> tuple[str, str, int]:
    path, task, _, idx, _ = write
    return writes_sort_key(path, task, idx)


def metadata_matches(metadata: dict[str, Any], query: dict[str, Any]) -> bool:
    """Equality on top-level keys; a missing key never matches; ``True`` is not ``1``."""
    for name, wanted in query.items():
        if name not in metadata:
            return False
        value = metadata[name]
        if isinstance(value, bool) != isinstance(wanted, bool) or value != wanted:
            return False
    return True


def check(key: str, data: bytes, kind: str, **expected: Any) -> codec.Envelope:
    """Decode an object of ``kind`` whose header must carry ``expected``."""
    env = codec.decode(data, key=key)
    header = env.header
    if header.get("k") != kind:
        raise CorruptCheckpointError(f"expected a {kind!r} object", key=key)
    for name, value in expected.items():
        if header.get(name) != value:
            raise CorruptCheckpointError(
                "object does not belong at this key (copied from another thread or position?)", key=key
            )
    return env


def decode_entry(
    thread_id: str, ns: str, seq: int, data: bytes, key: str, kinds: tuple[str, ...] = ("cp", "ptr")
) -> Entry:
    env = codec.decode(data, key=key)
    header = env.header
    if header.get("k") not in kinds:
        raise CorruptCheckpointError("not a checkpoint log entry", key=key)
    if header.get("thread") != thread_id or header.get("ns") != ns or header.get("seq") != seq:
        raise CorruptCheckpointError(
            "object does not belong at this key (copied from another thread or position?)", key=key
        )
    return Entry(seq, key, header, env.body)


def encode_entry_v2(
    thread_id: str,
    ns: str,
    seq: int,
    checkpoint_id: str,
    parent: str | None,
    cp_typed: Typed,
    md_typed: Typed,
    vals: dict[str, list[Any]],
    inline: bytes,
    extra: dict[str, Any],
) -> bytes:
    """A format 2 entry: ``vals`` offsets count from the end of the metadata part."""
    base = len(cp_typed[1]) + len(md_typed[1])
    shifted: dict[str, list[Any]] = {}
    for ch, ref in vals.items():
        if ref[0] == "i":
            shifted[ch] = [ref[0], ref[1], ref[2] + base, ref[3]]
        elif ref[0] == "s":
            shifted[ch] = [ref[0], ref[1], ref[2], ref[3] + base, ref[4]]
        else:
            shifted[ch] = ref
    header: dict[str, Any] = {
        "k": "cp",
        "fv": 2,
        "thread": thread_id,
        "ns": ns,
        "seq": seq,
        "id": checkpoint_id,
        "parent": parent,
        "w": writer_token(),
        "t": int(time.time() * 1000),
        "parts": [[cp_typed[0], len(cp_typed[1])], [md_typed[0], len(md_typed[1])]],
        "vals": shifted,
        **extra,
    }
    return codec.encode(header, cp_typed[1] + md_typed[1] + inline)


def encode_writes(
    thread_id: str,
    ns: str,
    seq: int,
    checkpoint_id: str,
    task_id: str,
    task_path: str,
    version: int,
    items: list[tuple[str, int, Typed]],
) -> bytes:
    """Format 2: the pending writes of one put_writes call, one object."""
    header = {
        "k": "wrs",
        "fv": 2,
        "thread": thread_id,
        "ns": ns,
        "seq": seq,
        "cid": checkpoint_id,
        "task": task_id,
        "path": task_path,
        "n": version,
        "items": [[ch, idx, typed[0], len(typed[1])] for ch, idx, typed in items],
    }
    return codec.encode(header, b"".join(typed[1] for _, _, typed in items))


def decode_writes(key: str, data: bytes, thread_id: str, ns: str, seq: int) -> tuple[int, str, list[Write]]:
    """(version, checkpoint id, writes) of a format 2 writes object."""
    env = check(key, data, "wrs", thread=thread_id, ns=ns, seq=seq)
    h = env.header
    writes: list[Write] = []
    offset = 0
    for ch, idx, typ, length in h.get("items", []):
        if offset + int(length) > len(env.body):
            raise CorruptCheckpointError("pending writes do not match the body", key=key)
        typed = (str(typ), env.body[offset : offset + int(length)])
        writes.append((str(h.get("path", "")), str(h["task"]), str(ch), int(idx), typed))
        offset += int(length)
    return int(h.get("n", 0)), str(h.get("cid")), writes


def encode_index(thread_id: str, ns: str, checkpoint_id: str, seq: int) -> bytes:
    return codec.encode({"k": "idx", "thread": thread_id, "ns": ns, "id": checkpoint_id, "seq": seq}, b"")


def encode_pointer(thread_id: str, ns: str, seq: int, target: int | None) -> bytes:
    header: dict[str, Any] = {"k": "ptr", "thread": thread_id, "ns": ns, "seq": seq, "target": target}
    header["w"] = writer_token()
    header["t"] = int(time.time() * 1000)
    return codec.encode(header, b"")
