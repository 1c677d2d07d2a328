"""Key layout of the checkpoint log (format version 1).

::

    {prefix}v1/threads/{thread}/{inverted seq}

* ``{thread}`` is the thread id, percent-encoded byte by byte: lowercase
  ASCII letters, digits, ``-`` and ``_`` stay as they are, every other byte
  becomes ``%XX`` with uppercase hex. The encoding is injective, contains no
  ``/`` or ``.``, so no id can escape its prefix (``..``, ``a/b``) or collide
  with another (``a`` vs ``a/b``, ``a%2F`` vs ``a/``), and it stays
  injective on case-insensitive file systems (letters that could fold only
  ever appear as escapes, escapes are always uppercase).
* ``{inverted seq}`` is ``MAX_SEQ - seq`` as 12 decimal digits, so that an
  ascending listing of a thread's prefix yields its newest checkpoint first:
  finding the head of a thread is one ``LIST`` with a limit of 1, whatever
  the history length.

:func:`escape_bytes` and :func:`encode_inverted` / :func:`parse_inverted` are
shared by every key layout (this one and the LangGraph checkpointer's).
"""

from __future__ import annotations

from cairnflow.core.errors import InvalidThreadIdError

__all__ = [
    "FORMAT_PREFIX",
    "MAX_ENCODED_THREAD_ID",
    "MAX_SEQ",
    "SEQ_DIGITS",
    "checkpoint_key",
    "decode_thread_id",
    "encode_inverted",
    "encode_thread_id",
    "escape_bytes",
    "parse_checkpoint_key",
    "parse_inverted",
    "thread_prefix",
    "threads_prefix",
]

FORMAT_PREFIX = "v1/"
#: Digits of an inverted sequence number in a key, and the largest number they hold.
SEQ_DIGITS = 12
MAX_SEQ = 10**SEQ_DIGITS - 1
#: Longest encoded thread id: it must fit one file name (255 bytes) in the local store.
MAX_ENCODED_THREAD_ID = 240
_SAFE = frozenset(b"abcdefghijklmnopqrstuvwxyz0123456789-_")
_HEX = "0123456789ABCDEF"


def escape_bytes(raw: bytes) -> str:
    """Percent-encode every byte outside ``a-z 0-9 - _`` as ``%XX`` (uppercase hex).

    The one escaping used by every key layout (executor log, LangGraph): no ``/``
    or ``.`` survives, and the result is injective even on case-insensitive file systems.
    """
    return "".join(chr(b) if b in _SAFE else f"%{_HEX[b >> 4]}{_HEX[b & 15]}" for b in raw)


def encode_inverted(n: int, digits: int = SEQ_DIGITS) -> str:
    """``10**digits - 1 - n`` in exactly ``digits`` digits: ascending key order is newest first.

    ValueError if ``n`` does not fit.
    """
    top = _top(digits)
    if not 0 <= n <= top:
        raise ValueError(f"sequence number out of range: {n}")
    return f"{top - n:0{digits}d}"


def parse_inverted(text: str, digits: int = SEQ_DIGITS) -> int:
    """Invert :func:`encode_inverted`; ValueError unless ``text`` is exactly ``digits`` ASCII digits."""
    if len(text) != digits or not text.isdigit() or not text.isascii():
        raise ValueError(f"not an inverted sequence number: {text!r}")
    return _top(digits) - int(text)


def _top(digits: int) -> int:
    top: int = 10**digits - 1  # int ** int is typed Any (negative exponents give a float)
    return top


def encode_thread_id(thread_id: str) -> str:
    """Encode a thread id as one key segment; raise InvalidThreadIdError if it cannot be one."""
    if not isinstance(thread_id, str):
        raise InvalidThreadIdError(f"thread id must be a str, not {type(thread_id).__name__}")
    if not thread_id:
        raise InvalidThreadIdError("thread id must not be empty")
    try:
        raw = thread_id.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidThreadIdError("thread id is not valid unicode (lone surrogate)") from None
    encoded = escape_bytes(raw)
    if len(encoded) > MAX_ENCODED_THREAD_ID:
        raise InvalidThreadIdError(
            f"thread id too long: it encodes to {len(encoded)} characters, the limit is "
            f"{MAX_ENCODED_THREAD_ID} (240 lowercase letters, digits, '-' or '_'; "
            "other bytes take three characters each)"
        )
    return encoded


def decode_thread_id(segment: str) -> str:
    """Invert :func:`encode_thread_id`; ValueError if ``segment`` is not an encoding."""
    raw = bytearray()
    i = 0
    while i < len(segment):
        ch = segment[i]
        if ch == "%":
            hex_pair = segment[i + 1 : i + 3]
            if len(hex_pair) != 2 or not all(c in _HEX for c in hex_pair):
                raise ValueError(f"bad escape in encoded thread id {segment!r}")
            raw.append(int(hex_pair, 16))
            i += 3
        elif ord(ch) < 128 and ord(ch) in _SAFE:
            raw.append(ord(ch))
            i += 1
        else:
            raise ValueError(f"not an encoded thread id: {segment!r}")
    thread_id = raw.decode("utf-8")
    if encode_thread_id(thread_id) != segment:  # e.g. "%61" for "a": not canonical
        raise ValueError(f"not a canonical thread id encoding: {segment!r}")
    return thread_id


def durable_prefix(prefix: str) -> str:
    """Where ``cairnflow.aws_durable`` keeps its executions: a checkpoint log of its own."""
    return f"{prefix}durable/"


def durable_payloads_prefix(durable: str, thread_id: str) -> str:
    """Where the large values of one durable execution live (``durable`` is :func:`durable_prefix`'s).

    Beside the executions' log, not inside ``v1/threads/``: verify skips them there.
    """
    return f"{durable_payloads_root(durable)}{encode_thread_id(thread_id)}/"


def durable_payloads_root(durable: str) -> str:
    """The folder of every durable execution's large values, under :func:`durable_prefix`."""
    return f"{durable}payloads/"


def threads_prefix(prefix: str) -> str:
    return f"{prefix}{FORMAT_PREFIX}threads/"


def thread_prefix(prefix: str, thread_id: str) -> str:
    return f"{threads_prefix(prefix)}{encode_thread_id(thread_id)}/"


def checkpoint_key(prefix: str, thread_id: str, seq: int) -> str:
    return f"{thread_prefix(prefix, thread_id)}{encode_inverted(seq)}"


def parse_checkpoint_key(prefix: str, key: str) -> tuple[str, int]:
    """Return (thread id, seq) for a checkpoint key; ValueError for anything else."""
    base = threads_prefix(prefix)
    if not key.startswith(base):
        raise ValueError(f"not under {base!r}: {key!r}")
    segment, sep, inverted = key[len(base) :].partition("/")
    try:
        seq = parse_inverted(inverted)
    except ValueError:
        raise ValueError(f"not a checkpoint key: {key!r}") from None
    if not sep:
        raise ValueError(f"not a checkpoint key: {key!r}")
    return decode_thread_id(segment), seq
