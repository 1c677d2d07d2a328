"""Child workflows: ``other.start(input)`` inside a workflow body.

A child takes a position in the parent's sequence of calls. It runs on its
own thread, ``{parent thread}~child-{position}``, and the two are linked both
ways: the parent records ``child`` (position, workflow, thread, input
digest), the child's ``start`` record names its ``parent`` (thread,
workflow, position). Once the child has ended, its result (or failure) is
recorded in the parent once (``child_done``); every replay of the parent
returns that record without reading the child again.

**Inline** (the default): the child runs at once, in the parent's process and
Python thread, with the parent's deadline. A child that stops before its end
(waiting, suspended, interrupted) makes the parent's ``future.result()`` stop
the parent too: ``"waiting"`` until the child's ``wake_at``, or
``"suspended"``. Resuming the parent continues the child first.

**Dispatched** (``other.start(input, dispatch=True)`` in a run driven by
:class:`cairnflow.driver.Driver` or a worker): the parent records ``child``
(marked ``dispatch``), creates the child's thread (its ``start`` record,
status ``suspended``, a conditional create) and asks the driver's
:class:`~cairnflow.core.wake.WakeScheduler` to run it (a ``"child"``
wake-up). The records of the children started before the parent's next task,
``result()``, inline child or stop go out in one write, then those children are
created and scheduled together (:func:`flush_dispatches`). ``future.result()``
reads the child's thread (not for a child this execution dispatched): ended, its outcome is
recorded in the parent (staged: it goes out with the parent's next write);
not ended, the parent stops as ``"waiting"`` with no ``wake_at``. A child
that ends (completed or failed) under a driver schedules a ``"child"``
wake-up for its parent. Without a driver, ``dispatch=True`` runs the child
inline (so the same code runs in tests and scripts).

A child started twice (the parent replayed after a crash) is one child: its
thread id comes from the position, its creation is create-only, and a thread
that exists is checked to be this child (workflow, input, parent).

In an ``async def`` workflow the child must be ``async def`` too (it needs the
parent's async saver): ``start()`` takes the position at once and runs the child
as an asyncio task of the parent's run; ``await`` the future for its result
(so ``asyncio.gather(a.start(1), b.start(2))`` runs children concurrently).
``dispatch=True`` works there too, with the same records and rules; its asyncio
side (creating, scheduling and reading children with awaited requests) is
:mod:`cairnflow.core.achildren`.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import contextvars
import hashlib
import time
from collections.abc import Callable, Generator, Iterator
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from cairnflow.core.errors import ConflictError, MisuseError, NondeterminismError, SerializationError
from cairnflow.core.records import RecordedError, builtin_exception, error_record, parse_records
from cairnflow.core.timers import Waiting, current_context
from cairnflow.core.wake import WakeScheduler, Wakeup

if TYPE_CHECKING:
    import asyncio

    from cairnflow.core.checkpoint import Checkpoint
    from cairnflow.core.executor import Workflow
    from cairnflow.core.replay import RunContext
    from cairnflow.core.runs import Run

__all__ = [
    "CHILD_MARK",
    "ChildFuture",
    "child_start_record",
    "dispatcher",
    "dispatching",
    "ended_child",
    "ended_future",
    "flush_dispatches",
    "flush_on_stop",
    "lost_thread",
    "outcome_of",
    "parent_link",
    "parent_of",
    "record_ended",
    "start_child",
    "twin_has_ended",
]

T = TypeVar("T")

#: Between the parent's thread id and the child's position in a child's thread id.
CHILD_MARK = "~child-"

#: The ``parent`` field the next started child records (set only around the child's run).
parent_link: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "cairnflow_parent", default=None
)

#: How many dispatched children are created and scheduled at once.
DISPATCHERS = 16

#: Schedules a dispatched child's thread (thread id, workflow name); set by the driver.
_dispatch: contextvars.ContextVar[Callable[[str, str], None] | None] = contextvars.ContextVar(
    "cairnflow_dispatch", default=None
)


@contextlib.contextmanager
def dispatching(
    scheduler: WakeScheduler, *, store: str | None = None, clock: Callable[[], float] = time.time
) -> Iterator[None]:
    """Within this block, ``start(input, dispatch=True)`` hands children to ``scheduler``.

    Used by :class:`cairnflow.driver.Driver` around the runs it drives; each
    dispatched child becomes a ``"child"`` wake-up for now on its own thread.
    """

    def schedule(thread_id: str, workflow: str) -> None:
        scheduler.schedule(Wakeup(thread_id, workflow, clock(), "child", store))

    token = _dispatch.set(schedule)
    try:
        yield
    finally:
        _dispatch.reset(token)


def dispatcher() -> Callable[[str, str], None] | None:
    """Where dispatched children are scheduled here: the driver's, or None (they run inline)."""
    return _dispatch.get()


