"""Google Cloud Storage for asyncio (``gs://bucket/prefix``), on gcloud-aio-storage.

gcloud-aio-storage is a thin asyncio client of the GCS JSON API (aiohttp, with
gcloud-aio-auth for Application Default Credentials). The requests are those of
:mod:`cairnflow.savers.gcs`, and so are their meanings: GCS's status table, the
spelling of conditions and generations are shared through
:mod:`cairnflow.savers._gcs_rules` (which imports neither SDK). What every backend
shares (put-mode dispatch, key checks, the error and ambiguity tables, the
conditional-write probe and its hiding from listings) is in
:mod:`cairnflow.savers._base` and :mod:`cairnflow.savers._abase`.

Requests
--------
* **put** is one multipart upload (``uploadType=multipart``, whatever the size)
  with ``ifGenerationMatch=0`` (create) or ``=<generation>`` (CAS); the answer's
  ``generation`` is the new version. The upload type is chosen on purpose:
  fake-gcs-server ignores ``ifGenerationMatch`` on a simple media upload (what
  gcloud-aio-storage sends without metadata) and on resumable ones, while it
  honours it on multipart uploads; real GCS honours it on all three.
* **get** is one ``alt=media`` GET; the generation comes from the
  ``x-goog-generation`` header of the same response, so body and version belong
  to one object version.
* **list** sends ``startOffset`` (inclusive: an exact match of ``start_after``
  is skipped by the scaffold, and one more name is asked for) and
  ``maxResults``; folders are a ``delimiter=/`` listing.

Retries and ambiguity
---------------------
gcloud-aio-storage does not retry: every failure reaches the mapping as it
happened, so ``ambiguous`` is exact without watching a retry policy (a 503 or
429 was not applied; a 408, another 5xx, a read timeout or a dropped connection
may have been). Retrying is the checkpoint protocol's decision, as for every
store. A connection that could not be made (``aiohttp.ClientConnectorError``,
a connect timeout) was never sent.

The aiohttp session belongs to the event loop it is first used on; it is created
on first use, so opening a store makes no request.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import aiohttp
from gcloud.aio.storage import Storage

from cairnflow.core.errors import PreconditionFailedError, StoreError
from cairnflow.core.store import ObjectInfo, StoredObject
from cairnflow.savers._abase import AsyncCloudStore
from cairnflow.savers._base import Classified, Failure, Op
from cairnflow.savers._gcs_rules import (
    LIST_FIELDS,
    MAX_PAGE_SIZE,
    PREFIX_FIELDS,
    GCSRules,
    generation,
    status_failure,
)

__all__ = ["AsyncGCSStore", "async_store_from_url"]

_DEFAULT_TIMEOUT = 60
_CONTENT_TYPE = "application/octet-stream"
# Connection failures before anything was sent. (aiohttp's ConnectionTimeoutError, 3.10+,
# is the connect phase of a timeout; a read timeout is not in here.)
_NOT_SENT: tuple[type[BaseException], ...] = (
    aiohttp.ClientConnectorError,
    *((aiohttp.ConnectionTimeoutError,) if hasattr(aiohttp, "ConnectionTimeoutError") else ()),
)


def _failure(exc: BaseException) -> Classified:
    """GCS's status table (shared with the sync backend), read from aiohttp's errors."""
    name = type(exc).__name__
    if isinstance(exc, aiohttp.ClientResponseError):
        return status_failure(exc.status, exc.message, name)
    if isinstance(exc, _NOT_SENT):
        return Classified(Failure.NOT_SENT, None, name)
    # Read timeouts, dropped connections, bodies cut short, answers that are not JSON.
    return Classified(Failure.LOST, None, name)


class AsyncGCSStore(GCSRules, AsyncCloudStore):
    """One GCS bucket through the asyncio store seam (:class:`~cairnflow.core.store.AsyncObjectStore`).

    Pass your own gcloud-aio ``storage`` (a ``gcloud.aio.storage.Storage``, used
    as is and never closed here), or let the store build one on first use:
    ``api_root`` sends requests to an emulator (without it,
    ``STORAGE_EMULATOR_HOST`` does, as for the SDK), ``service_file`` names a
    service-account key (else Application Default Credentials). ``timeout`` is
    each request's total time in seconds; ``page_size`` bounds each list request.
    """

    _SDK_ERRORS: ClassVar[tuple[type[BaseException], ...]] = (
        aiohttp.ClientError,
        asyncio.TimeoutError,
        json.JSONDecodeError,
    )

    def __init__(
        self,
        bucket: str,
        *,
        storage: Storage | None = None,
        api_root: str | None = None,
        service_file: str | None = None,
        page_size: int = MAX_PAGE_SIZE,
        timeout: int = _DEFAULT_TIMEOUT,
        verify_conditional_writes: bool = True,
        probe_prefix: str = "",
    ) -> None:
        if not bucket:
            raise ValueError("AsyncGCSStore needs a bucket name")
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be between 1 and {MAX_PAGE_SIZE}, not {page_size}")
        if storage is not None and (api_root, service_file) != (None, None):
            raise ValueError("pass either storage= or api_root=/service_file=, not both")
        self.bucket_name = bucket
        self.url = f"gs://{bucket}"
        self.where = f"bucket {bucket!r}"
        self.page_size = page_size
        self._timeout = timeout
        self._api_root = api_root
        self._service_file = service_file
        self._storage = storage
        self._owns_storage = storage is None
        self._init_probe(probe_prefix, enabled=verify_conditional_writes)

    def storage(self) -> Storage:
        """The gcloud-aio ``Storage`` every request goes through (built on first use, in the loop)."""
        if self._storage is None:
            self._storage = Storage(service_file=self._service_file, api_root=self._api_root)
        return self._storage

    async def aopen(self) -> None:
        self.storage()

    async def aclose(self) -> None:
        storage, self._storage = self._storage, None
        if storage is not None and self._owns_storage:
            await storage.close()
        elif storage is not None:
            self._storage = storage  # the user's own: left open, kept

    def __repr__(self) -> str:
        return f"AsyncGCSStore({self.bucket_name!r})"

    _classify = staticmethod(_failure)  # GCS's status table

    # ------------------------------------------------------------------ requests

    async def _write(self, key: str, data: bytes, op: Op, etag: str | None) -> str:
        wanted = generation(etag)
        if op is Op.UPDATE and wanted is None:
            # No object version of this store has that etag.
            raise PreconditionFailedError(f"not a GCS generation: {etag!r}", key=key, store=self.url)
        match = {Op.CREATE: 0, Op.UPDATE: wanted}.get(op)
        with self._mapping(op, key):
            answer = await self.storage().upload(
                self.bucket_name,
                key,
                data,
                content_type=_CONTENT_TYPE,
                parameters={} if match is None else {"ifGenerationMatch": str(match)},
                metadata={"contentType": _CONTENT_TYPE},  # a multipart upload: see the module docstring
                force_resumable_upload=False,
                timeout=self._timeout,
            )
        return self._version(answer.get("generation"), key)

    def _version(self, found: object, key: str) -> str:
        if found is None or not str(found).isdigit():
            raise StoreError(f"GCS answered without a generation ({found!r})", key=key, store=self.url)
        return str(found)

    async def _read(self, key: str) -> StoredObject:
        with self._mapping(Op.GET, key):
            stream = await self.storage().download_stream(self.bucket_name, key, timeout=self._timeout)
            async with stream as response:
                found = response.headers.get("x-goog-generation")
                data = await response.read()
        return StoredObject(bytes(data), self._version(found, key))

    async def _pages_of(self, params: dict[str, str], prefix: str) -> AsyncIterator[dict[str, Any]]:
        """The listing's pages, one request each (``params`` is updated with each page token)."""
        while True:
            with self._mapping(Op.LIST, prefix):
                page = await self.storage().list_objects(
                    self.bucket_name, params=params, timeout=self._timeout
                )
            yield page
            token = page.get("nextPageToken")
            if not token:
                return
            params["pageToken"] = token

    async def _list(
        self, prefix: str, start_after: str | None, limit: int | None
    ) -> AsyncIterator[ObjectInfo]:
        params = {"fields": LIST_FIELDS, "maxResults": str(self.page_size)}
        if prefix:
            params["prefix"] = prefix
        # Names under the prefix all sort after start_after when start_after < prefix.
        if start_after is not None and start_after >= prefix:
            params["startOffset"] = start_after  # inclusive: leave room for an exact match
            limit = None if limit is None else limit + 1
        if limit is not None:
            params["maxResults"] = str(min(MAX_PAGE_SIZE, max(self.page_size, limit)))
        remaining = limit
        async for page in self._pages_of(params, prefix):
            for item in page.get("items", []):
                found = item.get("generation")
                yield ObjectInfo(
                    item["name"], int(item.get("size") or 0), None if found is None else str(found)
                )
                if remaining is not None:
                    remaining -= 1
                    if remaining <= 0:
                        return

    async def list_prefixes(self, prefix: str) -> AsyncIterator[str]:
        """Common prefixes under ``prefix`` with ``delimiter=/``: one request per page."""
        params = {"delimiter": "/", "fields": PREFIX_FIELDS, "maxResults": str(self.page_size)}
        if prefix:
            params["prefix"] = prefix
        async for page in self._pages_of(params, prefix):
            for folder in sorted(page.get("prefixes", [])):
                yield folder

    async def _remove(self, key: str) -> None:
        with self._mapping(Op.DELETE, key):
            await self.storage().delete(self.bucket_name, key, timeout=self._timeout)


def async_store_from_url(bucket: str, prefix: str, **options: Any) -> AsyncGCSStore:
    """Open ``gs://bucket/prefix`` for asyncio. Options: those of :class:`AsyncGCSStore`.

    Without ``storage=`` or ``api_root=``, ``STORAGE_EMULATOR_HOST`` (when set) points
    it at an emulator, unauthenticated; otherwise Application Default Credentials
    (``GOOGLE_APPLICATION_CREDENTIALS`` or the metadata server) authenticate it.
    """
    if options.get("storage") is None and options.get("api_root") is None:
        host = os.environ.get("STORAGE_EMULATOR_HOST")
        if host:
            options["api_root"] = host if "://" in host else f"http://{host}"
    options.setdefault("probe_prefix", prefix)
    return AsyncGCSStore(bucket, **options)
