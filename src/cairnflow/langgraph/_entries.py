"""The objects of the LangGraph layout: log entries, pointers, index entries, values, writes.

Encoding and checking only (no store requests). Every object is a cairnflow
envelope (:mod:`cairnflow.core.codec`) whose JSON header says what it is and
where it belongs; a header that does not match its key is refused with
:class:`~cairnflow.core.errors.CorruptCheckpointError`.
"""

from __future__ import annotations

import time
import uuid
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
    "encode_entry",
    "encode_index",
    "encode_pointer",
    "metadata_matches",
    "write_order",
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
    def channels(self) -> list[str]:
        return list(self.header.get("blobs", []))

    def parts(self) -> tuple[Typed, Typed]:
        """(typed checkpoint without values, typed metadata)."""
        parts = self.header.get("parts")
        if not isinstance(parts, list) or len(parts) != 2:
            raise CorruptCheckpointError("checkpoint entry names no parts", key=self.key)
        (cp_type, cp_len), (md_type, md_len) = parts
        if cp_len + md_len != len(self.body):
            raise CorruptCheckpointError("checkpoint parts do not match the body", key=self.key)
        return (str(cp_type), self.body[:cp_len]), (str(md_type), self.body[cp_len:])


@dataclass
class Loaded:
    """A checkpoint entry, its decoded checkpoint, and the typed bytes of its values and writes."""

    entry: Entry
    checkpoint: dict[str, Any]
    blobs: dict[str, Typed]
    writes: list[Write]


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


def decode_entry(thread_id: str, ns: str, seq: int, data: bytes, key: str) -> Entry:
    env = codec.decode(data, key=key)
    header = env.header
    if header.get("k") not in ("cp", "ptr"):
        raise CorruptCheckpointError("not a checkpoint log entry", key=key)
    if header.get("thread") != thread_id or header.get("ns") != ns or header.get("seq") != seq:
        raise CorruptCheckpointError(
            "object does not belong at this key (copied from another thread or position?)", key=key
        )
    return Entry(seq, key, header, env.body)


def encode_entry(
    thread_id: str,
    ns: str,
    seq: int,
    checkpoint_id: str,
    parent: str | None,
    cp_typed: Typed,
    md_typed: Typed,
    channels: list[str],
    run_id: str | None,
    delta: bool,
) -> bytes:
    header: dict[str, Any] = {
        "k": "cp",
        "thread": thread_id,
        "ns": ns,
        "seq": seq,
        "id": checkpoint_id,
        "parent": parent,
        "w": uuid.uuid4().hex,
        "t": int(time.time() * 1000),
        "parts": [[cp_typed[0], len(cp_typed[1])], [md_typed[0], len(md_typed[1])]],
        "blobs": channels,
    }
    if run_id is not None:
        header["run"] = run_id
    if delta:
        header["delta"] = True
    return codec.encode(header, cp_typed[1] + md_typed[1])


def encode_index(thread_id: str, ns: str, checkpoint_id: str, seq: int) -> bytes:
    return codec.encode({"k": "idx", "thread": thread_id, "ns": ns, "id": checkpoint_id, "seq": seq}, b"")


def encode_pointer(thread_id: str, ns: str, seq: int, target: int | None) -> bytes:
    header: dict[str, Any] = {"k": "ptr", "thread": thread_id, "ns": ns, "seq": seq, "target": target}
    header["w"] = uuid.uuid4().hex
    header["t"] = int(time.time() * 1000)
    return codec.encode(header, b"")
