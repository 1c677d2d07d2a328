"""Reading threads: the listing, a thread's history, and the state at one checkpoint.

Costs: :func:`list_threads` about two LISTs per 1,000 indexed threads, plus
one LIST and one or two GETs per thread listed with details or missing from
the status index, eight threads at a time; :func:`thread_history` one LIST and one GET per
checkpoint; :func:`show_state` one LIST and one to three GETs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Iterator
from typing import TYPE_CHECKING, Any

from cairnflow.core import keys
from cairnflow.core.errors import (
    CorruptCheckpointError,
    InvalidArgumentError,
    NotFoundError,
    SerializationError,
    ThreadNotFoundError,
)
from cairnflow.core.log import CheckpointLog
from cairnflow.core.records import RecordedError, RunRecords, parse_records
from cairnflow.ops import lgraph, listing, objects
from cairnflow.ops.graph_results import GraphCheckpoint, GraphState
from cairnflow.ops.results import LAYOUTS, STATUSES, HistoryEntry, Step, ThreadState, ThreadSummary

if TYPE_CHECKING:
    from cairnflow.langgraph import LangGraphSaver

__all__ = ["graph_history", "graph_state", "list_threads", "show_state", "thread_history", "thread_layout"]


def _graph(saver: CheckpointLog, thread_id: str) -> LangGraphSaver:
    lg = lgraph.graph_saver(saver)
    if lg is None or not lgraph.has_thread(lg, thread_id):
        raise ThreadNotFoundError(f"no LangGraph thread {thread_id!r}")
    return lg


def graph_history(saver: CheckpointLog, thread_id: str, *, limit: int | None = None) -> list[GraphCheckpoint]:
    """A LangGraph thread's checkpoints, every namespace, newest first (through the LangGraph saver)."""
    return lgraph.history(_graph(saver, thread_id), thread_id, limit=limit)


def graph_state(saver: CheckpointLog, thread_id: str, checkpoint_id: str | None = None) -> GraphState:
    """A LangGraph thread's state: values, pending writes, next nodes (through the LangGraph saver)."""
    return lgraph.state(_graph(saver, thread_id), thread_id, checkpoint_id)


