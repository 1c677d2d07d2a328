"""Listing executor threads from the status index, and building the index for an old store.

The index (:mod:`cairnflow.core.status_index`) gives each thread's status,
workflow, newest indexed checkpoint and time as of its last run stop, in one
LIST request per 1,000 threads. A delimiter listing of the thread folders (one
request per 1,000 threads on S3, GCS and Azure) finds the threads the index
does not know (stores written before it existed, runs that never stopped, a
workflow name too long for a key); only those are read one by one.

Costs of a listing of N indexed threads: about ``2 * ceil(N / 1000)`` LISTs
and no GET; with ``details``, one LIST (the head) and one or two GETs per
thread that matched the filters, after filtering, sorting and ``limit``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from cairnflow.core import keys, status_index
from cairnflow.core.errors import CorruptCheckpointError, NotFoundError, SerializationError
from cairnflow.core.log import CheckpointLog
from cairnflow.ops import objects
from cairnflow.ops.results import ThreadSummary

__all__ = ["executor_summaries", "refresh", "reindex", "summary_of"]

Reader = Callable[[str, str], "ThreadSummary | None"]


def summary_of(entry: status_index.Entry) -> ThreadSummary:
    """What an index entry says of its thread (no steps, records, error or question)."""
    return ThreadSummary(
        thread_id=entry.thread_id,
        status=entry.status,
        workflow=entry.workflow,
        checkpoint_id=str(entry.seq),
        checkpoints=entry.seq + 1,
        updated_at=entry.updated_at,
    )


def _read_head(saver: CheckpointLog, thread_id: str, read: Reader) -> ThreadSummary | None:
    found = objects.thread_keys(saver, thread_id, limit=1)
    return read(thread_id, found[0]) if found else None


def executor_summaries(
    saver: CheckpointLog, read: Reader, *, use_index: bool = True, from_index: set[str] | None = None
) -> Iterator[ThreadSummary | None]:
    """Every executor thread's summary in key order: from the index where it has the thread.

    ``read(thread_id, head_key)`` reads a thread the index does not know.
    ``use_index`` false reads every thread (the way to find ``corrupt`` heads).
    The ids of threads summarised from the index are added to ``from_index``.
    """
    if not use_index:
        yield from objects.parallel(lambda item: read(*item), objects.scan_heads(saver))
        return
    indexed = {
        e.thread_id: e
        for e in objects.retry(saver, lambda: list(status_index.latest_entries(saver.store, saver.prefix)))
    }

    def one(thread_id: str) -> ThreadSummary | None:
        entry = indexed.get(thread_id)
        if entry is not None and not entry.workflow_elided:
            if from_index is not None:
                from_index.add(thread_id)
            return summary_of(entry)
        return _read_head(saver, thread_id, read)

    # Index entries naming a thread without folder (a half-done purge) are skipped.
    yield from objects.parallel(one, saver.threads())


def refresh(
    saver: CheckpointLog, summaries: list[ThreadSummary], read: Reader, from_index: set[str]
) -> Iterator[ThreadSummary | None]:
    """Threads summarised from the index, read from their heads (steps, error, question).

    A head newer than its index entry (a run resumed since its last stop) wins.
    """

    def one(summary: ThreadSummary) -> ThreadSummary | None:
        if summary.layout != "executor" or summary.thread_id not in from_index:
            return summary  # already read from its head (or another layout's)
        return _read_head(saver, summary.thread_id, read)

    return objects.parallel(one, iter(summaries))


# --------------------------------------------------------------------------- reindex


def reindex(saver: CheckpointLog, *, progress: Callable[[int], None] | None = None) -> tuple[int, int]:
    """Build the status index of every executor thread from its head; return (threads, entries removed).

    One listing of the index and one delimiter listing of the threads, then for
    each thread one LIST and one GET (its head), one create-only PUT when its
    head's entry is missing, and one DELETE per older entry it supersedes;
    entries of threads that have no checkpoint left are deleted too. Safe to run
    while runs go on: only entries older than the head read are removed, and a
    newer stop's entry sorts before it. Threads whose head cannot be read are
    left out (``cairnflow verify`` says why).
    """
    index_base = status_index.index_prefix(saver.prefix)
    entries: dict[str, list[str]] = {}  # encoded thread -> its index keys
    for info in objects.retry(saver, lambda: list(saver.store.list(index_base))):
        entries.setdefault(info.key[len(index_base) :].partition("/")[0], []).append(info.key)
    base = keys.threads_prefix(saver.prefix)
    segments = [
        f[len(base) : -1] for f in objects.retry(saver, lambda: list(saver.store.list_prefixes(base)))
    ]

    def one(segment: str) -> int:
        try:
            thread_id = keys.decode_thread_id(segment)
        except ValueError:
            return 0  # a foreign folder (verify reports it)
        found = objects.thread_keys(saver, thread_id, limit=1)
        if not found:
            return 0
        try:
            head = objects.read_key(saver, thread_id, found[0])
        except (CorruptCheckpointError, SerializationError, NotFoundError):
            return 0
        key = status_index.entry_key(saver.prefix, CheckpointLog.info_of(head.header))
        existing = entries.get(segment, [])
        if key not in existing:
            status_index.record_stop(
                saver.store, saver.prefix, CheckpointLog.info_of(head.header), None, retry=saver.store_retry
            )
        removed = 0
        for old in existing:
            try:
                superseded = status_index.parse_entry_key(saver.prefix, old).seq < head.seq
            except ValueError:
                continue  # not an entry: left for verify to report
            if superseded:
                objects.retry(saver, lambda old=old: saver.store.delete(old))  # type: ignore[misc]
                removed += 1
        return removed

    done = removed = 0
    for count in objects.parallel(one, iter(segments)):
        done += 1
        removed += count
        if progress is not None:
            progress(done)
    for segment in set(entries) - set(segments):  # a purge cut short: no checkpoint left
        for old in entries[segment]:
            objects.retry(saver, lambda old=old: saver.store.delete(old))  # type: ignore[misc]
            removed += 1
    return done, removed
