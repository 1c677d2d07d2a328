"""The status index: one empty object per run stop, whose key says what a listing shows.

Layout (format version 1)::

    {prefix}v1/index/{encoded thread}/{inverted seq}.{status}.{millis}.{workflow}

* ``{encoded thread}`` and ``{inverted seq}`` are those of the checkpoint log
  (:mod:`cairnflow.core.keys`): hostile thread ids cannot escape their folder,
  and within a thread's folder the newest entry sorts first.
* ``{status}`` is the stop checkpoint's status (``completed``, ``interrupted``,
  ``suspended``, ``failed``; ``deleted`` for a tombstone; whatever a fork copied).
* ``{millis}`` is the checkpoint's ``created_at`` in integer milliseconds.
* ``{workflow}`` is the workflow name escaped with :func:`keys.escape_bytes`;
  empty when the checkpoint names none, and ``~`` when the escaped name is
  longer than :data:`MAX_WORKFLOW` (a file name holds 255 bytes): a reader then
  reads that one thread's head for the name.

``.`` never occurs in an escaped segment, so the fields split unambiguously.
The body is empty: a listing of ``{prefix}v1/index/`` (one request per 1,000
keys) gives every indexed thread's standing without reading anything.

**Writing.** The executor writes one entry, create-only, after the checkpoint
that ends a run (so an entry never names a checkpoint that lost a race), and
then deletes the entry of the checkpoint the run started from, if that one was
a stop: the index stays about one key per thread. The key is a pure function
of the checkpoint's header, so a retried or repeated write (``reindex``, copy)
finds its own key and succeeds. Failures to write the index never fail the
run: the checkpoint is the truth, the index a hint.

**Reading.** A reader takes the first (newest) entry of each thread's folder
and ignores the rest, so a superseded entry that was never deleted is harmless.
An entry can be stale: a crash between the stop checkpoint and its entry, a
run in progress after a resume, or a run that never stopped leave the index
saying "as of the last indexed stop" (or nothing). Listings therefore find
threads missing from the index with a delimiter listing of the thread folders
and read only those; statuses of indexed threads are as of their last stop.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass

from cairnflow.core import keys, observe
from cairnflow.core.checkpoint import CheckpointInfo
from cairnflow.core.errors import AlreadyExistsError, StoreError
from cairnflow.core.format import STATUSES, Status
from cairnflow.core.retry import RetryPolicy
from cairnflow.core.steps import Delete, List, Put, Step, retried, run
from cairnflow.core.store import CREATE, ObjectInfo, ObjectStore

__all__ = [
    "ELIDED",
    "MAX_WORKFLOW",
    "Entry",
    "entry_key",
    "index_prefix",
    "latest_entries",
    "parse_entry_key",
    "record_stop",
    "record_stop_steps",
    "remove_entries",
    "remove_entries_steps",
    "thread_entries",
    "thread_entries_steps",
    "thread_index_prefix",
    "workflow_field",
]

#: Longest escaped workflow name kept in a key; longer ones are written as :data:`ELIDED`.
MAX_WORKFLOW = 200
#: The workflow field of an entry whose name was too long to keep.
ELIDED = "~"


@dataclass(frozen=True)
class Entry:
    """One index entry: a thread's standing as of one of its checkpoints."""

    thread_id: str
    seq: int
    status: Status
    updated_at: float
    """The checkpoint's ``created_at`` (seconds since the epoch, millisecond precision)."""
    workflow: str | None
    """None when the checkpoint names no workflow, or when :attr:`workflow_elided`."""
    workflow_elided: bool
    """The name was too long for the key: read the thread's head to learn it."""
    key: str


def index_prefix(prefix: str) -> str:
    return f"{prefix}{keys.FORMAT_PREFIX}index/"


def thread_index_prefix(prefix: str, thread_id: str) -> str:
    return f"{index_prefix(prefix)}{keys.encode_thread_id(thread_id)}/"


def workflow_field(workflow: str | None) -> str:
    """The key field for a workflow name (empty for none, ``~`` when too long)."""
    if not workflow:
        return ""
    escaped = keys.escape_bytes(workflow.encode("utf-8", "surrogatepass"))
    return escaped if len(escaped) <= MAX_WORKFLOW else ELIDED


def entry_key(prefix: str, info: CheckpointInfo) -> str:
    """The index key standing for checkpoint ``info`` (a pure function of its header)."""
    millis = max(0, math.floor(info.created_at * 1000))
    fields = (keys.encode_inverted(info.seq), info.status, str(millis), workflow_field(info.workflow))
    return thread_index_prefix(prefix, info.thread_id) + ".".join(fields)


