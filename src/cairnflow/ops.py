"""Operations on the threads in a store: the Python API behind the ``cairnflow`` command.

Every function takes an :class:`~cairnflow.core.log.CheckpointLog`
(open one with :func:`open_saver`) and returns plain dataclasses with a
``to_dict()`` whose field names are the command's ``--json`` output.

* :func:`list_threads` -- every thread with its status, steps and last update.
* :func:`thread_history` -- a thread's checkpoints, newest first, with what each recorded.
* :func:`show_state` -- the state at a checkpoint (the latest by default).
* :func:`delete_thread` -- tombstone a thread and delete its checkpoints.
* :func:`prune` -- keep the last N checkpoints of each thread, or delete whole threads
  not updated for a while.
* :func:`copy_threads` -- copy threads, history included, to another store; resumable.
* :func:`verify` -- check stored histories (:mod:`cairnflow.core.verify`).

Reading never constructs a stored value: bodies are parsed as JSON and tagged
values (tuples, bytes, datetimes, registered types, ...) are shown as plain
JSON (see :func:`untag`), so an operator needs none of the workflow's code.
Bodies written with another serializer (pickle) are never loaded: their
values show as ``null`` with ``values_readable`` false.

What ``prune`` keeps (the state a thread resumes from is never broken):

* ``keep_last=N``: for each thread, the newest ``N`` checkpoints *and* every
  checkpoint from the base snapshot of the oldest of them: a delta is
  readable only with its base, so the kept range starts at that base. Only
  checkpoints older than the kept range are deleted, oldest first, so an
  interrupted prune leaves a contiguous history. Time travel (``fork``) to a
  deleted checkpoint is no longer possible.
* ``older_than=D``: whole threads whose newest checkpoint is older than ``D``
  and whose status matches (``completed`` unless told otherwise) are deleted
  like :func:`delete_thread`: a tombstone fences any writer still holding the
  thread, then the older checkpoints go. The tombstone stays unless
  ``purge``; threads already deleted (status ``deleted``) lose their tombstone.
  A thread that advanced after it was examined is skipped, not deleted.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import functools
import json
import math
import re
import threading
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from cairnflow.core import codec, keys
from cairnflow.core.errors import (
    AlreadyExistsError,
    ConflictError,
    CorruptCheckpointError,
    InvalidURLError,
    NotFoundError,
    SerializationError,
    StoreAccessError,
    ThreadNotFoundError,
)
from cairnflow.core.log import CheckpointLog
from cairnflow.core.retry import call_with_retry
from cairnflow.core.store import CREATE
from cairnflow.core.verify import Problem, VerifyReport, verify
from cairnflow.savers import open_saver as _open_saver
from cairnflow.savers import parse_url

__all__ = [
    "STATUSES",
    "CopiedThread",
    "CopyResult",
    "DeleteResult",
    "HistoryEntry",
    "InvalidURLError",
    "Problem",
    "PruneResult",
    "PrunedThread",
    "Step",
    "ThreadState",
    "ThreadSummary",
    "VerifyReport",
    "copy_threads",
    "delete_thread",
    "describe_record",
    "iso_time",
    "list_threads",
    "open_saver",
    "parse_duration",
    "prune",
    "show_state",
    "thread_history",
    "untag",
    "verify",
]

T = TypeVar("T")

#: Every status a thread can show: the executor's statuses, ``deleted`` (its head is a
#: tombstone) and ``corrupt`` (its newest checkpoint cannot be read).
STATUSES = ("running", "interrupted", "suspended", "completed", "failed", "deleted", "corrupt")
_KINDS = frozenset({"snapshot", "delta", "fork", "tombstone"})
_HEADER_STATUSES = frozenset(STATUSES[:-1])
_WORKERS = 8


def open_saver(url: str, *, create: bool = False) -> CheckpointLog:
    """Open the store named by ``url`` for operations.

    Cloud clients are built from the environment exactly as
    :func:`cairnflow.savers.open_store` builds them. A ``file://`` directory
    must exist unless ``create`` (so that a mistyped path is an error rather
    than a new, empty store).
    """
    try:
        scheme, location, _ = parse_url(url)
    except ValueError as exc:
        raise InvalidURLError(str(exc)) from None
    if scheme == "file" and not create and not Path(location).is_dir():
        raise StoreAccessError(f"no store directory at {location!r}", store=url)
    return _open_saver(url)


# --------------------------------------------------------------------------- values


def untag(value: Any) -> Any:
    """Turn a stored (tagged JSON) value into plain JSON for display, constructing nothing.

    Tuples and sets become lists; ``bytes`` ``{"$bytes": base64}``; datetimes,
    UUIDs and decimals strings; timedeltas ``{"$timedelta": seconds}``; dicts
    with non-string keys get their keys as JSON text; a registered type
    ``{"$type": name, "value": ...}``.
    """
    if isinstance(value, list):
        return [untag(v) for v in value]
    if not isinstance(value, dict):
        return value
    tag = value.get("$cf")
    if tag is None:
        return {k: untag(v) for k, v in value.items()}
    payload = value.get("v")
    if tag in ("tuple", "set", "frozenset") and isinstance(payload, list):
        return [untag(v) for v in payload]
    if tag == "bytes":
        return {"$bytes": payload}
    if tag in ("datetime", "date", "time", "uuid", "decimal"):
        return payload
    if tag == "timedelta" and isinstance(payload, list) and len(payload) == 3:
        days, seconds, micros = payload
        return {"$timedelta": days * 86400 + seconds + micros / 1e6}
    if tag == "dict" and isinstance(payload, list):
        out: dict[str, Any] = {}
        for pair in payload:
            if isinstance(pair, list) and len(pair) == 2:
                k = untag(pair[0])
                out[k if isinstance(k, str) else json.dumps(k, sort_keys=True)] = untag(pair[1])
        return out
    if tag == "type":
        return {"$type": value.get("n"), "value": untag(payload)}
    return value


def _compact(value: Any, width: int = 60) -> str:
    text = json.dumps(untag(value), ensure_ascii=False, sort_keys=True, default=str)
    return text if len(text) <= width else text[: width - 1] + "…"


def _error_text(error: Any) -> str:
    if not isinstance(error, dict):
        return "unknown error"
    kind = str(error.get("type", "?"))
    kind = kind.removeprefix("builtins.")
    return f"{kind}: {error.get('message', '')}"


def describe_record(record: Any) -> str:
    """One line saying what a record means (for history listings)."""
    if not isinstance(record, dict):
        return f"unknown record {_compact(record)}"
    op = record.get("op")
    pos = record.get("pos")
    if op == "start":
        return f"start {record.get('workflow')} input={_compact(record.get('input'))}"
    if op == "task":
        return f"task #{pos} {record.get('name')} -> {_compact(record.get('value'))}"
    if op == "task_error":
        return f"task #{pos} {record.get('name')} failed: {_error_text(record.get('error'))}"
    if op == "interrupt":
        return f"interrupt #{pos}: {_compact(record.get('value'))}"
    if op == "resume":
        return f"answer #{pos}: {_compact(record.get('value'))}"
    if op == "suspend":
        return "suspended (deadline)"
    if op == "end":
        if record.get("status") == "completed":
            return f"completed -> {_compact(record.get('value'))}"
        return f"failed: {_error_text(record.get('error'))}"
    return f"{op} {_compact(record)}"


def iso_time(epoch: float | None) -> str | None:
    """Seconds since the epoch as ISO 8601 UTC with milliseconds (``...Z``)."""
    if epoch is None:
        return None
    seconds = math.floor(epoch)
    millis = min(999, round((epoch - seconds) * 1000))
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> float:
    """``"90s"``, ``"15m"``, ``"12h"``, ``"30d"``, ``"2w"`` or sums like ``"1d12h"``, in seconds."""
    cleaned = text.strip().lower()
    pos, total = 0, 0.0
    for match in _DURATION.finditer(cleaned):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if not cleaned or pos != len(cleaned):
        raise ValueError(f"not a duration: {text!r} (use e.g. 90s, 15m, 12h, 30d, 2w or 1d12h)")
    return total


# --------------------------------------------------------------------------- reading raw objects


@dataclass(frozen=True)
class _Object:
    """One checkpoint object, checked; ``records`` is its body as raw (tagged) JSON."""

    key: str
    seq: int
    header: dict[str, Any]
    records: list[Any] | None  # None: written with another serializer, or encrypted

    @property
    def kind(self) -> str:
        return str(self.header["kind"])

    @property
    def status(self) -> str:
        return str(self.header["status"])

    @property
    def new(self) -> list[Any] | None:
        if self.records is None:
            return None
        n = int(self.header.get("new", 0))
        return self.records[len(self.records) - n :] if n else []


def _retry(saver: CheckpointLog, fn: Callable[[], T]) -> T:
    return call_with_retry(fn, saver.store_retry)


def _decode(thread_id: str, seq: int, key: str, data: bytes) -> _Object:
    env = codec.decode(data, key=key)
    header = env.header
    if header.get("thread") != thread_id or header.get("seq") != seq:
        raise CorruptCheckpointError(
            "object does not belong at this key (copied from another thread or position?)", key=key
        )
    if header.get("kind") not in _KINDS or header.get("status") not in _HEADER_STATUSES:
        raise CorruptCheckpointError("unknown checkpoint kind or status", key=key)
    records: list[Any] | None = None
    if not env.flags & codec.FLAG_ENCRYPTED and header.get("serde") == "json":
        try:
            body = json.loads(env.body)
        except ValueError:
            raise CorruptCheckpointError("checkpoint body is not JSON", key=key) from None
        if not isinstance(body, list):
            raise CorruptCheckpointError("checkpoint body is not a list of records", key=key)
        records = body
    return _Object(key, seq, header, records)


def _read(saver: CheckpointLog, thread_id: str, seq: int) -> _Object:
    key = keys.checkpoint_key(saver.prefix, thread_id, seq)
    try:
        obj = _retry(saver, lambda: saver.store.get(key))
    except NotFoundError:
        raise ThreadNotFoundError(f"thread {thread_id!r} has no checkpoint {seq}") from None
    return _decode(thread_id, seq, key, obj.data)


def _read_key(saver: CheckpointLog, thread_id: str, key: str) -> _Object:
    try:
        found, seq = keys.parse_checkpoint_key(saver.prefix, key)
    except ValueError:
        raise CorruptCheckpointError("foreign object under the thread's prefix", key=key) from None
    if found != thread_id:
        raise CorruptCheckpointError("object under the wrong thread prefix", key=key)
    obj = _retry(saver, lambda: saver.store.get(key))
    return _decode(thread_id, seq, key, obj.data)


def _thread_keys(saver: CheckpointLog, thread_id: str, limit: int | None = None) -> list[str]:
    """The thread's keys, newest first (one paged LIST)."""
    prefix = keys.thread_prefix(saver.prefix, thread_id)
    return [o.key for o in _retry(saver, lambda: list(saver.store.list(prefix, limit=limit)))]


