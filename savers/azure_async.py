"""Azure Blob Storage for asyncio, on the SDK's own aio client (``azure.storage.blob.aio``).

The aio client is the same SDK as :mod:`cairnflow.savers.azure`'s (same request
building, same ``azure.core`` exceptions, same retry policy, over aiohttp), so
everything Azure-specific is shared rather than written again: the status table
(:func:`cairnflow.savers.azure._failure`: 409 ``BlobAlreadyExists`` and 412 a
failed condition, ``InvalidBlockList`` busy...), the quoting of listed ETags, the
check that exactly one way to the account is given, and the account from the
environment. What every backend shares (put-mode dispatch, key checks, the error
and ambiguity tables, the conditional-write probe and its hiding from listings)
is in :mod:`cairnflow.savers._base` and :mod:`cairnflow.savers._abase`.

Requests and guarantees are those of the sync backend: ``overwrite=True`` with an
explicit ``If-None-Match: *`` / ``If-Match`` (never ``overwrite=False``, which
relabels any 412), one ranged GET whose ETag belongs to the body, listings in
byte order paged from the prefix's start (List Blobs has no exclusive start key).

One difference: the aio transport reports a connection dropped after sending as
``ServiceRequestError``, which the sync table reads as "never sent";
:func:`_async_failure` reads it as "may have landed" (see there).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any, ClassVar

import aiohttp
import yarl
from azure.core import MatchConditions
from azure.core.exceptions import AzureError, ServiceRequestError, ServiceRequestTimeoutError
from azure.core.pipeline.transport import AioHttpTransport, AsyncHttpTransport
from azure.storage.blob.aio import BlobPrefix, BlobServiceClient, ContainerClient  # aio's own BlobPrefix

from cairnflow.core.store import ObjectInfo, StoredObject
from cairnflow.savers._abase import AsyncCloudStore, without_hidden_retry
from cairnflow.savers._base import Classified, Failure, Op, current_attempts
from cairnflow.savers.azure import (
    DEFAULT_RETRY_TOTAL,
    MAX_PAGE_SIZE,
    _failure,
    account_from_env,
    container_client_for,
    quoted,
    status_failure,
)

__all__ = ["AsyncAzureBlobStore", "async_store_from_url"]


def _async_failure(exc: BaseException) -> Classified:
    """Azure's status table (the sync backend's), with the aiohttp transport's errors read right.

    azure-core's aiohttp transport raises ``ServiceRequestError`` ("not sent") for *any*
    aiohttp client error, a connection dropped after the request went out among them
    (the requests transport calls that ``ServiceResponseError``). Only a connection that
    was never made (``aiohttp.ClientConnectorError``, or a connect timeout) is "not sent"
    here; any other may have been applied.
    """
    if isinstance(exc, ServiceRequestError) and not isinstance(exc, ServiceRequestTimeoutError):
        cause = exc.inner_exception
        if isinstance(cause, aiohttp.ClientError) and not isinstance(cause, aiohttp.ClientConnectorError):
            return Classified(Failure.LOST, None, f"{type(exc).__name__} ({type(cause).__name__})")
    return _failure(exc)


class WatchedTransport(AsyncHttpTransport):  # type: ignore[type-arg]
    """An aio transport that records each attempt's outcome in the request's ``Attempts``.

    The storage SDK retries writes itself (a 503, a dropped connection...): a first
    attempt that landed with its answer lost, then a 503 on the retry, must still be
    reported as "may have been applied". The transport sees every attempt, so the
    stores built here send through one (S3's store watches botocore's hook instead).
    It also stops aiohttp from resending a PUT by itself, unseen
    (:func:`~cairnflow.savers._abase.without_hidden_retry`).
    """

    def __init__(self, inner: AsyncHttpTransport) -> None:  # type: ignore[type-arg]
        self._inner = inner

    async def send(self, request: Any, **kwargs: Any) -> Any:
        attempts = current_attempts()
        await self._inner.open()  # creates the aiohttp session on first use
        without_hidden_retry(getattr(self._inner, "session", None))
        url = request.url
        if isinstance(url, str) and "proxies" not in kwargs:
            # The signature covers the path exactly as the SDK quoted it; given a string,
            # aiohttp (yarl) would requote it and send e.g. "%3D" as "=", and the service
            # then refuses the request (403: azure-sdk-for-python#9783; every LangGraph key
            # holds "="). A URL marked as already encoded is sent byte for byte.
            request.url = yarl.URL(url, encoded=True)
        try:
            response = await self._inner.send(request, **kwargs)
        except AzureError as exc:
            if attempts is not None:
                attempts.record(_async_failure(exc).kind)
            raise
        finally:
            request.url = url  # the SDK's policies read it as the string they built
        if attempts is not None:
            status = int(response.status_code)
            code = response.headers.get("x-ms-error-code")
            attempts.record(None if status < 300 else status_failure(status, code))
        return response

    async def open(self) -> None:
        await self._inner.open()

    async def close(self) -> None:
        await self._inner.close()

    async def __aenter__(self) -> WatchedTransport:
        await self._inner.__aenter__()
        return self

    async def __aexit__(self, *args: Any) -> None:
        await self._inner.__aexit__(*args)


class AsyncAzureBlobStore(AsyncCloudStore):
    """Objects as block blobs in one container, through the asyncio store seam.

    Arguments as :class:`cairnflow.savers.azure.AzureBlobStore`, with the aio
    clients (``azure.storage.blob.aio.ContainerClient`` / ``BlobServiceClient``)
    and an aio credential (``azure.identity.aio``). Clients built here are closed
    by :meth:`aclose`; a client passed in never is. Clients built here send through a
    :class:`WatchedTransport` (wrapping ``client_options["transport"]`` if given), so
    that ``ambiguous`` accounts for every attempt of the SDK's retries; a client passed
    in is used as it is, and only its final failure is read.
    """

    _SDK_ERRORS: ClassVar[tuple[type[BaseException], ...]] = (AzureError,)
    _BUCKET: ClassVar[str] = "container"

    def __init__(
        self,
        container: str,
        *,
        container_client: ContainerClient | None = None,
        service_client: BlobServiceClient | None = None,
        connection_string: str | None = None,
        account_url: str | None = None,
        credential: Any = None,
        page_size: int = 1000,
        retry_total: int = DEFAULT_RETRY_TOTAL,
        client_options: Mapping[str, Any] | None = None,
        verify_conditional_writes: bool = True,
        probe_prefix: str = "",
    ) -> None:
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be between 1 and {MAX_PAGE_SIZE}, not {page_size}")
        options: dict[str, Any] = {"retry_total": retry_total, **(client_options or {})}
        # The SDK's defaults, which it applies only to a transport it builds itself.
        inner = options.pop("transport", None) or AioHttpTransport(connection_timeout=20, read_timeout=60)
        options["transport"] = WatchedTransport(inner)
        client, self._owned = container_client_for(
            BlobServiceClient,
            container,
            container_client=container_client,
            service_client=service_client,
            connection_string=connection_string,
            account_url=account_url,
            credential=credential,
            options=options,
        )
        self._container = client
        self.container = client.container_name
        self.account: str | None = client.account_name
        self.page_size = page_size
        self.url = f"az://{self.container}"
        self.where = f"container {self.container!r}" + (
            f" in storage account {self.account!r}" if self.account else ""
        )
        self._init_probe(probe_prefix, enabled=verify_conditional_writes)

    _classify = staticmethod(_async_failure)  # Azure's status table

    async def _write(self, key: str, data: bytes, op: Op, etag: str | None) -> str:
        # Always overwrite=True, the condition sent explicitly: as the sync store, and why.
        conditions: dict[Op, dict[str, Any]] = {
            Op.CREATE: {"match_condition": MatchConditions.IfMissing},
            Op.UPDATE: {"etag": etag, "match_condition": MatchConditions.IfNotModified},
        }
        with self._mapping(op, key):
            result = await self._container.get_blob_client(key).upload_blob(
                data, length=len(data), overwrite=True, **conditions.get(op, {})
            )
        return quoted(str(result["etag"]))

    async def _read(self, key: str) -> StoredObject:
        with self._mapping(Op.GET, key):
            downloader = await self._container.get_blob_client(key).download_blob()
            data = await downloader.readall()
        return StoredObject(bytes(data), quoted(str(downloader.properties.etag)))

    async def _list(
        self, prefix: str, start_after: str | None, limit: int | None
    ) -> AsyncIterator[ObjectInfo]:
        if start_after is not None:
            if start_after < prefix:
                start_after = None  # every name with the prefix sorts after it
            elif not start_after.startswith(prefix):
                return  # it sorts after every name with the prefix
        per_page = self.page_size
        if limit is not None and start_after is None:
            per_page = min(per_page, limit)
        pages = self._container.list_blobs(
            name_starts_with=prefix or None, results_per_page=per_page
        ).by_page()
        async for blobs in self._pages(pages, prefix):  # list() skips names up to start_after
            for blob in blobs:
                yield ObjectInfo(blob.name, int(blob.size or 0), quoted(blob.etag) if blob.etag else None)

    async def list_prefixes(self, prefix: str) -> AsyncIterator[str]:
        """Blob prefixes under ``prefix`` with delimiter ``/``: one request per page."""
        pages = self._container.walk_blobs(
            name_starts_with=prefix or None, delimiter="/", results_per_page=self.page_size
        ).by_page()
        async for items in self._pages(pages, prefix):
            for item in items:
                if isinstance(item, BlobPrefix):
                    yield str(item.name)

    async def _remove(self, key: str) -> None:
        with self._mapping(Op.DELETE, key):
            await self._container.get_blob_client(key).delete_blob()

    async def aclose(self) -> None:
        if self._owned is not None:
            await self._owned.close()

    def __repr__(self) -> str:
        return f"AsyncAzureBlobStore({self.container!r}, account={self.account!r})"


def async_store_from_url(bucket: str, prefix: str, **options: Any) -> AsyncAzureBlobStore:
    """``az://container/prefix`` for asyncio: as :func:`cairnflow.savers.azure.store_from_url`.

    The account comes from the same options or environment variables; an account
    URL without a credential authenticates with ``azure.identity.aio.DefaultAzureCredential``.
    """
    options = account_from_env(bucket, options, "azure.identity.aio")
    options.setdefault("probe_prefix", prefix)
    return AsyncAzureBlobStore(bucket, **options)