def parent_of(thread_id: str) -> str | None:
    """The parent thread id a child's thread id names (None if it names none)."""
    parent, mark, pos = thread_id.rpartition(CHILD_MARK)
    return parent if mark and parent and pos.isdigit() else None


class ChildFuture(Generic[T]):
    """A started child workflow; ``result()`` returns its result or raises its failure."""

    def __init__(
        self,
        thread_id: str,
        *,
        value: Any = None,
        error: BaseException | None = None,
        stopped: Run | None = None,
        pending: asyncio.Task[ChildFuture[T]] | None = None,
        settle: Callable[[], ChildFuture[T]] | None = None,
    ) -> None:
        self.thread_id = thread_id
        self._value = value
        self._error = error
        self._stopped = stopped
        #: An async child still running: ``await`` this future for its outcome.
        self._pending = pending
        #: A dispatched child: its thread is read when the result is asked for.
        self._settle = settle

    def done(self) -> bool:
        """Whether the child is known to have ended (a dispatched child: once ``result()`` found it)."""
        return self._stopped is None and self._pending is None and self._settle is None

    def __await__(self) -> Generator[Any, None, T]:
        """In an async workflow: the child's result (``await child.start(input)``)."""
        if self._pending is not None:
            ended = yield from self._pending.__await__()
            self._pending = None
            self._value, self._error, self._stopped = ended._value, ended._error, ended._stopped
        return self.result()

    def result(self) -> T:
        """The child's result; a child not ended stops the parent (see the module docs).

        In an async workflow, ``await`` the future instead.
        """
        if self._pending is not None:
            raise MisuseError("in an async workflow, await a child's future instead of calling result()")
        if self._settle is not None:
            ended = self._settle()  # raises Waiting while the dispatched child runs elsewhere
            self._settle, self._value, self._error = None, ended._value, ended._error
        if self._stopped is not None:
            from cairnflow.core.replay import Suspended

            if self._stopped.status == "suspended":
                raise Suspended()
            raise Waiting(self._stopped.wake_at)
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[no-any-return]


def _digest(ctx_dumps: Any, value: Any) -> str:
    try:
        return hashlib.sha256(ctx_dumps(value)).hexdigest()[:32]
    except SerializationError as exc:
        raise SerializationError(f"a child workflow's input cannot be serialised: {exc}") from exc


def ended_future(thread_id: str, done: dict[str, Any], name: str) -> ChildFuture[Any]:
    if "error" in done:
        return ChildFuture(thread_id, error=RecordedError.of(done["error"]).rebuild(f"child {name}"))
    return ChildFuture(thread_id, value=done.get("value"))


def start_child(child: Workflow[T], input: Any, *, dispatch: bool = False) -> ChildFuture[T]:
    """Start (or, on replay, find) ``child`` as a child of the running workflow body."""
    ctx = current_context(f"{child.name}.start()")
    pos = ctx.next_pos()
    parent_id = ctx.committer.thread_id
    thread_id = f"{parent_id}{CHILD_MARK}{pos}"
    digest = _digest(ctx.dumps, input)
    recorded = ctx.replay.steps.get(pos)
    link = {"thread_id": parent_id, "workflow": ctx.workflow, "pos": pos}
    schedule = _dispatch.get()
    if recorded is not None:
        if recorded.op != "child" or recorded.name != child.name:
            raise ctx._mismatch(pos, f"{child.name}.start()", recorded.describe())
        if recorded.args != digest:
            raise ctx._mismatch(
                pos, f"{child.name}.start() with input {digest}", f"it with input {recorded.args}"
            )
        done = ctx.replay.children.get(pos)
        if done is not None:
            return ended_future(thread_id, done, child.name)  # recorded once: the child is not read
    if child.is_async != hasattr(ctx, "acommitter"):
        parent, kind = ("an async", "`async def`") if child.is_async else ("a sync", "plain `def`")
        raise MisuseError(
            f"child workflow {child.name!r} must be {kind} like its parent {ctx.workflow!r}: "
            f"{parent} child needs the other flavour's saver; make both the same flavour"
        )
    if recorded is not None:
        # The record decides, not today's argument.
        dispatched = bool(recorded.raw.get("dispatch"))
        head = ctx.committer.start_head
        if dispatched and schedule is not None and head is not None and head.status == "running":
            # The parent's last execution did not stop cleanly (a crash, maybe between this
            # record and the dispatch): dispatch again; the create-only thread makes it one child.
            ctx.dispatch_queue.append((child, input, thread_id, link, schedule))
        fresh = False
    else:
        dispatched = fresh = dispatch and schedule is not None
        ctx.ensure_fence()
        record = {"op": "child", "pos": pos, "name": child.name, "args": digest, "thread": thread_id}
        if dispatched:
            # Staged, with the start record if the run has not written it yet: the children
            # started before the next task, result() or stop are recorded in one write, then
            # created and scheduled together (flush_dispatches).
            ctx.unstarted = False
            ctx.committer.stage([{**record, "dispatch": True}])
            ctx.dispatch_queue.append((child, input, thread_id, link, schedule))
        else:
            ctx.before_task()  # the parent's start is stored before the child's thread exists
            ctx.committer.stage([record])
    if child.is_async:
        from cairnflow.core import achildren
        from cairnflow.core.acontext import AsyncRunContext

        assert isinstance(ctx, AsyncRunContext)
        if dispatched:
            # Settled as soon as the body yields: the children started until then are
            # recorded in one write and dispatched together (AsyncRunContext.flush).
            work = achildren.settle(ctx, child, input, pos, thread_id, link, fresh=fresh)
        else:
            work = achildren.run_child(ctx, child, input, pos, thread_id, link)
        return ChildFuture(thread_id, pending=ctx.spawn(work))
    if dispatched:
        return ChildFuture(
            thread_id, settle=lambda: _settle(ctx, child, input, pos, thread_id, link, fresh=fresh)
        )
    return _run_inline(ctx, child, input, pos, thread_id, link)


