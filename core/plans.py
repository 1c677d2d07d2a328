"""What a ``run()``/``resume()`` call decides before and after the body runs, without I/O.

Both executors (sync: :mod:`cairnflow.core.executor`, asyncio:
:mod:`cairnflow.core.aexecutor`) read the thread's head, then ask :func:`plan_start`
or :func:`plan_resume` what to do with it (return a settled :class:`Run`, or run the
body with these records), run the body, and ask :func:`conclude` what its outcome
means: which records to write with which status, and what to return or raise. The
rules (input must match, answers fence, a divergence writes nothing, a failure is
recorded, a thread of the other flavour is refused) therefore exist once.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, cast

from cairnflow.core.children import parent_link
from cairnflow.core.errors import (
    ConflictError,
    FlavourMismatchError,
    InvalidArgumentError,
    NondeterminismError,
    ResumeError,
    SerializationError,
    ThreadNotFoundError,
)
from cairnflow.core.records import RunRecords, error_record, parse_records
from cairnflow.core.replay import Interrupted, RunContext, Suspended
from cairnflow.core.runs import MISSING, Run, check_repeated_answer, digest, settled
from cairnflow.core.timers import Waiting

if TYPE_CHECKING:
    from cairnflow.core.checkpoint import Checkpoint, Status
    from cairnflow.core.executor import Workflow

__all__ = [
    "Conclusion",
    "Plan",
    "body_outcome",
    "check_interrupt_id",
    "conclude",
    "plan_resume",
    "plan_start",
]

C = TypeVar("C", bound=RunContext)

#: The flavour an async workflow records in its start record (a sync one records none:
#: threads written before asyncio existed are sync).
ASYNC = "async"


@dataclass
class Plan:
    """Run the body on this head: ``first`` is a new thread's start record, ``answer`` the fence."""

    head: Checkpoint | None
    replay: RunRecords
    first: dict[str, Any] | None = None
    answer: dict[str, Any] | None = None


def check_identity(wf: Workflow[Any], replay: RunRecords, thread_id: str) -> None:
    """Refuse a thread started by another workflow, or by this one in the other flavour."""
    recorded = replay.start.get("workflow") if replay.start else None
    if recorded != wf.name:
        raise NondeterminismError(f"thread {thread_id!r} belongs to workflow {recorded!r}, not {wf.name!r}")
    flavour = replay.start.get("flavour") if replay.start else None
    if (flavour == ASYNC) != wf.is_async:
        was, now = ("async def", "def") if flavour == ASYNC else ("def", "async def")
        raise FlavourMismatchError(
            f"thread {thread_id!r} was started by workflow {wf.name!r} as a plain `{was}` workflow and "
            f"this one is `{now}`: its history is replayed only by the flavour that wrote it. Finish "
            f"the thread with the `{was}` version, or start a new thread id"
        )


def plan_start(
    wf: Workflow[Any], saver: Any, thread_id: str, head: Checkpoint | None, input: Any
) -> Run | Plan:
    """``run()``: a new thread's start record, or what an existing thread says (never start over)."""
    fresh = head is None or head.info.kind == "tombstone"
    replay = parse_records(() if fresh or head is None else head.records)
    if fresh:
        first: dict[str, Any] = {
            "op": "start",
            "workflow": wf.name,
            "input": input,
            "input_digest": digest(saver, input),
        }
        if wf.is_async:
            first["flavour"] = ASYNC
        parent = parent_link.get()
        if parent is not None:
            first["parent"] = parent
        return Plan(head, replay, first=first)
    check_identity(wf, replay, thread_id)
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
    return done if done is not None else Plan(head, replay)


def check_interrupt_id(interrupt_id: Any) -> None:
    if interrupt_id is not None and (not isinstance(interrupt_id, str) or not interrupt_id.isdigit()):
        raise InvalidArgumentError(f"interrupt_id must be a Run.interrupt_id string, not {interrupt_id!r}")


def plan_resume(
    wf: Workflow[Any],
    saver: Any,
    thread_id: str,
    head: Checkpoint | None,
    value: Any,
    interrupt_id: str | None,
) -> Run | Plan:
    """``resume()``: the answer to write as the fence, or the stored result of a settled thread."""
    if head is None or head.info.kind == "tombstone":
        raise ThreadNotFoundError(f"no thread {thread_id!r} in {saver!r}")
    replay = parse_records(head.records)
    check_identity(wf, replay, thread_id)
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
    return Plan(head, replay, answer=answer)


def open_run(
    kind: type[C],
    wf: Workflow[Any],
    saver: Any,
    committer: Any,
    plan: Plan,
    *,
    deadline: float | None,
    reserve: float,
    max_workers: int,
) -> C:
    """The execution's context (``kind``: the sync or asyncio one), its records prepared."""
    return kind(
        saver=saver,
        committer=committer,
        deadline=deadline,
        reserve=reserve,
        max_workers=max_workers,
        workflow=wf.name,
        **prepare(plan, committer),
    )