def _thread_seqs(saver: CheckpointLog, thread_id: str) -> list[tuple[int, str]]:
    """(seq, key) of the thread's checkpoints, newest first; foreign keys left out."""
    out = []
    for key in _thread_keys(saver, thread_id):
        try:
            found, seq = keys.parse_checkpoint_key(saver.prefix, key)
        except ValueError:
            continue
        if found == thread_id:
            out.append((seq, key))
    return out


def _is_checkpoint_key(saver: CheckpointLog, key: str) -> bool:
    try:
        keys.parse_checkpoint_key(saver.prefix, key)
    except ValueError:
        return False
    return True


def _head(saver: CheckpointLog, thread_id: str) -> _Object | None:
    found = _thread_keys(saver, thread_id, limit=1)
    return _read_key(saver, thread_id, found[0]) if found else None


def _state_records(saver: CheckpointLog, obj: _Object, thread_id: str) -> list[Any] | None:
    """Every record of the state at ``obj`` (its base's plus its own for a delta)."""
    if obj.records is None or obj.kind != "delta":
        return obj.records
    base_seq = obj.header.get("base")
    if not isinstance(base_seq, int) or not 0 <= base_seq < obj.seq:
        raise CorruptCheckpointError("delta names no valid base", key=obj.key)
    try:
        base = _read(saver, thread_id, base_seq)
    except ThreadNotFoundError:
        raise CorruptCheckpointError(
            f"history has a gap: base checkpoint {base_seq} is missing", key=obj.key
        ) from None
    if base.kind in ("delta", "tombstone"):
        raise CorruptCheckpointError(f"base checkpoint {base_seq} is not a snapshot", key=obj.key)
    if base.records is None:
        return None
    records = base.records + obj.records
    if len(records) != obj.header.get("total"):
        raise CorruptCheckpointError("record count does not match the header", key=obj.key)
    return records


