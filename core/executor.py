"""The durable executor: ``@workflow``, ``@task``, ``interrupt``.

How a run works
---------------
The workflow body is ordinary Python, run in the caller's thread. Each task
call and each ``interrupt()`` takes the next *position* (0, 1, 2, ...), in
the order the body makes them. A task call returns a :class:`TaskFuture` at
once; the task runs on a thread pool, and its result is appended to the
thread's checkpoint log as a record ``{op: task, pos, name, args digest,
value}``.

On ``resume()`` (in any process, any time later) the body runs again from
the top. A task call whose position is recorded returns the recorded value
without running; its name and argument digest must match the record, or
:class:`NondeterminismError` is raised (the code or its inputs changed under
a paused workflow). The first unrecorded call runs for real: execution is
at-least-once per task (a crash after the task ran but before its result was
stored runs it again), recording is exactly-once.

Durability modes
----------------
``"sync"``     a task's result is stored before its future resolves; results
               that finish while a write is in flight share the next write
               (group commit), so N parallel tasks cost at most N writes.
``"async"``    results are stored by a background writer while the workflow
               goes on; ``run()``/``resume()`` return only after every write
               is acknowledged, and the writer thread is gone by then.
``"exit"``     nothing is stored until the run completes, fails, pauses or is
               suspended; one write then. A hard kill loses the whole run's
               progress (tasks run again on the next attempt).
"""

from __future__ import annotations

import builtins
import concurrent.futures
import contextlib
import contextvars
import functools
import hashlib
import inspect
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Literal, ParamSpec, TypeVar, cast, overload

from cairnflow.core.checkpoint import Checkpoint, CheckpointSaver, Status
from cairnflow.core.errors import (
    ConflictError,
    NondeterminismError,
    ResumeError,
    SerializationError,
    TaskFailedError,
    ThreadNotFoundError,
)
from cairnflow.core.retry import RetryPolicy, call_with_retry

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

P = ParamSpec("P")
T = TypeVar("T")
Durability = Literal["sync", "async", "exit"]
_DURABILITIES = ("sync", "async", "exit")
_NO_RETRY = RetryPolicy(max_attempts=1)


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


MISSING: Any = _Missing()


class _Interrupted(BaseException):
    """Unwinds the workflow body at an interrupt (BaseException: `except Exception` won't eat it)."""

    def __init__(self, value: Any, pos: int) -> None:
        super().__init__("workflow interrupted")
        self.value = value
        self.pos = pos


class _Suspended(BaseException):
    """Unwinds the workflow body when the deadline leaves no time for another task."""


@dataclass(frozen=True)
class Run:
    """What a ``run()`` or ``resume()`` call ended with.

    ``status`` is ``"completed"`` (``result`` holds the return value),
    ``"interrupted"`` (``interrupt`` holds the value passed to
    :func:`interrupt`, ``interrupt_id`` identifies it for ``resume``), or
    ``"suspended"`` (the deadline came; call ``resume()`` to continue).
    A failed run raises instead of returning.
    """

    thread_id: str
    status: Status
    checkpoint_id: str | None
    result: Any = None
    interrupt: Any = None
    interrupt_id: str | None = None


# --------------------------------------------------------------------------- records


def _error_record(exc: BaseException) -> dict[str, str]:
    kind = type(exc)
    return {"type": f"{kind.__module__}.{kind.__qualname__}", "message": str(exc)}


def _rebuild_error(task_name: str, error: dict[str, str]) -> BaseException:
    """A recorded failure as an exception. Only builtin exception types are rebuilt."""
    module, _, name = error.get("type", "").rpartition(".")
    message = error.get("message", "")
    candidate = getattr(builtins, name, None) if module == "builtins" else None
    if isinstance(candidate, type) and issubclass(candidate, Exception):
        with contextlib.suppress(Exception):  # an odd constructor signature: fall back
            return candidate(message)
    return TaskFailedError(task_name, error.get("type", "?"), message)


class _Replay:
    """The recorded history of the current run, indexed for replay."""

    def __init__(self, records: Sequence[Any]) -> None:
        self.start: dict[str, Any] | None = None
        self.ops: dict[int, dict[str, Any]] = {}
        self.answers: dict[int, Any] = {}
        self.end: dict[str, Any] | None = None
        for rec in records:
            op = rec.get("op") if isinstance(rec, dict) else None
            if op == "start":
                self.start = rec
            elif op in ("task", "task_error", "interrupt"):
                self.ops[rec["pos"]] = rec
            elif op == "resume":
                self.answers[rec["pos"]] = rec["value"]
            if op == "end":
                self.end = rec
            elif op is not None and op != "start":
                self.end = None  # anything after an end supersedes it (a retried failure)

    def pending_interrupt(self) -> dict[str, Any] | None:
        """The newest interrupt that has no answer yet."""
        waiting = [r for p, r in self.ops.items() if r["op"] == "interrupt" and p not in self.answers]
        return max(waiting, key=lambda r: r["pos"]) if waiting else None


