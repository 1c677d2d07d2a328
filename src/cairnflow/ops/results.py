"""What the operations return: frozen, keyword-only dataclasses with a ``to_dict()``.

The field names of ``to_dict()`` are the ``--json`` output of the matching
``cairnflow`` command.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cairnflow.ops.display import describe_record, iso_time, untag

__all__ = [
    "LAYOUTS",
    "STATUSES",
    "CopiedThread",
    "CopyResult",
    "DeleteResult",
    "HistoryEntry",
    "PruneResult",
    "PrunedThread",
    "Step",
    "ThreadState",
    "ThreadSummary",
]

#: Every status a thread can show: the executor's statuses, ``deleted`` (its head is a
#: tombstone) and ``corrupt`` (its newest checkpoint cannot be read).
STATUSES = ("running", "interrupted", "suspended", "waiting", "completed", "failed", "deleted", "corrupt")
#: The two key layouts a store can hold under one prefix: the executor's checkpoint log
#: (``v1/threads/``) and the LangGraph checkpointer's (``v1/lg/``).
LAYOUTS = ("executor", "langgraph")


@dataclass(frozen=True, kw_only=True)
class ThreadSummary:
    """One thread, as ``cairnflow threads`` lists it."""

    thread_id: str
    status: str
    """One of :data:`STATUSES` (``running`` means the last write said so: a live run or a dead one)."""
    workflow: str | None = None
    checkpoint_id: str | None = None
    """The newest checkpoint."""
    checkpoints: int | None = None
    """Checkpoints the thread has written (its newest sequence number + 1; pruned ones included)."""
    steps: int | None = None
    """Task calls and interrupts recorded."""
    records: int | None = None
    updated_at: float | None = None
    error: str | None = None
    """Why it failed (``Type: message``), or why it cannot be read."""
    waiting_for: Any = None
    """The pending interrupt's value, when interrupted."""
    layout: str = "executor"
    """Which layout the thread is stored in: ``executor`` or ``langgraph``."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "thread_id": self.thread_id,
            "layout": self.layout,
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


@dataclass(frozen=True, kw_only=True)
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


@dataclass(frozen=True, kw_only=True)
class Step:
    """One task call or interrupt of the workflow body, by position."""

    pos: int
    type: str  # "task" | "interrupt" | "value" | "timer" | "callback" | "child"
    name: str | None
    status: str  # task/callback/child: "done" | "failed" (| "waiting"); interrupt: "waiting" | "answered"
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


@dataclass(frozen=True, kw_only=True)
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
    unreadable: str | None = None
    """Why the values are not shown (encrypted without a key, another serializer)."""
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
            "unreadable": self.unreadable,
            "input": untag(self.input),
            "result": untag(self.result),
            "error": self.error,
            "interrupt": None if self.interrupt is None else untag(self.interrupt),
            "steps": [s.to_dict() for s in self.steps],
            "records": None if self.records is None else untag(self.records),
        }


@dataclass(frozen=True, kw_only=True)
class DeleteResult:
    """What :func:`~cairnflow.ops.delete_thread` removed (or, on a dry run, would remove)."""

    thread_id: str
    dry_run: bool
    status: str
    """The thread's status before the delete."""
    deleted: list[str]
    """Checkpoint ids removed (or to be removed), oldest first."""
    tombstone: str | None
    """The tombstone's checkpoint id (None when purged)."""
    purged: bool
    layout: str = "executor"

    def to_dict(self) -> dict[str, Any]:
        return {
            "thread_id": self.thread_id,
            "layout": self.layout,
            "dry_run": self.dry_run,
            "status": self.status,
            "deleted": self.deleted,
            "deleted_count": len(self.deleted),
            "tombstone": self.tombstone,
            "purged": self.purged,
        }


@dataclass(frozen=True, kw_only=True)
class PrunedThread:
    """What prune did (or would do) to one thread."""

    thread_id: str
    status: str
    updated_at: float | None
    action: str
    """``trim`` (old checkpoints), ``delete`` (the whole thread), ``purge`` (a deleted
    thread's tombstone and leftovers), or ``skip`` (see ``reason``)."""
    deleted: list[str]
    keep_from: str | None = None
    """The oldest checkpoint kept (``trim``)."""
    head: str | None = None
    reason: str | None = None
    layout: str = "executor"

    def to_dict(self) -> dict[str, Any]:
        return {
            "thread_id": self.thread_id,
            "layout": self.layout,
            "status": self.status,
            "updated_at": iso_time(self.updated_at),
            "action": self.action,
            "deleted": self.deleted,
            "deleted_count": len(self.deleted),
            "keep_from": self.keep_from,
            "head": self.head,
            "reason": self.reason,
        }


@dataclass(frozen=True, kw_only=True)
class PruneResult:
    """What :func:`~cairnflow.ops.prune` did (or would do) to the store."""

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


@dataclass(frozen=True, kw_only=True)
class CopiedThread:
    """What :func:`~cairnflow.ops.copy_threads` did to one thread."""

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
    layout: str = "executor"

    def to_dict(self) -> dict[str, Any]:
        return {
            "thread_id": self.thread_id,
            "layout": self.layout,
            "result": self.result,
            "copied": self.copied,
            "skipped": self.skipped,
            "head": self.head,
            "error": self.error,
        }


@dataclass(frozen=True, kw_only=True)
class CopyResult:
    """What :func:`~cairnflow.ops.copy_threads` copied, thread by thread."""

    source: str
    destination: str
    threads: list[CopiedThread]
    dry_run: bool = False

    @property
    def problems(self) -> list[CopiedThread]:
        return [t for t in self.threads if t.result in ("conflict", "corrupt")]

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "destination": self.destination,
            "dry_run": self.dry_run,
            "threads_copied": len(self.threads),
            "checkpoints_copied": sum(t.copied for t in self.threads),
            "checkpoints_skipped": sum(t.skipped for t in self.threads),
            "problems": len(self.problems),
            "threads": [t.to_dict() for t in self.threads],
        }
