"""Operations on the threads in a store: the Python API behind the ``cairnflow`` command.

Every function takes a :class:`~cairnflow.core.log.CheckpointLog` (open one
with :func:`cairnflow.savers.open_saver`) and returns plain dataclasses with
a ``to_dict()`` whose field names are the command's ``--json`` output.

* :func:`list_threads` -- every thread with its status, steps and last update.
* :func:`thread_history` -- a thread's checkpoints, newest first, with what each recorded.
* :func:`show_state` -- the state at a checkpoint (the latest by default).
* :func:`delete_thread` -- tombstone a thread and delete its checkpoints.
* :func:`prune` -- keep the last N checkpoints of each thread, or delete whole threads
  not updated for a while.
* :func:`copy_threads` -- copy threads, history included, to another store; resumable.
* :func:`verify` -- check stored histories (:mod:`cairnflow.core.verify`).
* :func:`reindex` -- build the status index (:mod:`cairnflow.core.status_index`) of a store
  written before it existed, so that :func:`list_threads` reads no thread.

A prefix may hold executor threads and LangGraph threads side by side; every
operation handles both and each result says which ``layout`` a thread is.
LangGraph threads are read and written only through the LangGraph saver
(:mod:`cairnflow.ops.lgraph`); :func:`graph_history` and :func:`graph_state`
are their ``history`` and ``show``, and :func:`thread_layout` tells which one
a thread id is.

Reading never constructs a stored value: bodies are parsed as JSON and tagged
values are shown as plain JSON (see :func:`untag`), so an operator needs none
of the workflow's code. Bodies written with another serializer (pickle) are
never loaded: their values show as ``null`` with ``values_readable`` false.

Modules, one concern each: :mod:`~cairnflow.ops.results` (the dataclasses),
:mod:`~cairnflow.ops.display` (values, records, times), :mod:`~cairnflow.ops.objects`
(raw, checked object reads), :mod:`~cairnflow.ops.reading` (threads, history,
show), :mod:`~cairnflow.ops.maintenance` (delete, prune),
:mod:`~cairnflow.ops.copying` (copy), :mod:`~cairnflow.ops.verifying` (verify),
:mod:`~cairnflow.ops.listing` (the status index: listing, reindex),
:mod:`~cairnflow.ops.lgraph` (LangGraph threads), :mod:`~cairnflow.ops.graph_results`.
"""

from __future__ import annotations

from typing import Any

from cairnflow.core.errors import InvalidURLError
from cairnflow.core.verify import Problem, VerifyReport
from cairnflow.ops.copying import copy_threads
from cairnflow.ops.display import describe_record, iso_time, parse_duration, untag
from cairnflow.ops.graph_results import GraphCheckpoint, GraphState
from cairnflow.ops.listing import reindex
from cairnflow.ops.maintenance import delete_thread, prune
from cairnflow.ops.reading import (
    graph_history,
    graph_state,
    list_threads,
    show_state,
    thread_history,
    thread_layout,
)
from cairnflow.ops.results import (
    LAYOUTS,
    STATUSES,
    CopiedThread,
    CopyResult,
    DeleteResult,
    HistoryEntry,
    PrunedThread,
    PruneResult,
    Step,
    ThreadState,
    ThreadSummary,
)
from cairnflow.ops.verifying import verify

__all__ = [
    "LAYOUTS",
    "STATUSES",
    "CopiedThread",
    "CopyResult",
    "DeleteResult",
    "GraphCheckpoint",
    "GraphState",
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
    "graph_history",
    "graph_state",
    "iso_time",
    "list_threads",
    "parse_duration",
    "prune",
    "reindex",
    "show_state",
    "thread_history",
    "thread_layout",
    "untag",
    "verify",
]


def __getattr__(name: str) -> Any:
    if name == "open_saver":
        raise AttributeError(
            "cairnflow.ops.open_saver was removed: use cairnflow.savers.open_saver(url, create=False) "
            "(create=False refuses a missing file:// directory instead of creating it)"
        )
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