def _list_first(saver: CheckpointLog, prefix: str, start_after: str | None) -> list[Any]:
    return list(saver.store.list(prefix, start_after=start_after, limit=1))


def _scan_heads(saver: CheckpointLog) -> Iterator[tuple[str, str]]:
    """(thread id, newest key) of every thread, in key order: one LIST (limit 1) per thread."""
    base = keys.threads_prefix(saver.prefix)
    cursor: str | None = None
    while True:
        listing = _retry(saver, functools.partial(_list_first, saver, base, cursor))
        if not listing:
            return
        key = listing[0].key
        segment, sep, _ = key[len(base) :].partition("/")
        if not sep:  # a foreign object directly under threads/: skip just it
            cursor = key
            continue
        cursor = f"{base}{segment}0"  # '0' follows '/': skip the rest of this thread at once
        try:
            thread_id = keys.decode_thread_id(segment)
        except ValueError:
            continue  # not a thread of ours (verify reports it)
        yield thread_id, key


def _parallel(
    fn: Callable[[T], Any], items: Iterator[T], workers: int = _WORKERS
) -> Iterator[Any]:  # yields fn(item) in order, at most 2 * workers in flight
    with concurrent.futures.ThreadPoolExecutor(
        max_workers=workers, thread_name_prefix="cairnflow-ops"
    ) as pool:
        window: collections.deque[concurrent.futures.Future[Any]] = collections.deque()
        try:
            for item in items:
                window.append(pool.submit(fn, item))
                if len(window) >= 2 * workers:
                    yield window.popleft().result()
            while window:
                yield window.popleft().result()
        finally:
            for future in window:
                future.cancel()


# --------------------------------------------------------------------------- state analysis


@dataclass
class _Analysis:
    start: dict[str, Any] | None = None
    ops: dict[int, dict[str, Any]] = field(default_factory=dict)
    answers: dict[int, Any] = field(default_factory=dict)
    end: dict[str, Any] | None = None

    @classmethod
    def of(cls, records: Sequence[Any]) -> _Analysis:
        out = cls()
        for rec in records:
            op = rec.get("op") if isinstance(rec, dict) else None
            if op == "start":
                out.start = rec
            elif op in ("task", "task_error", "interrupt") and isinstance(rec.get("pos"), int):
                out.ops[rec["pos"]] = rec
            elif op == "resume" and isinstance(rec.get("pos"), int):
                out.answers[rec["pos"]] = rec.get("value")
            if op == "end":
                out.end = rec
            elif op is not None and op != "start":
                out.end = None  # a retried failure supersedes its end record
        return out

    def pending(self) -> dict[str, Any] | None:
        waiting = [r for p, r in self.ops.items() if r.get("op") == "interrupt" and p not in self.answers]
        return max(waiting, key=lambda r: int(r["pos"])) if waiting else None

    def error(self) -> str | None:
        if self.end is not None and self.end.get("status") == "failed":
            return _error_text(self.end.get("error"))
        return None


