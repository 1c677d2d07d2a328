"""The scaffold of every asyncio backend: :mod:`cairnflow.savers._base`'s seam, awaited.

An async backend subclasses :class:`AsyncBackendStore` and supplies its own
requests as coroutines: ``_write(key, data, op, etag)``, ``_read(key)``,
``_list(prefix, start_after, limit)`` (an async iterator) and ``_remove(key)``.
What is the same for every store is not written again here but shared with
the sync scaffold: put-mode dispatch (:func:`~cairnflow.savers._base.put_op`),
the :class:`~cairnflow.savers._base.Op` names, the request spans, and (for
cloud backends) the status tables :data:`~cairnflow.savers._base.REINTERPRET`,
:data:`~cairnflow.savers._base.ERROR_TYPES` and
:data:`~cairnflow.savers._base.MAY_HAVE_LANDED`.

This class does, once for all async backends: key checks, dispatch, request
spans, and the hiding of a store's own object (the conditional-write probe)
from listings. A cloud backend runs its probe in :meth:`_before_write`.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, TypeVar

from cairnflow.core import observe
from cairnflow.core.errors import InvalidArgumentError
from cairnflow.core.store import CREATE, AsyncObjectStore, ObjectInfo, PutMode, StoredObject
from cairnflow.savers._base import CloudMapping, Op, _request, put_op

if TYPE_CHECKING:
    from cairnflow.savers._probe import AsyncConditionalWriteProbe

__all__ = ["AsyncBackendStore", "AsyncCloudStore"]

T = TypeVar("T")


class AsyncBackendStore(AsyncObjectStore):
    """An :class:`AsyncObjectStore` whose public methods check keys, dispatch and hide the probe once."""

    # ------------------------------------------------------------------ what a backend supplies

    @abc.abstractmethod
    async def _write(self, key: str, data: bytes, op: Op, etag: str | None) -> str:
        """One write: ``op`` is CREATE, UPDATE (``etag`` set) or OVERWRITE; return the new version."""

    @abc.abstractmethod
    async def _read(self, key: str) -> StoredObject:
        """Read one object."""

    @abc.abstractmethod
    def _list(self, prefix: str, start_after: str | None, limit: int | None) -> AsyncIterator[ObjectInfo]:
        """Yield the objects under ``prefix`` in key order, lazily, from ``start_after`` on.

        As :meth:`cairnflow.savers._base.BackendStore._list`: :meth:`list` drops
        ``start_after`` itself and stops after ``limit`` objects.
        """

    @abc.abstractmethod
    async def _remove(self, key: str) -> None:
        """Delete one object; a missing one is success."""

    # ------------------------------------------------------------------ the seam, once

    async def _before_write(self, op: Op) -> None:
        """Hook run before each public write (a cloud store probes its conditions here)."""

    def _hidden_key(self) -> str | None:
        """A key of the store's own that listings must not show (the probe object), if any."""
        return None

    def _check_key(self, key: str) -> None:
        if not isinstance(key, str) or not key:
            raise InvalidArgumentError(f"object keys must be non-empty strings, not {key!r} (in {self.url})")

    async def put(self, key: str, data: bytes, mode: PutMode = CREATE) -> str:
        op, etag = put_op(mode)
        self._check_key(key)
        await self._before_write(op)
        with _request(op, self.url, len(data)):
            return await self._write(key, bytes(data), op, etag)

    async def get(self, key: str) -> StoredObject:
        self._check_key(key)
        with _request(Op.GET, self.url) as span:
            found = await self._read(key)
            span.set("cairnflow.store.bytes", len(found.data))
            return found

    async def list(
        self, prefix: str, *, start_after: str | None = None, limit: int | None = None
    ) -> AsyncIterator[ObjectInfo]:
        if limit is not None and limit <= 0:
            return
        # As the sync scaffold: one more key is asked for while the hidden key may turn up.
        probe = self._hidden_key()
        hidden = (
            probe
            if probe is not None and probe.startswith(prefix) and (start_after is None or probe > start_after)
            else None
        )
        wanted = None if limit is None else limit + (hidden is not None)
        count = 0
        listing = observe.start("cairnflow.store", store_operation=Op.LIST.value, store_url=self.url)
        pages = self._list(prefix, start_after, wanted)
        try:
            async for info in pages:
                if info.key == hidden or (start_after is not None and info.key <= start_after):
                    continue
                yield info
                count += 1
                if limit is not None and count >= limit:
                    return
        except BaseException as error:
            listing.end(error)
            raise
        finally:
            # Close the backend's listing now (it may hold a connection), not when collected.
            close = getattr(pages, "aclose", None)
            if close is not None:
                await close()
            listing.set("cairnflow.store.keys", count)
            listing.end()

    async def delete(self, key: str) -> None:
        self._check_key(key)
        with _request(Op.DELETE, self.url):
            await self._remove(key)


class AsyncCloudStore(CloudMapping, AsyncBackendStore):
    """A store behind an asyncio SDK: the sync cloud stores' status tables, mapping and probe.

    Everything but the awaiting is :class:`~cairnflow.savers._base.CloudMapping`'s:
    ``with self._mapping(op, key): await sdk_call()`` maps errors exactly as a sync
    backend does (the attempts it collects live in a context variable, so concurrent
    tasks never see each other's), and the conditional-write probe makes the same
    decisions (:class:`~cairnflow.savers._probe.AsyncConditionalWriteProbe`) before
    the first write.
    """

    _probe: AsyncConditionalWriteProbe  # type: ignore[assignment]

    def _init_probe(self, prefix: str, *, enabled: bool) -> None:
        from cairnflow.savers._probe import AsyncConditionalWriteProbe

        self._probe = AsyncConditionalWriteProbe(prefix, enabled=enabled)

    async def _before_write(self, op: Op) -> None:
        await self._probe.ensure(self, op)

    async def _pages(self, pages: AsyncIterator[AsyncIterator[T]], prefix: str) -> AsyncIterator[list[T]]:
        """Fetch an SDK's async pager one page (request) at a time, mapping its errors as LIST errors."""
        while True:
            with self._mapping(Op.LIST, prefix):
                page = await anext(pages, None)
                items = [] if page is None else [item async for item in page]
            if page is None:
                return
            yield items


def without_hidden_retry(session: object) -> None:
    """Stop an ``aiohttp.ClientSession`` from resending a request on its own.

    aiohttp resends an idempotent request (PUT, DELETE, GET) once when a reused
    connection closes without an answer (RFC 9112 section 9.3.1). For a PUT whose
    first attempt landed, the SDK above never sees that attempt: if the resend then
    gets a 503, the write would be reported as not applied. Turned off, the dropped
    answer reaches the SDK, which retries it as one of its own attempts, where the
    store records it. aiohttp has no public switch: ``_retry_connection`` is the
    attribute its own test client clears (``aiohttp.test_utils``);
    ``tests/backends/test_async_clouds.py`` fails if it stops working.
    """
    if hasattr(session, "_retry_connection"):
        session._retry_connection = False
