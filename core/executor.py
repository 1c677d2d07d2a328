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
"""

from __future__ import annotations

import functools
import inspect
import time  # noqa: F401 - tests patch time.time through this module
from collections.abc import Callable
from typing import Any, Generic, TypeVar, cast, overload

from cairnflow.core.checkpoint import Checkpoint, CheckpointSaver
from cairnflow.core.children import ChildFuture, parent_link, start_child
from cairnflow.core.committer import Committer, Durability
from cairnflow.core.errors import (
    ConflictError,
    InvalidArgumentError,
    MisuseError,
    NondeterminismError,
    ResumeError,
    SerializationError,
    TaskFailedError,
    ThreadNotFoundError,
)
from cairnflow.core.records import RunRecords, error_record, parse_records
from cairnflow.core.replay import Interrupted, RunContext, Suspended, interrupt
from cairnflow.core.runargs import check_run_args
from cairnflow.core.runs import MISSING, Run, check_repeated_answer, digest, observed_run, settled, standing
from cairnflow.core.tasks import Task, TaskFuture, current_run, task
from cairnflow.core.timers import Waiting

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
        functools.update_wrapper(self, fn)

    def __call__(self, *args: Any, **kwargs: Any) -> T:
        """Refused: a workflow is started with :meth:`run` (its plain body is ``.fn``)."""
        raise MisuseError(
            f"workflow {self.name!r} was called directly: start it with "
            f"{self.name}.run(input, thread_id=..., saver=...) (the plain function is {self.name}.fn)"
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
        head = saver.latest(thread_id)
        fresh = head is None or head.info.kind == "tombstone"
        replay = parse_records(() if fresh or head is None else head.records)
        if not fresh:
            self._check_identity(replay, thread_id)
            assert replay.start is not None
            try:
                same_input = digest(saver, input) == replay.start.get("input_digest")
            except SerializationError:
                same_input = False
            if not same_input:
                raise NondeterminismError(
                    f"thread {thread_id!r} was started with a different input; use a new thread id"
                )
            done = settled(head, replay, thread_id)
            if done is not None:
                return done
        return self._execute(
            saver,
            thread_id,
            head,
            replay,
            durability,
            deadline,
            reserve,
            max_workers,
            first=None
            if not fresh
            else {
                "op": "start",
                "workflow": self.name,
                "input": input,
                "input_digest": digest(saver, input),
                **({"parent": parent_link.get()} if parent_link.get() is not None else {}),
            },
            answer=None,
        )

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
        if interrupt_id is not None and (not isinstance(interrupt_id, str) or not interrupt_id.isdigit()):
            raise InvalidArgumentError(
                f"interrupt_id must be a Run.interrupt_id string, not {interrupt_id!r}"
            )
        head = saver.latest(thread_id)
        if head is None or head.info.kind == "tombstone":
            raise ThreadNotFoundError(f"no thread {thread_id!r} in {saver!r}")
        replay = parse_records(head.records)
        self._check_identity(replay, thread_id)
        pending = replay.pending_interrupt() if head.status == "interrupted" else None
        if pending is None and value is not MISSING:
            check_repeated_answer(saver, replay, thread_id, head.status, value, interrupt_id)
            value = MISSING  # the answer it already took: a retried request
        if head.status == "completed":
            done = settled(head, replay, thread_id)
            assert done is not None
            return done
        answer = None
        if pending is not None:
            if value is MISSING:
                raise ResumeError(f"thread {thread_id!r} is waiting for an answer: resume(value, ...)")
            if interrupt_id is not None and interrupt_id != str(pending.pos):
                raise ResumeError(
                    f"thread {thread_id!r} is waiting on interrupt {pending.pos}, not {interrupt_id}"
                )
            answer = {"op": "resume", "pos": pending.pos, "value": value}
        return self._execute(
            saver,
            thread_id,
            head,
            replay,
            durability,
            deadline,
            reserve,
            max_workers,
            first=None,
            answer=answer,
        )

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

    # ---------------------------------------------------------------- internals

    def _check_identity(self, replay: RunRecords, thread_id: str) -> None:
        recorded = replay.start.get("workflow") if replay.start else None
        if recorded != self.name:
            raise NondeterminismError(
                f"thread {thread_id!r} belongs to workflow {recorded!r}, not {self.name!r}"
            )

    @observed_run
    def _execute(
        self,
        saver: CheckpointSaver,
        thread_id: str,
        head: Checkpoint | None,
        replay: RunRecords,
        durability: Durability,
        deadline: float | None,
        reserve: float,
        max_workers: int,
        *,
        first: dict[str, Any] | None,
        answer: dict[str, Any] | None,
    ) -> Run:
        committer = Committer(saver, thread_id, head, durability, self.name)
        try:
            if first is not None:
                replay.start = first
                # Staged: written before the first task starts (RunContext.before_task;
                # sync mode: one PUT of its own), so that a run killed in its first task leaves
                # a thread that resume() can continue. A run that stops before any task
                # writes it with its end.
                committer.stage([first])
            if answer is not None:
                # The answer is the fence that makes a second, concurrent resume of the same
                # interrupt fail before running anything with its (rejected) answer. It is
                # written, and waited for even in async mode, once the body has replayed the
                # recorded prefix up to that interrupt (RunContext.ensure_fence): code that
                # diverged from the history fails before anything is written. In exit mode
                # nothing is written before the end, so racing resumers both run.
                replay.answers[answer["pos"]] = answer["value"]
            ctx = RunContext(
                saver=saver,
                committer=committer,
                replay=replay,
                retry_failed=head is not None and head.status == "failed",
                deadline=deadline,
                reserve=reserve,
                max_workers=max_workers,
                workflow=self.name,
                fence=answer,
                unstarted=first is not None,
            )
            token = current_run.set(ctx)
            outcome: tuple[str, Any]
            try:
                body_input = replay.start.get("input") if replay.start else None
                result = self.fn(body_input) if self._takes_input else self.fn()
                outcome = ("completed", result)
            except Interrupted as stop:
                outcome = ("interrupted", stop)
            except Suspended:
                outcome = ("suspended", None)
            except Waiting as stop:
                outcome = ("waiting", stop.wake_at)
            except Exception as exc:  # noqa: BLE001 - recorded as the run's failure, then re-raised
                outcome = ("failed", exc)
            finally:
                current_run.reset(token)
                ctx.pool.shutdown(wait=True)  # in-flight tasks finish and are recorded
            if ctx.suspending and outcome[0] in ("completed", "waiting"):
                outcome = ("suspended", None)  # a task it did not wait for was never started
            return self._finish(committer, thread_id, outcome, ctx)
        except BaseException:
            committer.abandon()
            raise

    def _finish(self, committer: Committer, thread_id: str, outcome: tuple[str, Any], ctx: RunContext) -> Run:
        kind, payload = outcome
        if committer.error is not None:
            # The thread was lost to another writer (or the store failed): record nothing more.
            raise committer.error
        if ctx.fence is not None and isinstance(payload, (ConflictError, NondeterminismError)):
            raise payload  # the divergence, precisely named; nothing was written
        if ctx.fence is not None:
            # The body never reached the interrupt it was answered for: it diverged from its
            # history. Nothing was written; the thread still waits for its answer.
            diverged = NondeterminismError(
                f"workflow {self.name!r} did not reach interrupt {ctx.fence['pos']}, which the answer "
                f"is for ({kind} before it); nothing was written: resume with the code that started it"
            )
            if isinstance(payload, BaseException):
                raise diverged from payload
            raise diverged
        if kind == "completed":
            try:
                ctx.dumps(payload)
            except SerializationError as exc:
                error = SerializationError(
                    f"workflow {self.name!r} returned a value that cannot be stored: {exc}"
                )
                committer.finish([{"op": "end", "status": "failed", "error": error_record(error)}], "failed")
                raise error from exc
            head = committer.finish([{"op": "end", "status": "completed", "value": payload}], "completed")
            return Run(thread_id, "completed", head.checkpoint_id if head else None, result=payload)
        if kind == "interrupted":
            stop = cast(Interrupted, payload)
            records = (
                []
                if stop.pos in ctx.replay.steps
                else [{"op": "interrupt", "pos": stop.pos, "value": stop.value}]
            )
            head = committer.finish(records, "interrupted")
            return Run(
                thread_id,
                "interrupted",
                head.checkpoint_id if head else None,
                interrupt=stop.value,
                interrupt_id=str(stop.pos),
            )
        if kind == "waiting":
            wake_at = cast("float | None", payload)
            before = committer.head
            # Resumed before its time: the log already says so; nothing to write.
            unchanged = (
                before is not None
                and before.status == "waiting"
                and ctx.replay.wake_at == wake_at
                and not committer.has_pending
            )
            head = committer.finish([] if unchanged else [{"op": "wait", "wake_at": wake_at}], "waiting")
            return Run(thread_id, "waiting", head.checkpoint_id if head else None, wake_at=wake_at)
        if kind == "suspended":
            head = committer.finish([{"op": "suspend"}], "suspended")
            return Run(thread_id, "suspended", head.checkpoint_id if head else None)
        failure = cast(Exception, payload)
        if isinstance(failure, (ConflictError, NondeterminismError)):
            # Lost the thread, or this code does not match its history: either way the
            # history must stay as it is (the right code can still resume it).
            committer.finish([], "running")
            raise failure
        committer.finish([{"op": "end", "status": "failed", "error": error_record(failure)}], "failed")
        raise failure


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