# --------------------------------------------------------------------------- threads


@dataclass(frozen=True)
class ThreadSummary:
    """One thread, as ``cairnflow threads`` lists it."""

    thread_id: str
    status: str
    """One of :data:`STATUSES` (``running`` means the last write said so: a live run or a dead one)."""
    workflow: str | None
    checkpoint_id: str | None
    """The newest checkpoint."""
    checkpoints: int | None
    """Checkpoints the thread has written (its newest sequence number + 1; pruned ones included)."""
    steps: int | None
    """Task calls and interrupts recorded."""
    records: int | None
    updated_at: float | None
    error: str | None = None
    """Why it failed (``Type: message``), or why it cannot be read."""
    waiting_for: Any = None
    """The pending interrupt's value, when interrupted."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "thread_id": self.thread_id,
            "status": self.status,
            "workflow": self.workflow,
            "checkpoint_id": self.checkpoint_id,
            "checkpoints": self.checkpoints,
            "steps": self.steps,
            "records": self.records,
            "updated_at": iso_time(self.updated_at),
            "error": self.error,
            "waiting_for": untag(self.waiting_for),
        }


def _summarise(saver: CheckpointLog, item: tuple[str, str]) -> ThreadSummary | None:
    thread_id, key = item
    try:
        head = _read_key(saver, thread_id, key)
        records = _state_records(saver, head, thread_id)
    except (CorruptCheckpointError, SerializationError) as exc:
        return ThreadSummary(thread_id, "corrupt", None, None, None, None, None, None, error=str(exc))
    except NotFoundError:  # changed between the listing and the read: look again
        fresh = _thread_keys(saver, thread_id, limit=1)
        return _summarise(saver, (thread_id, fresh[0])) if fresh else None
    header = head.header
    analysis = _Analysis.of(records) if records is not None else None
    pending = analysis.pending() if analysis is not None and head.status == "interrupted" else None
    return ThreadSummary(
        thread_id=thread_id,
        status=head.status,
        workflow=header.get("workflow"),
        checkpoint_id=str(head.seq),
        checkpoints=head.seq + 1,
        steps=len(analysis.ops) if analysis is not None else None,
        records=int(header.get("total", 0)),
        updated_at=float(header.get("time", 0.0)),
        error=analysis.error() if analysis is not None and head.status == "failed" else None,
        waiting_for=pending.get("value") if pending is not None else None,
    )


def list_threads(
    saver: CheckpointLog,
    *,
    statuses: Collection[str] | None = None,
    workflow: str | None = None,
    updated_before: float | None = None,
    updated_after: float | None = None,
    limit: int | None = None,
    sort: str = "id",
    progress: Callable[[int], None] | None = None,
) -> list[ThreadSummary]:
    """Threads under the prefix with their standing, filtered.

    ``statuses``: keep only these (default: every status but ``deleted``).
    ``updated_before``/``updated_after``: epoch seconds bounds on the last update.
    ``limit``: stop after that many matches. ``sort``: ``"id"`` (key order,
    streaming) or ``"updated"`` (newest first; reads every thread first).
    ``progress(threads_examined)`` is called as the walk goes.
    Costs one LIST and one or two GETs per thread, eight threads at a time.
    """
    if sort not in ("id", "updated"):
        raise ValueError(f"sort must be 'id' or 'updated', not {sort!r}")
    wanted = set(statuses) if statuses else set(STATUSES) - {"deleted"}

    def matches(s: ThreadSummary) -> bool:
        if s.status not in wanted or (workflow is not None and s.workflow != workflow):
            return False
        if updated_before is not None and (s.updated_at is None or s.updated_at >= updated_before):
            return False
        return not (updated_after is not None and (s.updated_at is None or s.updated_at < updated_after))

    out: list[ThreadSummary] = []
    walk = _parallel(lambda item: _summarise(saver, item), _scan_heads(saver))
    for examined, summary in enumerate(walk, start=1):
        if progress is not None:
            progress(examined)
        if summary is not None and matches(summary):
            out.append(summary)
            if sort == "id" and limit is not None and len(out) >= limit:
                break
    if sort == "updated":
        out.sort(key=lambda s: (-(s.updated_at or 0.0), s.thread_id))
        if limit is not None:
            out = out[:limit]
    return out


# --------------------------------------------------------------------------- history


@dataclass(frozen=True)
class HistoryEntry:
    """One checkpoint of a thread and what it recorded."""

    thread_id: str
    checkpoint_id: str
    kind: str
    status: str
    created_at: float
    new_records: int
    total_records: int
    base: int | None
    parent: int | None
    workflow: str | None
    records: list[Any] | None
    """The records this checkpoint added (plain JSON), or None if not readable."""

    @property
    def summary(self) -> list[str]:
        if self.kind == "tombstone":
            return ["deleted (tombstone)"]
        if self.kind == "fork":
            return [f"fork: state of checkpoint {self.parent}"]
        if self.records is None:
            return [f"{self.new_records} record(s), values not readable"]
        return [describe_record(r) for r in self.records]

    def to_dict(self) -> dict[str, Any]:
        return {
            "checkpoint_id": self.checkpoint_id,
            "kind": self.kind,
            "status": self.status,
            "created_at": iso_time(self.created_at),
            "new_records": self.new_records,
            "total_records": self.total_records,
            "base": None if self.base is None else str(self.base),
            "parent": None if self.parent is None else str(self.parent),
            "workflow": self.workflow,
            "summary": self.summary,
            "records": None if self.records is None else untag(self.records),
        }


def thread_history(saver: CheckpointLog, thread_id: str, *, limit: int | None = None) -> list[HistoryEntry]:
    """The thread's checkpoints, newest first: one LIST and one GET per checkpoint.

    Keys under the thread's prefix that are not checkpoint keys are left out
    (:func:`verify` reports them).
    """
    listed = [k for k in _thread_keys(saver, thread_id, limit=limit) if _is_checkpoint_key(saver, k)]
    if not listed:
        raise ThreadNotFoundError(f"no thread {thread_id!r}")

    def entry(key: str) -> HistoryEntry:
        obj = _read_key(saver, thread_id, key)
        h = obj.header
        return HistoryEntry(
            thread_id=thread_id,
            checkpoint_id=str(obj.seq),
            kind=obj.kind,
            status=obj.status,
            created_at=float(h.get("time", 0.0)),
            new_records=int(h.get("new", 0)),
            total_records=int(h.get("total", 0)),
            base=h.get("base") if obj.kind == "delta" else None,
            parent=h.get("parent"),
            workflow=h.get("workflow"),
            records=obj.new,
        )

    return list(_parallel(entry, iter(listed)))


# --------------------------------------------------------------------------- show


@dataclass(frozen=True)
class Step:
    """One task call or interrupt of the workflow body, by position."""

    pos: int
    type: str  # "task" | "interrupt"
    name: str | None
    status: str  # task: "done" | "failed"; interrupt: "waiting" | "answered"
    value: Any = None
    error: str | None = None
    answer: Any = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "pos": self.pos,
            "type": self.type,
            "name": self.name,
            "status": self.status,
            "value": untag(self.value),
            "error": self.error,
            "answer": untag(self.answer),
        }


@dataclass(frozen=True)
class ThreadState:
    """The state of a thread at one checkpoint."""

    thread_id: str
    checkpoint_id: str
    latest_checkpoint_id: str
    kind: str
    status: str
    workflow: str | None
    created_at: float
    total_records: int
    values_readable: bool
    input: Any = None
    result: Any = None
    error: str | None = None
    interrupt: dict[str, Any] | None = None
    steps: tuple[Step, ...] = ()
    records: list[Any] | None = None

    @property
    def is_latest(self) -> bool:
        return self.checkpoint_id == self.latest_checkpoint_id

    def to_dict(self) -> dict[str, Any]:
        return {
            "thread_id": self.thread_id,
            "checkpoint_id": self.checkpoint_id,
            "latest_checkpoint_id": self.latest_checkpoint_id,
            "is_latest": self.is_latest,
            "kind": self.kind,
            "status": self.status,
            "workflow": self.workflow,
            "created_at": iso_time(self.created_at),
            "total_records": self.total_records,
            "values_readable": self.values_readable,
            "input": untag(self.input),
            "result": untag(self.result),
            "error": self.error,
            "interrupt": None if self.interrupt is None else untag(self.interrupt),
            "steps": [s.to_dict() for s in self.steps],
            "records": None if self.records is None else untag(self.records),
        }


def show_state(saver: CheckpointLog, thread_id: str, checkpoint_id: str | int | None = None) -> ThreadState:
    """The state at ``checkpoint_id`` (default: the latest); ``ThreadNotFoundError`` if none."""
    head = _head(saver, thread_id)
    if head is None:
        raise ThreadNotFoundError(f"no thread {thread_id!r}")
    if checkpoint_id is None:
        if head.kind == "tombstone":
            raise ThreadNotFoundError(
                f"thread {thread_id!r} was deleted (tombstone at checkpoint {head.seq})"
            )
        target = head
    else:
        try:
            seq = int(checkpoint_id)
        except ValueError:
            raise ThreadNotFoundError(f"not a checkpoint id: {checkpoint_id!r}") from None
        if not 0 <= seq <= keys.MAX_SEQ:
            raise ThreadNotFoundError(f"checkpoint id out of range: {checkpoint_id!r}")
        target = _read(saver, thread_id, seq)
    records = _state_records(saver, target, thread_id)
    h = target.header
    state = ThreadState(
        thread_id=thread_id,
        checkpoint_id=str(target.seq),
        latest_checkpoint_id=str(head.seq),
        kind=target.kind,
        status=target.status,
        workflow=h.get("workflow"),
        created_at=float(h.get("time", 0.0)),
        total_records=int(h.get("total", 0)),
        values_readable=records is not None,
    )
    if records is None:
        return state
    analysis = _Analysis.of(records)
    steps: list[Step] = []
    for pos in sorted(analysis.ops):
        rec = analysis.ops[pos]
        if rec["op"] == "interrupt":
            answered = pos in analysis.answers
            steps.append(
                Step(
                    pos,
                    "interrupt",
                    None,
                    "answered" if answered else "waiting",
                    value=rec.get("value"),
                    answer=analysis.answers.get(pos),
                )
            )
        elif rec["op"] == "task":
            steps.append(Step(pos, "task", rec.get("name"), "done", value=rec.get("value")))
        else:
            steps.append(Step(pos, "task", rec.get("name"), "failed", error=_error_text(rec.get("error"))))
    pending = analysis.pending() if target.status == "interrupted" else None
    end = analysis.end
    return dataclasses.replace(
        state,
        input=analysis.start.get("input") if analysis.start else None,
        result=end.get("value") if end is not None and end.get("status") == "completed" else None,
        error=analysis.error(),
        interrupt=None if pending is None else {"id": str(pending["pos"]), "value": pending.get("value")},
        steps=tuple(steps),
        records=records,
    )


# --------------------------------------------------------------------------- delete


@dataclass(frozen=True)
class DeleteResult:
    """What :func:`delete_thread` removed (or, on a dry run, would remove)."""

    thread_id: str
    dry_run: bool
    status: str
    """The thread's status before the delete."""
    deleted: list[str]
    """Checkpoint ids removed (or to be removed), oldest first."""
    tombstone: str | None
    """The tombstone's checkpoint id (None when purged)."""
    purged: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "thread_id": self.thread_id,
            "dry_run": self.dry_run,
            "status": self.status,
            "deleted": self.deleted,
            "deleted_count": len(self.deleted),
            "tombstone": self.tombstone,
            "purged": self.purged,
        }


