"""Check a prefix's (or one thread's) stored checkpoint history without trusting it.

:func:`verify` reads every object under the saver's prefix (or under one
thread's prefix) and reports, as structured :class:`Problem` values, whatever
would make a read fail or a history wrong. It never raises for a bad object:
only for the store itself failing (``StoreError``), an invalid thread id, or a
named thread with no objects at all (``ThreadNotFoundError``).

What is checked, per object:

* the envelope: magic, format version, flags, SHA-256 (``corrupt``,
  ``unsupported_format``);
* the header against its key: thread id and sequence number (``key_mismatch``);
* the header's own fields: kind, status, base, record counts (``bad_header``);
* the body (JSON serializer): well-formed, a list, as many records as the
  header says (``bad_body``, ``count_mismatch``). Bodies are parsed as plain
  JSON: values are never constructed, so registered types need not be
  importable. Bodies written with another serializer (pickle) are never
  loaded; they are reported once per thread as an ``unchecked_body`` warning.

Per thread:

* sequence numbers are consecutive from the oldest kept checkpoint to the head
  (``gap``). Deletes and ``prune`` remove checkpoints oldest first, so a
  thread whose older checkpoints are gone (a tombstone above leftovers of an
  interrupted delete, a pruned thread) is sound; a hole in the middle is not;
* every delta's base exists, is readable, is a snapshot or a fork, is older
  than the delta, and no tombstone lies between them (``missing_base``,
  ``bad_base``); a fork's parent is older than the fork (``bad_parent``);
* record counts chain: a snapshot or delta written on checkpoint ``s - 1``
  holds ``total(s - 1) + new(s)`` records (``new(s)`` after a tombstone),
  and a delta holds its base's records plus its own body (``count_mismatch``).

Over a whole prefix, every key that is not a checkpoint key of this format
(``{prefix}v1/threads/{encoded id}/{12 digits}``) or a status index key
(:mod:`cairnflow.core.status_index`) is a ``foreign_object``; an index entry
naming a thread without checkpoints is an ``index_orphan`` warning.

Costs: one paged LIST of the prefix plus one GET per object, ``workers`` GETs
in flight at a time. Only headers and record counts are kept in memory, one
thread at a time.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from cairnflow.core import codec, keys, status_index
from cairnflow.core.errors import (
    CorruptCheckpointError,
    NotFoundError,
    ThreadNotFoundError,
    UnsupportedFormatError,
)
from cairnflow.core.format import Header, base_problem, body_problem, examine_header
from cairnflow.core.retry import call_with_retry
from cairnflow.core.store import PROBE_SUFFIX

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

    from cairnflow.core.log import CheckpointLog

__all__ = ["PROBLEM_CODES", "Problem", "Severity", "VerifyReport", "verify"]

Severity = Literal["error", "warning"]

#: Every problem code :func:`verify` can report, with what it means.
PROBLEM_CODES: dict[str, str] = {
    "foreign_object": "a key under the prefix that is not a checkpoint key of this format",
    "corrupt": "the object fails its envelope checks (checksum, magic, truncation, header JSON)",
    "unsupported_format": "written by a newer (or unknown) format version or with unknown flags",
    "key_mismatch": "the header's thread id or sequence number disagrees with the object's key",
    "bad_header": "the header lacks a field, or holds an invalid kind, status, base or count",
    "bad_body": "the body is not a well-formed list of records",
    "count_mismatch": "record counts disagree (header vs body, delta vs base, checkpoint vs its predecessor)",
    "gap": "checkpoints are missing between the oldest kept checkpoint and the head",
    "missing_base": "a delta's base snapshot does not exist (its state cannot be read)",
    "bad_base": "a delta's base is unreadable, not a snapshot or fork, not older, or behind a tombstone",
    "bad_parent": "a fork names a parent that is not older than the fork",
    "unchecked_body": "(warning) bodies written with a non-JSON serializer were not loaded",
    "encrypted": "(warning) encrypted bodies were not checked",
    "index_orphan": "(warning) a status index entry names a thread that has no checkpoint",
    "langgraph_unreadable": "a LangGraph checkpoint, channel value or pending write cannot be read "
    "through the LangGraph saver (checked by cairnflow.ops.verify)",
}


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the stored history."""

    code: str
    """One of :data:`PROBLEM_CODES`."""
    message: str
    key: str | None = None
    thread_id: str | None = None
    seq: int | None = None
    severity: Severity = "error"

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "severity": self.severity,
            "thread_id": self.thread_id,
            "checkpoint_id": None if self.seq is None else str(self.seq),
            "key": self.key,
            "message": self.message,
        }


