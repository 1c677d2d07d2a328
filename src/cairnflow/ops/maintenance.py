"""Deleting threads and pruning old checkpoints; the state a thread resumes from is never broken.

What ``prune`` keeps:

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

import functools
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass

from cairnflow.core import keys
from cairnflow.core.errors import (
    ConflictError,
    CorruptCheckpointError,
    InvalidArgumentError,
    SerializationError,
    ThreadNotFoundError,
)
from cairnflow.core.log import CheckpointLog
from cairnflow.ops import lgraph, objects
from cairnflow.ops.objects import StoredCheckpoint
from cairnflow.ops.reading import thread_layout
from cairnflow.ops.results import STATUSES, DeleteResult, PrunedThread, PruneResult

__all__ = ["delete_thread", "prune"]


def _remove_below(saver: CheckpointLog, thread_id: str, below: int) -> list[int]:
    """Delete the thread's checkpoints with seq < ``below``, oldest first; return their seqs."""
    doomed = sorted(seq for seq, _ in objects.thread_seqs(saver, thread_id) if seq < below)
    for seq in doomed:
        key = keys.checkpoint_key(saver.prefix, thread_id, seq)
        objects.retry(saver, functools.partial(saver.store.delete, key))
    return doomed


def _delete(
    saver: CheckpointLog, thread_id: str, head: StoredCheckpoint, *, purge: bool, exact: bool
) -> tuple[list[int], int]:
    """Fence and delete; return (seqs deleted that existed before, tombstone seq).

    ``exact``: fence exactly above ``head``, else raise ConflictError; otherwise a
    thread that advanced meanwhile is fenced again above its new head.
    """
    existing = sorted(seq for seq, _ in objects.thread_seqs(saver, thread_id))
    while True:
        try:
            tomb = saver.delete_thread(thread_id, purge=purge, expected_head=head.seq)
            break
        except ConflictError:
            if exact:
                raise
            fresh = objects.head(saver, thread_id)
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
    saver: CheckpointLog,
    thread_id: str,
    *,
    dry_run: bool = False,
    purge: bool = False,
    layout: str | None = None,
) -> DeleteResult:
    """Delete a thread: write a tombstone above its head, then delete every older checkpoint.

    The tombstone fences out any writer that loaded the thread before: it gets
    ``ConflictError`` instead of resurrecting it. ``purge`` removes the
    tombstone too (only safe once no writer can still hold the thread).
    Unlike a blind sweep of the prefix, only checkpoints *below* the tombstone
    are deleted, so a new run started on the same id right after the tombstone
    is left alone. ``ThreadNotFoundError`` if the thread does not exist (or is
    only a tombstone and ``purge`` is false). A LangGraph thread is deleted by
    the LangGraph saver, in every namespace (``layout`` names the layout when
    the id exists in both).
    """
    if thread_layout(saver, thread_id, layout) == "langgraph":
        lg = lgraph.graph_saver(saver)
        assert lg is not None  # thread_layout found the thread there
        return lgraph.delete(lg, thread_id, dry_run=dry_run, purge=purge)
    seqs = objects.thread_seqs(saver, thread_id)
    head = objects.head(saver, thread_id) if seqs else None
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
    else:
        doomed, tomb = _delete(saver, thread_id, head, purge=purge, exact=False)
    return DeleteResult(
        thread_id=thread_id,
        dry_run=dry_run,
        status=head.status,
        deleted=[str(s) for s in doomed],
        tombstone=None if purge else str(tomb),
        purged=purge,
    )


