"""cairnflow.savers: one backend per object store, and a registry from URL scheme to backend.

Backends import their cloud SDK only when used: ``open_store("s3://...")``
imports boto3, ``open_store("file://...")`` imports nothing but the
standard library. A missing SDK raises :class:`MissingDependencyError`
naming the pip extra to install.

=========  ===========================  ==================  ==================
scheme     example                      backend module      pip extra
=========  ===========================  ==================  ==================
file       ``file://./.cairnflow``      ``local``           (none)
memory     ``memory://name``            ``memory``          (none)
s3         ``s3://bucket/prefix``       ``s3``              ``cairnflow[s3]``
gs         ``gs://bucket/prefix``       ``gcs``             ``cairnflow[gcs]``
az         ``az://container/prefix``    ``azure``           ``cairnflow[azure]``
=========  ===========================  ==================  ==================

Every backend module defines ``store_from_url(bucket, prefix, **options)``.

**asyncio.** :func:`open_async_store` and :func:`open_async_saver` are the same
for asyncio (an :class:`~cairnflow.core.store.AsyncObjectStore`, an
:class:`~cairnflow.core.log.AsyncCheckpointLog`). :data:`_ASYNC_SCHEMES` maps
a scheme to the module of its async backend, which defines
``async_store_from_url(bucket, prefix, **options)``; a scheme without an entry
there has no async backend yet.
"""

from __future__ import annotations

import importlib
import os
import threading
import urllib.parse
from typing import TYPE_CHECKING, Any

from cairnflow.core.errors import InvalidURLError, MissingDependencyError, StoreAccessError

if TYPE_CHECKING:
    from cairnflow.core.cipher import Cipher
    from cairnflow.core.log import AsyncCheckpointLog, CheckpointLog
    from cairnflow.core.serde import Serializer
    from cairnflow.core.store import AsyncObjectStore, ObjectStore
    from cairnflow.savers.memory import MemoryStore

__all__ = [
    "MissingDependencyError",
    "open_async_saver",
    "open_async_store",
    "open_saver",
    "open_store",
    "parse_url",
]


# scheme -> (module, pip extra or None, SDK top-level modules it needs)
_SCHEMES: dict[str, tuple[str, str | None]] = {
    "file": ("cairnflow.savers.local", None),
    "memory": ("cairnflow.savers.memory", None),
    "s3": ("cairnflow.savers.s3", "s3"),
    "gs": ("cairnflow.savers.gcs", "gcs"),
    "az": ("cairnflow.savers.azure", "azure"),
}

# scheme -> (module, pip extra or None) of the asyncio backends; memory and file are built in.
# A cloud backend adds its line here; its module defines async_store_from_url(bucket, prefix, **options).
_ASYNC_SCHEMES: dict[str, tuple[str, str | None]] = {
    "s3": ("cairnflow.savers.s3_async", "s3"),
    "gs": ("cairnflow.savers.gcs_async", "gcs"),
    "az": ("cairnflow.savers.azure_async", "azure"),
}

_memory_stores: dict[str, MemoryStore] = {}
_memory_lock = threading.Lock()


def parse_url(url: str) -> tuple[str, str, str]:
    """Split a store URL into (scheme, bucket or location, key prefix).

    The prefix is normalised to end with ``/`` (or to be empty).
    """
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _SCHEMES:
        known = ", ".join(f"{s}://" for s in _SCHEMES)
        raise InvalidURLError(f"unknown store URL scheme in {url!r}; known: {known}")
    if parts.query or parts.fragment:
        raise InvalidURLError(f"store URLs take no query or fragment: {url!r}")
    if scheme == "file":
        location = parts.netloc + parts.path
        if not location:
            raise InvalidURLError(f"file URL names no directory: {url!r}")
        return scheme, location, ""
    if not parts.netloc:
        raise InvalidURLError(f"store URL names no bucket: {url!r}")
    prefix = parts.path.strip("/")
    return scheme, parts.netloc, f"{prefix}/" if prefix else ""


def _backend(scheme: str, table: dict[str, tuple[str, str | None]] = _SCHEMES) -> Any:
    module_name, extra = table[scheme]
    try:
        return importlib.import_module(module_name)
    except ImportError as exc:
        if extra is None or (exc.name or "").startswith("cairnflow"):
            raise
        raise MissingDependencyError(
            f"{scheme}:// needs the {exc.name!r} package: pip install 'cairnflow[{extra}]'"
        ) from exc


