"""The base of the tests' wrapper stores: every request goes to the wrapped store.

A wrapper (one that injects faults, kills the process at a request boundary, counts
or holds requests) subclasses :class:`ForwardingStore` and overrides only the requests
it changes. ``list_prefixes`` is deliberately not forwarded: the base class's version
is built on ``self.list``, so a wrapper that intercepts LIST sees those requests too.
"""

from __future__ import annotations

from collections.abc import Iterator

from cairnflow.core.store import CREATE, ObjectInfo, ObjectStore, PutMode, StoredObject

__all__ = ["ForwardingStore"]


class ForwardingStore(ObjectStore):
    """Passes every request to ``inner`` unchanged; ``url`` is the inner store's."""

    def __init__(self, inner: ObjectStore) -> None:
        self.inner = inner
        self.url = inner.url

    def put(self, key: str, data: bytes, mode: PutMode = CREATE) -> str:
        return self.inner.put(key, data, mode)

    def get(self, key: str) -> StoredObject:
        return self.inner.get(key)

    def list(
        self, prefix: str, *, start_after: str | None = None, limit: int | None = None
    ) -> Iterator[ObjectInfo]:
        return self.inner.list(prefix, start_after=start_after, limit=limit)

    def delete(self, key: str) -> None:
        self.inner.delete(key)

    def close(self) -> None:
        self.inner.close()
