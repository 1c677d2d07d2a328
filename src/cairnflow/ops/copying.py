"""Copying threads, history included, to another store: byte for byte, create-only, resumable."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from cairnflow.core import keys, status_index
from cairnflow.core.errors import (
    AlreadyExistsError,
    CorruptCheckpointError,
    InvalidArgumentError,
    NotFoundError,
    ThreadNotFoundError,
)
from cairnflow.core.log import CheckpointLog
from cairnflow.core.store import CREATE
from cairnflow.ops import lgraph, objects
from cairnflow.ops.objects import StoredCheckpoint
from cairnflow.ops.reading import thread_layout
from cairnflow.ops.results import CopiedThread, CopyResult

if TYPE_CHECKING:
    from cairnflow.langgraph import LangGraphSaver

__all__ = ["copy_threads"]


def copy_threads(
    src: CheckpointLog,
    dst: CheckpointLog,
    *,
    thread_id: str | None = None,
    workers: int = 4,
    progress: Callable[[int, int], None] | None = None,
    dry_run: bool = False,
    layout: str | None = None,
    total: Callable[[int], None] | None = None,
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
    checkpoints_copied)`` is called as it goes; ``total(threads)`` once the
    number of threads to copy is known. Copying a store onto itself is an
    :class:`InvalidArgumentError`.

    LangGraph threads are copied too, through the LangGraph savers of both
    stores (:func:`cairnflow.ops.lgraph.copy_thread`): every namespace,
    checkpoint, channel value and pending write, oldest first.
    ``dry_run``: report what would be copied, write nothing.
    """
    if src.store.url == dst.store.url and src.prefix == dst.prefix:
        raise InvalidArgumentError(f"source and destination are the same store: {src.store.url}/{src.prefix}")
    lg_src = lgraph.graph_saver(src)
    jobs: list[tuple[str, str]]  # (layout, thread id)
    if thread_id is not None:
        try:
            jobs = [(thread_layout(src, thread_id, layout), thread_id)]
        except ThreadNotFoundError:
            raise ThreadNotFoundError(f"no thread {thread_id!r} in the source") from None
    else:
        jobs = []
        if layout in (None, "executor"):
            jobs += [("executor", t) for t, _ in objects.scan_heads(src)]
        if layout in (None, "langgraph") and lg_src is not None:
            jobs += [("langgraph", t) for t in lgraph.thread_ids(lg_src)]
    if total is not None:
        total(len(jobs))
    lg_dst = _graph_destination(dst) if any(kind == "langgraph" for kind, _ in jobs) else None
    counts = [0, 0]
    lock = threading.Lock()

    def one(job: tuple[str, str]) -> CopiedThread:
        kind, tid = job
        if kind == "langgraph":
            assert lg_src is not None and lg_dst is not None
            result = lgraph.copy_thread(lg_src, lg_dst, tid, dry_run=dry_run)
        else:
            result = _copy_thread(src, dst, tid, dry_run=dry_run)
        with lock:
            counts[0] += 1
            counts[1] += result.copied
            if progress is not None:
                progress(counts[0], counts[1])
        return result

    return CopyResult(
        source=src.store.url + "/" + src.prefix,
        destination=dst.store.url + "/" + dst.prefix,
        threads=list(objects.parallel(one, iter(jobs), workers)),
        dry_run=dry_run,
    )


def _graph_destination(dst: CheckpointLog) -> LangGraphSaver:
    from cairnflow.langgraph import LangGraphSaver

    return LangGraphSaver(dst.store, prefix=dst.prefix, store_retry=dst.store_retry)


def _copy_thread(src: CheckpointLog, dst: CheckpointLog, thread_id: str, *, dry_run: bool) -> CopiedThread:
    seqs = sorted(seq for seq, _ in objects.thread_seqs(src, thread_id))  # oldest first
    existing = set(objects.thread_keys(dst, thread_id))
    copied = skipped = 0
    head = str(seqs[-1]) if seqs else None

    def stop(result: str, error: str) -> CopiedThread:
        return CopiedThread(
            thread_id=thread_id, result=result, copied=copied, skipped=skipped, head=head, error=error
        )

    newest: StoredCheckpoint | None = None
    for seq in seqs:
        src_key = keys.checkpoint_key(src.prefix, thread_id, seq)
        dst_key = keys.checkpoint_key(dst.prefix, thread_id, seq)
        try:
            data = objects.retry(src, functools.partial(src.store.get, src_key)).data
        except NotFoundError:
            continue  # deleted at the source since the listing (oldest first, by delete or prune)
        try:
            newest = objects.decode(src, thread_id, seq, src_key, data)
        except CorruptCheckpointError as exc:
            return stop("corrupt", str(exc))
        if dst_key not in existing and dry_run:
            copied += 1
            continue
        if dst_key not in existing:
            try:
                objects.retry(dst, functools.partial(dst.store.put, dst_key, data, CREATE))
                copied += 1
                continue
            except AlreadyExistsError:
                pass  # a concurrent writer, or our own earlier attempt that landed: compare
        try:
            current = objects.retry(dst, functools.partial(dst.store.get, dst_key)).data
        except NotFoundError:
            return stop("conflict", f"checkpoint {seq} vanished from the destination during the copy")
        if current != data:
            return stop(
                "conflict",
                f"the destination already has a different checkpoint {seq} for this thread "
                "(it was written there, not copied); nothing overwritten",
            )
        skipped += 1
    if newest is not None and copied and not dry_run:  # the status index entry of the copied head
        info = CheckpointLog.info_of(newest.header)
        status_index.record_stop(dst.store, dst.prefix, info, None, retry=dst.store_retry)
    result = "copied" if copied else "up_to_date"
    return CopiedThread(thread_id=thread_id, result=result, copied=copied, skipped=skipped, head=head)
