"""Store requests of the LangGraph saver: retries, create-only writes, parallel rounds.

:class:`StoreIO` is the base of every part of :class:`~cairnflow.langgraph.LangGraphSaver`
(reading, writing, maintenance); it holds the store, the key prefix, the serializer
and the worker pool that runs independent requests of one call concurrently.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import functools
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

from langgraph.checkpoint.serde.base import SerializerProtocol

from cairnflow.core.errors import AlreadyExistsError, InvalidURLError, MissingDependencyError, NotFoundError
from cairnflow.core.retry import RetryPolicy, call_with_retry
from cairnflow.core.store import CREATE, ObjectInfo, ObjectStore
from cairnflow.langgraph._bridge import BridgedStore, bridged_sleep, gather, in_bridge, run_bridged

__all__ = ["LRU", "StoreIO"]

T = TypeVar("T")
log = logging.getLogger(__name__)

#: Deletion order inside a namespace: index entries, then the log, writes, values.
_KIND_ORDER = {"i": 0, "c": 1, "w": 2, "b": 3}


class LRU:
    """A small thread-safe least-recently-used map."""

    def __init__(self, size: int) -> None:
        self._data: collections.OrderedDict[Any, Any] = collections.OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get(self, key: Any) -> Any:
        with self._lock:
            value = self._data.get(key)
            if value is not None:
                self._data.move_to_end(key)
            return value

    def put(self, key: Any, value: Any) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self._size:
                self._data.popitem(last=False)

    def discard(self, key: Any) -> None:
        with self._lock:
            self._data.pop(key, None)

    def discard_where(self, predicate: Callable[[Any], bool]) -> None:
        with self._lock:
            for key in [k for k in self._data if predicate(k)]:
                del self._data[key]


class StoreIO:
    """Store, prefix, serializer and the request helpers every part of the saver uses.

    The same code serves the sync methods (requests on ``sync_store``, independent
    ones on a thread pool) and the async ones (inside a bridge greenlet, requests
    awaited on the async store: :mod:`cairnflow.langgraph._bridge`).
    """

    sync_store: ObjectStore
    bridged_store: BridgedStore | None
    prefix: str
    serde: SerializerProtocol
    store_retry: RetryPolicy
    max_workers: int
    _pool: concurrent.futures.ThreadPoolExecutor | None
    _pool_lock: threading.Lock

    def _init_io(self, store: ObjectStore, prefix: str, store_retry: RetryPolicy, max_workers: int) -> None:
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        self.sync_store = store
        self.bridged_store = None
        self.prefix = prefix
        self.store_retry = store_retry
        self.max_workers = max(1, max_workers)
        self._pool = None
        self._pool_lock = threading.Lock()
        # from_url's recipe for the async store, opened on the first a* call
        self._async_recipe: tuple[str, dict[str, Any]] | None = None
        self._async_lock = threading.Lock()

    def close(self) -> None:
        """Stop the worker threads (the store stays open: close it yourself if you own it)."""
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)

    @property
    def store(self) -> ObjectStore:
        """The store this call's requests go to: the async store's view inside an async call."""
        if self.bridged_store is not None and in_bridge():
            return self.bridged_store
        return self.sync_store

    def _async_ready(self) -> bool:
        """Is there an async store for the a* methods? (opens from_url's on first use)."""
        if self.bridged_store is not None:
            return True
        with self._async_lock:
            recipe, self._async_recipe = self._async_recipe, None
            if recipe is None:
                return self.bridged_store is not None
            from cairnflow.savers import open_async_store

            url, options = recipe
            try:
                store, _prefix = open_async_store(url, **options)
            except (MissingDependencyError, InvalidURLError) as exc:
                # no async client for this store (extra not installed, or a scheme
                # without one): the a* methods use a worker thread, as LangGraph's
                # sync-only savers do
                log.debug("LangGraphSaver(%s): async methods run in threads: %s", url, exc)
                return False
            self.bridged_store = BridgedStore(store)
            return True

    async def _call(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        if self._async_ready():
            return await run_bridged(fn, *args, **kwargs)
        return await asyncio.to_thread(fn, *args, **kwargs)

    def _retry(self, fn: Callable[[], T]) -> T:
        if in_bridge():
            return call_with_retry(fn, self.store_retry, sleep=bridged_sleep)
        return call_with_retry(fn, self.store_retry)

    def _get(self, key: str) -> bytes:
        return self._retry(lambda: self.store.get(key)).data

    def _get_or_none(self, key: str) -> bytes | None:
        try:
            return self._get(key)
        except NotFoundError:
            return None

    def _list(
        self, prefix: str, *, start_after: str | None = None, limit: int | None = None
    ) -> list[ObjectInfo]:
        return self._retry(lambda: list(self.store.list(prefix, start_after=start_after, limit=limit)))

    def _iter_keys(self, prefix: str, *, start_after: str | None = None, page: int = 1000) -> Iterator[str]:
        """Every key under ``prefix`` after ``start_after``, fetched ``page`` at a time."""
        cursor = start_after
        while True:
            infos = self._list(prefix, start_after=cursor, limit=page)
            for info in infos:
                yield info.key
            if len(infos) < page:
                return
            cursor = infos[-1].key

    def _skip_scan(self, base: str) -> Iterator[str]:
        """Each distinct segment directly below ``base``: one LIST per segment."""
        cursor: str | None = None
        while True:
            infos = self._list(base, start_after=cursor, limit=1)
            if not infos:
                return
            segment = infos[0].key[len(base) :].partition("/")[0]
            yield segment
            cursor = f"{base}{segment}0"  # '0' is the byte after '/': skip this segment's keys

    def _create_ignore(self, key: str, data: bytes) -> None:
        """Create-only write where an existing object wins (channel values, regular writes)."""
        with contextlib.suppress(AlreadyExistsError):
            self._retry(lambda: self.store.put(key, data, CREATE))

    def _create_exact(self, key: str, data: bytes) -> bool:
        """Create-only write; True if the object holds our bytes afterwards, False if another's."""
        try:
            self._retry(lambda: self.store.put(key, data, CREATE))
            return True
        except AlreadyExistsError:
            existing = self._get_or_none(key)
            return existing == data

    def _delete(self, key: str) -> None:
        self._retry(lambda: self.store.delete(key))

    def _executor(self) -> concurrent.futures.ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = concurrent.futures.ThreadPoolExecutor(
                    max_workers=self.max_workers, thread_name_prefix="cairnflow-lg"
                )
            return self._pool

    def _parallel(self, calls: Sequence[Callable[[], T]]) -> list[T]:
        """Run independent requests concurrently; never called from a worker thread."""
        if len(calls) <= 1:
            return [call() for call in calls]
        if in_bridge():
            return gather(calls)
        pool = self._executor()
        futures = [pool.submit(call) for call in calls]
        concurrent.futures.wait(futures)
        return [f.result() for f in futures]

    def _delete_keys(self, keys: Iterable[str], base: str) -> None:
        """Delete keys under a namespace prefix ``base``: index entries first, then log, writes, values."""

        def order(key: str) -> int:
            rest = key[len(base) :].split("/")
            return _KIND_ORDER.get(rest[0] if rest else "", 9)

        keys = list(keys)
        for group in sorted({order(k) for k in keys}):
            self._parallel([functools.partial(self._delete, k) for k in keys if order(k) == group])