def prepare(plan: Plan, committer: Any) -> dict[str, Any]:
    """Stage the start record and take the answer in; the keywords a :class:`RunContext` needs."""
    if plan.first is not None:
        plan.replay.start = plan.first
        # Staged: written before the first task starts (RunContext.before_task; sync mode:
        # one PUT of its own), so that a run killed in its first task leaves a thread that
        # resume() can continue. A run that stops before any task writes it with its end.
        committer.stage([plan.first])
    if plan.answer is not None:
        # The answer is the fence that makes a second, concurrent resume of the same
        # interrupt fail before running anything with its (rejected) answer. It is
        # written, and waited for even in async mode, once the body has replayed the
        # recorded prefix up to that interrupt (RunContext.ensure_fence): code that
        # diverged from the history fails before anything is written. In exit mode
        # nothing is written before the end, so racing resumers both run.
        plan.replay.answers[plan.answer["pos"]] = plan.answer["value"]
    return {
        "replay": plan.replay,
        "retry_failed": plan.head is not None and plan.head.status == "failed",
        "fence": plan.answer,
        "unstarted": plan.first is not None,
    }


def body_input(wf: Workflow[Any], replay: RunRecords) -> tuple[Any, ...]:
    """The arguments the body is called with: the recorded input, if it takes one."""
    if not wf._takes_input:
        return ()
    return (replay.start.get("input") if replay.start else None,)


def body_outcome(exc: BaseException) -> tuple[str, Any] | None:
    """How the body's exception ends the run (None: not ours to handle, e.g. a cancellation)."""
    if isinstance(exc, Interrupted):
        return ("interrupted", exc)
    if isinstance(exc, Suspended):
        return ("suspended", None)
    if isinstance(exc, Waiting):
        return ("waiting", exc.wake_at)
    if isinstance(exc, Exception):
        return ("failed", exc)
    return None


@dataclass
class Conclusion:
    """The run's last write (``records`` with ``status``), then ``run`` returned or ``error`` raised."""

    records: list[Any]
    status: Status
    run: Run | None = None
    error: BaseException | None = None

    def settle(self, head: Checkpoint | None) -> Run:
        """After the last write: raise the error, or return the run at ``head``."""
        if self.error is not None:
            raise self.error
        assert self.run is not None
        return dataclasses.replace(self.run, checkpoint_id=head.checkpoint_id if head else None)


def conclude(name: str, thread_id: str, outcome: tuple[str, Any], ctx: RunContext) -> Conclusion:
    """What the body's outcome means for the log. Raises (writing nothing) if the run must not record it."""
    kind, payload = outcome
    committer = ctx.committer
    if ctx.suspending and kind in ("completed", "waiting"):
        kind, payload = "suspended", None  # a task it did not wait for was never started
    if committer.error is not None:
        # The thread was lost to another writer (or the store failed): record nothing more.
        raise committer.error
    if ctx.fence is not None and isinstance(payload, (ConflictError, NondeterminismError)):
        raise payload  # the divergence, precisely named; nothing was written
    if ctx.fence is not None:
        # The body never reached the interrupt it was answered for: it diverged from its
        # history. Nothing was written; the thread still waits for its answer.
        diverged = NondeterminismError(
            f"workflow {name!r} did not reach interrupt {ctx.fence['pos']}, which the answer "
            f"is for ({kind} before it); nothing was written: resume with the code that started it"
        )
        if isinstance(payload, BaseException):
            raise diverged from payload
        raise diverged
    if kind == "completed":
        try:
            ctx.dumps(payload)
        except SerializationError as exc:
            error = SerializationError(f"workflow {name!r} returned a value that cannot be stored: {exc}")
            error.__cause__ = exc
            return Conclusion(
                [{"op": "end", "status": "failed", "error": error_record(error)}], "failed", error=error
            )
        run = Run(thread_id, "completed", None, result=payload)
        return Conclusion([{"op": "end", "status": "completed", "value": payload}], "completed", run)
    if kind == "interrupted":
        stop = cast(Interrupted, payload)
        records = (
            []
            if stop.pos in ctx.replay.steps
            else [{"op": "interrupt", "pos": stop.pos, "value": stop.value}]
        )
        run = Run(thread_id, "interrupted", None, interrupt=stop.value, interrupt_id=str(stop.pos))
        return Conclusion(records, "interrupted", run)
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
        run = Run(thread_id, "waiting", None, wake_at=wake_at)
        return Conclusion([] if unchanged else [{"op": "wait", "wake_at": wake_at}], "waiting", run)
    if kind == "suspended":
        return Conclusion([{"op": "suspend"}], "suspended", Run(thread_id, "suspended", None))
    failure = cast(Exception, payload)
    if isinstance(failure, (ConflictError, NondeterminismError)):
        # Lost the thread, or this code does not match its history: either way the
        # history must stay as it is (the right code can still resume it).
        return Conclusion([], "running", error=failure)
    return Conclusion(
        [{"op": "end", "status": "failed", "error": error_record(failure)}], "failed", error=failure
    )