# --------------------------------------------------------------------------- committer


class _Committer:
    """Appends records to the thread's log according to the durability mode.

    All writes of one run go through here, one at a time, in order. In
    ``sync`` mode callers wait for their records and whoever finds no write
    in flight writes everything pending (group commit); in ``async`` mode a
    background thread writes; in ``exit`` mode records wait for
    :meth:`finish`. The first failed write (e.g. ``ConflictError``) poisons
    the committer: every later call re-raises it and nothing more is written.
    """

    def __init__(
        self,
        saver: CheckpointSaver,
        thread_id: str,
        head: Checkpoint | None,
        mode: Durability,
        workflow: str,
    ) -> None:
        self.saver = saver
        self.thread_id = thread_id
        self.head = head
        self.mode = mode
        self.workflow = workflow
        self.writes = 0
        self._cv = threading.Condition()
        self._pending: list[Any] = []
        self._enqueued = 0
        self._durable = 0
        self._writing = False
        self._stopping = False
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        if mode == "async":
            self._thread = threading.Thread(target=self._background, name="cairnflow-writer", daemon=True)
            self._thread.start()

    @property
    def error(self) -> BaseException | None:
        return self._error

    def stage(self, records: Sequence[Any]) -> None:
        """Queue records to go out with the next write, without causing one."""
        with self._cv:
            self._check()
            self._pending.extend(records)
            self._enqueued += len(records)

    def commit(self, records: Sequence[Any], *, wait: bool | None = None) -> None:
        """Queue records and, if ``wait`` (default: in sync mode), return once they are stored.

        ``wait=True`` in async mode waits for the background writer; in exit mode
        nothing is written before :meth:`finish`, so it cannot wait.
        """
        if wait is None:
            wait = self.mode == "sync"
        with self._cv:
            self._check()
            self._pending.extend(records)
            self._enqueued += len(records)
            ticket = self._enqueued
            if self.mode == "async":
                self._cv.notify_all()
                while wait and self._durable < ticket:
                    self._check()
                    self._cv.wait()
            elif self.mode == "sync":
                while self._durable < ticket:
                    self._check()
                    if self._writing:
                        self._cv.wait()
                    else:
                        self._write_pending("running")

    def finish(self, records: Sequence[Any], status: Status) -> Checkpoint | None:
        """Write everything still pending plus ``records`` with the run's final status."""
        with self._cv:
            self._stopping = True
            self._cv.notify_all()
            while self._writing:
                self._cv.wait()
            self._check()
            self._pending.extend(records)
            if self._pending:
                self._write_pending(status)
        if self._thread is not None:
            self._thread.join()
        return self.head

    def abandon(self) -> None:
        """Stop the background writer without writing anything more."""
        with self._cv:
            self._stopping = True
            self._cv.notify_all()
        if self._thread is not None:
            self._thread.join()

    def _check(self) -> None:
        if self._error is not None:
            raise self._error

    def _write_pending(self, status: Status) -> None:
        """Write the pending batch. Called with the lock held; releases it during I/O."""
        batch, self._pending = self._pending, []
        self._writing = True
        self._cv.release()
        error: BaseException | None = None
        new_head: Checkpoint | None = None
        try:
            new_head = self.saver.append(
                self.thread_id, self.head, batch, status=status, workflow=self.workflow
            )
        except BaseException as exc:  # noqa: BLE001 - handed to every waiting caller below
            error = exc
        finally:
            self._cv.acquire()
            self._writing = False
            self._cv.notify_all()
        if error is not None:
            self._error = error
            raise error
        self.head = new_head
        self.writes += 1
        self._durable += len(batch)

    def _background(self) -> None:
        with self._cv:
            while True:
                while not self._pending and not self._stopping:
                    self._cv.wait()
                if self._stopping or self._error is not None:
                    return
                try:
                    self._write_pending("running")
                except BaseException:  # noqa: BLE001 - kept in self._error, re-raised to callers
                    return


# --------------------------------------------------------------------------- tasks