def thread_layout(saver: CheckpointLog, thread_id: str, layout: str | None = None) -> str:
    """Which layout holds ``thread_id``: ``executor`` or ``langgraph``.

    ``layout`` names it when both do (an :class:`InvalidArgumentError` otherwise);
    :class:`ThreadNotFoundError` when neither does.
    """
    if layout is not None and layout not in LAYOUTS:
        raise InvalidArgumentError(f"unknown layout {layout!r}; known: {', '.join(LAYOUTS)}")
    found = []
    if layout in (None, "executor") and objects.thread_keys(saver, thread_id, limit=1):
        found.append("executor")
    if layout in (None, "langgraph"):
        lg = lgraph.graph_saver(saver)
        if lg is not None and lgraph.has_thread(lg, thread_id):
            found.append("langgraph")
    if not found:
        raise ThreadNotFoundError(f"no thread {thread_id!r}")
    if len(found) > 1:
        raise InvalidArgumentError(
            f"thread {thread_id!r} exists in both layouts (executor and langgraph); say which with --layout"
        )
    return found[0]


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
    run = parse_records(records) if records is not None else None
    pending = run.pending_interrupt() if run is not None and head.status == "interrupted" else None
    failure = run.failure() if run is not None and head.status == "failed" else None
    return ThreadSummary(
        thread_id=thread_id,
        status=head.status,
        workflow=header.workflow,
        checkpoint_id=str(head.seq),
        checkpoints=head.seq + 1,
        steps=len(run.steps) if run is not None else None,
        records=header.total,
        updated_at=header.time,
        error=failure.text() if failure is not None else None,
        waiting_for=pending.value if pending is not None else None,
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
    layouts: Collection[str] | None = None,
    details: bool = True,
) -> list[ThreadSummary]:
    """Threads under the prefix, of both layouts, with their standing, filtered.

    ``statuses``: keep only these (default: every status but ``deleted``).
    ``updated_before``/``updated_after``: epoch seconds bounds on the last update.
    ``limit``: stop after that many matches. ``sort``: ``"id"`` (key order,
    streaming) or ``"updated"`` (newest first; reads every thread first).
    ``progress(threads_examined)`` is called as the walk goes. ``layouts``:
    only threads of these layouts (default both; LangGraph threads follow the
    executor's, and are read through the LangGraph saver).

    Executor threads are found and filtered with the status index
    (:mod:`cairnflow.ops.listing`): status, workflow and time are those of the
    thread's last run stop, about ``2 * ceil(N / 1000)`` LIST requests for N
    threads; threads the index does not know are read one by one.
    ``details`` (default) then reads the heads of the threads listed (after
    filters and ``limit``: one LIST and one or two GETs each, eight at a time)
    for their steps, error and pending question, and a head newer than its
    index entry wins (a thread that no longer matches is left out). With
    ``details=False`` nothing is read for indexed threads: their ``steps``,
    ``records``, ``error`` and ``waiting_for`` are None. Asking for ``corrupt``
    (``statuses`` naming it) reads every thread: only a read tells; otherwise a
    thread whose head went bad since its last stop shows that stop's status
    without details, and as ``corrupt`` with them.
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

    wanted_layouts = set(layouts) if layouts else set(LAYOUTS)
    out: list[ThreadSummary] = []
    walks: list[Iterator[ThreadSummary | None]] = []
    from_index: set[str] = set()

    def read(thread_id: str, key: str) -> ThreadSummary | None:
        return _summarise(saver, (thread_id, key))

    if "executor" in wanted_layouts:
        use_index = not statuses or "corrupt" not in wanted  # only a read tells a corrupt head
        walks.append(listing.executor_summaries(saver, read, use_index=use_index, from_index=from_index))
    lg = lgraph.graph_saver(saver) if "langgraph" in wanted_layouts else None
    if lg is not None:
        walks.append(lgraph.summaries(lg))
    examined = 0
    for walk in walks:
        for summary in walk:
            examined += 1
            if progress is not None:
                progress(examined)
            if summary is not None and matches(summary):
                out.append(summary)
                if sort == "id" and limit is not None and len(out) >= limit:
                    break
        if sort == "id" and limit is not None and len(out) >= limit:
            break

    def order(s: ThreadSummary) -> tuple[float, str, str]:
        return (-(s.updated_at or 0.0) if sort == "updated" else 0.0, s.thread_id, s.layout)

    out.sort(key=order)
    out = out if limit is None else out[:limit]
    if details and from_index:
        out = [s for s in listing.refresh(saver, out, read, from_index) if s is not None and matches(s)]
        out.sort(key=order)  # a refreshed head may have moved on
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


#: Steps other than tasks and interrupts: replay-safe values, timers, callbacks, children.
_WAITS = ("value", "timer", "callback", "child")


def _wait_step(run: RunRecords, step: Any) -> Step:
    """A value, timer, callback or child step (a callback's secret is never shown)."""
    if step.op == "value":
        return Step(pos=step.pos, type="value", name=step.name, status="done", value=step.value)
    if step.op == "timer":
        return Step(pos=step.pos, type="timer", name=None, status="set", value=step.raw.get("wake_at"))
    ended = (run.callbacks if step.op == "callback" else run.children).get(step.pos)
    if ended is None:
        return Step(pos=step.pos, type=step.op, name=step.name, status="waiting")
    if "error" in ended or ended.get("timeout"):
        error = "timed out" if ended.get("timeout") else RecordedError.of(ended.get("error")).text()
        return Step(pos=step.pos, type=step.op, name=step.name, status="failed", error=error)
    return Step(pos=step.pos, type=step.op, name=step.name, status="done", value=ended.get("value"))


def _steps(run: RunRecords) -> list[Step]:
    steps: list[Step] = []
    for pos in sorted(run.steps):
        step = run.steps[pos]
        if step.op == "interrupt":
            answered = pos in run.answers
            status = "answered" if answered else "waiting"
            steps.append(
                Step(
                    pos=pos,
                    type="interrupt",
                    name=None,
                    status=status,
                    value=step.value,
                    answer=run.answers.get(pos),
                )
            )
        elif step.op == "task":
            steps.append(Step(pos=pos, type="task", name=step.name, status="done", value=step.value))
        elif step.op in _WAITS:
            steps.append(_wait_step(run, step))
        else:
            error = step.error.text() if step.error is not None else None
            steps.append(Step(pos=pos, type="task", name=step.name, status="failed", error=error))
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
    run = parse_records(records)
    pending = run.pending_interrupt() if target.status == "interrupted" else None
    failure = run.failure()
    return dataclasses.replace(
        state,
        input=run.start.get("input") if run.start else None,
        result=run.result(),
        error=failure.text() if failure is not None else None,
        interrupt=None if pending is None else {"id": str(pending.pos), "value": pending.value},
        steps=tuple(_steps(run)),
        records=records,
    )
