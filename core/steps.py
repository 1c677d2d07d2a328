"""The protocol without I/O: steps that ask for store requests, and the two drivers that serve them.

The checkpoint protocol's logic (:mod:`cairnflow.core.protocol`,
:mod:`cairnflow.core.tombstone`, :mod:`cairnflow.core.status_index`) is
written once, as *steps*: generator functions that ``yield`` a request
(:class:`Put`, :class:`Get`, :class:`List`, :class:`ListPrefixes`,
:class:`Delete`, :class:`Sleep`) and receive its result, or have the store's
exception thrown into them at the ``yield``, exactly where a direct call
would have raised it. A step's return value is the operation's result.

Two drivers serve them: :func:`run` on an :class:`ObjectStore` (blocking,
used by :class:`~cairnflow.core.log.CheckpointLog`) and :func:`arun` on an
:class:`AsyncObjectStore` (awaiting, used by
:class:`~cairnflow.core.log.AsyncCheckpointLog`). A driver only performs
requests; it decides nothing, so both make the same requests in the same
order for the same outcomes.

Steps compose with ``yield from``. :func:`retried` is the protocol's retry
loop (:mod:`cairnflow.core.retry`'s policy) as a step: the wait between
attempts is a :class:`Sleep` request, a blocking sleep in :func:`run` and
``asyncio.sleep`` in :func:`arun`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, Union

from cairnflow.core.retry import RetryPolicy, retry_delay
from cairnflow.core.store import CREATE, ObjectInfo, PutMode

if TYPE_CHECKING:
    from cairnflow.core.store import AsyncObjectStore, ObjectStore

__all__ = [
    "Delete",
    "Get",
    "List",
    "ListPrefixes",
    "Put",
    "Request",
    "Sleep",
    "Step",
    "arun",
    "perform",
    "retried",
    "run",
]

T = TypeVar("T")


@dataclass(frozen=True)
class Put:
    """``store.put(key, data, mode)``; the result is the new version (ETag)."""

    key: str
    data: bytes
    mode: PutMode = CREATE


@dataclass(frozen=True)
class Get:
    """``store.get(key)``; the result is a :class:`~cairnflow.core.store.StoredObject`."""

    key: str


@dataclass(frozen=True)
class List:
    """One listing; the result is a ``list`` of at most ``limit`` :class:`ObjectInfo` (all if None).

    The steps bound it wherever the protocol's costs promise a bound
    (``limit=1`` to find a head); an unbounded one is a delete's sweep or a
    full history, which the sync log also holds in memory at once.
    """

    prefix: str
    start_after: str | None = None
    limit: int | None = None


@dataclass(frozen=True)
class ListPrefixes:
    """A delimiter listing (``store.list_prefixes(prefix)``); the result is a ``list`` of folders."""

    prefix: str


@dataclass(frozen=True)
class Delete:
    """``store.delete(key)``; the result is None."""

    key: str


@dataclass(frozen=True)
class Sleep:
    """Wait ``seconds`` before the next request (between retries); no store request."""

    seconds: float


Request = Union[Put, Get, List, ListPrefixes, Delete, Sleep]  # noqa: UP007 - a runtime alias on 3.10
#: A step: yields requests, is sent their results, returns ``T``.
Step = Generator[Request, Any, T]


def retried(request: Request, policy: RetryPolicy) -> Step[Any]:
    """Make ``request`` until it succeeds, the policy declines the error, or attempts run out.

    The step form of :func:`cairnflow.core.retry.call_with_retry` (the same
    policy decision, :func:`~cairnflow.core.retry.retry_delay`).
    """
    attempt = 1
    while True:
        try:
            return (yield request)
        except Exception as exc:
            delay = retry_delay(policy, attempt, exc)
            if delay is None:
                raise
            yield Sleep(delay)
            attempt += 1


# --------------------------------------------------------------------------- drivers


def perform(store: ObjectStore, request: Request, *, sleep: Callable[[float], None] = time.sleep) -> Any:
    """Make one request on a sync store and return its result."""
    if isinstance(request, Put):
        return store.put(request.key, request.data, request.mode)
    if isinstance(request, Get):
        return store.get(request.key)
    if isinstance(request, List):
        return list(store.list(request.prefix, start_after=request.start_after, limit=request.limit))
    if isinstance(request, ListPrefixes):
        return list(store.list_prefixes(request.prefix))
    if isinstance(request, Delete):
        return store.delete(request.key)
    if isinstance(request, Sleep):
        return sleep(request.seconds)
    raise TypeError(f"not a store request: {request!r}")


def run(step: Step[T], store: ObjectStore, *, sleep: Callable[[float], None] = time.sleep) -> T:
    """Drive ``step`` to its end on a sync store; return its result or raise its error."""
    result: Any = None
    error: Exception | None = None
    try:
        while True:
            try:
                request = step.send(result) if error is None else step.throw(error)
            except StopIteration as stop:
                value: T = stop.value
                return value
            result, error = None, None
            try:
                result = perform(store, request, sleep=sleep)
            except Exception as exc:  # noqa: BLE001 - every store error goes to the step, which decides
                error = exc
    finally:
        error = None  # no reference cycle through the traceback
        step.close()


async def _aperform(store: AsyncObjectStore, request: Request) -> Any:
    if isinstance(request, Put):
        return await store.put(request.key, request.data, request.mode)
    if isinstance(request, Get):
        return await store.get(request.key)
    if isinstance(request, List):
        found: list[ObjectInfo] = []
        async for info in store.list(request.prefix, start_after=request.start_after, limit=request.limit):
            found.append(info)
        return found
    if isinstance(request, ListPrefixes):
        return [folder async for folder in store.list_prefixes(request.prefix)]
    if isinstance(request, Delete):
        return await store.delete(request.key)
    if isinstance(request, Sleep):
        import asyncio  # only the async driver needs it: keep it out of `import cairnflow.core`

        return await asyncio.sleep(request.seconds)
    raise TypeError(f"not a store request: {request!r}")


async def arun(step: Step[T], store: AsyncObjectStore) -> T:
    """Drive ``step`` to its end on an async store; return its result or raise its error."""
    result: Any = None
    error: Exception | None = None
    try:
        while True:
            try:
                request = step.send(result) if error is None else step.throw(error)
            except StopIteration as stop:
                value: T = stop.value
                return value
            result, error = None, None
            try:
                result = await _aperform(store, request)
            except Exception as exc:  # noqa: BLE001 - every store error goes to the step, which decides
                error = exc
    finally:
        error = None  # no reference cycle through the traceback
        step.close()
