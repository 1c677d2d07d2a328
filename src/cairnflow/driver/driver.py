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
        """Start (or idempotently re-start) ``workflow`` on ``thread_id``; see :meth:`Workflow.run`."""
        self.workflows.setdefault(workflow.name, workflow)
        if workflow.is_async:
            return self._drive(
                workflow,
                thread_id,
                lambda: self._on_loop(
                    lambda asaver: workflow.arun(input, thread_id=thread_id, saver=asaver, **options)
                ),
            )
        return self._drive(
            workflow, thread_id, lambda: workflow.run(input, thread_id=thread_id, saver=self.saver, **options)
        )

    def handle(self, wakeup: Wakeup, **options: Any) -> Run | None:
        """Continue the run ``wakeup`` names; None when it was early, or another invocation has it.

        ``options`` go to :meth:`Workflow.resume` (e.g. ``deadline=`` from
        the function's remaining time).
        """
        if wakeup.at > self.clock() + EARLY_TOLERANCE:
            self.scheduler.schedule(wakeup)  # the service delivered early (capped delay): chain
            return None
        workflow = self.workflows.get(wakeup.workflow)
        if workflow is None:
            known = ", ".join(sorted(self.workflows)) or "none"
            raise InvalidArgumentError(
                f"wake-up for thread {wakeup.thread_id!r} names workflow {wakeup.workflow!r}, which this "
                f"process does not define (it has: {known}); import the module that defines it"
            )
        # Wake-ups are delivered at least once and cannot always be cancelled (a queue message
        # is out of reach once sent): continue only a run that is still unfinished. A failed
        # run is retried by its owner's explicit resume(), never by a stray wake-up.
        # A parent woken by its child that loses the write race to another execution of
        # itself (which may have read the child before it ended) tries again from the new
        # head: a retry that finds nothing new writes nothing, so many children ending
        # together converge instead of rescheduling each other in waves.
        for _ in range(CHILD_RETRIES if wakeup.reason == "child" else 1):
            head = self.saver.latest(wakeup.thread_id)
            if head is None or head.info.kind == "tombstone":
                return None
            records = parse_records(head.records)
            link = _parent_link(records.start) if parent_of(wakeup.thread_id) is not None else None
            found = standing(head, records, wakeup.thread_id)
            if found.status not in CONTINUABLE:
                if found.status in ENDED and link is not None:
                    # A child whose process died between its end and waking its parent (its
                    # lease fired), or a redelivered wake-up: wake the parent again (at least once).
                    self._wake(link)
                return found
            try:
                return self._drive(
                    workflow, wakeup.thread_id, self._continuation(workflow, head, wakeup, options), link=link
                )
            except ConflictError:
                if wakeup.reason != "child":
                    return None  # another invocation continued the run first; it owns the next step
            except ResumeError:
                return None  # the run waits for an answer (interrupt): only its answer continues it
        # Still losing to executions of the parent: try again shortly, or this child's outcome
        # might never be read.
        self.scheduler.schedule(replace(wakeup, at=max(self.clock(), wakeup.at) + 0.01))
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

    def _continuation(
        self, workflow: Workflow[Any], head: Checkpoint, wakeup: Wakeup, options: dict[str, Any]
    ) -> Callable[[], Run]:
        """Continue the run from the head just read (``resume()`` would read it again)."""
        if not workflow.is_async:
            return partial(
                workflow.continue_from, head, thread_id=wakeup.thread_id, saver=self.saver, **options
            )
        return lambda: self._on_loop(
            lambda asaver: workflow.acontinue_from(head, thread_id=wakeup.thread_id, saver=asaver, **options)
        )

    def _on_loop(self, make: Callable[[AsyncCheckpointSaver], Awaitable[Run]]) -> Run:
        """Run an ``async def`` workflow's call on a new event loop, with an async saver for it."""

        async def call() -> Run:
            async with self.async_savers.opened() as asaver:
                return await make(asaver)

        return asyncio.run(call())

    def _drive(
        self,
        workflow: Workflow[Any],
        thread_id: str,
        execute: Callable[[], Run],
        *,
        link: dict[str, str] | None = None,
    ) -> Run:
        """Run ``execute`` under a lease; ``link``: the run's parent, if it is a child (else read)."""
        if workflow.is_async:
            _refuse_running_loop()  # before the lease: a misplaced call leaves nothing behind
        lease = Wakeup(thread_id, workflow.name, self.clock() + self.lease, "lease", self.store_url)
        self.scheduler.schedule(lease)
        # If execute() raises (the body failed, the store is unreachable, another invocation
        # won a race), the lease stays: when it fires, handle() continues the run only if
        # its log still says "running", so a stranded run is picked up and a failed one is not.
        try:
            with dispatching(self.scheduler, store=self.store_url, clock=self.clock):
                run = execute()
        except (ConflictError, NondeterminismError, StoreError):
            raise  # nothing of ours ended: another writer has the run, or the store failed
        except Exception:
            self._wake_parent(thread_id, link)  # a child that failed (recorded) wakes its parent too
            raise
        follow_up = self._follow_up(workflow, run)
        if follow_up is not None:
            self.scheduler.schedule(follow_up)
        if run.status == "completed":
            self._wake_parent(thread_id, link)
        self._cancel(lease)
        return run

    def _cancel(self, lease: Wakeup) -> None:
        cancel = getattr(self.scheduler, "cancel", None)
        if cancel is not None:
            cancel(lease)

    def _wake_parent(self, thread_id: str, link: dict[str, str] | None) -> None:
        """A child workflow that ended (completed or failed) wakes its parent.

        ``link`` comes from the read that preceded the run (a wake-up); without it (a
        child started by :meth:`start`) the child's head is read once more.
        """
        if parent_of(thread_id) is None:
            return
        if link is None:
            head = self.saver.latest(thread_id)
            if head is None or head.status not in ENDED:
                return
            link = _parent_link(parse_records(head.records).start)
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
