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
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar, overload

from cairnflow.core.errors import SerializationError
from cairnflow.core.records import error_record
from cairnflow.core.retry import RetryPolicy, call_with_retry

if TYPE_CHECKING:
    from cairnflow.core.replay import RunContext

__all__ = ["Task", "TaskFuture", "current_run", "execute_task", "task"]

P = ParamSpec("P")
T = TypeVar("T")
_NO_RETRY = RetryPolicy(max_attempts=1)

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
        self.fn = fn
        self.name = name or fn.__qualname__
        self.retry = retry or _NO_RETRY
        functools.update_wrapper(self, fn)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> TaskFuture[T]:
        ctx = current_run.get(None)
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


def execute_task(
    ctx: RunContext,
    task: Task[Any, T],
    pos: int,
    digest: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> T:
    """Run ``task`` (on a pool thread) with its retry policy and record its outcome."""
    try:
        value = call_with_retry(lambda: task.fn(*args, **kwargs), task.retry)
    except Exception as exc:
        ctx.committer.commit(
            [{"op": "task_error", "pos": pos, "name": task.name, "args": digest, "error": error_record(exc)}]
        )
        raise
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
