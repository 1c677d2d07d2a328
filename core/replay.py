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

import concurrent.futures
import hashlib
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, cast

from cairnflow.core import observe
from cairnflow.core.checkpoint import CheckpointSaver
from cairnflow.core.committer import CommitterBase
from cairnflow.core.errors import NondeterminismError, SerializationError
from cairnflow.core.records import RunRecords
from cairnflow.core.tasks import Task, TaskFuture, execute_task
from cairnflow.core.timers import PAUSED, Pause, current_context, in_process_delay

if TYPE_CHECKING:
    import datetime
    import uuid

__all__ = ["Interrupted", "RunContext", "Suspended", "interrupt", "now", "random", "uuid4"]

T = TypeVar("T")


class Interrupted(BaseException):
    """Unwinds the workflow body at an interrupt (BaseException: `except Exception` won't eat it)."""

    def __init__(self, value: Any, pos: int) -> None:
        super().__init__("workflow interrupted")
        self.value = value
        self.pos = pos


class Suspended(BaseException):
    """Unwinds the workflow body when the deadline leaves no time for another task."""


class RunContext:
    """State of one execution of a workflow body."""

    def __init__(
        self,
        *,
        saver: CheckpointSaver,
        committer: CommitterBase,
        replay: RunRecords,
        retry_failed: bool,
        deadline: float | None,
        reserve: float,
        max_workers: int,
        workflow: str,
        fence: dict[str, Any] | None = None,
        unstarted: bool = False,
    ) -> None:
        self.saver = saver
        self.serializer = getattr(saver, "serializer", None)
        self.committer = committer
        self.replay = replay
        self.retry_failed = retry_failed
        self.deadline = deadline
        self.reserve = reserve
        self.workflow = workflow
        self.max_workers = max_workers
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        #: The answer record not yet written. It is written (the fence that makes a
        #: concurrent resume of the same interrupt fail) only once the body has replayed
        #: the recorded prefix up to the answered interrupt, or is about to do new work:
        #: a body that diverges from its history fails before anything is written.
        self.fence = fence
        # Completions written while this run executes become visible to its callbacks.
        committer.on_rebase = self._absorb
        #: The start record is staged but not yet written (a fresh run before its first task).
        self.unstarted = unstarted
        #: Set once a task was refused its start by the deadline: nothing new starts.
        self.suspending = False
        #: Dispatched children recorded (staged) but not yet created and scheduled: they go
        #: out together, after one write of their records (:func:`children.flush_dispatches`).
        self.dispatch_queue: list[Any] = []
        self._pos = 0

    @property
    def pool(self) -> concurrent.futures.ThreadPoolExecutor:
        """Where tasks run: ``max_workers`` threads, made when the first task starts."""
        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(
                max_workers=self.max_workers, thread_name_prefix="cairnflow-task"
            )
        return self._pool

    def close(self) -> None:
        """Wait for the tasks in flight: they finish and are recorded."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def _absorb(self, completions: Sequence[Any]) -> None:
        for record in completions:
            self.replay.callbacks.setdefault(record["pos"], record)

    def next_pos(self) -> int:
        pos = self._pos
        self._pos += 1
        return pos

    def dumps(self, value: Any) -> bytes:
        if self.serializer is None:
            return repr(value).encode()
        return cast(bytes, self.serializer.dumps(value))

    def loads(self, data: bytes) -> Any:
        return self.serializer.loads(data) if self.serializer is not None else data

    def ensure_fence(self) -> None:
        """Write the pending answer (waiting for it even in async mode) before any new work."""
        fence, self.fence = self.fence, None
        if fence is not None:
            self.committer.commit([fence], wait=True)

    def write_now(self, records: Sequence[Any]) -> None:
        """Store ``records`` before the body goes on (except in exit mode: with the run's end).

        The asyncio context writes them before the next task, wait or end instead
        (:meth:`cairnflow.core.acontext.AsyncRunContext.flush`): the body never blocks on I/O.
        """
        self.committer.commit(records, wait=self.committer.mode != "exit")

    def before_task(self) -> None:
        """What must be stored before a task starts: the answer (the fence), or the run's start."""
        self.ensure_fence()
        if self.dispatch_queue:
            from cairnflow.core.children import flush_dispatches

            flush_dispatches(self)  # children started before this task run while it does
        if self.unstarted:
            self.unstarted = False
            self.committer.commit([])  # the staged start record (sync: written now)

    def may_start(self) -> None:
        """Raise :class:`Suspended` unless the deadline leaves more than ``reserve`` to start a task."""
        if self.suspending:
            raise Suspended()
        if self.deadline is not None and time.time() + self.reserve >= self.deadline:
            self.suspending = True
            raise Suspended()

    def delay_until(self, moment: float) -> float:
        """Seconds to wait for ``moment`` (a retry's backoff); :class:`Suspended` if that would
        cross the deadline."""
        delay = moment - time.time()
        if delay <= 0:
            return 0.0
        if self.deadline is not None and moment + self.reserve >= self.deadline:
            self.suspending = True
            raise Suspended()
        return delay

    def wait_until(self, moment: float) -> None:
        """Sleep until ``moment`` (a retry's backoff), or suspend if that would cross the deadline."""
        delay = self.delay_until(moment)
        if delay > 0:
            time.sleep(delay)

    def settle(self, step: Callable[[], T]) -> T:
        """Take a step that may write (``Callback.wait()``): here at once; the asyncio context
        returns it as an awaitable that writes what the step left due."""
        return step()

    def _mismatch(self, pos: int, new: str, recorded: str) -> NondeterminismError:
        return NondeterminismError(
            f"at position {pos} the workflow called {new}, but the history records {recorded} there "
            "(the code or its inputs changed under a paused run; nothing was written: resume with the "
            "code that started it, or start a new thread)"
        )

    def call_task(self, task: Task[Any, T], args: tuple[Any, ...], kwargs: dict[str, Any]) -> TaskFuture[T]:
        """A task call: its recorded outcome, or the task started (on the pool)."""
        claimed = self._claim_task(task, args, kwargs)
        if isinstance(claimed, TaskFuture):
            return claimed
        self.may_start()
        self.before_task()
        attempt = observe.carry(execute_task)  # its spans nest under the run's, across threads
        return TaskFuture(self.pool.submit(attempt, self, task, claimed[0], claimed[1], args, kwargs))

    def _claim_task(
        self, task: Task[Any, T], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> TaskFuture[T] | tuple[int, str]:
        """Take the call's position: its recorded outcome, or (position, argument digest) to run it."""
        pos = self.next_pos()
        try:
            digest = hashlib.sha256(self.dumps([list(args), kwargs])).hexdigest()[:32]
        except SerializationError as exc:
            raise SerializationError(f"arguments of task {task.name!r} cannot be serialised: {exc}") from exc
        recorded = self.replay.steps.get(pos)
        if recorded is not None:
            if recorded.op not in ("task", "task_error") or recorded.name != task.name:
                raise self._mismatch(pos, f"task {task.name!r}", recorded.describe())
            if recorded.args != digest:
                raise self._mismatch(
                    pos, f"task {task.name!r} with arguments {digest}", f"it with arguments {recorded.args}"
                )
            if recorded.op == "task":
                return TaskFuture.completed(cast(T, recorded.value))
            if not self.retry_failed:
                assert recorded.error is not None
                return TaskFuture.failed(recorded.error.rebuild(task.name))
        return pos, digest

    def call_interrupt(self, value: Any) -> Any:
        pos = self.next_pos()
        recorded = self.replay.steps.get(pos)
        if recorded is not None and recorded.op != "interrupt":
            raise self._mismatch(pos, "interrupt()", recorded.describe())
        if pos in self.replay.answers:
            if self.fence is not None and self.fence["pos"] == pos:
                self.ensure_fence()  # the recorded prefix replayed identically: take the answer
            return self.replay.answers[pos]
        if recorded is None:
            try:
                self.dumps(value)
            except SerializationError as exc:
                raise SerializationError(f"interrupt value cannot be stored: {exc}") from exc
        raise Interrupted(value, pos)

    def call_timer(self, make: Callable[[], float]) -> Pause:
        """A durable timer: its wake time made once and recorded (staged), then waited for.

        Returns what the body awaits in an async workflow (here: already over)."""
        pos = self.next_pos()
        recorded = self.replay.steps.get(pos)
        if recorded is not None:
            if recorded.op != "timer" or not isinstance(recorded.raw.get("wake_at"), (int, float)):
                raise self._mismatch(pos, "sleep()", recorded.describe())
            wake_at = float(recorded.raw["wake_at"])
        else:
            self.ensure_fence()
            wake_at = make()
            # Staged: written before an in-process wait, or with the run's "waiting" stop.
            self.committer.stage([{"op": "timer", "pos": pos, "wake_at": wake_at}])
        return self.wait_for(wake_at)

    def wait_for(self, wake_at: float) -> Pause:
        """Return once ``wake_at`` has passed: at once, after waiting in process, or raise ``Waiting``."""
        delay = in_process_delay(self, wake_at)
        if delay > 0:
            time.sleep(delay)
        return PAUSED

    def call_value(self, name: str, make: Callable[[], Any]) -> Any:
        """A replay-safe value: made and recorded on the first run, returned from the record on replay."""
        pos = self.next_pos()
        recorded = self.replay.steps.get(pos)
        if recorded is not None:
            if recorded.op != "value" or recorded.name != name:
                raise self._mismatch(pos, f"{name}()", recorded.describe())
            return recorded.value
        self.ensure_fence()
        value = make()
        # Staged, not written on its own: it goes out with the next write, before any
        # record that could depend on it (records are written in order).
        self.committer.stage([{"op": "value", "pos": pos, "name": name, "value": value}])
        return value


def interrupt(value: Any = None) -> Any:
    """Pause the workflow until ``resume(answer)``; return the answer.

    The first time the body reaches this call, the run stops with status
    ``"interrupted"`` and ``Run.interrupt == value``. After
    ``resume(answer)``, the body is replayed and this call returns ``answer``.
    """
    return current_context("interrupt()").call_interrupt(value)


def now() -> datetime.datetime:
    """The current time (UTC, timezone-aware), recorded on first use: every replay sees the same."""
    import datetime  # only a workflow that asks pays for it

    return cast(
        "datetime.datetime",
        current_context("now()").call_value("now", lambda: datetime.datetime.now(datetime.timezone.utc)),
    )


def random() -> float:
    """A random float in [0, 1), recorded on first use: every replay sees the same."""
    import random as _random

    return cast(float, current_context("random()").call_value("random", _random.random))


def uuid4() -> uuid.UUID:
    """A random UUID, recorded on first use: every replay sees the same."""
    import uuid

    return cast("uuid.UUID", current_context("uuid4()").call_value("uuid4", uuid.uuid4))
