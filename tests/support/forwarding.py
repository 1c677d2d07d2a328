"""The base of the tests' wrapper stores: every request goes to the wrapped store.

A wrapper (one that injects faults, kills the process at a request boundary, counts
or holds requests) subclasses :class:`ForwardingStore` (or, for an asyncio store,
:class:`AsyncForwardingStore`) and overrides only the requests it changes.
``list_prefixes`` is deliberately not forwarded: the base class's version is built
on ``self.list``, so a wrapper that intercepts LIST sees those requests too.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

from cairnflow.core.store import CREATE, AsyncObjectStore, ObjectInfo, ObjectStore, PutMode, StoredObject

__all__ = ["AsyncForwardingStore", "ForwardingStore"]


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


class AsyncForwardingStore(AsyncObjectStore):
    """:class:`ForwardingStore` for an :class:`AsyncObjectStore` (``list_prefixes`` not forwarded either)."""

    def __init__(self, inner: AsyncObjectStore) -> None:
        self.inner = inner
        self.url = inner.url

    async def put(self, key: str, data: bytes, mode: PutMode = CREATE) -> str:
        return await self.inner.put(key, data, mode)

    async def get(self, key: str) -> StoredObject:
        return await self.inner.get(key)

    def list(
        self, prefix: str, *, start_after: str | None = None, limit: int | None = None
    ) -> AsyncIterator[ObjectInfo]:
        return self.inner.list(prefix, start_after=start_after, limit=limit)

    async def delete(self, key: str) -> None:
        await self.inner.delete(key)

    async def aclose(self) -> None:
        await self.inner.aclose()
