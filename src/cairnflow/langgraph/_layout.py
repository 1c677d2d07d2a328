"""Key layout of the LangGraph checkpointer.

Everything lives under ``{prefix}v1/lg/``, apart from the executor's
``{prefix}v1/threads/``. Entry format 2 (written today; header ``"fv": 2``)::

    t/{thread}/{ns}/c/{inv seq}                        log entry: a checkpoint with the values
                                                       of its changed channels, or a pointer
    t/{thread}/{ns}/c/{inv seq}.w.{task}.{inv n}       the pending writes of one put_writes call
    t/{thread}/{ns}/h/{inv seq}                        values kept for survivors of a deleted entry

A write key sorts right after its checkpoint's entry (``.`` sorts before digits), so
one LIST of the log shows the head and its pending writes. Entry format 1 (still
read; written by cairnflow before the format 2 entries)::

    t/{thread}/{ns}/i/{checkpoint id}/{inv seq}        id -> seq index (one per put of that id)
    t/{thread}/{ns}/b/{channel}/{version}              one channel value
    t/{thread}/{ns}/w/{checkpoint id}/{task}/{idx}/{inv n}   one pending write
    r/{run id}/{thread}/{ns}                           "run has checkpoints in (thread, ns)"

* ``{thread}`` is :func:`cairnflow.core.keys.encode_thread_id` (percent
  encoding, no ``/`` or ``.``, injective, at most 240 characters).
* Every other free-form name (namespace, channel, version, task id,
  checkpoint id, run id) is a :func:`segment`: the same percent encoding
  when it fits in :data:`SEGMENT_LIMIT` characters, else ``~`` and the
  SHA-256 of the name (``~`` never occurs in an encoding, so the two forms
  cannot collide). The root namespace ``""`` is ``=`` (never an encoding
  either). Such names are also stored in the object headers, which is where
  readers take them from.
* ``{inv seq}`` is ``999999999999 - seq`` in 12 digits: an ascending listing
  yields the newest entry first, so the head of a log is one LIST with a
  limit of 1 whatever the history length. ``{inv n}`` does the same for the
  versions of a special (overwritable) pending write, in 6 digits.

This module imports nothing from LangGraph.
"""

from __future__ import annotations

import hashlib

from cairnflow.core.keys import (
    FORMAT_PREFIX,
    MAX_SEQ,
    encode_thread_id,
    escape_bytes,
)
from cairnflow.core.keys import encode_inverted as inv
from cairnflow.core.keys import parse_inverted as parse_inv

__all__ = [
    "MAX_SEQ",
    "MAX_WRITE_VERSION",
    "ROOT_NS",
    "SEGMENT_LIMIT",
    "blob_key",
    "blobs_prefix",
    "holder_key",
    "index_key",
    "index_prefix",
    "inv",
    "lg_prefix",
    "log_key",
    "log_name",
    "log_prefix",
    "ns_prefix",
    "ns_segment",
    "parse_inv",
    "run_marker_key",
    "run_prefix",
    "segment",
    "thread_prefix",
    "threads_prefix",
    "write_key",
    "write_slot_of",
    "write_slot_prefix",
    "writes_key",
    "writes_prefix",
]

MAX_WRITE_VERSION = 10**6 - 1
_WRITE_DIGITS = 6
#: Longest literal segment; longer names are stored as a hash (local file names stop at 255 bytes).
SEGMENT_LIMIT = 200
ROOT_NS = "="


def _encode(value: str) -> str:
    return escape_bytes(value.encode("utf-8", "surrogatepass"))


