"""The header schema of a checkpoint object (format version 1): one owner, one parser.

Every checkpoint object is an envelope (see :mod:`cairnflow.core.codec`)
whose header is a JSON object. This module declares what that header may
hold, and is the only place that checks it: the checkpoint log, ``verify``
and the operator tools all read headers through :func:`parse_header` (or
:func:`examine_header`, which reports instead of raising).

Public API
==========

``Kind``, ``Status``
    The allowed values of ``kind`` and ``status`` (``Literal`` types), and
    :data:`KINDS`, :data:`STATUSES`: the same values at run time, derived
    from the types (declared once).
``Header``
    A typed, frozen dataclass of one header. ``Header.to_dict()`` is exactly
    the JSON object a writer stores (optional fields only when set).
``build_header(...) -> Header``
    For writers: fills in the clock and a fresh writer token.
``parse_header(envelope_or_dict, *, key, thread_id=None, seq=None) -> Header``
    Validate every field (types, enumerations, and the rules between fields
    below); raise :class:`~cairnflow.core.errors.CorruptCheckpointError`
    naming ``key`` on the first problem. With ``thread_id``/``seq``, the
    header must also belong at that position.
``examine_header(...) -> (Header | None, [HeaderProblem])``
    The same checks, reported as :class:`HeaderProblem` values with
    ``verify``'s problem codes (``key_mismatch``, ``bad_header``,
    ``bad_base``, ``bad_parent``, ``count_mismatch``); the header is None when
    a field is unusable.
``body_problem(header, body_len)``, ``base_problem(header, base, body_len, base_len)``
    The record-count rules for a body and for a delta on its base.

Fields
======

=========  ==========================  ==========================================
field      type                        meaning
=========  ==========================  ==========================================
thread     str                         the thread id (must match the key)
seq        int >= 0                    the sequence number (must match the key)
kind       :data:`Kind`                snapshot, delta, fork or tombstone
status     :data:`Status`              the run's status at this checkpoint
base       int >= 0, optional          a delta's base snapshot; else the object's own seq
new        int >= 0                    records this checkpoint added
total      int >= 0                    records in the state at this checkpoint
time       number, optional (0)        seconds since the epoch, writer's clock
writer     str, optional               a fresh random token per write (ambiguous writes)
serde      str, optional               the serializer's name (``json``, ``pickle``)
workflow   str, optional               the workflow's name
parent     int >= 0, optional          a fork's source checkpoint
key        str, optional               the cipher key id of an encrypted body
=========  ==========================  ==========================================

Rules between fields: a tombstone (and only a tombstone) has status
``deleted`` and holds no records; a delta's base is older than the delta;
every other kind is its own base; ``new <= total``; a fork's parent is older
than the fork. Unknown extra fields are ignored (and not kept).
"""

from __future__ import annotations

import time as _time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar, get_args

from cairnflow.core.errors import CorruptCheckpointError, ThreadNotFoundError

if TYPE_CHECKING:
    from cairnflow.core.codec import Envelope

__all__ = [
    "KINDS",
    "STATUSES",
    "Header",
    "HeaderProblem",
    "Kind",
    "Status",
    "base_needed",
    "base_problem",
    "body_problem",
    "build_header",
    "examine_header",
    "parse_header",
    "state_records",
]

T = TypeVar("T")

Kind = Literal["snapshot", "delta", "fork", "tombstone"]
Status = Literal["running", "interrupted", "suspended", "waiting", "completed", "failed", "deleted"]
#: Every kind, at run time (from :data:`Kind`).
KINDS: tuple[Kind, ...] = get_args(Kind)
#: Every status a header can hold, at run time (from :data:`Status`).
STATUSES: tuple[Status, ...] = get_args(Status)
#: Kinds a delta may be based on (they hold the whole state in their body).
BASE_KINDS: tuple[Kind, ...] = ("snapshot", "fork")


@dataclass(frozen=True)
class HeaderProblem:
    """One thing wrong with a header; ``code`` is one of ``verify``'s problem codes."""

    code: str
    message: str


