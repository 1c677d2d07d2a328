"""One execution of a workflow body: positions, replay of the recorded prefix, interrupts.

The workflow body is ordinary Python, run in the caller's thread. Each task
call and each ``interrupt()`` takes the next *position* (0, 1, 2, ...), in the
order the body makes them. A call whose position is recorded returns the
recorded outcome without running; its kind, name and argument digest must
match the record, or :class:`NondeterminismError` is raised (the code or its
inputs changed under a paused workflow). The first unrecorded call runs for
real: execution is at-least-once per task, recording is exactly-once.
"""

from __future__ import annotations

import builtins
import concurrent.futures
import contextlib
import hashlib
import time
from typing import Any, TypeVar, cast

from cairnflow.core.checkpoint import CheckpointSaver
from cairnflow.core.committer import Committer
from cairnflow.core.errors import NondeterminismError, SerializationError, TaskFailedError
from cairnflow.core.records import RecordedError, RunRecords
from cairnflow.core.tasks import Task, TaskFuture, current_run, execute_task

__all__ = ["Interrupted", "RunContext", "Suspended", "interrupt", "rebuild_error"]

T = TypeVar("T")


class Interrupted(BaseException):
    """Unwinds the workflow body at an interrupt (BaseException: `except Exception` won't eat it)."""

    def __init__(self, value: Any, pos: int) -> None:
        super().__init__("workflow interrupted")
        self.value = value
        self.pos = pos


class Suspended(BaseException):
    """Unwinds the workflow body when the deadline leaves no time for another task."""


def rebuild_error(task_name: str, error: RecordedError) -> BaseException:
    """A recorded failure as an exception. Only builtin exception types are rebuilt."""
    module, _, name = error.type.rpartition(".")
    candidate = getattr(builtins, name, None) if module == "builtins" else None
    if isinstance(candidate, type) and issubclass(candidate, Exception):
        with contextlib.suppress(Exception):  # an odd constructor signature: fall back
            return candidate(error.message)
    return TaskFailedError(task_name, error.type, error.message)


class RunContext:
    """State of one execution of a workflow body."""

    def __init__(
        self,
        *,
        saver: CheckpointSaver,
        committer: Committer,
        replay: RunRecords,
        retry_failed: bool,
        deadline: float | None,
        reserve: float,
        max_workers: int,
        workflow: str,
    ) -> None:
        self.saver = saver
        self.serializer = getattr(saver, "serializer", None)
        self.committer = committer
        self.replay = replay
        self.retry_failed = retry_failed
        self.deadline = deadline
        self.reserve = reserve
        self.workflow = workflow
        self.pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=max_workers, thread_name_prefix="cairnflow-task"
        )
        self._pos = 0
        self.tasks_run = 0

    def next_pos(self) -> int:
        pos = self._pos
        self._pos += 1
        return pos

    def dumps(self, value: Any) -> bytes:
        if self.serializer is None:
            return repr(value).encode()
        return cast(bytes, self.serializer.dumps(value))

    def call_task(self, task: Task[Any, T], args: tuple[Any, ...], kwargs: dict[str, Any]) -> TaskFuture[T]:
        pos = self.next_pos()
        try:
            digest = hashlib.sha256(self.dumps([list(args), kwargs])).hexdigest()[:32]
        except SerializationError as exc:
            raise SerializationError(f"arguments of task {task.name!r} cannot be serialised: {exc}") from exc
        recorded = self.replay.steps.get(pos)
        if recorded is not None:
            if recorded.op not in ("task", "task_error") or recorded.name != task.name:
                raise NondeterminismError(
                    f"at position {pos} the workflow called task {task.name!r}, but the history records "
                    f"{recorded.describe()}"
                )
            if recorded.args != digest:
                raise NondeterminismError(
                    f"at position {pos} task {task.name!r} was called with different arguments than recorded"
                )
            if recorded.op == "task":
                return TaskFuture.completed(cast(T, recorded.value))
            if not self.retry_failed:
                assert recorded.error is not None
                return TaskFuture.failed(rebuild_error(task.name, recorded.error))
        if self.deadline is not None and time.time() + self.reserve >= self.deadline:
            raise Suspended()
        self.tasks_run += 1
        return TaskFuture(self.pool.submit(execute_task, self, task, pos, digest, args, kwargs))

    def call_interrupt(self, value: Any) -> Any:
        pos = self.next_pos()
        recorded = self.replay.steps.get(pos)
        if recorded is not None and recorded.op != "interrupt":
            raise NondeterminismError(
                f"at position {pos} the workflow called interrupt(), "
                f"but the history records {recorded.describe()}"
            )
        if pos in self.replay.answers:
            return self.replay.answers[pos]
        if recorded is None:
            try:
                self.dumps(value)
            except SerializationError as exc:
                raise SerializationError(f"interrupt value cannot be stored: {exc}") from exc
        raise Interrupted(value, pos)


def interrupt(value: Any = None) -> Any:
    """Pause the workflow until ``resume(answer)``; return the answer.

    The first time the body reaches this call, the run stops with status
    ``"interrupted"`` and ``Run.interrupt == value``. After
    ``resume(answer)``, the body is replayed and this call returns ``answer``.
    """
    ctx = current_run.get(None)
    if ctx is None:
        raise RuntimeError("interrupt() was called outside a workflow body")
    return ctx.call_interrupt(value)
