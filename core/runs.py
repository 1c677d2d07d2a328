"""A thread's standing as a :class:`Run`: what ``run()``, ``resume()``, ``get_run()`` and ``fork()`` return.

Also how each execution of a body is reported (a ``cairnflow.run`` span, :func:`observed_run`).

Also the rule for an answer given to a thread that is not waiting for one: only the
answer it already took is accepted (a retried request).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

from cairnflow.core import observe
from cairnflow.core.checkpoint import Checkpoint, Status
from cairnflow.core.errors import ResumeError, SerializationError
from cairnflow.core.records import RunRecords

__all__ = [
    "MISSING",
    "Run",
    "aobserved_run",
    "check_repeated_answer",
    "digest",
    "observed_run",
    "settled",
    "standing",
]


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


#: ``resume()`` without an answer.
MISSING: Any = _Missing()


@dataclass(frozen=True)
class Run:
    """What a ``run()`` or ``resume()`` call ended with.

    ``status`` is one of:

    ``"completed"``    ``result`` holds the return value.
    ``"interrupted"``  ``interrupt`` holds the value passed to :func:`interrupt`;
                       ``interrupt_id`` identifies it for ``resume``.
    ``"suspended"``    the deadline came; ``resume()`` continues.
    ``"waiting"``      at a timer (``sleep``) or a callback's ``wait()``: ``wake_at``
                       (epoch seconds) is when ``resume()`` continues it (None:
                       once a callback is completed).
    ``"failed"``       (from ``get_run``/``fork`` only: ``run()``/``resume()`` raise
                       instead) ``error_type`` and ``error`` say why; ``resume()``
                       runs the failed task again.
    ``"running"``      (from ``get_run`` only) the newest write said running: a run
                       in progress, or a process that died; ``resume()`` continues it.
    """

    thread_id: str
    status: Status
    checkpoint_id: str | None
    result: Any = None
    interrupt: Any = None
    interrupt_id: str | None = None
    error_type: str | None = None
    """A failed run's exception type, ``module.QualName``."""
    error: str | None = None
    """A failed run's exception message."""
    wake_at: float | None = None
    """A waiting run's wake time (epoch seconds), or None if a callback must continue it."""


def check_repeated_answer(
    saver: Any,
    replay: RunRecords,
    thread_id: str,
    status: str,
    value: Any,
    interrupt_id: str | None,
) -> None:
    """Accept ``value`` for a thread not waiting only if it is the answer the thread took.

    Otherwise :class:`ResumeError`: e.g. the loser of a race of resumes that loads the
    thread after the winner answered (or completed it) with a different answer.
    """
    pos = int(interrupt_id) if interrupt_id is not None else max(replay.answers, default=None)
    if pos is None or pos not in replay.answers:
        raise ResumeError(
            f"thread {thread_id!r} is {status} and took no answer"
            + (f" for interrupt {interrupt_id}" if interrupt_id is not None else "")
            + ": call resume() without a value to continue it"
        )
    try:
        same = digest(saver, replay.answers[pos]) == digest(saver, value)
    except SerializationError:
        same = False
    if not same:
        raise ResumeError(
            f"thread {thread_id!r} ({status}) already took a different answer for interrupt {pos}: "
            f"{replay.answers[pos]!r}; to answer it differently, fork the thread at a checkpoint "
            "before that answer (Workflow.fork) and resume that"
        )


def standing(head: Checkpoint, replay: RunRecords, thread_id: str) -> Run:
    done = settled(head, replay, thread_id)
    if done is not None:
        return done
    failure = replay.failure() if head.status == "failed" else None
    if failure is not None:
        return Run(thread_id, "failed", head.checkpoint_id, error_type=failure.type, error=failure.message)
    if head.status == "waiting":
        return Run(thread_id, "waiting", head.checkpoint_id, wake_at=replay.wake_at)
    return Run(thread_id, head.status, head.checkpoint_id)


def settled(head: Checkpoint | None, replay: RunRecords, thread_id: str) -> Run | None:
    if head is None:
        return None
    if head.status == "completed" and replay.end is not None:
        return Run(thread_id, "completed", head.checkpoint_id, result=replay.end.get("value"))
    if head.status == "interrupted":
        pending = replay.pending_interrupt()
        if pending is not None:
            return Run(
                thread_id,
                "interrupted",
                head.checkpoint_id,
                interrupt=pending.value,
                interrupt_id=str(pending.pos),
            )
    return None


def digest(saver: Any, value: Any) -> str:
    serializer = getattr(saver, "serializer", None)
    data = serializer.dumps(value) if serializer is not None else repr(value).encode()
    return hashlib.sha256(data).hexdigest()[:32]


@contextlib.contextmanager
def _run_span(workflow: str, thread_id: str, answered: bool) -> Iterator[Callable[[Run], Run]]:
    with observe.span("cairnflow.run", workflow=workflow, thread_id=thread_id, resumed=answered) as span:
        if answered:
            observe.event("cairnflow.resume", workflow=workflow, thread_id=thread_id)

        def report(run: Run) -> Run:
            span.set("cairnflow.status", run.status)
            if run.status == "interrupted":
                observe.event("cairnflow.interrupt", workflow=workflow, thread_id=thread_id)
            return run

        yield report


def observed_run(execute: Callable[..., Run]) -> Callable[..., Run]:
    """Report each execution of a workflow body (a run or a resume) as a ``cairnflow.run`` span."""

    @functools.wraps(execute)
    def observed(self: Any, saver: Any, thread_id: str, plan: Any, *args: Any) -> Run:
        with _run_span(self.name, thread_id, plan.answer is not None) as report:
            return report(execute(self, saver, thread_id, plan, *args))

    return observed


def aobserved_run(execute: Callable[..., Awaitable[Run]]) -> Callable[..., Awaitable[Run]]:
    """:func:`observed_run` for the asyncio executor."""

    @functools.wraps(execute)
    async def observed(wf: Any, saver: Any, thread_id: str, plan: Any, *args: Any) -> Run:
        with _run_span(wf.name, thread_id, plan.answer is not None) as report:
            return report(await execute(wf, saver, thread_id, plan, *args))

    return observed