@dataclass(frozen=True)
class VerifyReport:
    """What :func:`verify` found. ``ok`` is true when no problem is an error."""

    store: str
    prefix: str
    thread_id: str | None
    threads_checked: int
    objects_checked: int
    problems: tuple[Problem, ...] = field(default=())

    @property
    def errors(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.severity == "error")

    @property
    def warnings(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.severity == "warning")

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        return {
            "store": self.store,
            "prefix": self.prefix,
            "thread_id": self.thread_id,
            "ok": self.ok,
            "threads_checked": self.threads_checked,
            "objects_checked": self.objects_checked,
            "errors": len(self.errors),
            "warnings": len(self.warnings),
            "problems": [p.to_dict() for p in self.problems],
        }


@dataclass
class _Meta:
    """What one readable object's header (and body) say."""

    header: Header
    base: int | None  # None when the header names no valid base
    body_len: int | None  # None when the body was not checked

    @property
    def kind(self) -> str:
        return self.header.kind

    @property
    def total(self) -> int:
        return self.header.total


@dataclass
class _Progress:
    objects: int = 0
    threads: int = 0
    callback: Callable[[int, int], None] | None = None

    def tick(self, objects: int = 0, threads: int = 0) -> None:
        self.objects += objects
        self.threads += threads
        if self.callback is not None:
            self.callback(self.objects, self.threads)


def verify(
    saver: CheckpointLog,
    thread_id: str | None = None,
    *,
    progress: Callable[[int, int], None] | None = None,
    workers: int = 8,
    skip: Callable[[str], bool] | None = None,
) -> VerifyReport:
    """Check one thread's history, or every object under the saver's prefix.

    ``progress(objects_checked, threads_checked)`` is called as the walk goes.
    ``skip(key)`` true marks a key of another layout stored under the same
    prefix (LangGraph's, which :func:`cairnflow.ops.verify` checks through the
    LangGraph saver): it is neither checked here nor reported as foreign.
    Raises ``ThreadNotFoundError`` if ``thread_id`` is given and has no object,
    ``InvalidThreadIdError`` for an invalid id, ``StoreError`` if the store fails.
    """
    state = _Progress(callback=progress)
    from concurrent.futures import ThreadPoolExecutor  # only verify needs threads: keep it lazy

    problems: list[Problem] = []
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="cairnflow-verify") as pool:
        if thread_id is not None:
            prefix = keys.thread_prefix(saver.prefix, thread_id)
            entries = _listing(saver, prefix)
            if not entries:
                raise ThreadNotFoundError(f"no thread {thread_id!r} in {saver.store.url}/{saver.prefix}")
            problems.extend(_check_group(saver, pool, keys.encode_thread_id(thread_id), entries, state))
        else:
            for segment, group in _groups(saver, problems, state, skip):
                problems.extend(_check_group(saver, pool, segment, group, state))
    return VerifyReport(
        store=saver.store.url,
        prefix=saver.prefix,
        thread_id=thread_id,
        threads_checked=state.threads,
        objects_checked=state.objects,
        problems=tuple(problems),
    )


# --------------------------------------------------------------------------- listing


def _listing(saver: CheckpointLog, prefix: str) -> list[str]:
    return [o.key for o in call_with_retry(lambda: list(saver.store.list(prefix)), saver.store_retry)]


def _iter_keys(saver: CheckpointLog) -> Iterator[str]:
    """Every key under the prefix, lazily; a transient error resumes the listing where it was."""
    last: str | None = None
    retries = 0
    while True:
        try:
            for info in saver.store.list(saver.prefix, start_after=last):
                last = info.key
                yield info.key
            return
        except Exception as exc:
            retries += 1
            if retries >= saver.store_retry.max_attempts or not saver.store_retry.should_retry(exc):
                raise
            time.sleep(saver.store_retry.delay(retries))


