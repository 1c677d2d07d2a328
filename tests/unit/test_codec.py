"""The envelope: what is written, and every way a read refuses an object."""

from __future__ import annotations

import hashlib
import struct

import pytest

from cairnflow.core import codec
from cairnflow.core.errors import CorruptCheckpointError, UnsupportedFormatError

HEADER = {"seq": 0, "thread": "t"}


def test_layout_is_magic_version_flags_length_header_body_digest() -> None:
    data = codec.encode(HEADER, b"BODY")
    head = b'{"seq":0,"thread":"t"}'  # sorted keys, no spaces
    payload = b"CFW" + bytes([1, 0]) + struct.pack(">I", len(head)) + head + b"BODY"
    assert data == payload + hashlib.sha256(payload).digest()


def test_round_trip_keeps_flags_and_the_exact_header_bytes() -> None:
    head = codec.encode_header({"b": 1, "a": [1, 2]})
    env = codec.decode(codec.encode(head, b"xyz", codec.FLAG_ENCRYPTED), key="k")
    assert env.header == {"a": [1, 2], "b": 1}
    assert env.body == b"xyz" and env.flags == codec.FLAG_ENCRYPTED and env.header_bytes == head


def _reframe(
    head: bytes, body: bytes = b"", *, version: int = 1, flags: int = 0, length: int | None = None
) -> bytes:
    payload = b"CFW" + bytes([version, flags]) + struct.pack(">I", len(head) if length is None else length)
    payload += head + body
    return payload + hashlib.sha256(payload).digest()


@pytest.mark.parametrize(
    ("data", "error", "message"),
    [
        (b"", CorruptCheckpointError, "too short"),
        (b"CFW\x01" + bytes(40), CorruptCheckpointError, "checksum"),
        (_reframe(b"{}").replace(b"CFW", b"XYZ", 1), CorruptCheckpointError, "bad magic"),
        (_reframe(b"{}", version=2), UnsupportedFormatError, "upgrade cairnflow"),
        (_reframe(b"{}", version=0), UnsupportedFormatError, "version 0"),
        (_reframe(b"{}", flags=0x02), UnsupportedFormatError, "unknown flags"),
        (_reframe(b"{}", length=999), CorruptCheckpointError, "header length exceeds"),
        (_reframe(b"{not json"), CorruptCheckpointError, "not JSON"),
        (_reframe(b"[1]"), CorruptCheckpointError, "not a JSON object"),
    ],
)
def test_every_refusal_is_typed_and_names_the_key(data: bytes, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message) as info:
        codec.decode(data, key="the/key")
    assert isinstance(info.value, CorruptCheckpointError) and info.value.key == "the/key"


@pytest.mark.parametrize("position", [0, 5, 9, -1, -33])
def test_any_flipped_byte_fails(position: int) -> None:
    data = bytearray(codec.encode(HEADER, b"body"))
    data[position] ^= 0x01
    with pytest.raises(CorruptCheckpointError):
        codec.decode(bytes(data))


def test_truncation_fails() -> None:
    data = codec.encode(HEADER, b"body")
    for cut in (1, 4, len(data) // 2):
        with pytest.raises(CorruptCheckpointError):
            codec.decode(data[:-cut])