def _run_inline(
    ctx: RunContext, child: Workflow[T], input: Any, pos: int, thread_id: str, link: dict[str, Any]
) -> ChildFuture[T]:
    if ctx.dispatch_queue:
        flush_dispatches(ctx)  # dispatched children run elsewhere while this one runs here
    token = parent_link.set(link)
    run: Run | Exception
    try:
        run = child.run(
            input, thread_id=thread_id, saver=ctx.saver, deadline=ctx.deadline, reserve=ctx.reserve
        )
    except (ConflictError, NondeterminismError):
        raise  # the child's history is not this code's, or another writer has it: record nothing
    except Exception as exc:  # noqa: BLE001 - the child failed (recorded in its thread): record it here
        run = exc
    finally:
        parent_link.reset(token)
    future, done = outcome_of(thread_id, pos, child.name, run)
    if done is not None:
        ctx.committer.commit([done])
    return future


def outcome_of(
    thread_id: str, pos: int, name: str, run: Run | Exception
) -> tuple[ChildFuture[Any], dict[str, Any] | None]:
    """What the parent sees of the child's run (or failure), and the ``child_done`` record to commit."""
    if isinstance(run, Exception):
        error = error_record(run)
        if builtin_exception(error["type"]) is type(run):
            error["args"] = list(run.args)
        done = {"op": "child_done", "pos": pos, "error": error}
        return ended_future(thread_id, done, name), done
    if run.status != "completed":
        if run.status == "interrupted":
            run = type(run)(thread_id, "waiting", run.checkpoint_id)  # its answer continues it
        return ChildFuture(thread_id, stopped=run), None
    done = {"op": "child_done", "pos": pos, "value": run.result}
    return ChildFuture(thread_id, value=run.result), done


def _dispatch_child(
    ctx: RunContext,
    child: Workflow[Any],
    input: Any,
    thread_id: str,
    link: dict[str, Any],
    schedule: Callable[[str, str], None],
) -> None:
    """Create the child's thread (create-only) and schedule it; a twin of an earlier attempt is one."""
    start = child_start_record(ctx, child, input, link)
    try:
        head = ctx.saver.append(thread_id, None, [start], status="suspended", workflow=child.name)
    except ConflictError:
        if twin_has_ended(ctx.saver.latest(thread_id), start, thread_id, link):
            return  # it has ended: the parent's next result() reads it, nothing to run
    else:
        ctx.saver.index_stop(head, None)  # listed as suspended until a worker picks it up
    schedule(thread_id, child.name)


def child_start_record(
    ctx: RunContext, child: Workflow[Any], input: Any, link: dict[str, Any]
) -> dict[str, Any]:
    """The ``start`` record of a dispatched child's thread, as its own ``run()`` would write it."""
    from cairnflow.core.plans import ASYNC
    from cairnflow.core.runs import digest

    start = {
        "op": "start",
        "workflow": child.name,
        "input": input,
        "input_digest": digest(ctx.saver, input),
        "parent": link,
    }
    if child.is_async:
        start["flavour"] = ASYNC
    return start


