"""Reading threads: the listing, a thread's history, and the state at one checkpoint.

Costs: :func:`list_threads` one LIST and one or two GETs per thread, eight
threads at a time; :func:`thread_history` one LIST and one GET per
checkpoint; :func:`show_state` one LIST and one to three GETs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from cairnflow.core import keys
from cairnflow.core.errors import (
    CorruptCheckpointError,
    InvalidArgumentError,
    NotFoundError,
    SerializationError,
    ThreadNotFoundError,
)
from cairnflow.core.log import CheckpointLog
from cairnflow.ops import objects
from cairnflow.ops.display import error_text
from cairnflow.ops.results import STATUSES, HistoryEntry, Step, ThreadState, ThreadSummary

__all__ = ["list_threads", "show_state", "thread_history"]


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
            return error_text(self.end.get("error"))
        return None


# --------------------------------------------------------------------------- threads


def _summarise(saver: CheckpointLog, item: tuple[str, str]) -> ThreadSummary | None:
    thread_id, key = item
    try:
        head = objects.read_key(saver, thread_id, key)
        records = objects.state_of(saver, head, thread_id)
    except (CorruptCheckpointError, SerializationError) as exc:
        return ThreadSummary(thread_id=thread_id, status="corrupt", error=str(exc))
    except NotFoundError:  # changed between the listing and the read: look again
        fresh = objects.thread_keys(saver, thread_id, limit=1)
        return _summarise(saver, (thread_id, fresh[0])) if fresh else None
    header = head.header
    analysis = _Analysis.of(records) if records is not None else None
    pending = analysis.pending() if analysis is not None and head.status == "interrupted" else None
    return ThreadSummary(
        thread_id=thread_id,
        status=head.status,
        workflow=header.workflow,
        checkpoint_id=str(head.seq),
        checkpoints=head.seq + 1,
        steps=len(analysis.ops) if analysis is not None else None,
        records=header.total,
        updated_at=header.time,
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
        raise InvalidArgumentError(f"sort must be 'id' or 'updated', not {sort!r}")
    wanted = set(statuses) if statuses else set(STATUSES) - {"deleted"}

    def matches(s: ThreadSummary) -> bool:
        if s.status not in wanted or (workflow is not None and s.workflow != workflow):
            return False
        if updated_before is not None and (s.updated_at is None or s.updated_at >= updated_before):
            return False
        return not (updated_after is not None and (s.updated_at is None or s.updated_at < updated_after))

    out: list[ThreadSummary] = []
    walk = objects.parallel(lambda item: _summarise(saver, item), objects.scan_heads(saver))
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


def thread_history(saver: CheckpointLog, thread_id: str, *, limit: int | None = None) -> list[HistoryEntry]:
    """The thread's checkpoints, newest first: one LIST and one GET per checkpoint.

    Keys under the thread's prefix that are not checkpoint keys are left out
    (:func:`~cairnflow.core.verify.verify` reports them).
    """
    listed = [
        k for k in objects.thread_keys(saver, thread_id, limit=limit) if objects.is_checkpoint_key(saver, k)
    ]
    if not listed:
        raise ThreadNotFoundError(f"no thread {thread_id!r}")

    def entry(key: str) -> HistoryEntry:
        obj = objects.read_key(saver, thread_id, key)
        h = obj.header
        return HistoryEntry(
            thread_id=thread_id,
            checkpoint_id=str(obj.seq),
            kind=obj.kind,
            status=obj.status,
            created_at=h.time,
            new_records=h.new,
            total_records=h.total,
            base=h.base if obj.kind == "delta" else None,
            parent=h.parent,
            workflow=h.workflow,
            records=obj.new,
        )

    return list(objects.parallel(entry, iter(listed)))


# --------------------------------------------------------------------------- show


def _steps(analysis: _Analysis) -> list[Step]:
    steps: list[Step] = []
    for pos in sorted(analysis.ops):
        rec = analysis.ops[pos]
        if rec["op"] == "interrupt":
            answered = pos in analysis.answers
            steps.append(
                Step(
                    pos=pos,
                    type="interrupt",
                    name=None,
                    status="answered" if answered else "waiting",
                    value=rec.get("value"),
                    answer=analysis.answers.get(pos),
                )
            )
        elif rec["op"] == "task":
            steps.append(
                Step(pos=pos, type="task", name=rec.get("name"), status="done", value=rec.get("value"))
            )
        else:
            error = error_text(rec.get("error"))
            steps.append(Step(pos=pos, type="task", name=rec.get("name"), status="failed", error=error))
    return steps


def show_state(saver: CheckpointLog, thread_id: str, checkpoint_id: str | int | None = None) -> ThreadState:
    """The state at ``checkpoint_id`` (default: the latest); ``ThreadNotFoundError`` if none."""
    head = objects.head(saver, thread_id)
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
        target = objects.read(saver, thread_id, seq)
    records = objects.state_of(saver, target, thread_id)
    h = target.header
    state = ThreadState(
        thread_id=thread_id,
        checkpoint_id=str(target.seq),
        latest_checkpoint_id=str(head.seq),
        kind=target.kind,
        status=target.status,
        workflow=h.workflow,
        created_at=h.time,
        total_records=h.total,
        values_readable=records is not None,
        unreadable=None if records is not None else target.unreadable or "its base cannot be read",
    )
    if records is None:
        return state
    analysis = _Analysis.of(records)
    pending = analysis.pending() if target.status == "interrupted" else None
    end = analysis.end
    return dataclasses.replace(
        state,
        input=analysis.start.get("input") if analysis.start else None,
        result=end.get("value") if end is not None and end.get("status") == "completed" else None,
        error=analysis.error(),
        interrupt=None if pending is None else {"id": str(pending["pos"]), "value": pending.get("value")},
        steps=tuple(_steps(analysis)),
        records=records,
    )