class TaskFuture(Generic[T]):
    """The pending result of a task call. ``result()`` waits for it."""

    def __init__(self, future: concurrent.futures.Future[T]) -> None:
        self._future = future

    @classmethod
    def completed(cls, value: T) -> TaskFuture[T]:
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        future.set_result(value)
        return cls(future)

    @classmethod
    def failed(cls, exc: BaseException) -> TaskFuture[T]:
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        future.set_exception(exc)
        return cls(future)

    def result(self, timeout: float | None = None) -> T:
        return self._future.result(timeout)

    def exception(self, timeout: float | None = None) -> BaseException | None:
        return self._future.exception(timeout)

    def done(self) -> bool:
        return self._future.done()


class Task(Generic[P, T]):
    """A function whose result is recorded. Call it inside a workflow to get a TaskFuture."""

    def __init__(
        self, fn: Callable[P, T], *, name: str | None = None, retry: RetryPolicy | None = None
    ) -> None:
        self.fn = fn
        self.name = name or fn.__qualname__
        self.retry = retry or _NO_RETRY
        functools.update_wrapper(self, fn)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> TaskFuture[T]:
        ctx = _current_run.get(None)
        if ctx is None:
            raise RuntimeError(
                f"task {self.name!r} was called outside a workflow body (tasks cannot call tasks; "
                f"call {self.name}.fn(...) to run the plain function)"
            )
        return ctx.call_task(self, args, kwargs)


@overload
def task(fn: Callable[P, T], /) -> Task[P, T]: ...
@overload
def task(
    *, name: str | None = None, retry: RetryPolicy | None = None
) -> Callable[[Callable[P, T]], Task[P, T]]: ...
def task(
    fn: Callable[P, T] | None = None,
    /,
    *,
    name: str | None = None,
    retry: RetryPolicy | None = None,
) -> Task[P, T] | Callable[[Callable[P, T]], Task[P, T]]:
    """Declare a task: ``@task`` or ``@task(retry=RetryPolicy(...), name="charge")``.

    ``name`` (default: the function's qualified name) is recorded with each
    result; renaming a task under a paused workflow is a nondeterminism error
    unless ``name`` keeps the old one.
    """
    if fn is not None:
        return Task(fn, name=name, retry=retry)
    return lambda f: Task(f, name=name, retry=retry)


def interrupt(value: Any = None) -> Any:
    """Pause the workflow until ``resume(answer)``; return the answer.

    The first time the body reaches this call, the run stops with status
    ``"interrupted"`` and ``Run.interrupt == value``. After
    ``resume(answer)``, the body is replayed and this call returns ``answer``.
    """
    ctx = _current_run.get(None)
    if ctx is None:
        raise RuntimeError("interrupt() was called outside a workflow body")
    return ctx.call_interrupt(value)


# --------------------------------------------------------------------------- run context


_current_run: contextvars.ContextVar[_RunContext] = contextvars.ContextVar("cairnflow_run")