def _remove_below(saver: CheckpointLog, thread_id: str, below: int) -> list[int]:
    """Delete the thread's checkpoints with seq < ``below``, oldest first; return their seqs."""
    doomed = sorted(seq for seq, _ in _thread_seqs(saver, thread_id) if seq < below)
    for seq in doomed:
        key = keys.checkpoint_key(saver.prefix, thread_id, seq)
        _retry(saver, functools.partial(saver.store.delete, key))
    return doomed


def _delete(
    saver: CheckpointLog, thread_id: str, head: _Object, *, purge: bool, exact: bool
) -> tuple[list[int], int]:
    """Fence and delete; return (seqs deleted that existed before, tombstone seq).

    ``exact``: fence exactly above ``head``, else raise ConflictError; otherwise a
    thread that advanced meanwhile is fenced again above its new head.
    """
    existing = sorted(seq for seq, _ in _thread_seqs(saver, thread_id))
    while True:
        try:
            tomb = saver.delete_thread(thread_id, purge=purge, expected_head=head.seq)
            break
        except ConflictError:
            if exact:
                raise
            fresh = _head(saver, thread_id)
            if fresh is None:
                raise ThreadNotFoundError(f"thread {thread_id!r} vanished during the delete") from None
            head = fresh
    if tomb is None:
        raise ThreadNotFoundError(f"thread {thread_id!r} vanished during the delete")
    deleted = [seq for seq in existing if seq < tomb]
    if purge and head.kind == "tombstone":
        deleted.append(tomb)
    return deleted, tomb


