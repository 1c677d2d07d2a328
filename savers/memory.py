"""An in-process store: a dict behind a lock. For tests and short-lived use.

State lives only as long as the object; two processes never share it.
:class:`AsyncMemoryStore` is the same store for asyncio (it can share one
:class:`MemoryStore`'s objects, so sync and async code in one process see
the same threads).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import AsyncIterator, Iterator

from cairnflow.core.errors import AlreadyExistsError, NotFoundError, PreconditionFailedError
from cairnflow.core.store import ObjectInfo, StoredObject
from cairnflow.savers._abase import AsyncBackendStore
from cairnflow.savers._base import BackendStore, Op

__all__ = ["AsyncMemoryStore", "MemoryStore"]


class MemoryStore(BackendStore):
    """A thread-safe in-memory object store with real conditional-write semantics."""

    def __init__(self, name: str = "") -> None:
        self.url = f"memory://{name}"
        self._objects: dict[str, StoredObject] = {}
        self._lock = threading.Lock()
        self._versions = itertools.count(1)

    def _write(self, key: str, data: bytes, op: Op, etag: str | None) -> str:
        with self._lock:
            current = self._objects.get(key)
            if op is Op.CREATE and current is not None:
                raise AlreadyExistsError("object exists", key=key, store=self.url)
            if op is Op.UPDATE and (current is None or current.etag != etag):
                raise PreconditionFailedError("object version changed", key=key, store=self.url)
            new = f"m{next(self._versions)}"
            self._objects[key] = StoredObject(data, new)
            return new

    def _read(self, key: str) -> StoredObject:
        with self._lock:
            obj = self._objects.get(key)
        if obj is None:
            raise NotFoundError("no such object", key=key, store=self.url)
        return obj

    def _list(self, prefix: str, start_after: str | None, limit: int | None) -> Iterator[ObjectInfo]:
        with self._lock:
            keys = sorted(
                (k, o)
                for k, o in self._objects.items()
                if k.startswith(prefix) and (start_after is None or k > start_after)
            )
        for key, obj in keys[:limit]:
            yield ObjectInfo(key, len(obj.data), obj.etag)

    def list_prefixes(self, prefix: str) -> Iterator[str]:
        """The folders directly under ``prefix`` in key order (like S3's ``Delimiter='/'``)."""
        with self._lock:
            folders = {
                prefix + k[len(prefix) :].partition("/")[0] + "/"
                for k in self._objects
                if k.startswith(prefix) and "/" in k[len(prefix) :]
            }
        yield from sorted(folders)

    def _remove(self, key: str) -> None:
        with self._lock:
            self._objects.pop(key, None)


class AsyncMemoryStore(AsyncBackendStore):
    """The in-memory store for asyncio, on the objects of a :class:`MemoryStore`.

    Each request runs inline on the event loop: it only touches a dict under
    a lock held for microseconds, so there is nothing to wait for.
    """

    def __init__(self, name: str = "", *, shared: MemoryStore | None = None) -> None:
        self.sync = shared if shared is not None else MemoryStore(name)
        self.url = self.sync.url

    async def _write(self, key: str, data: bytes, op: Op, etag: str | None) -> str:
        return self.sync._write(key, data, op, etag)

    async def _read(self, key: str) -> StoredObject:
        return self.sync._read(key)

    async def _list(
        self, prefix: str, start_after: str | None, limit: int | None
    ) -> AsyncIterator[ObjectInfo]:
        for info in self.sync._list(prefix, start_after, limit):
            yield info

    async def list_prefixes(self, prefix: str) -> AsyncIterator[str]:
        """The folders directly under ``prefix`` in key order (like S3's ``Delimiter='/'``)."""
        for folder in self.sync.list_prefixes(prefix):
            yield folder

    async def _remove(self, key: str) -> None:
        self.sync._remove(key)