def twin_has_ended(
    existing: Checkpoint | None, start: dict[str, Any], thread_id: str, link: dict[str, Any]
) -> bool:
    """After the child's create lost: is the thread there this very child, and has it ended?

    ``ConflictError`` if it is another thread (another workflow, input, parent or
    flavour): it is never taken over.
    """
    found = parse_records(existing.records).start if existing is not None else None
    keys = ("workflow", "input_digest", "parent", "flavour")
    if existing is None or found is None or any(found.get(k) != start.get(k) for k in keys):
        raise ConflictError(
            f"thread {thread_id!r} exists but is not child {link['pos']} ({start['workflow']}) of thread "
            f"{link['thread_id']!r}: delete it, or start the parent on a new thread id",
            thread_id=thread_id,
        )
    return existing.status in ("completed", "failed")


def ended_child(head: Checkpoint, pos: int) -> dict[str, Any] | None:
    """The ``child_done`` record for the child whose head this is, or None while it has not ended."""
    if head.status not in ("completed", "failed"):
        return None
    end = parse_records(head.records).end or {}
    if head.status == "completed":
        return {"op": "child_done", "pos": pos, "value": end.get("value")}
    return {"op": "child_done", "pos": pos, "error": end.get("error")}


def flush_dispatches(ctx: RunContext) -> None:
    """Write the parent's staged records, then create and schedule every queued child.

    The records go first (waited for, except in exit mode), so that a child never
    exists without its parent's record of it, but for a crash in exit mode, which
    replays the parent from its start (it finds the child it creates again).
    Up to ``DISPATCHERS`` children are created and scheduled at once.
    """
    batch = list(ctx.dispatch_queue)
    ctx.dispatch_queue.clear()
    ctx.write_now([])
    if len(batch) == 1:
        _dispatch_child(ctx, *batch[0])
        return
    with concurrent.futures.ThreadPoolExecutor(
        max_workers=min(DISPATCHERS, len(batch)), thread_name_prefix="cairnflow-dispatch"
    ) as pool:
        for _ in pool.map(lambda item: _dispatch_child(ctx, *item), batch):
            pass  # the first failure is raised, once every dispatch has ended


def lost_thread(ctx: RunContext, outcome: tuple[str, Any] | None) -> bool:
    """Whether the run may write nothing more (another writer has the thread, or a write failed)."""
    lost = outcome is not None and isinstance(outcome[1], (ConflictError, NondeterminismError))
    return lost or ctx.committer.error is not None


def flush_on_stop(ctx: RunContext, outcome: tuple[str, Any] | None) -> None:
    """At the body's end: dispatch the children still queued, unless the run lost its thread."""
    if lost_thread(ctx, outcome):
        ctx.dispatch_queue.clear()  # nothing more may be written: the replay dispatches them
        return
    flush_dispatches(ctx)


def _settle(
    ctx: RunContext,
    child: Workflow[T],
    input: Any,
    pos: int,
    thread_id: str,
    link: dict[str, Any],
    *,
    fresh: bool,
) -> ChildFuture[T]:
    """A dispatched child's outcome, recorded in the parent once; Waiting while it runs elsewhere.

    ``fresh``: dispatched by this execution of the parent, so certainly not ended
    when it was created (no read; were it already ended, its wake-up of the parent
    comes after this execution's stop, or wins the write race and is tried again).
    """
    done = ctx.replay.children.get(pos)
    if done is not None:
        return ended_future(thread_id, done, child.name)
    if ctx.dispatch_queue:
        flush_dispatches(ctx)
    if fresh:
        raise Waiting(None)
    schedule = _dispatch.get()
    if schedule is None:
        # No driver here (the parent was resumed by hand): continue the child in this process.
        inline = _run_inline(ctx, child, input, pos, thread_id, link)
        if not inline.done():
            inline.result()  # raises: stops the parent as the child stopped
        return inline
    head = ctx.saver.latest(thread_id)
    if head is None or head.info.kind == "tombstone":
        _dispatch_child(ctx, child, input, thread_id, link, schedule)  # never created (a crash)
        raise Waiting(None)
    done = ended_child(head, pos)
    if done is None:
        raise Waiting(None)  # its end schedules a "child" wake-up for this parent
    return record_ended(ctx, pos, done, thread_id, child.name)


def record_ended(
    ctx: RunContext, pos: int, done: dict[str, Any], thread_id: str, name: str
) -> ChildFuture[Any]:
    """Stage a dispatched child's ``child_done``; its outcome, as the parent's future gives it."""
    # Staged: it goes out with the parent's next write. A crash before then reads the
    # child again on replay, which has ended and so says the same.
    ctx.committer.stage([done])
    ctx.replay.children[pos] = done
    return ended_future(thread_id, done, name)