class _RunContext:
    """State of one execution of a workflow body."""

    def __init__(
        self,
        *,
        saver: CheckpointSaver,
        committer: _Committer,
        replay: _Replay,
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
        recorded = self.replay.ops.get(pos)
        if recorded is not None:
            if recorded["op"] not in ("task", "task_error") or recorded.get("name") != task.name:
                raise NondeterminismError(
                    f"at position {pos} the workflow called task {task.name!r}, but the history records "
                    f"{_describe(recorded)}"
                )
            if recorded.get("args") != digest:
                raise NondeterminismError(
                    f"at position {pos} task {task.name!r} was called with different arguments than recorded"
                )
            if recorded["op"] == "task":
                return TaskFuture.completed(cast(T, recorded["value"]))
            if not self.retry_failed:
                return TaskFuture.failed(_rebuild_error(task.name, recorded["error"]))
        if self.deadline is not None and time.time() + self.reserve >= self.deadline:
            raise _Suspended()
        self.tasks_run += 1
        return TaskFuture(self.pool.submit(self._execute, task, pos, digest, args, kwargs))

    def _execute(
        self,
        task: Task[Any, T],
        pos: int,
        digest: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> T:
        try:
            value = call_with_retry(lambda: task.fn(*args, **kwargs), task.retry)
        except Exception as exc:
            self.committer.commit(
                [
                    {
                        "op": "task_error",
                        "pos": pos,
                        "name": task.name,
                        "args": digest,
                        "error": _error_record(exc),
                    }
                ]
            )
            raise
        record = {"op": "task", "pos": pos, "name": task.name, "args": digest, "value": value}
        try:
            self.dumps(record)
        except SerializationError as exc:
            error = SerializationError(f"task {task.name!r} returned a value that cannot be stored: {exc}")
            self.committer.commit(
                [
                    {
                        "op": "task_error",
                        "pos": pos,
                        "name": task.name,
                        "args": digest,
                        "error": _error_record(error),
                    }
                ]
            )
            raise error from exc
        self.committer.commit([record])
        return value

    def call_interrupt(self, value: Any) -> Any:
        pos = self.next_pos()
        recorded = self.replay.ops.get(pos)
        if recorded is not None and recorded["op"] != "interrupt":
            raise NondeterminismError(
                f"at position {pos} the workflow called interrupt(), "
                f"but the history records {_describe(recorded)}"
            )
        if pos in self.replay.answers:
            return self.replay.answers[pos]
        if recorded is None:
            try:
                self.dumps(value)
            except SerializationError as exc:
                raise SerializationError(f"interrupt value cannot be stored: {exc}") from exc
        raise _Interrupted(value, pos)


def _describe(record: dict[str, Any]) -> str:
    if record["op"] == "interrupt":
        return "an interrupt()"
    return f"task {record.get('name')!r}"


# --------------------------------------------------------------------------- workflow


class Workflow(Generic[T]):
    """A durable workflow. Create with ``@workflow``; start with :meth:`run`."""

    def __init__(self, fn: Callable[..., T], *, name: str | None = None) -> None:
        self.fn = fn
        self.name = name or fn.__qualname__
        self._takes_input = bool(inspect.signature(fn).parameters)
        functools.update_wrapper(self, fn)

    def __call__(self, *args: Any, **kwargs: Any) -> T:
        """Call the plain body (tasks inside it still need a run: use :meth:`run`)."""
        return self.fn(*args, **kwargs)

    # ---------------------------------------------------------------- public API

    def run(
        self,
        input: Any = None,
        *,
        thread_id: str,
        saver: CheckpointSaver,
        durability: Durability = "sync",
        deadline: float | None = None,
        reserve: float = 0.0,
        max_workers: int = 8,
    ) -> Run:
        """Start the workflow on a new thread, or continue an existing one.

        On a thread that already exists this never starts over: a completed
        thread returns its stored result and an interrupted one its pending
        question, without running anything; a running, suspended or failed
        one continues (so a retried start event is harmless). The input must
        match the recorded one.

        ``deadline`` (seconds since the epoch): no new task starts once less
        than ``reserve`` seconds remain; the run then stops with status
        ``"suspended"``, everything recorded, and ``resume()`` continues it.
        Raises the body's exception if the run fails, ``ConflictError`` if
        another invocation advanced the thread meanwhile.
        """
        head = saver.latest(thread_id)
        fresh = head is None or head.info.kind == "tombstone"
        replay = _Replay(() if fresh or head is None else head.records)
        if not fresh:
            self._check_identity(replay, thread_id)
            assert replay.start is not None
            try:
                same_input = _digest(saver, input) == replay.start.get("input_digest")
            except SerializationError:
                same_input = False
            if not same_input:
                raise NondeterminismError(
                    f"thread {thread_id!r} was started with a different input; use a new thread id"
                )
            done = self._settled(head, replay, thread_id)
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
                "input_digest": _digest(saver, input),
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
        reserve: float = 0.0,
        max_workers: int = 8,
    ) -> Run:
        """Continue a thread: answer its pending interrupt with ``value``, or pick up after a
        crash, a suspension or a failure (no ``value``).

        ``interrupt_id`` (from ``Run.interrupt_id``) makes a duplicated answer
        safe: if the thread has moved past that interrupt, ``ResumeError``
        is raised instead of answering a later question with it.
        """
        head = saver.latest(thread_id)
        if head is None or head.info.kind == "tombstone":
            raise ThreadNotFoundError(f"no thread {thread_id!r} in {saver!r}")
        replay = _Replay(head.records)
        self._check_identity(replay, thread_id)
        pending = replay.pending_interrupt() if head.status == "interrupted" else None
        if head.status == "completed":
            done = self._settled(head, replay, thread_id)
            assert done is not None
            return done
        answer = None
        if pending is not None:
            if value is MISSING:
                raise ResumeError(f"thread {thread_id!r} is waiting for an answer: resume(value, ...)")
            if interrupt_id is not None and interrupt_id != str(pending["pos"]):
                raise ResumeError(
                    f"thread {thread_id!r} is waiting on interrupt {pending['pos']}, not {interrupt_id}"
                )
            answer = {"op": "resume", "pos": pending["pos"], "value": value}
        elif value is not MISSING:
            raise ResumeError(f"thread {thread_id!r} is {head.status}, not waiting for an answer")
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
        replay = _Replay(head.records)
        settled = self._settled(head, replay, thread_id)
        return settled or Run(thread_id, head.status, head.checkpoint_id)

    def fork(self, *, thread_id: str, checkpoint_id: str, saver: CheckpointSaver) -> Run:
        """Time travel: make the thread's state that of an older checkpoint (recorded as a fork).

        Continue it with ``resume()``, e.g. to answer an earlier interrupt differently.
        """
        head = saver.fork(thread_id, checkpoint_id)
        replay = _Replay(head.records)
        return self._settled(head, replay, thread_id) or Run(thread_id, head.status, head.checkpoint_id)

    # ---------------------------------------------------------------- internals

    def _check_identity(self, replay: _Replay, thread_id: str) -> None:
        recorded = replay.start.get("workflow") if replay.start else None
        if recorded != self.name:
            raise NondeterminismError(
                f"thread {thread_id!r} belongs to workflow {recorded!r}, not {self.name!r}"
            )

    @staticmethod
    def _settled(head: Checkpoint | None, replay: _Replay, thread_id: str) -> Run | None:
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
                    interrupt=pending["value"],
                    interrupt_id=str(pending["pos"]),
                )
        return None

    def _execute(
        self,
        saver: CheckpointSaver,
        thread_id: str,
        head: Checkpoint | None,
        replay: _Replay,
        durability: Durability,
        deadline: float | None,
        reserve: float,
        max_workers: int,
        *,
        first: dict[str, Any] | None,
        answer: dict[str, Any] | None,
    ) -> Run:
        if durability not in _DURABILITIES:
            raise ValueError(f"durability must be one of {_DURABILITIES}, not {durability!r}")
        committer = _Committer(saver, thread_id, head, durability, self.name)
        try:
            if first is not None:
                replay.start = first
                committer.stage([first])
            if answer is not None:
                replay.answers[answer["pos"]] = answer["value"]
                # The answer is written first, and waited for even in async mode: it is
                # the fence that makes a second, concurrent resume of the same interrupt
                # fail before running anything with its (rejected) answer. In exit mode
                # nothing is written before the end, so racing resumers both run.
                committer.commit([answer], wait=True)
            ctx = _RunContext(
                saver=saver,
                committer=committer,
                replay=replay,
                retry_failed=head is not None and head.status == "failed",
                deadline=deadline,
                reserve=reserve,
                max_workers=max_workers,
                workflow=self.name,
            )
            token = _current_run.set(ctx)
            outcome: tuple[str, Any]
            try:
                body_input = replay.start.get("input") if replay.start else None
                result = self.fn(body_input) if self._takes_input else self.fn()
                outcome = ("completed", result)
            except _Interrupted as stop:
                outcome = ("interrupted", stop)
            except _Suspended:
                outcome = ("suspended", None)
            except Exception as exc:  # noqa: BLE001 - recorded as the run's failure, then re-raised
                outcome = ("failed", exc)
            finally:
                _current_run.reset(token)
                ctx.pool.shutdown(wait=True)  # in-flight tasks finish and are recorded
            return self._finish(committer, thread_id, outcome, ctx)
        except BaseException:
            committer.abandon()
            raise

    def _finish(
        self, committer: _Committer, thread_id: str, outcome: tuple[str, Any], ctx: _RunContext
    ) -> Run:
        kind, payload = outcome
        if committer.error is not None:
            # The thread was lost to another writer (or the store failed): record nothing more.
            raise committer.error
        if kind == "completed":
            try:
                ctx.dumps(payload)
            except SerializationError as exc:
                error = SerializationError(
                    f"workflow {self.name!r} returned a value that cannot be stored: {exc}"
                )
                committer.finish([{"op": "end", "status": "failed", "error": _error_record(error)}], "failed")
                raise error from exc
            head = committer.finish([{"op": "end", "status": "completed", "value": payload}], "completed")
            return Run(thread_id, "completed", head.checkpoint_id if head else None, result=payload)
        if kind == "interrupted":
            stop = cast(_Interrupted, payload)
            records = (
                []
                if stop.pos in ctx.replay.ops
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
        if kind == "suspended":
            head = committer.finish([{"op": "suspend"}], "suspended")
            return Run(thread_id, "suspended", head.checkpoint_id if head else None)
        failure = cast(Exception, payload)
        if isinstance(failure, (ConflictError, NondeterminismError)):
            # Lost the thread, or this code does not match its history: either way the
            # history must stay as it is (the right code can still resume it).
            committer.finish([], "running")
            raise failure
        committer.finish([{"op": "end", "status": "failed", "error": _error_record(failure)}], "failed")
        raise failure


def _digest(saver: CheckpointSaver, value: Any) -> str:
    serializer = getattr(saver, "serializer", None)
    data = serializer.dumps(value) if serializer is not None else repr(value).encode()
    return hashlib.sha256(data).hexdigest()[:32]


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