def parse_entry_key(prefix: str, key: str) -> Entry:
    """The entry a key stands for; ValueError for anything that is not an index key."""
    base = index_prefix(prefix)
    if not key.startswith(base):
        raise ValueError(f"not under {base!r}: {key!r}")
    segment, sep, name = key[len(base) :].partition("/")
    parts = name.split(".")
    if not sep or len(parts) != 4:
        raise ValueError(f"not a status index key: {key!r}")
    inverted, status, millis, wf = parts
    if status not in STATUSES or not millis.isdigit() or not millis.isascii():
        raise ValueError(f"not a status index key: {key!r}")
    thread_id = keys.decode_thread_id(segment)
    seq = keys.parse_inverted(inverted)
    elided = wf == ELIDED
    workflow: str | None = None
    if wf and not elided:
        workflow = _unescape(wf, key)
    return Entry(thread_id, seq, status, int(millis) / 1000, workflow, elided, key)


def _unescape(field: str, key: str) -> str:
    raw = bytearray()
    i = 0
    while i < len(field):
        if field[i] == "%":
            pair = field[i + 1 : i + 3]
            if len(pair) != 2 or pair.upper() != pair:
                raise ValueError(f"bad escape in status index key: {key!r}")
            raw.append(int(pair, 16))
            i += 3
        else:
            raw.append(ord(field[i]))
            i += 1
    text = raw.decode("utf-8", "surrogatepass")
    if workflow_field(text) != field:
        raise ValueError(f"not a canonical workflow field in status index key: {key!r}")
    return text


# --------------------------------------------------------------------------- writing


def record_stop(
    store: ObjectStore,
    prefix: str,
    stop: CheckpointInfo,
    superseded: CheckpointInfo | None,
    *,
    retry: RetryPolicy,
) -> str | None:
    """Write the entry of checkpoint ``stop``; delete that of ``superseded`` (see the steps)."""
    return run(record_stop_steps(prefix, stop, superseded, retry=retry), store)


def record_stop_steps(
    prefix: str, stop: CheckpointInfo, superseded: CheckpointInfo | None, *, retry: RetryPolicy
) -> Step[str | None]:
    """Write the entry of checkpoint ``stop``; delete that of ``superseded`` (a previous stop).

    One create-only PUT (an existing key is this very entry: success), then one
    DELETE when ``superseded`` is given (a no-op if it was never indexed). Never
    raises a store error: the index is a hint, the checkpoint already holds the
    truth; a failure is reported as a ``cairnflow.index_failed`` event. Returns
    the key written, or None if it could not be.
    """
    key = entry_key(prefix, stop)
    try:
        # An existing key is this very stop, indexed by an earlier attempt or by reindex.
        with contextlib.suppress(AlreadyExistsError):
            yield from retried(Put(key, b"", CREATE), retry)
        if superseded is not None:  # indexed at its stop, or by reindex/copy (a running head too)
            old = entry_key(prefix, superseded)
            if old != key:
                yield from retried(Delete(old), retry)
    except StoreError as exc:
        observe.event("cairnflow.index_failed", thread_id=stop.thread_id, error=type(exc).__name__)
        return None
    return key


def remove_entries(
    store: ObjectStore, prefix: str, thread_id: str, *, below: int | None = None, retry: RetryPolicy
) -> int:
    """Delete the thread's entries (only those for checkpoints below ``below`` if given).

    One LIST of the thread's index folder and one DELETE per entry removed.
    Returns how many were removed.
    """
    return run(remove_entries_steps(prefix, thread_id, below=below, retry=retry), store)


def remove_entries_steps(
    prefix: str, thread_id: str, *, below: int | None = None, retry: RetryPolicy
) -> Step[int]:
    """:func:`remove_entries` as a step."""
    removed = 0
    for entry in (yield from thread_entries_steps(prefix, thread_id, retry=retry)):
        if below is None or entry.seq < below:
            yield from retried(Delete(entry.key), retry)
            removed += 1
    return removed


# --------------------------------------------------------------------------- reading


def thread_entries(store: ObjectStore, prefix: str, thread_id: str, *, retry: RetryPolicy) -> list[Entry]:
    """Every valid entry of one thread, newest first (one LIST)."""
    return run(thread_entries_steps(prefix, thread_id, retry=retry), store)


def thread_entries_steps(prefix: str, thread_id: str, *, retry: RetryPolicy) -> Step[list[Entry]]:
    """:func:`thread_entries` as a step."""
    folder = thread_index_prefix(prefix, thread_id)
    listing: list[ObjectInfo] = yield from retried(List(folder), retry)
    out = []
    for info in listing:
        try:
            entry = parse_entry_key(prefix, info.key)
        except ValueError:
            continue
        if entry.thread_id == thread_id:
            out.append(entry)
    return out


def latest_entries(store: ObjectStore, prefix: str) -> Iterator[Entry]:
    """The newest valid entry of every indexed thread, in key order of threads.

    One LIST request per 1,000 index keys; nothing is read. Keys that do not
    parse are skipped (``verify`` reports them).
    """
    current: str | None = None
    for info in store.list(index_prefix(prefix)):
        try:
            entry = parse_entry_key(prefix, info.key)
        except ValueError:
            continue
        if entry.thread_id == current:
            continue  # an older, superseded entry of the same thread
        current = entry.thread_id
        yield entry
