"""Starting and continuing runs so that nothing but a scheduler is needed to finish them.

:class:`Driver` wraps :meth:`Workflow.run` and :meth:`Workflow.resume` with
the bookkeeping that makes runs continue by themselves:

1. Before a run executes, a *lease* wake-up is scheduled ``lease`` seconds
   ahead. If the process dies (Lambda timeout, OOM kill, SIGKILL), the lease
   wake-up fires and another invocation continues the run from its log.
2. When the run stops, the wake-up it needs is scheduled: ``"suspended"``
   (a deadline was near) continues at once, ``"waiting"`` at ``run.wake_at``.
   Only then is the lease cancelled, so a crash between the two leaves an
   extra wake-up, never a lost one.
3. A wake-up that arrives early (a queue's delay is capped below the wait)
   is scheduled again for the remainder, which chains waits longer than a
   service allows.

If the old process was in fact alive when its lease fired, both continue
from the same head: the checkpoint log's conditional writes let exactly one
record the next step, the other gets ``ConflictError`` before recording
anything, which :meth:`Driver.handle` treats as "somebody else has it".
Tasks run at least once; records are written exactly once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import replace
from functools import partial
from typing import Any, Protocol

from cairnflow.core.checkpoint import AsyncCheckpointSaver, Checkpoint, CheckpointSaver
from cairnflow.core.children import dispatching, parent_of
from cairnflow.core.errors import (
    ConflictError,
    InvalidArgumentError,
    MisuseError,
    NondeterminismError,
    ResumeError,
    StoreError,
)
from cairnflow.core.executor import Run, Workflow
from cairnflow.core.records import parse_records
from cairnflow.core.runs import standing
from cairnflow.core.wake import WakeScheduler, Wakeup
from cairnflow.driver.aloop import AsyncSavers, AsyncSaverSource

__all__ = ["CONTINUABLE", "Driver", "WakeHandler"]

_log = logging.getLogger("cairnflow.driver")

#: The statuses a wake-up continues; any other means the run needs nothing (or a person).
CONTINUABLE = frozenset({"running", "suspended", "waiting"})

#: The statuses of a run that has ended: a child in one of them wakes its parent.
ENDED = frozenset({"completed", "failed"})

#: How often a parent woken by its child is continued again after losing the write race.
CHILD_RETRIES = 3

#: A wake-up earlier than its time by less than this is handled now (clock skew, queue jitter).
EARLY_TOLERANCE = 1.0


class WakeHandler(Protocol):
    """What the cloud entry points (``lambda_handler``, ``wsgi_app``, ``handle_message``) call.

    :class:`Driver` for workflows; ``cairnflow.aws_durable.DurableDriver`` for
    AWS durable-function executions. ``handle`` returns what now stands (with
    a ``status``) or None; ``deliver`` is False when the wake-up must come again.
    """

    def handle(self, wakeup: Wakeup, **options: Any) -> Any: ...

    def deliver(self, wakeup: Wakeup, **options: Any) -> bool: ...


class Driver:
    """Runs workflows on ``saver`` and keeps them moving through ``scheduler``.

    ``workflows``: the workflows this process can continue, by name (what a
    wake-up names). ``lease``: how long a run may go without finishing
    before it is presumed dead and continued elsewhere; make it longer than
    your function's timeout.
    """

    def __init__(
        self,
        saver: CheckpointSaver,
        scheduler: WakeScheduler,
        workflows: Iterable[Workflow[Any]] | Mapping[str, Workflow[Any]],
        *,
        lease: float = 900.0,
        store_url: str | None = None,
        clock: Callable[[], float] = time.time,
        async_saver: AsyncSaverSource = None,
    ) -> None:
        if lease <= 0:
            raise InvalidArgumentError(f"lease must be positive seconds, got {lease!r}")
        items = workflows.values() if isinstance(workflows, Mapping) else workflows
        self.workflows: dict[str, Workflow[Any]] = {wf.name: wf for wf in items}
        self.saver = saver
        self.scheduler = scheduler
        self.lease = lease
        self.store_url = store_url
        self.clock = clock
        self.async_savers = AsyncSavers(saver, async_saver)

    def start(self, workflow: Workflow[Any], input: Any = None, *, thread_id: str, **options: Any) -> Run:
        """Start (or idempotently re-start) ``workflow`` on ``thread_id``; see :meth:`Workflow.run`.

        An ``async def`` workflow runs under ``asyncio.run`` (see :meth:`astart`).
        """
        self.workflows.setdefault(workflow.name, workflow)
        if workflow.is_async:
            _refuse_running_loop()
            return asyncio.run(self.astart(workflow, input, thread_id=thread_id, **options))
        return self._drive(
            workflow, thread_id, lambda: workflow.run(input, thread_id=thread_id, saver=self.saver, **options)
        )

    def handle(self, wakeup: Wakeup, **options: Any) -> Run | None:
        """Continue the run ``wakeup`` names; None when it was early, or another invocation has it.

        ``options`` go to :meth:`Workflow.resume` (e.g. ``deadline=`` from
        the function's remaining time). An ``async def`` workflow continues
        under ``asyncio.run`` (see :meth:`ahandle`).
        """
        if self._early(wakeup):
            return None
        workflow = self._workflow_for(wakeup)
        if workflow.is_async:
            _refuse_running_loop()
            return asyncio.run(self.ahandle(wakeup, **options))
        for _ in range(self._attempts(wakeup)):
            head = self.saver.latest(wakeup.thread_id)
            done, found, link = self._examine(wakeup, head)
            if done:
                return found
            try:
                return self._drive(
                    workflow,
                    wakeup.thread_id,
                    # From the head just read: resume() would read it again.
                    partial(
                        workflow.continue_from, head, thread_id=wakeup.thread_id, saver=self.saver, **options
                    ),
                    link=link,
                )
            except ConflictError:
                if wakeup.reason != "child":
                    return None  # another invocation continued the run first; it owns the next step
            except ResumeError:
                return None  # the run waits for an answer (interrupt): only its answer continues it
        self._retry_later(wakeup)
        return None

    def deliver(self, wakeup: Wakeup, **options: Any) -> bool:
        """Handle ``wakeup`` for a queue or worker: False means "deliver it again later".

        Only a store failure asks for redelivery. A workflow body that raised
        has its failure recorded in the thread (``get_run`` shows it), so
        delivering the wake-up again would change nothing.
        """
        try:
            self.handle(wakeup, **options)
        except StoreError:
            _log.warning("continuing thread %r: store error", wakeup.thread_id, exc_info=True)
            return False
        except Exception:  # noqa: BLE001 - the body's own failure, recorded in the thread
            _log.info("thread %r failed", wakeup.thread_id, exc_info=True)
        return True

    # ---------------------------------------------------------------- asyncio

    async def astart(
        self, workflow: Workflow[Any], input: Any = None, *, thread_id: str, **options: Any
    ) -> Run:
        """:meth:`start` on the running event loop: an ``async def`` workflow runs on this loop.

        Its saver comes from ``async_saver`` (see the class); a plain workflow
        runs in a worker thread (``asyncio.to_thread(driver.start, ...)``).
        """
        self.workflows.setdefault(workflow.name, workflow)
        if not workflow.is_async:
            return await asyncio.to_thread(self.start, workflow, input, thread_id=thread_id, **options)
        async with self.async_savers.opened() as asaver:
            execute = partial(workflow.arun, input, thread_id=thread_id, saver=asaver, **options)
            return await self._adrive(workflow, thread_id, asaver, execute, link=None)

    async def ahandle(self, wakeup: Wakeup, **options: Any) -> Run | None:
        """:meth:`handle` on the running event loop (for an asyncio entry point).

        The same decisions as :meth:`handle`, the head read and the run on the
        async saver. The scheduler is called as in :meth:`handle`: the
        :class:`WakeScheduler` seam is sync (its cloud implementations are sync
        SDK clients), and it is called a few times per run (the lease, the
        follow-up, the lease's cancel), never per step. A plain workflow's
        wake-up is handled in a worker thread.
        """
        if self._early(wakeup):
            return None
        workflow = self._workflow_for(wakeup)
        if not workflow.is_async:
            return await asyncio.to_thread(self.handle, wakeup, **options)
        async with self.async_savers.opened() as asaver:
            for _ in range(self._attempts(wakeup)):
                head = await asaver.latest(wakeup.thread_id)
                done, found, link = self._examine(wakeup, head)
                if done:
                    return found
                execute = partial(
                    workflow.acontinue_from, head, thread_id=wakeup.thread_id, saver=asaver, **options
                )
                try:
                    return await self._adrive(workflow, wakeup.thread_id, asaver, execute, link=link)
                except ConflictError:
                    if wakeup.reason != "child":
                        return None  # another invocation continued the run first
                except ResumeError:
                    return None  # the run waits for an answer (interrupt)
        self._retry_later(wakeup)
        return None

    async def _adrive(
        self,
        workflow: Workflow[Any],
        thread_id: str,
        asaver: AsyncCheckpointSaver,
        execute: Callable[[], Awaitable[Run]],
        *,
        link: dict[str, str] | None,
    ) -> Run:
        """:meth:`_drive` on the running loop (the same lease, follow-up and parent wake-up)."""
        lease = self._lease(workflow, thread_id)
        try:
            with dispatching(self.scheduler, store=self.store_url, clock=self.clock):
                run = await execute()
        except (ConflictError, NondeterminismError, StoreError):
            raise
        except Exception:
            self._wake_link(await self._aparent(thread_id, link, asaver))
            raise
        parent = await self._aparent(thread_id, link, asaver) if run.status == "completed" else None
        return self._stopped(workflow, run, lease, parent)

    async def _aparent(
        self, thread_id: str, link: dict[str, str] | None, asaver: AsyncCheckpointSaver
    ) -> dict[str, str] | None:
        if parent_of(thread_id) is None or link is not None:
            return link
        return _ended_link(await asaver.latest(thread_id))

    # ---------------------------------------------------------------- internals

    def _early(self, wakeup: Wakeup) -> bool:
        if wakeup.at > self.clock() + EARLY_TOLERANCE:
            self.scheduler.schedule(wakeup)  # the service delivered early (capped delay): chain
            return True
        return False

    def _workflow_for(self, wakeup: Wakeup) -> Workflow[Any]:
        workflow = self.workflows.get(wakeup.workflow)
        if workflow is None:
            known = ", ".join(sorted(self.workflows)) or "none"
            raise InvalidArgumentError(
                f"wake-up for thread {wakeup.thread_id!r} names workflow {wakeup.workflow!r}, which this "
                f"process does not define (it has: {known}); import the module that defines it"
            )
        return workflow

    @staticmethod
    def _attempts(wakeup: Wakeup) -> int:
        # A parent woken by its child that loses the write race to another execution of
        # itself (which may have read the child before it ended) tries again from the new
        # head: a retry that finds nothing new writes nothing, so many children ending
        # together converge instead of rescheduling each other in waves.
        return CHILD_RETRIES if wakeup.reason == "child" else 1

    def _examine(
        self, wakeup: Wakeup, head: Checkpoint | None
    ) -> tuple[bool, Run | None, dict[str, str] | None]:
        """(done, what stands, the parent link): whether the run is left alone, from its head.

        Wake-ups are delivered at least once and cannot always be cancelled (a queue message
        is out of reach once sent): continue only a run that is still unfinished. A failed
        run is retried by its owner's explicit resume(), never by a stray wake-up.
        """
        if head is None or head.info.kind == "tombstone":
            return True, None, None
        records = parse_records(head.records)
        link = _parent_link(records.start) if parent_of(wakeup.thread_id) is not None else None
        found = standing(head, records, wakeup.thread_id)
        if found.status not in CONTINUABLE:
            if found.status in ENDED and link is not None:
                # A child whose process died between its end and waking its parent (its
                # lease fired), or a redelivered wake-up: wake the parent again (at least once).
                self._wake(link)
            return True, found, link
        return False, None, link

    def _retry_later(self, wakeup: Wakeup) -> None:
        # Still losing to executions of the parent: try again shortly, or this child's outcome
        # might never be read.
        self.scheduler.schedule(replace(wakeup, at=max(self.clock(), wakeup.at) + 0.01))

    def _lease(self, workflow: Workflow[Any], thread_id: str) -> Wakeup:
        lease = Wakeup(thread_id, workflow.name, self.clock() + self.lease, "lease", self.store_url)
        self.scheduler.schedule(lease)
        return lease

    def _drive(
        self,
        workflow: Workflow[Any],
        thread_id: str,
        execute: Callable[[], Run],
        *,
        link: dict[str, str] | None = None,
    ) -> Run:
        """Run ``execute`` under a lease; ``link``: the run's parent, if it is a child (else read)."""
        lease = self._lease(workflow, thread_id)
        # If execute() raises (the body failed, the store is unreachable, another invocation
        # won a race), the lease stays: when it fires, handle() continues the run only if
        # its log still says "running", so a stranded run is picked up and a failed one is not.
        try:
            with dispatching(self.scheduler, store=self.store_url, clock=self.clock):
                run = execute()
        except (ConflictError, NondeterminismError, StoreError):
            raise  # nothing of ours ended: another writer has the run, or the store failed
        except Exception:
            self._wake_link(self._parent(thread_id, link))  # a child that failed (recorded) wakes its parent
            raise
        return self._stopped(
            workflow, run, lease, self._parent(thread_id, link) if run.status == "completed" else None
        )

    def _stopped(
        self, workflow: Workflow[Any], run: Run, lease: Wakeup, parent: dict[str, str] | None
    ) -> Run:
        """Schedule what the stopped run needs, wake its parent, then cancel its lease."""
        follow_up = self._follow_up(workflow, run)
        if follow_up is not None:
            self.scheduler.schedule(follow_up)
        self._wake_link(parent)
        self._cancel(lease)
        return run

    def _cancel(self, lease: Wakeup) -> None:
        cancel = getattr(self.scheduler, "cancel", None)
        if cancel is not None:
            cancel(lease)

    def _parent(self, thread_id: str, link: dict[str, str] | None) -> dict[str, str] | None:
        """The parent an ended child wakes (ended: completed or failed).

        ``link`` comes from the read that preceded the run (a wake-up); without it (a
        child started by :meth:`start`) the child's head is read once more.
        """
        if parent_of(thread_id) is None or link is not None:
            return link
        return _ended_link(self.saver.latest(thread_id))

    def _wake_link(self, link: dict[str, str] | None) -> None:
        if link is not None:
            self._wake(link)

    def _wake(self, link: dict[str, str]) -> None:
        self.scheduler.schedule(
            Wakeup(link["thread_id"], link["workflow"], self.clock(), "child", self.store_url)
        )

    def _follow_up(self, workflow: Workflow[Any], run: Run) -> Wakeup | None:
        if run.status == "suspended":
            return Wakeup(run.thread_id, workflow.name, self.clock(), "suspended", self.store_url)
        wake_at = getattr(run, "wake_at", None)  # set by runs that wait for a timer
        if wake_at is not None:
            return Wakeup(run.thread_id, workflow.name, float(wake_at), "timer", self.store_url)
        return None


def _ended_link(head: Checkpoint | None) -> dict[str, str] | None:
    """The parent a child's head names, if the child has ended (completed or failed)."""
    if head is None or head.status not in ENDED:
        return None
    return _parent_link(parse_records(head.records).start)


def _refuse_running_loop() -> None:
    """The sync driver runs an ``async def`` workflow with ``asyncio.run``: not inside a running loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise MisuseError(
        "Driver.start/handle/deliver continue an `async def` workflow with asyncio.run(), which cannot "
        "run inside a running event loop: call them from a thread (await asyncio.to_thread(driver.handle, "
        "wakeup))"
    )


def _parent_link(start: dict[str, Any] | None) -> dict[str, str] | None:
    """The ``parent`` a child's start record names (thread id and workflow), or None."""
    link = start.get("parent") if start is not None else None
    if not isinstance(link, dict) or not link.get("thread_id") or not link.get("workflow"):
        return None
    return {"thread_id": str(link["thread_id"]), "workflow": str(link["workflow"])}
