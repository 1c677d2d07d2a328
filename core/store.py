"""The store seam: the few object-store operations every backend implements.

The checkpoint protocol (:mod:`cairnflow.core.log`) needs only this:

* ``put(key, data, mode)`` with one of three modes, modelled on Rust's
  ``object_store``:

  - :data:`CREATE` -- write only if no object exists under ``key``
    (S3/Azure ``If-None-Match: *``, GCS ``ifGenerationMatch=0``);
    otherwise :class:`~cairnflow.core.errors.AlreadyExistsError`;
  - :class:`Update` ``(etag)`` -- write only if the current object's version
    is ``etag`` (S3/Azure ``If-Match``, GCS ``ifGenerationMatch=<gen>``);
    otherwise :class:`~cairnflow.core.errors.PreconditionFailedError`
    (also when the object is gone);
  - :data:`OVERWRITE` -- unconditional; the protocol never uses it for
    checkpoints, it exists for tools and tests.

* ``get(key)`` returning the body and its version (ETag or generation);
* ``list(prefix, start_after=, limit=)`` in ascending byte order of keys;
* ``delete(key)``, unconditional and idempotent (checkpoints are never
  deleted conditionally: nothing in the protocol needs it).

:class:`AsyncObjectStore` is the same seam for asyncio: the same methods,
keys, modes, errors and ordering, awaited (``list`` and ``list_prefixes``
are async iterators). The protocol drives both through one implementation
of its logic (:mod:`cairnflow.core.steps`).

A cloud store checks once, before its first write, that the store really
evaluates its conditions (the probe object ``{prefix}.cairnflow-probe``, see
:mod:`cairnflow.savers._base`) and hides that object from its listings.

Backends must not emulate a conditional write with a read followed by a
write, and must not blindly retry a conditional write: the protocol layer
decides what to retry and verifies the outcome of ambiguous writes. Each
backend maps its SDK's errors to :mod:`cairnflow.core.errors` in one place.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Final, Union

__all__ = [
    "CREATE",
    "OVERWRITE",
    "PROBE_SUFFIX",
    "AsyncObjectStore",
    "Create",
    "ObjectInfo",
    "ObjectStore",
    "Overwrite",
    "PutMode",
    "StoredObject",
    "Update",
]


@dataclass(frozen=True)
class Create:
    """Put mode: create only; fail with ``AlreadyExistsError`` if the key exists."""


@dataclass(frozen=True)
class Overwrite:
    """Put mode: write unconditionally."""


@dataclass(frozen=True)
class Update:
    """Put mode: replace only the version named by ``etag``; else ``PreconditionFailedError``."""

    etag: str


PutMode = Union[Create, Overwrite, Update]  # noqa: UP007 - a runtime alias must work on 3.10
CREATE: Final = Create()
OVERWRITE: Final = Overwrite()

#: A cloud store's conditional-write probe object is ``prefix + PROBE_SUFFIX``
#: (hidden from its listings; tools skip it too).
PROBE_SUFFIX: Final = ".cairnflow-probe"


@dataclass(frozen=True)
class StoredObject:
    """An object's body and the version it was read at."""

    data: bytes
    etag: str


@dataclass(frozen=True)
class ObjectInfo:
    """One entry of a listing."""

    key: str
    size: int
    etag: str | None = None