def segment(value: str) -> str:
    """One key segment for a free-form, non-empty name (see the module docstring)."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"a key segment needs a non-empty string, not {value!r}")
    encoded = _encode(value)
    if len(encoded) <= SEGMENT_LIMIT:
        return encoded
    return "~" + hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()


def ns_segment(ns: str) -> str:
    return ROOT_NS if ns == "" else segment(ns)


def lg_prefix(prefix: str) -> str:
    return f"{prefix}{FORMAT_PREFIX}lg/"


def threads_prefix(prefix: str) -> str:
    return f"{lg_prefix(prefix)}t/"


def thread_prefix(prefix: str, thread_id: str) -> str:
    return f"{threads_prefix(prefix)}{encode_thread_id(thread_id)}/"


def ns_prefix(prefix: str, thread_id: str, ns: str) -> str:
    return f"{thread_prefix(prefix, thread_id)}{ns_segment(ns)}/"


def log_prefix(prefix: str, thread_id: str, ns: str) -> str:
    return f"{ns_prefix(prefix, thread_id, ns)}c/"


def log_key(prefix: str, thread_id: str, ns: str, seq: int) -> str:
    return f"{log_prefix(prefix, thread_id, ns)}{inv(seq)}"


def index_prefix(prefix: str, thread_id: str, ns: str, checkpoint_id: str) -> str:
    return f"{ns_prefix(prefix, thread_id, ns)}i/{segment(checkpoint_id)}/"


def index_key(prefix: str, thread_id: str, ns: str, checkpoint_id: str, seq: int) -> str:
    return f"{index_prefix(prefix, thread_id, ns, checkpoint_id)}{inv(seq)}"


def blobs_prefix(prefix: str, thread_id: str, ns: str) -> str:
    return f"{ns_prefix(prefix, thread_id, ns)}b/"


def blob_key(prefix: str, thread_id: str, ns: str, channel: str, version: str) -> str:
    return f"{blobs_prefix(prefix, thread_id, ns)}{segment(channel)}/{segment(version)}"


def writes_prefix(prefix: str, thread_id: str, ns: str, checkpoint_id: str) -> str:
    return f"{ns_prefix(prefix, thread_id, ns)}w/{segment(checkpoint_id)}/"


def write_slot_prefix(
    prefix: str, thread_id: str, ns: str, checkpoint_id: str, task_id: str, idx: int
) -> str:
    return f"{writes_prefix(prefix, thread_id, ns, checkpoint_id)}{segment(task_id)}/{idx:d}/"


def write_key(
    prefix: str, thread_id: str, ns: str, checkpoint_id: str, task_id: str, idx: int, version: int
) -> str:
    slot = write_slot_prefix(prefix, thread_id, ns, checkpoint_id, task_id, idx)
    return f"{slot}{inv(version, _WRITE_DIGITS)}"


def write_slot_of(key: str) -> tuple[str, int]:
    """(slot prefix, version) of a write key."""
    slot, _, tail = key.rpartition("/")
    return slot + "/", parse_inv(tail, _WRITE_DIGITS)


def run_prefix(prefix: str, run_id: str) -> str:
    return f"{lg_prefix(prefix)}r/{segment(run_id)}/"


def run_marker_key(prefix: str, run_id: str, thread_id: str, ns: str) -> str:
    return f"{run_prefix(prefix, run_id)}{encode_thread_id(thread_id)}/{ns_segment(ns)}"


def writes_key(prefix: str, thread_id: str, ns: str, seq: int, task_id: str, version: int) -> str:
    """Format 2: the pending writes of one ``put_writes`` call on the checkpoint at ``seq``."""
    return f"{log_key(prefix, thread_id, ns, seq)}.w.{segment(task_id)}.{inv(version, _WRITE_DIGITS)}"


def log_name(name: str) -> tuple[int, str | None, int]:
    """(position, task segment or None, version) of a key below a log prefix."""
    head, dot, rest = name.partition(".")
    if not dot:
        return parse_inv(head), None, 0
    _, _, tail = rest.partition(".")
    task, _, version = tail.rpartition(".")
    return parse_inv(head), task, parse_inv(version, _WRITE_DIGITS)


def holder_key(prefix: str, thread_id: str, ns: str, seq: int) -> str:
    return f"{ns_prefix(prefix, thread_id, ns)}h/{inv(seq)}"