def _memory_store(name: str) -> MemoryStore:
    """The process's memory store of that name (sync and async openers share it)."""
    from cairnflow.savers.memory import MemoryStore

    with _memory_lock:
        store = _memory_stores.get(name)
        if store is None:
            store = _memory_stores[name] = MemoryStore(name)
    return store


def open_store(url: str, **options: Any) -> tuple[ObjectStore, str]:
    """Open the object store named by ``url``; return it and the key prefix to use.

    ``options`` go to the backend (for example ``client=`` for S3, GCS and Azure).
    """
    scheme, location, prefix = parse_url(url)
    if scheme == "memory":
        # Named memory stores are shared within the process, so that two
        # open_saver("memory://x") calls see the same threads.
        return _memory_store(location), prefix
    if scheme == "file":
        from cairnflow.savers.local import LocalStore

        return LocalStore(location, **options), prefix
    store = _backend(scheme).store_from_url(location, prefix, **options)
    return store, prefix


def open_saver(
    url: str,
    *,
    create: bool = True,
    serializer: Serializer | None = None,
    cipher: Cipher | None = None,
    **store_options: Any,
) -> CheckpointLog:
    """Open the checkpoint log on the store named by ``url``: the one ``open_saver``.

    >>> saver = open_saver("file://./.cairnflow")        # doctest: +SKIP
    >>> saver = open_saver("s3://my-bucket/workflows")   # doctest: +SKIP

    With ``create=False`` a ``file://`` directory must already exist (so that a
    mistyped path is an error rather than a new, empty store; operator tools pass
    it); buckets and containers are never created either way. ``serializer`` and
    ``cipher`` go to the log; every other keyword to the store.
    """
    from cairnflow.core.log import CheckpointLog

    _check_directory(url, create)
    store, prefix = open_store(url, **store_options)
    return CheckpointLog(store, prefix=prefix, serializer=serializer, cipher=cipher)


def _check_directory(url: str, create: bool) -> None:
    scheme, location, _ = parse_url(url)
    if scheme == "file" and not create and not os.path.isdir(location):
        raise StoreAccessError(
            f"no store directory at {location!r}: check the path, or pass create=True for a new store",
            store=url,
        )


def open_async_store(url: str, **options: Any) -> tuple[AsyncObjectStore, str]:
    """:func:`open_store` for asyncio: the :class:`AsyncObjectStore` named by ``url``, and its prefix.

    ``memory://name`` shares its objects with ``open_store("memory://name")``.
    Opening makes no request (clients connect on first use); close the store
    with ``await store.aclose()`` or ``async with``.
    """
    scheme, location, prefix = parse_url(url)
    if scheme == "memory":
        from cairnflow.savers.memory import AsyncMemoryStore

        return AsyncMemoryStore(location, shared=_memory_store(location)), prefix
    if scheme == "file":
        from cairnflow.savers.local import AsyncLocalStore

        return AsyncLocalStore(location, **options), prefix
    if scheme not in _ASYNC_SCHEMES:
        raise InvalidURLError(
            f"{scheme}:// has no asyncio backend in this version ({url!r}); use open_store/open_saver "
            f"for a sync one, or one of: {', '.join(f'{s}://' for s in ('file', 'memory', *_ASYNC_SCHEMES))}"
        )
    return _backend(scheme, _ASYNC_SCHEMES).async_store_from_url(location, prefix, **options), prefix


def open_async_saver(
    url: str,
    *,
    create: bool = True,
    serializer: Serializer | None = None,
    cipher: Cipher | None = None,
    **store_options: Any,
) -> AsyncCheckpointLog:
    """:func:`open_saver` for asyncio: the checkpoint log on the store named by ``url``.

    >>> async with open_async_saver("file://./.cairnflow") as saver:   # doctest: +SKIP
    ...     head = await saver.latest("thread-1")

    Arguments as :func:`open_saver`. The saver owns its store: ``aclose()``
    (or leaving ``async with``) closes it.
    """
    from cairnflow.core.log import AsyncCheckpointLog

    _check_directory(url, create)
    store, prefix = open_async_store(url, **store_options)
    return AsyncCheckpointLog(store, prefix=prefix, serializer=serializer, cipher=cipher)