@dataclass(frozen=True)
class Header:
    """One checkpoint header, checked (see the module docstring for the fields)."""

    thread: str
    seq: int
    kind: Kind
    status: Status
    base: int | None
    new: int
    total: int
    time: float = 0.0
    writer: str | None = None
    serde: str | None = None
    workflow: str | None = None
    parent: int | None = None
    key_id: str | None = None
    """The cipher key id (stored as ``key``) of an encrypted body."""

    def to_dict(self) -> dict[str, Any]:
        """The JSON object a writer stores: optional fields only when set."""
        out: dict[str, Any] = {
            "thread": self.thread,
            "seq": self.seq,
            "kind": self.kind,
            "status": self.status,
            "base": self.base,
            "new": self.new,
            "total": self.total,
            "time": self.time,
        }
        for name, value in (
            ("writer", self.writer),
            ("serde", self.serde),
            ("workflow", self.workflow),
            ("parent", self.parent),
            ("key", self.key_id),
        ):
            if value is not None:
                out[name] = value
        return out

    def problems(self) -> list[HeaderProblem]:
        """The rules between fields this header breaks (empty when sound)."""
        found: list[HeaderProblem] = []
        kind, seq = self.kind, self.seq
        if (kind == "tombstone") != (self.status == "deleted"):
            found.append(HeaderProblem("bad_header", f"a {kind} with status {self.status!r}"))
        if kind == "delta":
            if self.base is None or self.base >= seq:
                found.append(
                    HeaderProblem(
                        "bad_base", f"delta names no valid base ({self.base!r} is not an older checkpoint)"
                    )
                )
        elif self.base is not None and self.base != seq:
            found.append(HeaderProblem("bad_header", f"a {kind} must be its own base, but names {self.base}"))
        if self.new > self.total:
            found.append(
                HeaderProblem("count_mismatch", f"adds {self.new} records but holds only {self.total}")
            )
        if kind == "tombstone" and self.total:
            found.append(HeaderProblem("count_mismatch", f"a tombstone holding {self.total} records"))
        if kind == "fork" and (self.parent is None or self.parent >= seq):
            message = f"fork names parent {self.parent!r}, which is not older"
            found.append(HeaderProblem("bad_parent", message))
        return found


def build_header(
    *,
    thread: str,
    seq: int,
    kind: Kind,
    status: Status,
    base: int,
    new: int,
    total: int,
    serde: str,
    workflow: str | None = None,
    parent: int | None = None,
    key_id: str | None = None,
) -> Header:
    """A new header for a writer: the time is now and the writer token fresh and random."""
    # secrets, not uuid.uuid4: LangGraph patches uuid4 for deterministic ids in its
    # tests, and a writer token must never repeat. Imported here, not at module
    # level, because only writers need it (keeps `import cairnflow.core` small).
    import secrets

    return Header(
        thread=thread,
        seq=seq,
        kind=kind,
        status=status,
        base=base,
        new=new,
        total=total,
        time=_time.time(),
        writer=secrets.token_hex(16),
        serde=serde,
        workflow=workflow,
        parent=parent,
        key_id=key_id,
    )


def examine_header(
    source: Envelope | Mapping[str, Any], *, thread_id: str | None = None, seq: int | None = None
) -> tuple[Header | None, list[HeaderProblem]]:
    """Check a header; return it (None if a field is unusable) and every problem found.

    With ``thread_id`` and ``seq`` (the position its key names), a header
    saying otherwise is a ``key_mismatch`` and nothing else is checked.
    """
    raw: Mapping[str, Any] = source if isinstance(source, Mapping) else source.header
    if thread_id is not None and seq is not None:
        found_thread, found_seq = raw.get("thread"), raw.get("seq")
        if found_thread != thread_id or not _is_count(found_seq) or found_seq != seq:
            return None, [
                HeaderProblem(
                    "key_mismatch",
                    f"object does not belong at this key: its header says thread {found_thread!r} "
                    f"checkpoint {found_seq!r} (copied from another thread or position?)",
                )
            ]
    bad: list[str] = []
    kind, status = raw.get("kind"), raw.get("status")
    if kind not in KINDS:
        bad.append(f"unknown checkpoint kind or status: kind {kind!r}")
    if status not in STATUSES:
        bad.append(f"unknown checkpoint kind or status: status {status!r}")
    if not isinstance(raw.get("thread"), str):
        bad.append(f"thread {raw.get('thread')!r} is not a string")
    for name in ("seq", "new", "total"):
        if not _is_count(raw.get(name)):
            bad.append(f"{name} {raw.get(name)!r} is not a non-negative integer")
    for name in ("base", "parent"):
        if raw.get(name) is not None and not _is_count(raw.get(name)):
            bad.append(f"{name} {raw.get(name)!r} is not a checkpoint id")
    when = raw.get("time", 0)
    if not isinstance(when, (int, float)) or isinstance(when, bool):
        bad.append("time is not a number")
    for name in ("writer", "serde", "workflow", "key"):
        if raw.get(name) is not None and not isinstance(raw.get(name), str):
            bad.append(f"{name} {raw.get(name)!r} is not a string")
    if bad:
        return None, [HeaderProblem("bad_header", "; ".join(bad))]
    header = Header(
        thread=raw["thread"],
        seq=raw["seq"],
        kind=kind,  # type: ignore[arg-type]  # checked against KINDS above
        status=status,  # type: ignore[arg-type]  # checked against STATUSES above
        base=raw.get("base"),
        new=raw["new"],
        total=raw["total"],
        time=float(when),
        writer=raw.get("writer"),
        serde=raw.get("serde"),
        workflow=raw.get("workflow"),
        parent=raw.get("parent"),
        key_id=raw.get("key"),
    )
    return header, header.problems()


