"""Tasks: the ``@task`` decorator, the futures a task call returns, and running a task on the pool.

A task call inside a workflow body takes the next position and returns a
:class:`TaskFuture` at once (see :mod:`cairnflow.core.replay`); the task itself
runs on the run's thread pool (``max_workers`` threads), with its retry policy,
and its outcome is recorded by the run's committer before the future resolves
(in ``sync`` mode).
"""

from __future__ import annotations

import concurrent.futures
import contextvars
import functools
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar, overload

from cairnflow.core import observe
from cairnflow.core.errors import MisuseError, SerializationError, TaskFailedError, UsageError
from cairnflow.core.records import RecordedError, builtin_exception, error_record
from cairnflow.core.retry import RetryPolicy

if TYPE_CHECKING:
    from cairnflow.core.replay import RunContext

__all__ = ["Task", "TaskFuture", "current_run", "execute_task", "task"]

P = ParamSpec("P")
T = TypeVar("T")
_NO_RETRY = RetryPolicy(max_attempts=1)
_ASYNC_FLAGS = 0x80 | 0x200  # inspect.CO_COROUTINE | inspect.CO_ASYNC_GENERATOR, without importing inspect

#: The run whose body is executing in this context (unset outside a workflow body).
current_run: contextvars.ContextVar[RunContext] = contextvars.ContextVar("cairnflow_run")


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
        if getattr(getattr(fn, "__code__", None), "co_flags", 0) & _ASYNC_FLAGS:
            raise MisuseError(
                f"@task cannot wrap the async function {fn.__qualname__!r} yet: make it a plain "
                "function (e.g. one that calls asyncio.run(...)); tasks run on a thread pool"
            )
        self.fn = fn
        self.name = name or fn.__qualname__
        self.retry = retry or _NO_RETRY
        functools.update_wrapper(self, fn)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> TaskFuture[T]:
        ctx = current_run.get(None)
        if ctx is None:
            raise MisuseError(
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


def execute_task(
    ctx: RunContext,
    task: Task[Any, T],
    pos: int,
    digest: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> T:
    """Run ``task`` (on a pool thread) with its retry policy and record its outcome.

    Every attempt, first or retry, starts only if the deadline leaves more than
    ``reserve`` (else the run suspends); a backoff that would end past that point
    suspends instead of sleeping. A failed attempt that will be retried is
    recorded (``attempt``), so ``max_attempts`` counts attempts made by earlier,
    killed or suspended processes too.
    """
    policy = task.retry
    prior = ctx.replay.attempts.get(pos)
    known = prior is not None and prior.name == task.name
    attempt = prior.number + 1 if prior is not None and known else 1
    not_before = prior.retry_at if prior is not None and known else None
    while True:
        if not_before is not None:
            ctx.wait_until(not_before)
        ctx.may_start()
        try:
            with observe.span(
                "cairnflow.task",
                task=task.name,
                attempt=attempt,
                workflow=ctx.workflow,
                thread_id=ctx.committer.thread_id,
            ):
                value = task.fn(*args, **kwargs)
            break
        except UsageError:
            raise  # a programming error (e.g. interrupt() in a task): not a failure to retry or record
        except Exception as exc:
            if attempt >= policy.max_attempts or not policy.should_retry(exc):
                surfaced = _record_failure(ctx, task, pos, digest, exc)
                if surfaced is exc:
                    raise
                raise surfaced from exc
            not_before = time.time() + policy.delay(attempt)
            ctx.committer.commit(
                [
                    {
                        "op": "attempt",
                        "pos": pos,
                        "name": task.name,
                        "args": digest,
                        "attempt": attempt,
                        "retry_at": not_before,
                        "error": error_record(exc),
                    }
                ]
            )
            attempt += 1
    record = {"op": "task", "pos": pos, "name": task.name, "args": digest, "value": value}
    try:
        ctx.dumps(record)
    except SerializationError as exc:
        error = SerializationError(f"task {task.name!r} returned a value that cannot be stored: {exc}")
        failed = error_record(error)
        ctx.committer.commit(
            [{"op": "task_error", "pos": pos, "name": task.name, "args": digest, "error": failed}]
        )
        raise error from exc
    ctx.committer.commit([record])
    return value


def _record_failure(
    ctx: RunContext, task: Task[Any, Any], pos: int, digest: str, exc: Exception
) -> BaseException:
    """Record ``exc`` as the task's failure; return what the body sees, exactly what replay will give it.

    A builtin exception type (with its args) and a type the serializer can store
    (``register_type``) come back as themselves; the record is read back here to
    make sure. Anything else surfaces as :class:`TaskFailedError` naming the
    original type, with the original as ``__cause__`` on this first run.
    """
    error = error_record(exc)
    if builtin_exception(error["type"]) is type(exc):
        error["args"] = list(exc.args)
    else:
        error["exception"] = exc
    record = {"op": "task_error", "pos": pos, "name": task.name, "args": digest, "error": error}
    surfaced: BaseException | None = None
    try:
        stored = ctx.loads(ctx.dumps(record)) if ctx.serializer is not None else record
        again = RecordedError.of(stored["error"]).rebuild(task.name)
        if type(again) is type(exc) and again.args == exc.args and str(again) == str(exc):
            surfaced = exc
    except Exception:  # noqa: BLE001 - not storable as itself: fall back to the type name
        surfaced = None
    if surfaced is None:
        error.pop("args", None)
        error.pop("exception", None)
        surfaced = TaskFailedError(task.name, error["type"], error["message"])
        surfaced.__cause__ = exc
    ctx.committer.commit([record])
    return surfaced
