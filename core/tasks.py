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
from collections.abc import Awaitable, Callable, Coroutine, Generator
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, Protocol, TypeVar, cast, overload

from cairnflow.core import observe
from cairnflow.core.errors import MisuseError, SerializationError, TaskFailedError, UsageError
from cairnflow.core.records import RecordedError, builtin_exception, error_record
from cairnflow.core.retry import RetryPolicy
from cairnflow.core.stepper import Stepper

if TYPE_CHECKING:
    import asyncio

    from cairnflow.core.replay import RunContext

__all__ = ["Task", "TaskFuture", "current_run", "execute_task", "task", "task_steps"]

P = ParamSpec("P")
T = TypeVar("T")
_NO_RETRY = RetryPolicy(max_attempts=1)
_COROUTINE = 0x80  # inspect.CO_COROUTINE, without importing inspect
_ASYNC_GENERATOR = 0x200  # inspect.CO_ASYNC_GENERATOR

#: The run whose body is executing in this context (unset, or None, outside a workflow body:
#: an asyncio task running a task's function sets it to None, as its copy of the context
#: would otherwise let the task act as the body).
current_run: contextvars.ContextVar[RunContext | None] = contextvars.ContextVar("cairnflow_run")


class TaskFuture(Generic[T]):
    """The pending result of a task call: ``result()`` waits for it; in an async
    workflow, ``await`` it (or pass it to ``asyncio.gather``)."""

    def __init__(self, future: concurrent.futures.Future[T] | asyncio.Future[T]) -> None:
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
        """The task's value (or its exception raised); in an async workflow, ``await`` instead."""
        if isinstance(self._future, concurrent.futures.Future):
            return self._future.result(timeout)
        if not self._future.done():
            raise MisuseError("in an async workflow, await a task's future instead of calling result()")
        return self._future.result()

    def exception(self, timeout: float | None = None) -> BaseException | None:
        if isinstance(self._future, concurrent.futures.Future):
            return self._future.exception(timeout)
        return self._future.exception() if self._future.done() else None

    def done(self) -> bool:
        return self._future.done()

    def __await__(self) -> Generator[Any, None, T]:
        if isinstance(self._future, concurrent.futures.Future):
            return self._future.result()  # recorded on an earlier run: ready, nothing to wait for
        return (yield from self._future.__await__())