@dataclass(frozen=True, kw_only=True)
class _Plan:
    """One prune run's settings, as given."""

    keep_last: int | None
    cutoff: float
    wanted: frozenset[str]
    dry_run: bool
    purge: bool


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
    total: Callable[[int], None] | None = None,
) -> PruneResult:
    """Trim old checkpoints (``keep_last``) or delete stale threads (``older_than`` seconds).

    Exactly one of the two (:class:`InvalidArgumentError` otherwise).
    ``statuses`` restricts the threads touched (default: every status for
    ``keep_last``; only ``completed`` for ``older_than``). See the module
    docstring for what is kept. ``progress(threads_examined,
    checkpoints_deleted)`` is called as it goes, after ``total(threads)``.
    LangGraph threads are pruned by the LangGraph saver: ``keep_last=1`` keeps
    each namespace's latest checkpoint (a larger ``keep_last`` skips them with
    a reason), ``older_than`` deletes stale ones like executor threads.
    """
    if (keep_last is None) == (older_than is None):
        raise InvalidArgumentError("give exactly one of keep_last and older_than")
    if keep_last is not None and keep_last < 1:
        raise InvalidArgumentError("keep_last must be at least 1 (the latest state is never pruned)")
    if older_than is not None and older_than < 0:
        raise InvalidArgumentError("older_than must not be negative")
    if statuses is None:
        wanted = set(STATUSES) if keep_last is not None else {"completed"}
    else:
        wanted = set(statuses)
    cutoff = (time.time() if now is None else now) - (older_than or 0.0)
    plan = _Plan(keep_last=keep_last, cutoff=cutoff, wanted=frozenset(wanted), dry_run=dry_run, purge=purge)
    examined = 0
    deleted_total = 0
    results: list[PrunedThread] = []
    heads = list(objects.scan_heads(saver))
    lg = lgraph.graph_saver(saver)
    graph_ids = list(lgraph.thread_ids(lg)) if lg is not None else []
    if total is not None:
        total(len(heads) + len(graph_ids))
    for thread_id, head_key in heads:
        examined += 1
        try:
            outcome = (
                _trim(saver, thread_id, head_key, plan)
                if keep_last is not None
                else _expire(saver, thread_id, head_key, plan)
            )
        except (CorruptCheckpointError, SerializationError) as exc:
            outcome = PrunedThread(
                thread_id=thread_id,
                status="corrupt",
                updated_at=None,
                action="skip",
                deleted=[],
                reason=str(exc),
            )
        if outcome is not None:
            results.append(outcome)
            deleted_total += len(outcome.deleted)
        if progress is not None:
            progress(examined, deleted_total)
    for summary in lgraph.summaries(lg, graph_ids) if lg is not None else ():
        assert lg is not None
        examined += 1
        if summary.status in plan.wanted:
            outcome = lgraph.prune_thread(
                lg, summary, keep_last=keep_last, cutoff=cutoff, dry_run=dry_run, purge=purge
            )
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


def _trim(saver: CheckpointLog, thread_id: str, head_key: str, plan: _Plan) -> PrunedThread | None:
    assert plan.keep_last is not None
    head = objects.read_key(saver, thread_id, head_key)
    if head.status not in plan.wanted:
        return None
    seqs = objects.thread_seqs(saver, thread_id)  # newest first
    if len(seqs) <= plan.keep_last:
        return None
    oldest_kept_seq, oldest_kept_key = seqs[plan.keep_last - 1]
    oldest_kept = objects.read_key(saver, thread_id, oldest_kept_key)
    # A delta is readable only with its base snapshot: keep from there. Bases never decrease
    # along a linear history, so this keeps every newer checkpoint readable, the head included.
    # (parse_header guarantees a delta's base is an older checkpoint.)
    cut = oldest_kept_seq
    for obj in (oldest_kept, head):
        if obj.kind == "delta" and obj.header.base is not None:
            cut = min(cut, obj.header.base)
    doomed = sorted(seq for seq, _ in seqs if seq < cut)
    if not doomed:
        return None
    if not plan.dry_run:
        doomed = _remove_below(saver, thread_id, cut)
    return PrunedThread(
        thread_id=thread_id,
        status=head.status,
        updated_at=head.header.time,
        action="trim",
        deleted=[str(s) for s in doomed],
        keep_from=str(cut),
        head=str(head.seq),
    )


def _expire(saver: CheckpointLog, thread_id: str, head_key: str, plan: _Plan) -> PrunedThread | None:
    head = objects.read_key(saver, thread_id, head_key)
    updated = head.header.time
    if head.status not in plan.wanted or updated >= plan.cutoff:
        return None
    tombstoned = head.kind == "tombstone"
    action = "purge" if tombstoned else "delete"
    done = functools.partial(
        PrunedThread, thread_id=thread_id, status=head.status, updated_at=updated, head=str(head.seq)
    )
    if plan.dry_run:
        tomb = head.seq if tombstoned else head.seq + 1
        doomed = sorted(seq for seq, _ in objects.thread_seqs(saver, thread_id) if seq < tomb)
        if tombstoned:
            doomed.append(tomb)
        return done(action=action, deleted=[str(s) for s in doomed])
    try:
        deleted, _ = _delete(saver, thread_id, head, purge=plan.purge or tombstoned, exact=True)
    except ConflictError:
        return done(action="skip", deleted=[], reason="the thread advanced while being pruned; left alone")
    return done(action=action, deleted=[str(s) for s in deleted])
