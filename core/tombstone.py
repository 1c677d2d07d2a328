"""Deleting a thread: fence it with a tombstone, then remove what lies below.

A deleted thread keeps a small *tombstone* checkpoint as its head, so that a
writer that loaded the thread before the delete gets a ConflictError instead
of resurrecting it; ``purge`` removes the tombstone too. Checkpoints are
deleted oldest first, so an interrupted delete leaves a thread whose older
checkpoints are gone (which ``verify`` accepts), never a hole in the middle.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cairnflow.core import codec, keys, status_index
from cairnflow.core.errors import ConflictError
from cairnflow.core.format import examine_header
from cairnflow.core.steps import Delete, Get, List, Step, run
from cairnflow.core.store import ObjectInfo, StoredObject

if TYPE_CHECKING:
    from cairnflow.core.log import CheckpointLog
    from cairnflow.core.protocol import LogSteps

__all__ = ["delete_thread", "delete_thread_steps"]


def delete_thread(
    log: CheckpointLog, thread_id: str, *, purge: bool = False, expected_head: int | None = None
) -> int | None:
    """Tombstone the thread, then delete every checkpoint below the tombstone (see the steps)."""
    return run(delete_thread_steps(log, thread_id, purge=purge, expected_head=expected_head), log.store)


def delete_thread_steps(
    log: LogSteps, thread_id: str, *, purge: bool = False, expected_head: int | None = None
) -> Step[int | None]:
    """Tombstone the thread, then delete every checkpoint below the tombstone.

    Returns the tombstone's sequence number (None if there was no thread).
    With ``expected_head``, the tombstone goes exactly above that checkpoint
    and ``ConflictError`` is raised if the thread has moved on meanwhile
    (so that an operator deleting "the old thread" never deletes new work);
    without it, the tombstone goes above whatever the head is. Only
    checkpoints *below* the tombstone are deleted: a run started on the same
    id right after the tombstone keeps its checkpoints.
    """
    while True:
        head_key = yield from log._head_key(thread_id)
        if head_key is None:
            if expected_head is not None:
                raise ConflictError(f"thread {thread_id!r} is gone", thread_id=thread_id)
            return None
        _, head_seq = keys.parse_checkpoint_key(log.prefix, head_key)
        if expected_head is not None and head_seq != expected_head:
            raise ConflictError(
                f"thread {thread_id!r} is at checkpoint {head_seq}, not {expected_head}",
                thread_id=thread_id,
            )
        obj: StoredObject = yield from log._retried(Get(head_key))
        # Leniently: an operator may delete a thread whose head header is unsound.
        header, _ = examine_header(codec.decode(obj.data, key=head_key))
        if header is not None and header.kind == "tombstone":
            tomb_seq, tomb_header = head_seq, header
            break
        tomb_seq = head_seq + 1
        try:
            tomb_header = yield from log._write(
                thread_id,
                tomb_seq,
                log.serializer.dumps([]),
                kind="tombstone",
                status="deleted",
                new=0,
                total=0,
                base=tomb_seq,
                workflow=None if header is None else header.workflow,
            )
            break
        except ConflictError:
            if expected_head is not None:
                raise
            continue  # a writer advanced the thread meanwhile: fence again above it
    tomb_key = keys.checkpoint_key(log.prefix, thread_id, tomb_seq)
    # Newest-first keys: every checkpoint below the tombstone sorts after its key.
    older: list[ObjectInfo] = yield from log._retried(
        List(keys.thread_prefix(log.prefix, thread_id), start_after=tomb_key)
    )
    for info in reversed(older):  # oldest first
        try:
            keys.parse_checkpoint_key(log.prefix, info.key)
        except ValueError:
            continue  # not ours: leave foreign objects alone
        yield from log._retried(Delete(info.key))
    if purge:
        yield from log._retried(Delete(tomb_key))
    # The status index: the tombstone's entry supersedes the thread's older ones; purge leaves none.
    if not purge:
        tomb_info = log.info_of(tomb_header)
        yield from status_index.record_stop_steps(log.prefix, tomb_info, None, retry=log.store_retry)
    below = tomb_seq + 1 if purge else tomb_seq
    yield from status_index.remove_entries_steps(log.prefix, thread_id, below=below, retry=log.store_retry)
    return tomb_seq