def _groups(
    saver: CheckpointLog, problems: list[Problem], state: _Progress, skip: Callable[[str], bool] | None
) -> Iterator[tuple[str, list[str]]]:
    """Group the prefix's checkpoint keys by thread segment; report foreign keys on the way."""
    base = keys.threads_prefix(saver.prefix)
    index_base = status_index.index_prefix(saver.prefix)
    indexed: dict[str, str] = {}  # encoded thread segment -> one of its index keys
    seen: set[str] = set()
    segment: str | None = None
    group: list[str] = []
    for key in _iter_keys(saver):
        if key.endswith(PROBE_SUFFIX):
            continue  # a store's conditional-write probe object (any client's), not foreign
        if skip is not None and skip(key):
            continue  # another layout's object (LangGraph), checked by its own reader
        if key.startswith(index_base):  # parsed, never read: not counted as an object checked
            try:
                status_index.parse_entry_key(saver.prefix, key)
            except ValueError:
                problems.append(Problem("foreign_object", "not a status index key of format v1", key=key))
                continue
            indexed.setdefault(key[len(index_base) :].partition("/")[0], key)
            continue
        if not key.startswith(base) or "/" not in key[len(base) :]:
            problems.append(Problem("foreign_object", "not a cairnflow checkpoint key of format v1", key=key))
            state.tick(objects=1)
            continue
        seg = key[len(base) :].partition("/")[0]
        seen.add(seg)
        if seg != segment:
            if segment is not None and group:
                yield segment, group
            segment, group = seg, []
        group.append(key)
    if segment is not None and group:
        yield segment, group
    for seg, key in indexed.items():
        if seg not in seen:  # a purge that stopped half-way, or a copy of the index alone: harmless
            message = "status index entry for a thread that has no checkpoint (listings skip it)"
            problems.append(Problem("index_orphan", message, key=key, severity="warning"))


# --------------------------------------------------------------------------- one thread


def _check_group(
    saver: CheckpointLog,
    pool: ThreadPoolExecutor,
    segment: str,
    group: list[str],
    state: _Progress,
) -> list[Problem]:
    problems: list[Problem] = []
    try:
        thread_id = keys.decode_thread_id(segment)
    except ValueError:
        for key in group:
            problems.append(Problem("foreign_object", "not an encoded cairnflow thread id", key=key))
        state.tick(objects=len(group))
        return problems
    entries: list[tuple[str, int]] = []
    for key in group:
        try:
            found, seq = keys.parse_checkpoint_key(saver.prefix, key)
        except ValueError:
            found, seq = "", -1
        if found != thread_id:
            problems.append(
                Problem(
                    "foreign_object",
                    "not a checkpoint key (expected 12 digits after the thread id)",
                    key=key,
                    thread_id=thread_id,
                )
            )
            state.tick(objects=1)
            continue
        entries.append((key, seq))
    if not entries:
        return problems

    def fetch(entry: tuple[str, int]) -> tuple[str, int, bytes | None]:
        key, seq = entry
        try:
            data = call_with_retry(lambda: saver.store.get(key), saver.store_retry).data
        except NotFoundError:
            return key, seq, None  # deleted since the listing (a concurrent delete or prune)
        return key, seq, data

    metas: dict[int, _Meta | None] = {}
    keys_by_seq: dict[int, str] = {}
    unchecked: dict[str, int] = {}
    encrypted = 0
    for key, seq, data in pool.map(fetch, entries):
        state.tick(objects=1)
        if data is None:
            continue
        keys_by_seq[seq] = key
        meta, found_problems, note = _check_object(thread_id, seq, key, data)
        metas[seq] = meta
        problems.extend(found_problems)
        if note == "encrypted":
            encrypted += 1
        elif note is not None:
            unchecked[note] = unchecked.get(note, 0) + 1
    for serde, count in sorted(unchecked.items()):
        problems.append(
            Problem(
                "unchecked_body",
                f"{count} checkpoint(s) written with serializer {serde!r}: bodies not loaded or counted",
                thread_id=thread_id,
                severity="warning",
            )
        )
    if encrypted:
        problems.append(
            Problem(
                "encrypted",
                f"{encrypted} encrypted checkpoint(s): bodies not checked",
                thread_id=thread_id,
                severity="warning",
            )
        )
    problems.extend(_check_chain(thread_id, metas, keys_by_seq))
    state.tick(threads=1)
    return problems