def delete_thread(
    saver: CheckpointLog, thread_id: str, *, dry_run: bool = False, purge: bool = False
) -> DeleteResult:
    """Delete a thread: write a tombstone above its head, then delete every older checkpoint.

    The tombstone fences out any writer that loaded the thread before: it gets
    ``ConflictError`` instead of resurrecting it. ``purge`` removes the
    tombstone too (only safe once no writer can still hold the thread).
    Unlike a blind sweep of the prefix, only checkpoints *below* the tombstone
    are deleted, so a new run started on the same id right after the tombstone
    is left alone. ``ThreadNotFoundError`` if the thread does not exist (or is
    only a tombstone and ``purge`` is false).
    """
    seqs = _thread_seqs(saver, thread_id)
    head = _head(saver, thread_id) if seqs else None
    if head is None:
        raise ThreadNotFoundError(f"no thread {thread_id!r}")
    if head.kind == "tombstone" and len(seqs) == 1 and not purge:
        raise ThreadNotFoundError(
            f"thread {thread_id!r} is already deleted (use --purge to remove its tombstone)"
        )
    if dry_run:
        tomb = head.seq if head.kind == "tombstone" else head.seq + 1
        doomed = sorted(seq for seq, _ in seqs if seq < tomb)
        if purge and head.kind == "tombstone":
            doomed.append(tomb)
        return DeleteResult(
            thread_id,
            True,
            head.status,
            [str(s) for s in doomed],
            None if purge else str(tomb),
            purge,
        )
    deleted, tomb = _delete(saver, thread_id, head, purge=purge, exact=False)
    return DeleteResult(
        thread_id, False, head.status, [str(s) for s in deleted], None if purge else str(tomb), purge
    )


# --------------------------------------------------------------------------- prune


