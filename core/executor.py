"""The durable executor: ``@workflow``, and starting, resuming and inspecting runs.

How a run works
---------------
The workflow body is ordinary Python, run in the caller's thread; task calls
and interrupts take positions and are replayed from the thread's records
(:mod:`cairnflow.core.replay`); tasks run on a thread pool
(:mod:`cairnflow.core.tasks`); records are written according to the
durability mode (:mod:`cairnflow.core.committer`); what each record means and
how a history is read: :mod:`cairnflow.core.records`.

On ``resume()`` (in any process, any time later) the body runs again from the
top, returning recorded outcomes without running them, and continues for real
from the first unrecorded call.

An ``async def`` workflow is started with ``await wf.arun(...)`` on an
``AsyncCheckpointSaver``; its control flow lives in :mod:`cairnflow.core.aexecutor`,
and everything it decides is shared with this module through
:mod:`cairnflow.core.plans` (what to run, what an outcome means) and
:func:`cairnflow.core.tasks.task_steps` (running a task).
"""

from __future__ import annotations

import functools
import inspect
import time  # noqa: F401 - tests patch time.time through this module
from collections.abc import Callable
from typing import Any, Generic, TypeVar, overload

from cairnflow.core.checkpoint import Checkpoint, CheckpointSaver
from cairnflow.core.children import ChildFuture, flush_on_stop, start_child
from cairnflow.core.committer import Committer, Durability
from cairnflow.core.errors import MisuseError, TaskFailedError
from cairnflow.core.plans import (
    Plan,
    body_input,
    body_outcome,
    check_interrupt_id,
    conclude,
    open_run,
    plan_resume,
    plan_start,
)
from cairnflow.core.records import parse_records
from cairnflow.core.replay import RunContext, interrupt
from cairnflow.core.runargs import check_run_args
from cairnflow.core.runs import MISSING, Run, observed_run, standing
from cairnflow.core.tasks import Task, TaskFuture, current_run, task

__all__ = [
    "Durability",
    "Run",
    "Task",
    "TaskFailedError",
    "TaskFuture",
    "Workflow",
    "interrupt",
    "task",
    "workflow",
]

T = TypeVar("T")


# --------------------------------------------------------------------------- workflow