def _check_object(
    thread_id: str, seq: int, key: str, data: bytes
) -> tuple[_Meta | None, list[Problem], str | None]:
    """Check one object on its own; return its metadata (None if unusable), problems, a note."""

    def problem(code: str, message: str) -> Problem:
        return Problem(code, message, key=key, thread_id=thread_id, seq=seq)

    try:
        env = codec.decode(data, key=None)
    except UnsupportedFormatError as exc:
        return None, [problem("unsupported_format", str(exc))], None
    except CorruptCheckpointError as exc:
        return None, [problem("corrupt", str(exc))], None
    header, found = examine_header(env, thread_id=thread_id, seq=seq)
    problems = [problem(p.code, p.message) for p in found]
    if header is None:
        return None, problems, None
    note: str | None = None
    body_len: int | None = None
    if env.flags & codec.FLAG_ENCRYPTED:
        note = "encrypted"
    elif header.serde == "json":
        try:
            body = json.loads(env.body)
        except ValueError as exc:
            problems.append(problem("bad_body", f"body is not JSON: {exc}"))
        else:
            if not isinstance(body, list):
                problems.append(problem("bad_body", "body is not a list of records"))
            else:
                body_len = len(body)
                mismatch = body_problem(header, body_len)
                if mismatch is not None:
                    problems.append(problem(mismatch.code, mismatch.message))
    else:
        note = str(header.serde)
    bad_base = any(p.code == "bad_base" for p in found)
    return _Meta(header, None if bad_base else header.base, body_len), problems, note


def _check_chain(
    thread_id: str, metas: dict[int, _Meta | None], keys_by_seq: dict[int, str]
) -> list[Problem]:
    problems: list[Problem] = []
    if not metas:
        return problems
    seqs = sorted(metas)
    oldest, head = seqs[0], seqs[-1]
    present = set(seqs)
    for lo, hi in _missing_ranges(seqs):
        which = f"checkpoint {lo}" if lo == hi else f"checkpoints {lo}..{hi}"
        problems.append(
            Problem(
                "gap",
                f"{which} missing between the oldest kept checkpoint ({oldest}) and the head ({head})",
                thread_id=thread_id,
                seq=lo,
            )
        )
    tombstones = sorted(s for s, m in metas.items() if m is not None and m.kind == "tombstone")
    for seq in seqs:
        meta = metas[seq]
        if meta is None:
            continue
        key = keys_by_seq[seq]

        def problem(code: str, message: str, seq: int = seq, key: str = key) -> Problem:
            return Problem(code, message, key=key, thread_id=thread_id, seq=seq)

        if meta.kind == "delta" and meta.base is not None:
            base = meta.base
            base_meta = metas.get(base)
            where = "its state cannot be read" + (" (the thread's latest state)" if seq == head else "")
            if base not in present:
                why = "was deleted" if base < oldest else "is missing"
                problems.append(problem("missing_base", f"base snapshot {base} {why}: {where}"))
            elif base_meta is None:
                problems.append(problem("bad_base", f"base checkpoint {base} is unreadable: {where}"))
            else:
                found = base_problem(meta.header, base_meta.header, meta.body_len, base_meta.body_len)
                if (found is None or found.code != "bad_base") and any(base < t < seq for t in tombstones):
                    problems.append(problem("bad_base", f"base checkpoint {base} precedes a tombstone"))
                elif found is not None:
                    problems.append(problem(found.code, found.message))
        prev = metas.get(seq - 1)
        if meta.kind in ("snapshot", "delta") and prev is not None:
            expected = meta.header.new if prev.kind == "tombstone" else prev.total + meta.header.new
            if meta.total != expected:
                problems.append(
                    problem(
                        "count_mismatch",
                        f"holds {meta.total} records, but checkpoint {seq - 1} held {prev.total} "
                        f"and this one adds {meta.header.new}",
                    )
                )
    return problems


def _missing_ranges(seqs: Iterable[int]) -> Iterator[tuple[int, int]]:
    previous: int | None = None
    for seq in seqs:
        if previous is not None and seq > previous + 1:
            yield previous + 1, seq - 1
        previous = seq


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