@dataclass(frozen=True)
class PrunedThread:
    """What prune did (or would do) to one thread."""

    thread_id: str
    status: str
    updated_at: float | None
    action: str
    """``trim`` (old checkpoints), ``delete`` (the whole thread), ``purge`` (a deleted
    thread's tombstone and leftovers), or ``skip`` (see ``reason``)."""
    deleted: list[str]
    keep_from: str | None
    """The oldest checkpoint kept (``trim``)."""
    head: str | None
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "thread_id": self.thread_id,
            "status": self.status,
            "updated_at": iso_time(self.updated_at),
            "action": self.action,
            "deleted": self.deleted,
            "deleted_count": len(self.deleted),
            "keep_from": self.keep_from,
            "head": self.head,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class PruneResult:
    mode: str  # "keep-last" | "older-than"
    dry_run: bool
    keep_last: int | None
    older_than: float | None
    statuses: list[str]
    threads_examined: int
    threads: list[PrunedThread]
    """Threads with something to prune (or skipped with a reason)."""

    @property
    def objects(self) -> int:
        return sum(len(t.deleted) for t in self.threads)

    @property
    def skipped(self) -> list[PrunedThread]:
        return [t for t in self.threads if t.action == "skip"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "dry_run": self.dry_run,
            "keep_last": self.keep_last,
            "older_than_seconds": self.older_than,
            "statuses": self.statuses,
            "threads_examined": self.threads_examined,
            "threads_affected": sum(1 for t in self.threads if t.action != "skip"),
            "threads_skipped": len(self.skipped),
            "checkpoints_deleted": self.objects,
            "threads": [t.to_dict() for t in self.threads],
        }


def prune(
    saver: CheckpointLog,
    *,
    keep_last: int | None = None,
    older_than: float | None = None,
    statuses: Collection[str] | None = None,
    dry_run: bool = False,
    purge: bool = False,
    now: float | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> PruneResult:
    """Trim old checkpoints (``keep_last``) or delete stale threads (``older_than`` seconds).

    Exactly one of the two. ``statuses`` restricts the threads touched
    (default: every status for ``keep_last``; only ``completed`` for
    ``older_than``). See the module docstring for what is kept.
    ``progress(threads_examined, checkpoints_deleted)`` is called as it goes.
    """
    if (keep_last is None) == (older_than is None):
        raise ValueError("give exactly one of keep_last and older_than")
    if keep_last is not None and keep_last < 1:
        raise ValueError("keep_last must be at least 1 (the latest state is never pruned)")
    if older_than is not None and older_than < 0:
        raise ValueError("older_than must not be negative")
    if statuses is None:
        wanted = set(STATUSES) if keep_last is not None else {"completed"}
    else:
        wanted = set(statuses)
    cutoff = (time.time() if now is None else now) - older_than if older_than is not None else None
    examined = 0
    deleted_total = 0
    results: list[PrunedThread] = []
    for thread_id, head_key in _scan_heads(saver):
        examined += 1
        try:
            outcome = (
                _trim(saver, thread_id, head_key, keep_last, wanted, dry_run)
                if keep_last is not None
                else _expire(saver, thread_id, head_key, cutoff or 0.0, wanted, dry_run, purge)
            )
        except (CorruptCheckpointError, SerializationError) as exc:
            outcome = PrunedThread(thread_id, "corrupt", None, "skip", [], None, None, reason=str(exc))
        if outcome is not None:
            results.append(outcome)
            deleted_total += len(outcome.deleted)
        if progress is not None:
            progress(examined, deleted_total)
    return PruneResult(
        mode="keep-last" if keep_last is not None else "older-than",
        dry_run=dry_run,
        keep_last=keep_last,
        older_than=older_than,
        statuses=sorted(wanted),
        threads_examined=examined,
        threads=results,
    )


def _trim(
    saver: CheckpointLog, thread_id: str, head_key: str, keep_last: int, wanted: set[str], dry_run: bool
) -> PrunedThread | None:
    head = _read_key(saver, thread_id, head_key)
    if head.status not in wanted:
        return None
    seqs = _thread_seqs(saver, thread_id)  # newest first
    if len(seqs) <= keep_last:
        return None
    oldest_kept_seq, oldest_kept_key = seqs[keep_last - 1]
    oldest_kept = _read_key(saver, thread_id, oldest_kept_key)
    # A delta is readable only with its base snapshot: keep from there. Bases never decrease
    # along a linear history, so this keeps every newer checkpoint readable, the head included.
    cut = oldest_kept_seq
    for obj in (oldest_kept, head):
        if obj.kind == "delta":
            base = obj.header.get("base")
            if not isinstance(base, int) or not 0 <= base < obj.seq:
                raise CorruptCheckpointError("delta names no valid base", key=obj.key)
            cut = min(cut, base)
    doomed = sorted(seq for seq, _ in seqs if seq < cut)
    if not doomed:
        return None
    if not dry_run:
        doomed = _remove_below(saver, thread_id, cut)
    return PrunedThread(
        thread_id,
        head.status,
        float(head.header.get("time", 0.0)),
        "trim",
        [str(s) for s in doomed],
        str(cut),
        str(head.seq),
    )


def _expire(
    saver: CheckpointLog,
    thread_id: str,
    head_key: str,
    cutoff: float,
    wanted: set[str],
    dry_run: bool,
    purge: bool,
) -> PrunedThread | None:
    head = _read_key(saver, thread_id, head_key)
    updated = float(head.header.get("time", 0.0))
    if head.status not in wanted or updated >= cutoff:
        return None
    tombstoned = head.kind == "tombstone"
    action = "purge" if tombstoned else "delete"
    purge_it = purge or tombstoned
    if dry_run:
        tomb = head.seq if tombstoned else head.seq + 1
        doomed = sorted(seq for seq, _ in _thread_seqs(saver, thread_id) if seq < tomb)
        if tombstoned:
            doomed.append(tomb)
        return PrunedThread(
            thread_id, head.status, updated, action, [str(s) for s in doomed], None, str(head.seq)
        )
    try:
        deleted, _ = _delete(saver, thread_id, head, purge=purge_it, exact=True)
    except ConflictError:
        return PrunedThread(
            thread_id,
            head.status,
            updated,
            "skip",
            [],
            None,
            str(head.seq),
            reason="the thread advanced while being pruned; left alone",
        )
    return PrunedThread(
        thread_id, head.status, updated, action, [str(s) for s in deleted], None, str(head.seq)
    )


# --------------------------------------------------------------------------- copy


@dataclass(frozen=True)
class CopiedThread:
    thread_id: str
    result: str
    """``copied`` (something new was written), ``up_to_date`` (everything was there already),
    ``conflict`` (the destination holds a different checkpoint: nothing more was copied for
    this thread) or ``corrupt`` (a source object failed its checks: copying stopped there)."""
    copied: int
    skipped: int
    head: str | None
    """The source's newest checkpoint id."""
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "thread_id": self.thread_id,
            "result": self.result,
            "copied": self.copied,
            "skipped": self.skipped,
            "head": self.head,
            "error": self.error,
        }


