"""Child workflows of an ``async def`` workflow: :mod:`cairnflow.core.children`'s rules, awaited.

What a child is, its records, thread id, links, and what a replay finds are
:mod:`cairnflow.core.children`'s; this module only makes their requests on the
parent's :class:`~cairnflow.core.checkpoint.AsyncCheckpointSaver`:

- :func:`run_child` runs an inline child as an asyncio task of the parent's run;
- :func:`settle` is a dispatched child's future: it waits until the body yields,
  so that the children started until then are recorded in one write and
  created together (:meth:`AsyncRunContext.flush` calls :func:`flush_dispatches`),
  then reads the child's thread unless this execution created it;
- :func:`flush_dispatches` creates each queued child's thread (create-only, up to
  ``DISPATCHERS`` at once) and hands it to the driver's scheduler, whose calls
  (a queue message, a schedule, a due-index write) run in a worker thread so as
  not to block the loop.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, cast

from cairnflow.core.children import (
    DISPATCHERS,
    ChildFuture,
    child_start_record,
    dispatcher,
    ended_child,
    ended_future,
    outcome_of,
    parent_link,
    record_ended,
    twin_has_ended,
)
from cairnflow.core.errors import ConflictError, NondeterminismError
from cairnflow.core.tasks import current_run
from cairnflow.core.timers import Waiting

if TYPE_CHECKING:
    from collections.abc import Callable

    from cairnflow.core.acontext import AsyncRunContext
    from cairnflow.core.checkpoint import AsyncCheckpointSaver
    from cairnflow.core.executor import Workflow
    from cairnflow.core.runs import Run

__all__ = ["flush_dispatches", "run_child", "settle"]


async def run_child(
    ctx: AsyncRunContext, child: Workflow[Any], input: Any, pos: int, thread_id: str, link: dict[str, Any]
) -> ChildFuture[Any]:
    """An inline child, run as an asyncio task of the parent's run; its ``child_done`` committed."""
    current_run.set(None)  # this asyncio task's copy of the context: the child has its own run
    parent_link.set(link)
    await ctx.flush()  # the parent's start (and answer) are stored before the child's thread exists
    run: Run | Exception
    try:
        run = await child.arun(
            input, thread_id=thread_id, saver=ctx.saver, deadline=ctx.deadline, reserve=ctx.reserve
        )
    except (ConflictError, NondeterminismError):
        raise  # the child's history is not this code's, or another writer has it: record nothing
    except Exception as exc:  # noqa: BLE001 - the child failed (recorded in its thread): record it here
        run = exc
    future, done = outcome_of(thread_id, pos, child.name, run)
    if done is not None:
        await ctx.acommitter.commit([done])
    return future


async def settle(
    ctx: AsyncRunContext,
    child: Workflow[Any],
    input: Any,
    pos: int,
    thread_id: str,
    link: dict[str, Any],
    *,
    fresh: bool,
) -> ChildFuture[Any]:
    """A dispatched child's outcome, recorded in the parent once; raises Waiting while it runs elsewhere.

    As the sync ``_settle``: ``fresh`` (created by this execution) is not read.
    """
    done = ctx.replay.children.get(pos)
    if done is not None:
        return ended_future(thread_id, done, child.name)
    await ctx.flush()  # this child's record, then the child itself (with those queued with it)
    if fresh:
        raise Waiting(None)
    schedule = dispatcher()
    if schedule is None:
        # No driver here (the parent was resumed by hand): continue the child in this process.
        inline = await run_child(ctx, child, input, pos, thread_id, link)
        if not inline.done():
            inline.result()  # raises: stops the parent as the child stopped
        return inline
    head = await _saver(ctx).latest(thread_id)
    if head is None or head.info.kind == "tombstone":
        await _dispatch_child(ctx, child, input, thread_id, link, schedule)  # never created (a crash)
        raise Waiting(None)
    done = ended_child(head, pos)
    if done is None:
        raise Waiting(None)  # its end schedules a "child" wake-up for this parent
    return record_ended(ctx, pos, done, thread_id, child.name)


async def _dispatch_child(
    ctx: AsyncRunContext,
    child: Workflow[Any],
    input: Any,
    thread_id: str,
    link: dict[str, Any],
    schedule: Callable[[str, str], None],
) -> None:
    """Create the child's thread (create-only) and schedule it; a twin of an earlier attempt is one."""
    start = child_start_record(ctx, child, input, link)
    saver = _saver(ctx)
    try:
        head = await saver.append(thread_id, None, [start], status="suspended", workflow=child.name)
    except ConflictError:
        if twin_has_ended(await saver.latest(thread_id), start, thread_id, link):
            return  # it has ended: the parent's next await reads it, nothing to run
    else:
        await saver.index_stop(head, None)  # listed as suspended until a worker picks it up
    await asyncio.to_thread(schedule, thread_id, child.name)


def _saver(ctx: AsyncRunContext) -> AsyncCheckpointSaver:
    # RunContext types its saver as the sync one; an async run's is always async (checked
    # when the run starts)
    return cast("AsyncCheckpointSaver", ctx.saver)


async def flush_dispatches(ctx: AsyncRunContext) -> None:
    """Create and schedule every queued child (their records were written just before).

    Called by :meth:`AsyncRunContext.flush`, after the write that stores the
    children's records (but in exit mode, as the sync executor). The first
    failure is raised once every dispatch has ended.
    """
    batch = list(ctx.dispatch_queue)
    ctx.dispatch_queue.clear()
    slots = asyncio.Semaphore(DISPATCHERS)

    async def one(item: tuple[Any, ...]) -> None:
        async with slots:
            await _dispatch_child(ctx, *item)

    outcomes = await asyncio.gather(*(one(item) for item in batch), return_exceptions=True)
    for failed in outcomes:
        if isinstance(failed, BaseException):
            raise failed
