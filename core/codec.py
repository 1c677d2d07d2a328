"""The checkpoint object envelope (format version 1).

::

    offset  size  field
    0       3     magic b"CFW"
    3       1     format version (1)
    4       1     flags (bit 0: body is encrypted; other bits must be 0)
    5       4     header length H, big-endian
    9       H     header: UTF-8 JSON object (thread, seq, kind, writer token, ...)
    9+H     B     body: the serializer's bytes (or ciphertext)
    end-32  32    SHA-256 of every byte before it

The header is readable without the serializer (operators' tools list
statuses from it); the checksum covers header and body, so truncation,
bit rot and tampering by a party without the key all fail loudly with
:class:`CorruptCheckpointError` naming the object. A newer format version
fails with :class:`UnsupportedFormatError` rather than being misread.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import struct
from dataclasses import dataclass
from typing import Any

from cairnflow.core.errors import CorruptCheckpointError, UnsupportedFormatError

__all__ = ["FORMAT_VERSION", "Envelope", "decode", "encode"]

MAGIC = b"CFW"
FORMAT_VERSION = 1
FLAG_ENCRYPTED = 0x01
_KNOWN_FLAGS = FLAG_ENCRYPTED
_FIXED = struct.Struct(">3sBBI")
_DIGEST = 32


@dataclass(frozen=True)
class Envelope:
    header: dict[str, Any]
    body: bytes
    flags: int = 0
    header_bytes: bytes = b""
    """The header exactly as stored: the associated data of an encrypted body."""


def encode_header(header: dict[str, Any]) -> bytes:
    """The canonical bytes of a header (sorted keys, no spaces)."""
    return json.dumps(header, separators=(",", ":"), sort_keys=True).encode()


def encode(header: dict[str, Any] | bytes, body: bytes, flags: int = 0) -> bytes:
    """Assemble an object; ``header`` may be given already encoded (see :func:`encode_header`)."""
    head = header if isinstance(header, bytes) else encode_header(header)
    data = _FIXED.pack(MAGIC, FORMAT_VERSION, flags, len(head)) + head + body
    return data + hashlib.sha256(data).digest()


def decode(data: bytes, *, key: str | None = None) -> Envelope:
    """Check and split an object; every failure names ``key``."""
    if len(data) < _FIXED.size + _DIGEST:
        raise CorruptCheckpointError(f"object too short to be a checkpoint ({len(data)} bytes)", key=key)
    magic, version, flags, head_len = _FIXED.unpack_from(data)
    if magic != MAGIC:
        raise CorruptCheckpointError("not a cairnflow checkpoint (bad magic)", key=key)
    if version != FORMAT_VERSION:
        raise UnsupportedFormatError(
            f"checkpoint format version {version}; this release reads version {FORMAT_VERSION}"
            + (" (upgrade cairnflow)" if version > FORMAT_VERSION else ""),
            key=key,
        )
    payload, digest = data[:-_DIGEST], data[-_DIGEST:]
    if not hmac.compare_digest(hashlib.sha256(payload).digest(), digest):
        raise CorruptCheckpointError("checksum mismatch (truncated or altered object)", key=key)
    if flags & ~_KNOWN_FLAGS:
        raise UnsupportedFormatError(f"unknown flags {flags:#x}", key=key)
    end = _FIXED.size + head_len
    if end > len(payload):
        raise CorruptCheckpointError("header length exceeds object", key=key)
    head = payload[_FIXED.size : end]
    try:
        header = json.loads(head)
    except ValueError as exc:
        raise CorruptCheckpointError(f"header is not JSON: {exc}", key=key) from None
    if not isinstance(header, dict):
        raise CorruptCheckpointError("header is not a JSON object", key=key)
    return Envelope(header, payload[end:], flags, head)