@dataclass(frozen=True)
class CopyResult:
    source: str
    destination: str
    threads: list[CopiedThread]

    @property
    def problems(self) -> list[CopiedThread]:
        return [t for t in self.threads if t.result in ("conflict", "corrupt")]

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "destination": self.destination,
            "threads_copied": len(self.threads),
            "checkpoints_copied": sum(t.copied for t in self.threads),
            "checkpoints_skipped": sum(t.skipped for t in self.threads),
            "problems": len(self.problems),
            "threads": [t.to_dict() for t in self.threads],
        }


def copy_threads(
    src: CheckpointLog,
    dst: CheckpointLog,
    *,
    thread_id: str | None = None,
    workers: int = 4,
    progress: Callable[[int, int], None] | None = None,
) -> CopyResult:
    """Copy threads (every one, or ``thread_id``) with their whole history from ``src`` to ``dst``.

    Objects are copied byte for byte (their header names thread and position,
    not the prefix, so they are valid under the destination's prefix), oldest
    first and create-only: an interrupted copy leaves the destination holding
    a consistent older state, and running it again copies only what is
    missing. An existing destination object with the same bytes is skipped; a
    different one stops that thread's copy (``conflict``): the destination
    thread has a history of its own, which is never overwritten. Every source
    object is checked (checksum, header against key) before it is written.
    Tombstoned threads are copied too. ``progress(threads_done,
    checkpoints_copied)`` is called as it goes.
    """
    if src.store.url == dst.store.url and src.prefix == dst.prefix:
        raise ValueError(f"source and destination are the same store: {src.store.url}/{src.prefix}")
    if thread_id is not None:
        if not _thread_seqs(src, thread_id):
            raise ThreadNotFoundError(f"no thread {thread_id!r} in the source")
        thread_ids: Iterator[str] = iter([thread_id])
    else:
        thread_ids = (t for t, _ in _scan_heads(src))
    counts = [0, 0]
    lock = threading.Lock()

    def one(tid: str) -> CopiedThread:
        result = _copy_thread(src, dst, tid)
        with lock:
            counts[0] += 1
            counts[1] += result.copied
            if progress is not None:
                progress(counts[0], counts[1])
        return result

    return CopyResult(
        src.store.url + "/" + src.prefix,
        dst.store.url + "/" + dst.prefix,
        list(_parallel(one, thread_ids, workers)),
    )


def _copy_thread(src: CheckpointLog, dst: CheckpointLog, thread_id: str) -> CopiedThread:
    seqs = sorted(seq for seq, _ in _thread_seqs(src, thread_id))  # oldest first
    existing = {key for key in _thread_keys(dst, thread_id)}
    copied = skipped = 0
    head = str(seqs[-1]) if seqs else None

    def stop(result: str, error: str) -> CopiedThread:
        return CopiedThread(thread_id, result, copied, skipped, head, error)

    for seq in seqs:
        src_key = keys.checkpoint_key(src.prefix, thread_id, seq)
        dst_key = keys.checkpoint_key(dst.prefix, thread_id, seq)
        try:
            data = _retry(src, functools.partial(src.store.get, src_key)).data
        except NotFoundError:
            continue  # deleted at the source since the listing (oldest first, by delete or prune)
        try:
            _decode(thread_id, seq, src_key, data)
        except CorruptCheckpointError as exc:
            return stop("corrupt", str(exc))
        if dst_key not in existing:
            try:
                _retry(dst, functools.partial(dst.store.put, dst_key, data, CREATE))
                copied += 1
                continue
            except AlreadyExistsError:
                pass  # a concurrent writer, or our own earlier attempt that landed: compare
        try:
            current = _retry(dst, functools.partial(dst.store.get, dst_key)).data
        except NotFoundError:
            return stop("conflict", f"checkpoint {seq} vanished from the destination during the copy")
        if current != data:
            return stop(
                "conflict",
                f"the destination already has a different checkpoint {seq} for this thread "
                "(it was written there, not copied); nothing overwritten",
            )
        skipped += 1
    return CopiedThread(thread_id, "copied" if copied else "up_to_date", copied, skipped, head)