class ObjectStore(abc.ABC):
    """A bucket (or directory, or dict) seen through the store seam.

    Keys are ``/``-separated strings of printable ASCII produced by the
    checkpoint protocol; backends may refuse other keys with ``ValueError``.
    Implementations must be safe to call from several threads at once.
    """

    #: A URL naming the store, used in error messages (never holds credentials).
    url: str = "store://"

    @abc.abstractmethod
    def put(self, key: str, data: bytes, mode: PutMode = CREATE) -> str:
        """Write ``data`` under ``key`` according to ``mode``; return the new version (ETag)."""

    @abc.abstractmethod
    def get(self, key: str) -> StoredObject:
        """Read the object under ``key``; ``NotFoundError`` if there is none."""

    @abc.abstractmethod
    def list(
        self, prefix: str, *, start_after: str | None = None, limit: int | None = None
    ) -> Iterator[ObjectInfo]:
        """Yield objects whose key starts with ``prefix``, in ascending key order.

        Only keys strictly greater than ``start_after`` are returned; at most
        ``limit`` of them. Backends page internally and lazily.
        """

    def list_prefixes(self, prefix: str) -> Iterator[str]:
        """Yield each ``prefix + segment + "/"`` that has keys below it, in key order.

        This is a delimiter listing's "common prefixes" (S3 ``Delimiter='/'``):
        the folders directly under ``prefix``, not the objects. The default
        finds them with one ``list(limit=1)`` per folder (a skip-scan);
        backends with a native delimiter listing override it.
        """
        cursor: str | None = None
        while True:
            found = next(iter(self.list(prefix, start_after=cursor, limit=1)), None)
            if found is None:
                return
            segment, sep, _ = found.key[len(prefix) :].partition("/")
            if not sep:  # an object directly under the prefix, not a folder
                cursor = found.key
                continue
            yield f"{prefix}{segment}/"
            cursor = f"{prefix}{segment}0"  # '0' is the byte after '/': skips the whole folder

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Delete ``key``; idempotent: deleting a missing key succeeds."""

    def close(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Release clients and connections (optional)."""

    def __enter__(self) -> ObjectStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncObjectStore(abc.ABC):
    """The store seam for asyncio: :class:`ObjectStore`'s operations, awaited.

    Same keys, put modes, errors (:mod:`cairnflow.core.errors`), key order and
    idempotent delete as :class:`ObjectStore`; see the module docstring.
    Implementations must not block the event loop for network I/O (no thread
    per request either: use an asyncio client) and must be safe to use from
    many tasks of one event loop at once. A store belongs to the event loop
    it is first used on (asyncio clients hold connections bound to a loop).
    """

    #: A URL naming the store, used in error messages (never holds credentials).
    url: str = "store://"

    @abc.abstractmethod
    async def put(self, key: str, data: bytes, mode: PutMode = CREATE) -> str:
        """Write ``data`` under ``key`` according to ``mode``; return the new version (ETag)."""

    @abc.abstractmethod
    async def get(self, key: str) -> StoredObject:
        """Read the object under ``key``; ``NotFoundError`` if there is none."""

    @abc.abstractmethod
    def list(
        self, prefix: str, *, start_after: str | None = None, limit: int | None = None
    ) -> AsyncIterator[ObjectInfo]:
        """Yield objects whose key starts with ``prefix``, in ascending key order.

        An async iterator (``async for info in store.list(...)``), not a
        coroutine. Only keys strictly greater than ``start_after`` are
        returned; at most ``limit`` of them. Backends page internally and lazily.
        """

    async def list_prefixes(self, prefix: str) -> AsyncIterator[str]:
        """Yield each ``prefix + segment + "/"`` that has keys below it, in key order.

        As :meth:`ObjectStore.list_prefixes`: the default is a skip-scan of one
        ``list(limit=1)`` per folder; backends with a delimiter listing override it.
        """
        cursor: str | None = None
        while True:
            found: ObjectInfo | None = None
            async for found in self.list(prefix, start_after=cursor, limit=1):  # noqa: B007 - the first
                break
            if found is None:
                return
            segment, sep, _ = found.key[len(prefix) :].partition("/")
            if not sep:  # an object directly under the prefix, not a folder
                cursor = found.key
                continue
            yield f"{prefix}{segment}/"
            cursor = f"{prefix}{segment}0"  # '0' is the byte after '/': skips the whole folder

    @abc.abstractmethod
    async def delete(self, key: str) -> None:
        """Delete ``key``; idempotent: deleting a missing key succeeds."""

    async def aopen(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Create the client now rather than on the first request (optional).

        Makes no request. For a process that wants its one-time costs (the SDK's
        models, the client, its HTTP session) paid before its first request, for
        example before a timed stream starts; ``async with store`` calls it.
        """

    async def aclose(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Release clients and connections (optional)."""

    async def __aenter__(self) -> AsyncObjectStore:
        await self.aopen()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
