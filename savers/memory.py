"""An in-process store: a dict behind a lock. For tests and short-lived use.

State lives only as long as the object; two processes never share it.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator

from cairnflow.core.errors import AlreadyExistsError, NotFoundError, PreconditionFailedError
from cairnflow.core.store import (
    CREATE,
    Create,
    ObjectInfo,
    ObjectStore,
    Overwrite,
    PutMode,
    StoredObject,
    Update,
)

__all__ = ["MemoryStore"]


class MemoryStore(ObjectStore):
    """A thread-safe in-memory object store with real conditional-write semantics."""

    def __init__(self, name: str = "") -> None:
        self.url = f"memory://{name}"
        self._objects: dict[str, StoredObject] = {}
        self._lock = threading.Lock()
        self._versions = itertools.count(1)

    def put(self, key: str, data: bytes, mode: PutMode = CREATE) -> str:
        data = bytes(data)
        with self._lock:
            current = self._objects.get(key)
            if isinstance(mode, Create) and current is not None:
                raise AlreadyExistsError("object exists", key=key, store=self.url)
            if isinstance(mode, Update) and (current is None or current.etag != mode.etag):
                raise PreconditionFailedError("object version changed", key=key, store=self.url)
            if not isinstance(mode, (Create, Update, Overwrite)):
                raise TypeError(f"unknown put mode {mode!r}")
            etag = f"m{next(self._versions)}"
            self._objects[key] = StoredObject(data, etag)
            return etag

    def get(self, key: str) -> StoredObject:
        with self._lock:
            obj = self._objects.get(key)
        if obj is None:
            raise NotFoundError("no such object", key=key, store=self.url)
        return obj

    def list(
        self, prefix: str, *, start_after: str | None = None, limit: int | None = None
    ) -> Iterator[ObjectInfo]:
        with self._lock:
            keys = sorted(
                (k, o)
                for k, o in self._objects.items()
                if k.startswith(prefix) and (start_after is None or k > start_after)
            )
        for n, (key, obj) in enumerate(keys):
            if limit is not None and n >= limit:
                return
            yield ObjectInfo(key, len(obj.data), obj.etag)

    def delete(self, key: str, *, etag: str | None = None) -> None:
        with self._lock:
            current = self._objects.get(key)
            if etag is not None:
                if current is None:
                    raise NotFoundError("no such object", key=key, store=self.url)
                if current.etag != etag:
                    raise PreconditionFailedError("object version changed", key=key, store=self.url)
            self._objects.pop(key, None)
