"""An in-process store: a dict behind a lock. For tests and short-lived use.

State lives only as long as the object; two processes never share it.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator

from cairnflow.core.errors import AlreadyExistsError, NotFoundError, PreconditionFailedError
from cairnflow.core.store import ObjectInfo, StoredObject
from cairnflow.savers._base import BackendStore, Op

__all__ = ["MemoryStore"]


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
