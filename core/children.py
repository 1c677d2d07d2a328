"""Child workflows: ``other.start(input)`` inside a workflow body.

A child takes a position in the parent's sequence of calls. It runs on its
own thread, ``{parent thread}~child-{position}``, inline (in the parent's
process and Python thread, with the parent's deadline), and the two are
linked both ways: the parent records ``child`` (position, workflow, thread,
input digest), the child's ``start`` record names its ``parent`` (thread,
workflow, position). Once the child has ended, its result (or failure) is
recorded in the parent once (``child_done``); every replay of the parent
returns that record without reading the child again.

A child that stops before its end (waiting, suspended, interrupted) makes
the parent's ``future.result()`` stop the parent too: ``"waiting"`` until the
child's ``wake_at``, or ``"suspended"``. Resuming the parent continues the
child first. A child continued on its own (its callback completed, its
interrupt answered) that ends has :class:`cairnflow.driver.Driver` schedule
a ``"child"`` wake-up for the parent.

In an ``async def`` workflow the child must be ``async def`` too (it needs the
parent's async saver): ``start()`` takes the position at once and runs the child
as an asyncio task of the parent's run; ``await`` the future for its result
(so ``asyncio.gather(a.start(1), b.start(2))`` runs children concurrently).
"""

from __future__ import annotations

import contextvars
import hashlib
from collections.abc import Generator
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from cairnflow.core.errors import ConflictError, MisuseError, NondeterminismError, SerializationError
from cairnflow.core.records import RecordedError, builtin_exception, error_record
from cairnflow.core.timers import Waiting, current_context

if TYPE_CHECKING:
    import asyncio

    from cairnflow.core.acontext import AsyncRunContext
    from cairnflow.core.executor import Workflow
    from cairnflow.core.runs import Run

__all__ = ["CHILD_MARK", "ChildFuture", "parent_link", "parent_of", "start_child"]

T = TypeVar("T")

#: Between the parent's thread id and the child's position in a child's thread id.
CHILD_MARK = "~child-"

#: The ``parent`` field the next started child records (set only around the child's run).
parent_link: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "cairnflow_parent", default=None
)


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
    ) -> None:
        self.thread_id = thread_id
        self._value = value
        self._error = error
        self._stopped = stopped
        #: An async child still running: ``await`` this future for its outcome.
        self._pending = pending

    def done(self) -> bool:
        """Whether the child has ended (completed or failed)."""
        return self._stopped is None and self._pending is None

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


def _ended(thread_id: str, done: dict[str, Any], name: str) -> ChildFuture[Any]:
    if "error" in done:
        return ChildFuture(thread_id, error=RecordedError.of(done["error"]).rebuild(f"child {name}"))
    return ChildFuture(thread_id, value=done.get("value"))


def start_child(child: Workflow[T], input: Any) -> ChildFuture[T]:
    """Start (or, on replay, find) ``child`` as a child of the running workflow body."""
    ctx = current_context(f"{child.name}.start()")
    pos = ctx.next_pos()
    parent_id = ctx.committer.thread_id
    thread_id = f"{parent_id}{CHILD_MARK}{pos}"
    digest = _digest(ctx.dumps, input)
    recorded = ctx.replay.steps.get(pos)
    if recorded is not None:
        if recorded.op != "child" or recorded.name != child.name:
            raise ctx._mismatch(pos, f"{child.name}.start()", recorded.describe())
        if recorded.args != digest:
            raise ctx._mismatch(
                pos, f"{child.name}.start() with input {digest}", f"it with input {recorded.args}"
            )
        done = ctx.replay.children.get(pos)
        if done is not None:
            return _ended(thread_id, done, child.name)  # recorded once: the child is not read
    if child.is_async != hasattr(ctx, "acommitter"):
        parent, kind = ("an async", "`async def`") if child.is_async else ("a sync", "plain `def`")
        raise MisuseError(
            f"child workflow {child.name!r} must be {kind} like its parent {ctx.workflow!r}: "
            f"{parent} child needs the other flavour's saver; make both the same flavour"
        )
    if recorded is None:
        ctx.ensure_fence()
        ctx.before_task()  # the parent's start is stored before the child's thread exists
        ctx.committer.stage(
            [{"op": "child", "pos": pos, "name": child.name, "args": digest, "thread": thread_id}]
        )
    link = {"thread_id": parent_id, "workflow": ctx.workflow, "pos": pos}
    if child.is_async:
        from cairnflow.core.acontext import AsyncRunContext

        assert isinstance(ctx, AsyncRunContext)
        return ChildFuture(thread_id, pending=ctx.spawn(_arun_child(ctx, child, input, pos, thread_id, link)))
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
    future, done = _outcome(thread_id, pos, child.name, run)
    if done is not None:
        ctx.committer.commit([done])
    return future


async def _arun_child(
    ctx: AsyncRunContext, child: Workflow[Any], input: Any, pos: int, thread_id: str, link: dict[str, Any]
) -> ChildFuture[Any]:
    """:func:`start_child`'s run of an async child, as an asyncio task of the parent's run."""
    from cairnflow.core.tasks import current_run

    current_run.set(None)  # this asyncio task's copy of the context: the child has its own run
    parent_link.set(link)
    await ctx.flush()  # the parent's start (and answer) are stored before the child's thread exists
    run: Run | Exception
    try:
        run = await child.arun(
            input, thread_id=thread_id, saver=ctx.saver, deadline=ctx.deadline, reserve=ctx.reserve
        )
    except (ConflictError, NondeterminismError):
        raise
    except Exception as exc:  # noqa: BLE001 - the child failed (recorded in its thread): record it here
        run = exc
    future, done = _outcome(thread_id, pos, child.name, run)
    if done is not None:
        await ctx.acommitter.commit([done])
    return future


def _outcome(
    thread_id: str, pos: int, name: str, run: Run | Exception
) -> tuple[ChildFuture[Any], dict[str, Any] | None]:
    """What the parent sees of the child's run (or failure), and the ``child_done`` record to commit."""
    if isinstance(run, Exception):
        error = error_record(run)
        if builtin_exception(error["type"]) is type(run):
            error["args"] = list(run.args)
        done = {"op": "child_done", "pos": pos, "error": error}
        return _ended(thread_id, done, name), done
    if run.status != "completed":
        if run.status == "interrupted":
            run = type(run)(thread_id, "waiting", run.checkpoint_id)  # its answer continues it
        return ChildFuture(thread_id, stopped=run), None
    done = {"op": "child_done", "pos": pos, "value": run.result}
    return ChildFuture(thread_id, value=run.result), done
