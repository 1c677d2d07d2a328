"""One execution of an ``async def`` workflow body: the asyncio side of :class:`RunContext`.

Positions, replay, interrupts, the replay-safe helpers, timers' and callbacks'
records are those of :class:`~cairnflow.core.replay.RunContext`, unchanged: a
call takes its position when the body makes it (synchronously, so
``asyncio.gather(a(1), a(2))`` numbers them in argument order). What differs
is only how waiting and writing happen:

- a task runs as an asyncio task on the run's event loop (an ``async def``
  function is awaited; a plain one runs in a worker thread, ``asyncio.to_thread``,
  so it never blocks the loop), driven through the same
  :func:`~cairnflow.core.tasks.task_steps` as the sync executor; ``max_workers``
  bounds how many run at once (a semaphore, where the sync executor has a pool);
- the body never blocks on I/O: what the sync executor writes at once (the
  answer that fences a resume, the start record, a callback's record, a
  callback's timeout) is queued and marked *due*, and written by :meth:`flush`
  before the next task starts, before a wait, when ``cb.wait()`` is awaited, and
  before the run's last write. A write that stands alone in the sync executor
  therefore stands alone here too, and comes before anything that could depend on it;
- timers wait with ``asyncio.sleep``, retries back off with ``asyncio.sleep``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar, cast

from cairnflow.core.acommitter import AsyncCommitter
from cairnflow.core.replay import RunContext
from cairnflow.core.stepper import Stepper
from cairnflow.core.tasks import Task, TaskFuture, current_run, task_steps
from cairnflow.core.timers import Pause, in_process_delay

__all__ = ["AsyncRunContext"]

T = TypeVar("T")


class AsyncRunContext(RunContext):
    """State of one execution of an async workflow body (see the module documentation)."""

    def __init__(self, *, committer: AsyncCommitter, **kwargs: Any) -> None:
        super().__init__(committer=committer, **kwargs)
        self.acommitter = committer
        #: Tasks (and children) started by this execution; the run waits for all of them.
        self.inflight: set[asyncio.Task[Any]] = set()
        self._slots = asyncio.Semaphore(self.max_workers)
        #: Records were queued that the sync executor would have written already.
        self._due = False
        self._flushing = asyncio.Lock()

    # ------------------------------------------------------------- writes made due

    def ensure_fence(self) -> None:
        fence, self.fence = self.fence, None
        if fence is not None:
            self.committer.stage([fence])
            self._due = True

    def before_task(self) -> None:
        self.ensure_fence()
        if self.unstarted:
            self.unstarted = False
            self._due = True  # the staged start record

    def write_now(self, records: Sequence[Any]) -> None:
        self.committer.stage(records)
        if self.committer.mode != "exit":
            self._due = True

    async def flush(self) -> None:
        """Write what is due (and wait for it), as the sync executor would have by now.

        Then create and schedule the children dispatched since the last flush: their
        records were in that write (but in exit mode), so a child never exists without
        its parent's record of it. One flush at a time: a second one must not dispatch
        children whose records the first is still writing.
        """
        async with self._flushing:
            if self.dispatch_queue and self.committer.mode != "exit":
                self._due = True
            if self._due:
                self._due = False
                await self.acommitter.commit([], wait=True)
            if self.dispatch_queue:
                from cairnflow.core import achildren

                await achildren.flush_dispatches(self)

    def settle(self, step: Callable[[], T]) -> Any:
        async def settled() -> T:
            try:
                return step()
            finally:
                await self.flush()

        return settled()

    # ------------------------------------------------------------- tasks and waits

    def spawn(self, work: Awaitable[T]) -> asyncio.Task[T]:
        """Start ``work`` as an asyncio task the run waits for before it stops."""
        started = asyncio.ensure_future(work)
        self.inflight.add(started)
        return started

    def call_task(self, task: Task[Any, T], args: tuple[Any, ...], kwargs: dict[str, Any]) -> TaskFuture[T]:
        claimed = self._claim_task(task, args, kwargs)
        if isinstance(claimed, TaskFuture):
            return claimed
        self.may_start()
        self.before_task()
        return TaskFuture(self.spawn(self._run_task(task, claimed[0], claimed[1], args, kwargs)))

    async def _run_task(
        self, task: Task[Any, T], pos: int, digest: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> T:
        """Drive :func:`task_steps` in this asyncio task: the async executor's way to run a task."""
        current_run.set(None)  # this asyncio task's copy of the context: the task is not the body
        await self.flush()  # the answer (the fence) and the start record go out before any task
        async with self._slots:
            feed = Stepper(task_steps(self, task, pos, digest))
            while (effect := feed.next()) is not None:
                try:
                    kind, arg = effect
                    if kind == "call":
                        if task.is_async:
                            feed.reply = await task.fn(*args, **kwargs)
                        else:
                            # A plain function would block the loop: a worker thread of the
                            # loop's default executor runs it (bounded process-wide).
                            feed.reply = await asyncio.to_thread(task.fn, *args, **kwargs)
                    elif kind == "wait":
                        delay = self.delay_until(arg)
                        if delay > 0:
                            await asyncio.sleep(delay)
                    else:
                        await self.acommitter.commit(arg)
                except BaseException as exc:  # noqa: BLE001 - thrown back into the steps, which decide
                    feed.error = exc
            return cast(T, feed.result)

    def wait_for(self, wake_at: float) -> Pause:
        delay = in_process_delay(self, wake_at)  # raises Waiting when the run must stop instead
        return Pause(self._sleep(wake_at) if delay > 0 else self.flush())

    async def _sleep(self, wake_at: float) -> None:
        import time

        await self.flush()  # the timer record: a killed process resumes towards the same moment
        delay = wake_at - time.time()
        if delay > 0:
            await asyncio.sleep(delay)

    async def close_async(self) -> None:
        """Wait for the tasks in flight: they finish and are recorded (the pool's shutdown)."""
        while self.inflight:
            batch, self.inflight = self.inflight, set()
            await asyncio.wait(batch)
            for done in batch:
                if not done.cancelled():
                    done.exception()  # retrieved: its failure reached the body, or is moot now

    async def cancel_all(self) -> None:
        """The run itself was cancelled: cancel its tasks and wait for them to unwind."""
        for pending in self.inflight:
            pending.cancel()
        await asyncio.gather(*self.inflight, return_exceptions=True)
        self.inflight.clear()
