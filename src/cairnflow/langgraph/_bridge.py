"""The saver's one copy of its logic, run on an async store without a thread per request.

The LangGraph saver's rules (fencing, entries, value references, deletes) are written
once, as plain synchronous code calling a store. Its ``a*`` methods run that same code
in a *bridge greenlet*: whenever the code makes a store request, the greenlet hands the
request's coroutine to the event loop (:func:`await_only`), the loop awaits it on the
:class:`~cairnflow.core.store.AsyncObjectStore`, and the greenlet continues with the
result or the exception. Independent requests of one call are awaited together
(:func:`gather`), backoff sleeps are ``asyncio.sleep``, and the loop never blocks.

This is the design of SQLAlchemy's asyncio extension (``greenlet_spawn`` /
``await_only``): it keeps a single implementation of the protocol instead of an async
twin of every module, and costs one greenlet switch per request, not a thread.
"""

from __future__ import annotations

import asyncio
import contextvars
import sys
import threading
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, cast

import greenlet

from cairnflow.core.errors import MisuseError
from cairnflow.core.store import CREATE, ObjectInfo, ObjectStore, PutMode, StoredObject

if TYPE_CHECKING:
    from cairnflow.core.store import AsyncObjectStore

__all__ = ["BridgedStore", "Flight", "await_only", "gather", "in_bridge", "run_bridged"]

T = TypeVar("T")


class _BridgeGreenlet(greenlet.greenlet):
    """A greenlet running saver code for an ``a*`` call; ``driver`` awaits its requests."""

    def __init__(self, fn: Callable[..., Any], driver: greenlet.greenlet) -> None:
        super().__init__(fn, driver)
        self.driver = driver


def in_bridge() -> bool:
    """True inside saver code started by :func:`run_bridged` (store requests are awaited)."""
    return isinstance(greenlet.getcurrent(), _BridgeGreenlet)


async def run_bridged(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """Run ``fn(*args, **kwargs)`` in a bridge greenlet, awaiting each request it hands over."""
    bridge = _BridgeGreenlet(fn, greenlet.getcurrent())
    bridge.gr_context = contextvars.copy_context()  # the caller's context vars (telemetry, LangGraph config)
    handed = bridge.switch(*args, **kwargs)
    while not bridge.dead:
        try:
            value = await handed
        except BaseException:  # noqa: BLE001 - every outcome goes back into the saver code
            handed = bridge.throw(*sys.exc_info())
        else:
            handed = bridge.switch(value)
    return cast(T, handed)


def await_only(awaitable: Awaitable[T]) -> T:
    """Inside a bridge greenlet: let the event loop await ``awaitable``; return its result."""
    current = greenlet.getcurrent()
    if not isinstance(current, _BridgeGreenlet):
        if asyncio.iscoroutine(awaitable):
            awaitable.close()  # never awaited: say so here, not in a RuntimeWarning later
        raise MisuseError("await_only() called outside a bridged saver call")
    return cast(T, current.driver.switch(awaitable))


def gather(calls: Sequence[Callable[[], T]]) -> list[T]:
    """Inside a bridge greenlet: run independent calls concurrently, each in its own greenlet."""

    async def both() -> list[T]:
        return list(await asyncio.gather(*(run_bridged(call) for call in calls)))

    return await_only(both())


def bridged_sleep(seconds: float) -> None:
    """A retry backoff that does not block the loop."""
    await_only(asyncio.sleep(seconds))


class BridgedStore(ObjectStore):
    """A synchronous view of an :class:`AsyncObjectStore`, usable only inside bridge greenlets.

    Each request becomes one awaited coroutine on the async store. Called outside a
    bridged call it refuses (a synchronous call there would block the event loop).
    """

    def __init__(self, store: AsyncObjectStore) -> None:
        self.inner = store
        self.url = store.url

    def _await(self, request: Coroutine[Any, Any, T]) -> T:
        if not in_bridge():
            request.close()
            raise MisuseError(
                f"the async store {self.url} was used outside an async saver call: "
                "call the saver's a* methods (aget_tuple, aput, ...) from the event loop"
            )
        return await_only(request)

    def put(self, key: str, data: bytes, mode: PutMode = CREATE) -> str:
        return self._await(self.inner.put(key, data, mode))

    def get(self, key: str) -> StoredObject:
        return self._await(self.inner.get(key))

    def list(
        self, prefix: str, *, start_after: str | None = None, limit: int | None = None
    ) -> Iterator[ObjectInfo]:
        async def collect() -> list[ObjectInfo]:
            return [info async for info in self.inner.list(prefix, start_after=start_after, limit=limit)]

        return iter(self._await(collect()))

    def list_prefixes(self, prefix: str) -> Iterator[str]:
        async def collect() -> list[str]:
            return [p async for p in self.inner.list_prefixes(prefix)]

        return iter(self._await(collect()))

    def delete(self, key: str) -> None:
        self._await(self.inner.delete(key))


class Flight:
    """Set when an in-flight ``put`` finishes; waited on by ``put_writes`` from a thread or a bridge greenlet.

    A ``threading.Event`` alone would deadlock the bridge: the waiting greenlet and the
    putting one share the loop's thread, so the waiter must yield to the loop instead.
    """

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    def set(self) -> None:
        with self._lock:
            self._event.set()
            waiters, self._waiters = self._waiters, []
        for loop, future in waiters:
            loop.call_soon_threadsafe(_resolve, future)

    def wait(self, timeout: float) -> bool:
        """Wait at most ``timeout`` seconds; True if the put finished."""
        if not in_bridge():
            return self._event.wait(timeout)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._lock:
            if self._event.is_set():
                return True
            self._waiters.append((loop, future))
        await_only(asyncio.wait([future], timeout=timeout))
        return future.done()


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