class Workflow(Generic[T]):
    """A durable workflow. Create with ``@workflow``; start with :meth:`run`."""

    def __init__(self, fn: Callable[..., T], *, name: str | None = None) -> None:
        self.fn = fn
        self.name = name or fn.__qualname__
        self._takes_input = bool(inspect.signature(fn).parameters)
        #: An ``async def`` workflow: started with ``arun``, recorded as such in its start record.
        self.is_async = inspect.iscoroutinefunction(fn)
        functools.update_wrapper(self, fn)

    def __call__(self, *args: Any, **kwargs: Any) -> T:
        """Refused: a workflow is started with :meth:`run` (its plain body is ``.fn``)."""
        how = "await {0}.arun" if self.is_async else "{0}.run"
        raise MisuseError(
            f"workflow {self.name!r} was called directly: start it with "
            f"{how.format(self.name)}(input, thread_id=..., saver=...) (the plain function is {self.name}.fn)"
        )

    # ---------------------------------------------------------------- public API

    def start(self, input: Any = None, *, dispatch: bool = False) -> ChildFuture[T]:
        """Inside another workflow's body: run this workflow as its child; returns a future.

        The child gets its own thread (``{parent}~child-{position}``) and its result
        is recorded in the parent once. It runs inline now, unless ``dispatch`` is
        true and the parent is driven by :class:`cairnflow.driver.Driver` (or a
        worker): then another invocation runs it, and the parent's ``result()``
        stops the parent as ``"waiting"`` until the child has ended; see
        :mod:`cairnflow.core.children`.
        """
        return start_child(self, input, dispatch=dispatch)

    def run(
        self,
        input: Any = None,
        *,
        thread_id: str,
        saver: CheckpointSaver,
        durability: Durability = "sync",
        deadline: float | None = None,
        reserve: float | None = None,
        max_workers: int = 8,
    ) -> Run:
        """Start the workflow on a new thread, or continue an existing one.

        On a thread that already exists this never starts over: a completed
        thread returns its stored result and an interrupted one its pending
        question, without running anything; a running, suspended or failed
        one continues (so a retried start event is harmless). The input must
        match the recorded one.

        ``deadline`` (seconds since the epoch, e.g. ``time.time() + 60``): no
        task starts (first attempt or retry) once less than ``reserve`` seconds
        remain (default: 1 s, at most a tenth of the time left); the run then
        stops with status ``"suspended"`` once tasks in flight finish,
        everything recorded, and ``resume()`` continues it. Bad arguments raise
        :class:`InvalidArgumentError`/:class:`MisuseError` before anything is
        read or written. Raises the body's exception if the run fails,
        ``ConflictError`` if another invocation advanced the thread meanwhile.
        """
        reserve = check_run_args(
            saver=saver, durability=durability, deadline=deadline, reserve=reserve, max_workers=max_workers
        )
        self._check_flavour(saver, "run")
        plan = plan_start(self, saver, thread_id, saver.latest(thread_id), input)
        if isinstance(plan, Run):
            return plan
        return self._execute(saver, thread_id, plan, durability, deadline, reserve, max_workers)

    def resume(
        self,
        value: Any = MISSING,
        *,
        thread_id: str,
        saver: CheckpointSaver,
        interrupt_id: str | None = None,
        durability: Durability = "sync",
        deadline: float | None = None,
        reserve: float | None = None,
        max_workers: int = 8,
    ) -> Run:
        """Continue a thread: answer its pending interrupt with ``value``, or pick up after a
        crash, a suspension or a failure (no ``value``).

        ``interrupt_id`` (from ``Run.interrupt_id``) makes a duplicated answer
        safe: if the thread has moved past that interrupt, ``ResumeError``
        is raised instead of answering a later question with it. An answer the
        thread already took is a retried request: it continues the thread (or
        returns its stored result); any other answer to a thread that is not
        waiting raises ``ResumeError``. The answer is written only once the body
        has replayed its recorded prefix identically, so a ``NondeterminismError``
        leaves the thread waiting for it.
        """
        reserve = check_run_args(
            saver=saver, durability=durability, deadline=deadline, reserve=reserve, max_workers=max_workers
        )
        check_interrupt_id(interrupt_id)
        self._check_flavour(saver, "resume")
        plan = plan_resume(self, saver, thread_id, saver.latest(thread_id), value, interrupt_id)
        if isinstance(plan, Run):
            return plan
        return self._execute(saver, thread_id, plan, durability, deadline, reserve, max_workers)

    def continue_from(
        self,
        head: Checkpoint | None,
        *,
        thread_id: str,
        saver: CheckpointSaver,
        durability: Durability = "sync",
        deadline: float | None = None,
        reserve: float | None = None,
        max_workers: int = 8,
    ) -> Run:
        """:meth:`resume` without an answer, from ``head``: the thread's latest checkpoint,
        just read by the caller (a driver that looked at it first saves reading it again).

        A ``head`` that is no longer the latest is safe: the first write fails with
        ``ConflictError`` before anything is recorded, as a concurrent resume would.
        """
        reserve = check_run_args(
            saver=saver, durability=durability, deadline=deadline, reserve=reserve, max_workers=max_workers
        )
        self._check_flavour(saver, "resume")
        plan = plan_resume(self, saver, thread_id, head, MISSING, None)
        if isinstance(plan, Run):
            return plan
        return self._execute(saver, thread_id, plan, durability, deadline, reserve, max_workers)

    def get_run(self, *, thread_id: str, saver: CheckpointSaver) -> Run | None:
        """The thread's current standing, without running anything (None if there is no thread)."""
        head = saver.latest(thread_id)
        if head is None or head.info.kind == "tombstone":
            return None
        return standing(head, parse_records(head.records), thread_id)

    def fork(self, *, thread_id: str, checkpoint_id: str, saver: CheckpointSaver) -> Run:
        """Time travel: make the thread's state that of an older checkpoint (recorded as a fork).

        Continue it with ``resume()``, e.g. to answer an earlier interrupt differently.
        """
        head = saver.fork(thread_id, checkpoint_id)
        return standing(head, parse_records(head.records), thread_id)

    # ---------------------------------------------------------------- asyncio

    async def arun(
        self,
        input: Any = None,
        *,
        thread_id: str,
        saver: Any,
        durability: Durability = "sync",
        deadline: float | None = None,
        reserve: float | None = None,
        max_workers: int = 8,
    ) -> Run:
        """:meth:`run` for an ``async def`` workflow, on an ``AsyncCheckpointSaver``.

        Same records, rules and errors; the body and ``async def`` tasks run on the
        running event loop, plain tasks in worker threads (``asyncio.to_thread``);
        ``max_workers`` bounds the tasks running at once.
        """
        from cairnflow.core import aexecutor

        return await aexecutor.arun(
            self, input, thread_id=thread_id, saver=saver, durability=durability,
            deadline=deadline, reserve=reserve, max_workers=max_workers,
        )  # fmt: skip

    async def aresume(
        self,
        value: Any = MISSING,
        *,
        thread_id: str,
        saver: Any,
        interrupt_id: str | None = None,
        durability: Durability = "sync",
        deadline: float | None = None,
        reserve: float | None = None,
        max_workers: int = 8,
    ) -> Run:
        """:meth:`resume` for an ``async def`` workflow, on an ``AsyncCheckpointSaver``."""
        from cairnflow.core import aexecutor

        return await aexecutor.aresume(
            self, value, thread_id=thread_id, saver=saver, interrupt_id=interrupt_id,
            durability=durability, deadline=deadline, reserve=reserve, max_workers=max_workers,
        )  # fmt: skip

    async def acontinue_from(
        self,
        head: Checkpoint | None,
        *,
        thread_id: str,
        saver: Any,
        durability: Durability = "sync",
        deadline: float | None = None,
        reserve: float | None = None,
        max_workers: int = 8,
    ) -> Run:
        """:meth:`continue_from` for an ``async def`` workflow, on an ``AsyncCheckpointSaver``."""
        from cairnflow.core import aexecutor

        return await aexecutor.acontinue_from(
            self, head, thread_id=thread_id, saver=saver, durability=durability,
            deadline=deadline, reserve=reserve, max_workers=max_workers,
        )  # fmt: skip

    async def aget_run(self, *, thread_id: str, saver: Any) -> Run | None:
        """:meth:`get_run` on an ``AsyncCheckpointSaver`` (either flavour: it runs nothing)."""
        head = await saver.latest(thread_id)
        if head is None or head.info.kind == "tombstone":
            return None
        return standing(head, parse_records(head.records), thread_id)

    async def afork(self, *, thread_id: str, checkpoint_id: str, saver: Any) -> Run:
        """:meth:`fork` on an ``AsyncCheckpointSaver``."""
        head = await saver.fork(thread_id, checkpoint_id)
        return standing(head, parse_records(head.records), thread_id)

    # ---------------------------------------------------------------- internals

    def _check_flavour(self, saver: Any, call: str) -> None:
        """Refuse to drive an ``async def`` body from ``run``, or to give it a sync saver (and back)."""
        if self.is_async:
            raise MisuseError(
                f"workflow {self.name!r} is `async def`: start it with `await {self.name}.a{call}(...)` "
                "on an AsyncCheckpointSaver (cairnflow.savers.open_async_saver(url))"
            )
        if inspect.iscoroutinefunction(getattr(saver, "latest", None)):
            raise MisuseError(
                f"workflow {self.name!r} is a plain `def` workflow and {type(saver).__name__} is an async "
                "saver: pass a CheckpointSaver (cairnflow.savers.open_saver(url)), or make the workflow "
                f"`async def` and use `await {self.name}.a{call}(...)`"
            )

    @observed_run
    def _execute(
        self,
        saver: CheckpointSaver,
        thread_id: str,
        plan: Plan,
        durability: Durability,
        deadline: float | None,
        reserve: float,
        max_workers: int,
    ) -> Run:
        committer = Committer(saver, thread_id, plan.head, durability, self.name)
        try:
            ctx = open_run(
                RunContext,
                self,
                saver,
                committer,
                plan,
                deadline=deadline,
                reserve=reserve,
                max_workers=max_workers,
            )
            token = current_run.set(ctx)
            outcome: tuple[str, Any] | None
            try:
                outcome = ("completed", self.fn(*body_input(self, ctx.replay)))
            except BaseException as exc:
                outcome = body_outcome(exc)  # recorded as the run's stop or failure
                if outcome is None:
                    raise
            finally:
                current_run.reset(token)
                ctx.close()  # in-flight tasks finish and are recorded
            if ctx.dispatch_queue:
                flush_on_stop(ctx, outcome)  # children started since the last write
            end = conclude(self.name, thread_id, outcome, ctx)
            return end.settle(committer.finish(end.records, end.status))
        except BaseException:
            committer.abandon()
            raise


@overload
def workflow(fn: Callable[..., T], /) -> Workflow[T]: ...
@overload
def workflow(*, name: str | None = None) -> Callable[[Callable[..., T]], Workflow[T]]: ...
def workflow(
    fn: Callable[..., T] | None = None, /, *, name: str | None = None
) -> Workflow[T] | Callable[[Callable[..., T]], Workflow[T]]:
    """Declare a workflow: ``@workflow`` or ``@workflow(name="checkout")``.

    The body takes at most one argument (the run's input). ``name`` (default:
    the function's qualified name) is recorded with the thread.
    """
    if fn is not None:
        return Workflow(fn, name=name)
    return lambda f: Workflow(f, name=name)