class Task(Generic[P, T]):
    """A function whose result is recorded. Call it inside a workflow to get a TaskFuture."""

    def __init__(
        self,
        fn: Callable[P, T] | Callable[P, Awaitable[T]],
        *,
        name: str | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        flags = getattr(getattr(fn, "__code__", None), "co_flags", 0)
        if flags & _ASYNC_GENERATOR:
            raise MisuseError(
                f"@task cannot wrap the async generator {fn.__qualname__!r}: a task returns one "
                "value; collect the items in an async def and return them as a list"
            )
        self.fn: Callable[P, Any] = fn
        #: An ``async def`` task: awaited on the run's event loop in an async workflow, run
        #: with ``asyncio.run`` on a pool thread in a sync one.
        self.is_async = bool(flags & _COROUTINE)
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


class _TaskDecorator(Protocol):
    @overload
    def __call__(self, fn: Callable[P, Coroutine[Any, Any, T]], /) -> Task[P, T]: ...
    @overload
    def __call__(self, fn: Callable[P, T], /) -> Task[P, T]: ...


@overload
def task(fn: Callable[P, Coroutine[Any, Any, T]], /) -> Task[P, T]: ...
@overload
def task(fn: Callable[P, T], /) -> Task[P, T]: ...
@overload
def task(*, name: str | None = None, retry: RetryPolicy | None = None) -> _TaskDecorator: ...
def task(
    fn: Callable[P, Any] | None = None,
    /,
    *,
    name: str | None = None,
    retry: RetryPolicy | None = None,
) -> Task[P, Any] | _TaskDecorator:
    """Declare a task: ``@task`` or ``@task(retry=RetryPolicy(...), name="charge")``.

    The function may be ``async def``: in an async workflow it runs on the run's
    event loop (``await charge(...)``); called from a sync workflow it runs with
    ``asyncio.run`` on a pool thread. ``name`` (default: the function's qualified
    name) is recorded with each result; renaming a task under a paused workflow is
    a nondeterminism error unless ``name`` keeps the old one.
    """
    if fn is not None:
        return Task(fn, name=name, retry=retry)
    return cast(_TaskDecorator, lambda f: Task(f, name=name, retry=retry))


#: What :func:`task_steps` asks its driver to do: run the function once (the reply is its
#: value, or its exception thrown back in), wait until a moment (a retry's backoff), or
#: commit records (the committer's default wait for the durability mode).
Effect = tuple[str, Any]
CALL: Effect = ("call", None)


def task_steps(ctx: RunContext, task: Task[Any, T], pos: int, digest: str) -> Generator[Effect, Any, T]:
    """Run ``task`` with its retry policy and record its outcome, as steps a driver performs.

    The logic exists once, without I/O: the sync executor drives it on a pool
    thread (:func:`execute_task`), the asyncio executor in an asyncio task
    (:mod:`cairnflow.core.aexecutor`). Every attempt, first or retry, starts only if
    the deadline leaves more than ``reserve`` (else the run suspends); a backoff that
    would end past that point suspends instead of sleeping. A failed attempt that
    will be retried is recorded (``attempt``), so ``max_attempts`` counts attempts
    made by earlier, killed or suspended processes too.
    """
    policy = task.retry
    prior = ctx.replay.attempts.get(pos)
    known = prior is not None and prior.name == task.name
    attempt = prior.number + 1 if prior is not None and known else 1
    not_before = prior.retry_at if prior is not None and known else None
    while True:
        if not_before is not None:
            yield ("wait", not_before)
        ctx.may_start()
        try:
            with observe.span(
                "cairnflow.task",
                task=task.name,
                attempt=attempt,
                workflow=ctx.workflow,
                thread_id=ctx.committer.thread_id,
            ):
                value = yield CALL
            break
        except UsageError:
            raise  # a programming error (e.g. interrupt() in a task): not a failure to retry or record
        except Exception as exc:
            if attempt >= policy.max_attempts or not policy.should_retry(exc):
                surfaced = yield from _record_failure(ctx, task, pos, digest, exc)
                if surfaced is exc:
                    raise
                raise surfaced from exc
            not_before = time.time() + policy.delay(attempt)
            yield (
                "commit",
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
                ],
            )
            attempt += 1
    record = {"op": "task", "pos": pos, "name": task.name, "args": digest, "value": value}
    try:
        ctx.dumps(record)
    except SerializationError as exc:
        error = SerializationError(f"task {task.name!r} returned a value that cannot be stored: {exc}")
        failed = error_record(error)
        yield (
            "commit",
            [{"op": "task_error", "pos": pos, "name": task.name, "args": digest, "error": failed}],
        )
        raise error from exc
    yield ("commit", [record])
    return cast(T, value)


def execute_task(
    ctx: RunContext,
    task: Task[Any, T],
    pos: int,
    digest: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> T:
    """Drive :func:`task_steps` on this (pool) thread: the sync executor's way to run a task.

    An ``async def`` task called from a sync workflow runs on an event loop of its
    own in this thread (``asyncio.run``).
    """
    feed = Stepper(task_steps(ctx, task, pos, digest))
    while (effect := feed.next()) is not None:
        try:
            kind, arg = effect
            if kind == "call":
                feed.reply = task.fn(*args, **kwargs)
                if task.is_async:
                    import asyncio  # only a sync workflow calling an async task pays for it

                    feed.reply = asyncio.run(feed.reply)
            elif kind == "wait":
                ctx.wait_until(arg)
            else:
                ctx.committer.commit(arg)
        except BaseException as exc:  # noqa: BLE001 - thrown back into the steps, which decide
            feed.error = exc
    return cast(T, feed.result)


def _record_failure(
    ctx: RunContext, task: Task[Any, Any], pos: int, digest: str, exc: Exception
) -> Generator[Effect, Any, BaseException]:
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
    yield ("commit", [record])
    return surfaced
