"""The asyncio executor: ``await wf.arun(...)`` and ``await wf.aresume(...)`` for ``async def`` workflows.

Not a second executor: what to do with a thread's head (:func:`~cairnflow.core.plans.plan_start`,
:func:`~cairnflow.core.plans.plan_resume`), what a body's outcome means
(:func:`~cairnflow.core.plans.conclude`), how a task runs and is recorded
(:func:`~cairnflow.core.tasks.task_steps`), replay and positions
(:class:`~cairnflow.core.replay.RunContext`) and the records
(:mod:`cairnflow.core.records`) are shared with the sync executor. This module
is the control flow around them with ``await``: the head read from an
``AsyncCheckpointSaver``, the body awaited on the running loop, writes through
an :class:`~cairnflow.core.acommitter.AsyncCommitter`.

A thread records its flavour: an async workflow's start record says
``"flavour": "async"``, and each flavour refuses the other's threads with
:class:`~cairnflow.core.errors.FlavourMismatchError` (same name, other flavour),
so a history is always replayed by the kind of body that wrote it.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

from cairnflow.core.acommitter import AsyncCommitter
from cairnflow.core.acontext import AsyncRunContext
from cairnflow.core.children import lost_thread
from cairnflow.core.errors import MisuseError
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
from cairnflow.core.runargs import check_run_args
from cairnflow.core.runs import MISSING, Run, aobserved_run
from cairnflow.core.tasks import current_run

if TYPE_CHECKING:
    from cairnflow.core.committer import Durability
    from cairnflow.core.executor import Workflow

__all__ = ["acontinue_from", "aresume", "arun"]


def _check_flavour(wf: Workflow[Any], saver: Any, call: str) -> None:
    if not wf.is_async:
        raise MisuseError(
            f"workflow {wf.name!r} is a plain `def` workflow: start it with {wf.name}.{call}(...) "
            f"(from async code: await asyncio.to_thread({wf.name}.{call}, ...)), or make it `async def`"
        )
    if not inspect.iscoroutinefunction(getattr(saver, "latest", None)):
        raise MisuseError(
            f"{wf.name}.a{call}() needs an AsyncCheckpointSaver, not {type(saver).__name__} {saver!r}: "
            "open one with cairnflow.savers.open_async_saver(url)"
        )


async def arun(
    wf: Workflow[Any],
    input: Any,
    *,
    thread_id: str,
    saver: Any,
    durability: Durability,
    deadline: float | None,
    reserve: float | None,
    max_workers: int,
) -> Run:
    """:meth:`Workflow.arun` (see :meth:`Workflow.run` for the rules)."""
    kept = check_run_args(
        saver=saver, durability=durability, deadline=deadline, reserve=reserve, max_workers=max_workers
    )
    _check_flavour(wf, saver, "run")
    plan = plan_start(wf, saver, thread_id, await saver.latest(thread_id), input)
    if isinstance(plan, Run):
        return plan
    return await _execute(wf, saver, thread_id, plan, durability, deadline, kept, max_workers)


async def aresume(
    wf: Workflow[Any],
    value: Any = MISSING,
    *,
    thread_id: str,
    saver: Any,
    interrupt_id: str | None,
    durability: Durability,
    deadline: float | None,
    reserve: float | None,
    max_workers: int,
) -> Run:
    """:meth:`Workflow.aresume` (see :meth:`Workflow.resume` for the rules)."""
    kept = check_run_args(
        saver=saver, durability=durability, deadline=deadline, reserve=reserve, max_workers=max_workers
    )
    check_interrupt_id(interrupt_id)
    _check_flavour(wf, saver, "resume")
    plan = plan_resume(wf, saver, thread_id, await saver.latest(thread_id), value, interrupt_id)
    if isinstance(plan, Run):
        return plan
    return await _execute(wf, saver, thread_id, plan, durability, deadline, kept, max_workers)


async def acontinue_from(
    wf: Workflow[Any],
    head: Any,
    *,
    thread_id: str,
    saver: Any,
    durability: Durability,
    deadline: float | None,
    reserve: float | None,
    max_workers: int,
) -> Run:
    """:meth:`Workflow.acontinue_from`: :func:`aresume` without an answer, from ``head`` just read."""
    kept = check_run_args(
        saver=saver, durability=durability, deadline=deadline, reserve=reserve, max_workers=max_workers
    )
    _check_flavour(wf, saver, "resume")
    plan = plan_resume(wf, saver, thread_id, head, MISSING, None)
    if isinstance(plan, Run):
        return plan
    return await _execute(wf, saver, thread_id, plan, durability, deadline, kept, max_workers)


@aobserved_run
async def _execute(
    wf: Workflow[Any],
    saver: Any,
    thread_id: str,
    plan: Plan,
    durability: Durability,
    deadline: float | None,
    reserve: float,
    max_workers: int,
) -> Run:
    committer = AsyncCommitter(saver, thread_id, plan.head, durability, wf.name)
    ctx: AsyncRunContext | None = None
    try:
        ctx = open_run(
            AsyncRunContext,
            wf,
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
            outcome = ("completed", await wf.fn(*body_input(wf, ctx.replay)))
        except BaseException as exc:
            outcome = body_outcome(exc)  # recorded as the run's stop or failure
            if outcome is None:
                raise
        finally:
            current_run.reset(token)
        await ctx.close_async()  # in-flight tasks (and children) finish and are recorded
        if lost_thread(ctx, outcome):
            ctx.dispatch_queue.clear()  # nothing more may be written: the replay dispatches them
        if committer.error is None:
            await ctx.flush()  # what the sync executor would have written before its end
        end = conclude(wf.name, thread_id, outcome, ctx)
        return end.settle(await committer.finish(end.records, end.status))
    except BaseException:
        if ctx is not None:
            await ctx.cancel_all()
        await committer.abandon()
        raise