def parse_header(
    source: Envelope | Mapping[str, Any],
    *,
    key: str | None,
    thread_id: str | None = None,
    seq: int | None = None,
) -> Header:
    """Check a header (see :func:`examine_header`); CorruptCheckpointError naming ``key`` if unsound."""
    header, problems = examine_header(source, thread_id=thread_id, seq=seq)
    if problems:
        raise CorruptCheckpointError(problems[0].message, key=key)
    assert header is not None  # no problem means every field was usable
    return header


def body_problem(header: Header, body_len: int) -> HeaderProblem | None:
    """Does a body of ``body_len`` records fit its header? (A delta's body holds its whole tail.)"""
    if header.kind != "delta" and body_len != header.total:
        return HeaderProblem(
            "count_mismatch",
            f"record count does not match the header: it says {header.total}, the body holds {body_len}",
        )
    if header.kind == "delta" and body_len < header.new:
        return HeaderProblem(
            "count_mismatch",
            f"record count does not match the header: adds {header.new} records, the body holds {body_len}",
        )
    return None


def base_problem(
    header: Header, base: Header, body_len: int | None, base_len: int | None
) -> HeaderProblem | None:
    """Can the delta ``header`` (``body_len`` records) be read on ``base`` (``base_len`` records)?

    A length of None means that body was not read: the counts are then not checked.
    """
    if base.kind not in BASE_KINDS:
        message = f"base checkpoint {base.seq} is not a snapshot (it is a {base.kind})"
        return HeaderProblem("bad_base", message)
    if base_len is not None and body_len is not None and base_len + body_len != header.total:
        return HeaderProblem(
            "count_mismatch",
            f"record count does not match the header: base {base.seq} holds {base_len} records and "
            f"this delta {body_len}, but the header says {header.total}",
        )
    return None


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def base_needed(header: Header, body: Sequence[Any] | None) -> int | None:
    """The base checkpoint :func:`state_records` will ask ``read_base`` for, or None.

    Lets a caller that must read the base as a step (the log) read it first.
    """
    if body is None or header.kind != "delta" or body_problem(header, len(body)) is not None:
        return None
    return header.base


def state_records(
    header: Header,
    body: Sequence[T] | None,
    *,
    key: str,
    read_base: Callable[[int], tuple[Header, Sequence[T] | None]],
) -> tuple[tuple[T, ...], int] | None:
    """Every record of the state at one checkpoint, and how many of them come from its base.

    THE delta + base reconstruction (the log, ``verify`` and the operator tools
    use it). ``header``/``body`` are the checkpoint's own (``body`` None when it
    cannot be read, e.g. encrypted or another serializer's); ``read_base(seq)``
    reads the base of a delta, raising ``ThreadNotFoundError`` if it is gone.
    Returns None when a body needed is unreadable; raises CorruptCheckpointError
    naming ``key`` when the two objects do not make a state.
    """
    if body is None:
        return None
    problem = body_problem(header, len(body))
    if problem is None and header.kind != "delta":
        return tuple(body), len(body)
    if problem is None:
        assert header.base is not None  # parse_header refuses a delta without a valid base
        try:
            base, base_body = read_base(header.base)
        except ThreadNotFoundError:
            raise CorruptCheckpointError(
                f"history has a gap: base checkpoint {header.base} is missing", key=key
            ) from None
        problem = base_problem(header, base, len(body), None if base_body is None else len(base_body))
        if problem is None:
            if base_body is None:
                return None
            return tuple(base_body) + tuple(body), len(base_body)
    raise CorruptCheckpointError(problem.message, key=key)
