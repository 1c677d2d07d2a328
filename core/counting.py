"""A store wrapper that counts requests by kind (PUT, GET, LIST, DELETE) and bytes.

Use it to see what an operation costs::

    counting = CountingStore(store)
    saver = CheckpointLog(counting)
    ...
    counting.counts  # Counter({'PUT': 12, 'LIST': 1, 'GET': 2})

A ``list()`` counts one LIST per page the wrapped store would fetch only if
the wrapped store pages lazily; this wrapper counts one LIST per call plus
one more for every ``page_size`` keys consumed.

:class:`AsyncCountingStore` counts an :class:`AsyncObjectStore`'s requests the
same way (for the asyncio log and executor: the same operation must cost the
same requests in both).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import AsyncIterator, Iterator

from cairnflow.core.store import CREATE, AsyncObjectStore, ObjectInfo, ObjectStore, PutMode, StoredObject

__all__ = ["AsyncCountingStore", "CountingStore"]


class CountingStore(ObjectStore):
    """Counts the requests made through it; thread-safe."""

    def __init__(self, inner: ObjectStore, *, page_size: int = 1000) -> None:
        self.inner = inner
        self.url = inner.url
        self.page_size = page_size
        self.counts: Counter[str] = Counter()
        self.bytes_written = 0
        self.bytes_read = 0
        self._lock = threading.Lock()

    def reset(self) -> None:
        with self._lock:
            self.counts.clear()
            self.bytes_written = self.bytes_read = 0

    def _count(self, kind: str, *, written: int = 0, read: int = 0) -> None:
        with self._lock:
            self.counts[kind] += 1
            self.bytes_written += written
            self.bytes_read += read

    def put(self, key: str, data: bytes, mode: PutMode = CREATE) -> str:
        self._count("PUT", written=len(data))
        return self.inner.put(key, data, mode)

    def get(self, key: str) -> StoredObject:
        self._count("GET")
        obj = self.inner.get(key)
        with self._lock:
            self.bytes_read += len(obj.data)
        return obj

    def list(
        self, prefix: str, *, start_after: str | None = None, limit: int | None = None
    ) -> Iterator[ObjectInfo]:
        self._count("LIST")
        for n, info in enumerate(self.inner.list(prefix, start_after=start_after, limit=limit), start=1):
            if n > 1 and (n - 1) % self.page_size == 0:
                self._count("LIST")
            yield info

    def list_prefixes(self, prefix: str) -> Iterator[str]:
        """A delimiter listing: one LIST per ``page_size`` folders when the store has a native one."""
        if type(self.inner).list_prefixes is ObjectStore.list_prefixes:
            yield from ObjectStore.list_prefixes(self, prefix)  # the skip-scan: each of its LISTs counted
            return
        self._count("LIST")
        for n, folder in enumerate(self.inner.list_prefixes(prefix), start=1):
            if n > 1 and (n - 1) % self.page_size == 0:
                self._count("LIST")
            yield folder

    def delete(self, key: str) -> None:
        self._count("DELETE")
        self.inner.delete(key)

    def close(self) -> None:
        self.inner.close()


class AsyncCountingStore(AsyncObjectStore):
    """:class:`CountingStore` for an :class:`AsyncObjectStore`: the same counts, the same rules."""

    def __init__(self, inner: AsyncObjectStore, *, page_size: int = 1000) -> None:
        self.inner = inner
        self.url = inner.url
        self.page_size = page_size
        self.counts: Counter[str] = Counter()
        self.bytes_written = 0
        self.bytes_read = 0
        self._lock = threading.Lock()  # one loop needs none; several loops in threads may share it

    def reset(self) -> None:
        with self._lock:
            self.counts.clear()
            self.bytes_written = self.bytes_read = 0

    def _count(self, kind: str, *, written: int = 0, read: int = 0) -> None:
        with self._lock:
            self.counts[kind] += 1
            self.bytes_written += written
            self.bytes_read += read

    async def put(self, key: str, data: bytes, mode: PutMode = CREATE) -> str:
        self._count("PUT", written=len(data))
        return await self.inner.put(key, data, mode)

    async def get(self, key: str) -> StoredObject:
        self._count("GET")
        obj = await self.inner.get(key)
        with self._lock:
            self.bytes_read += len(obj.data)
        return obj

    async def list(
        self, prefix: str, *, start_after: str | None = None, limit: int | None = None
    ) -> AsyncIterator[ObjectInfo]:
        self._count("LIST")
        n = 0
        async for info in self.inner.list(prefix, start_after=start_after, limit=limit):
            n += 1
            if n > 1 and (n - 1) % self.page_size == 0:
                self._count("LIST")
            yield info

    async def list_prefixes(self, prefix: str) -> AsyncIterator[str]:
        """A delimiter listing: one LIST per ``page_size`` folders when the store has a native one."""
        if type(self.inner).list_prefixes is AsyncObjectStore.list_prefixes:
            async for folder in AsyncObjectStore.list_prefixes(self, prefix):  # the skip-scan, counted
                yield folder
            return
        self._count("LIST")
        n = 0
        async for folder in self.inner.list_prefixes(prefix):
            n += 1
            if n > 1 and (n - 1) % self.page_size == 0:
                self._count("LIST")
            yield folder

    async def delete(self, key: str) -> None:
        self._count("DELETE")
        await self.inner.delete(key)

    async def aopen(self) -> None:
        await self.inner.aopen()

    async def aclose(self) -> None:
        await self.inner.aclose()
