"""Amazon S3 for asyncio, through aiobotocore: :mod:`cairnflow.savers.s3`'s backend, awaited.

aiobotocore runs botocore itself (its models, signing, retries and exceptions)
over aiohttp, so everything S3-specific is shared with the sync backend rather
than written again: the status table (:func:`cairnflow.savers.s3._failure`),
the write conditions, the per-attempt recorder that makes ``ambiguous`` exact
across botocore's retries, the invocation-id hook, the client options and the
check that the installed botocore can send ``If-None-Match``/``If-Match``.
What every backend shares (put-mode dispatch, key checks, the error and
ambiguity tables, the conditional-write probe and its hiding from listings) is
in :mod:`cairnflow.savers._base` and :mod:`cairnflow.savers._abase`.

The guarantees relied on are S3's, as in :mod:`cairnflow.savers.s3`:
``If-None-Match: *`` creates (412 when the key exists), ``If-Match`` CAS (412
stale, 404 missing), strongly consistent byte-ordered listings, and 409
``ConditionalRequestConflict`` meaning "not applied, retry".

One difference from botocore's own transport: aiobotocore reports a connection
that failed *after* the request was sent (``aiohttp.ClientOSError``, a reset)
as ``EndpointConnectionError``, which botocore keeps for connections never made.
Only an ``EndpointConnectionError`` wrapping ``aiohttp.ClientConnectorError`` (or
a DNS failure) is therefore read as "never sent" here; any other may have landed.

Bodies are written in one ``PutObject`` (S3 takes up to 5 GiB so): checkpoints are
small, and the multipart path of the sync backend is not repeated here.

The client belongs to the event loop it is first used on (aiohttp's connections
do); it is created on first use, or by ``await store.aopen()``, so constructing a
store makes no request.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, ClassVar

import aiohttp
from aiobotocore.config import AioConfig
from aiobotocore.httpsession import AIOHTTPSession
from aiobotocore.session import AioSession, get_session
from botocore import exceptions as bx

from cairnflow.core.store import ObjectInfo, StoredObject
from cairnflow.savers._abase import AsyncCloudStore, without_hidden_retry
from cairnflow.savers._base import Classified, Failure, Op
from cairnflow.savers.s3 import (
    _INVOCATION_HANDLER_ID,
    _TRACE_HANDLER_ID,
    CLIENT_OPTIONS,
    _failure,
    attempt_recorder,
    check_sdk_supports_conditions,
    condition,
    invocation_id,
    safe_endpoint,
    share_service_models,
)

if TYPE_CHECKING:
    from types_aiobotocore_s3.client import S3Client

__all__ = ["AsyncS3Store", "async_store_from_url"]


def _async_failure(exc: BaseException) -> Classified:
    """S3's status table (the sync backend's), with aiobotocore's connection errors read right."""
    if isinstance(exc, bx.EndpointConnectionError):
        cause = exc.kwargs.get("error")
        if not isinstance(cause, (aiohttp.ClientConnectorError, socket.gaierror)):
            # A reset or refusal after the request went out: it may have been applied.
            return Classified(Failure.LOST, None, f"{type(exc).__name__} ({type(cause).__name__})")
    return _failure(exc)


_record_attempt = attempt_recorder(_async_failure)


class _HTTPSession(AIOHTTPSession):
    """aiobotocore's HTTP session, with aiohttp's own resend of a PUT turned off.

    So every attempt is botocore's, seen by :func:`_record_attempt`
    (:func:`~cairnflow.savers._abase.without_hidden_retry` says why).
    """

    async def _get_session(self, proxy_url: Any) -> Any:
        session = await super()._get_session(proxy_url)  # type: ignore[misc]
        without_hidden_retry(session)
        return session


class AsyncS3Store(AsyncCloudStore):
    """One S3 bucket through the asyncio store seam (:class:`~cairnflow.core.store.AsyncObjectStore`).

    Pass your own entered aiobotocore S3 ``client`` (used as is, never closed
    here; the store registers its two botocore hooks on it, but cannot stop its
    aiohttp session from resending a PUT on its own, see
    :func:`~cairnflow.savers._abase.without_hidden_retry`), or an aiobotocore
    ``session``; otherwise ``aiobotocore.session.get_session()`` finds
    credentials, region and endpoint (``AWS_ENDPOINT_URL_S3``) the usual way.
    Options are those of :class:`cairnflow.savers.s3.S3Store` that apply to one
    ``PutObject`` per write.
    """

    _SDK_ERRORS: ClassVar[tuple[type[BaseException], ...]] = (bx.ClientError, bx.BotoCoreError)

    def __init__(
        self,
        bucket: str,
        *,
        client: S3Client | None = None,
        session: AioSession | None = None,
        endpoint_url: str | None = None,
        region_name: str | None = None,
        page_size: int = 1000,
        verify_conditional_writes: bool = True,
        probe_prefix: str = "",
    ) -> None:
        if not bucket or "/" in bucket:
            raise ValueError(f"not an S3 bucket name: {bucket!r}")
        if not 1 <= page_size <= 1000:
            raise ValueError("page_size must be between 1 and 1000 (S3's maximum)")
        if client is not None and (session, endpoint_url, region_name) != (None, None, None):
            raise ValueError("pass either client= or session=/endpoint_url=/region_name=, not both")
        self.bucket = bucket
        self.probe_prefix = probe_prefix
        self.page_size = page_size
        self.verify_conditional_writes = verify_conditional_writes
        self.url = f"s3://{bucket}"
        self._session = session
        self._endpoint_url = endpoint_url
        self._region_name = region_name
        self._client: S3Client | None = None
        self._owned: Any = None  # the context that created our own client, to close it
        self._opening = asyncio.Lock()
        if client is not None:
            self._adopt(client)
        self.endpoint = safe_endpoint(client.meta.endpoint_url if client is not None else endpoint_url)
        self.where = f"bucket {bucket!r} (prefix {probe_prefix!r}) at {self.endpoint}"
        self._init_probe(probe_prefix, enabled=verify_conditional_writes)

    def _adopt(self, client: S3Client) -> None:
        check_sdk_supports_conditions(client)
        client.meta.events.register("response-received.s3.*", _record_attempt, unique_id=_TRACE_HANDLER_ID)
        client.meta.events.register("before-call.s3.*", invocation_id, unique_id=_INVOCATION_HANDLER_ID)
        self._client = client

    async def client(self) -> S3Client:
        """The aiobotocore S3 client every request goes through (created on first use)."""
        if self._client is not None:  # after the first request, no lock
            return self._client
        return await self._open()

    async def _open(self) -> S3Client:
        async with self._opening:  # one client, however many tasks ask for it first
            client = self._client
            if client is None:
                session = self._session
                if session is None:
                    session = get_session()
                    share_service_models(session)
                context = session.create_client(
                    "s3",
                    endpoint_url=self._endpoint_url,
                    region_name=self._region_name,
                    config=AioConfig(http_session_cls=_HTTPSession, **CLIENT_OPTIONS),
                )
                with self._mapping(Op.GET, None):  # no credentials or region: an access error
                    client = await context.__aenter__()
                self._owned = context
                self._adopt(client)
                self.endpoint = safe_endpoint(client.meta.endpoint_url)
                self.where = f"bucket {self.bucket!r} (prefix {self.probe_prefix!r}) at {self.endpoint}"
            return client

    def __repr__(self) -> str:
        return f"AsyncS3Store(bucket={self.bucket!r}, endpoint={self.endpoint!r})"

    async def aopen(self) -> None:
        await self.client()

    async def aclose(self) -> None:
        owned, self._owned = self._owned, None
        if owned is not None:
            self._client = None
            await owned.__aexit__(None, None, None)

    _classify = staticmethod(_async_failure)  # S3's status table

    # ------------------------------------------------------------------ requests

    async def _write(self, key: str, data: bytes, op: Op, etag: str | None) -> str:
        client = await self.client()
        with self._mapping(op, key):
            resp = await client.put_object(Bucket=self.bucket, Key=key, Body=data, **condition(op, etag))
        return resp["ETag"]

    async def _read(self, key: str) -> StoredObject:
        client = await self.client()
        with self._mapping(Op.GET, key):
            resp = await client.get_object(Bucket=self.bucket, Key=key)
            async with resp["Body"] as body:
                data = await body.read()
        return StoredObject(data, resp["ETag"])

    async def _pages_of(self, args: dict[str, Any]) -> AsyncIterator[Any]:
        """``ListObjectsV2`` pages, one request each; ``args`` is re-read (and may change) per page."""
        client = await self.client()
        while True:
            with self._mapping(Op.LIST, args["Prefix"]):
                page = await client.list_objects_v2(Bucket=self.bucket, **args)
            yield page
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return
            args.pop("StartAfter", None)
            args["ContinuationToken"] = token

    async def _list(
        self, prefix: str, start_after: str | None, limit: int | None
    ) -> AsyncIterator[ObjectInfo]:
        args: dict[str, Any] = {"Prefix": prefix, "MaxKeys": min(self.page_size, limit or self.page_size)}
        if start_after is not None:
            args["StartAfter"] = start_after
        remaining = limit
        async for page in self._pages_of(args):
            for entry in page.get("Contents", []):
                yield ObjectInfo(entry["Key"], entry["Size"], entry.get("ETag"))
                if remaining is not None:
                    remaining -= 1
                    if remaining <= 0:
                        return
                    args["MaxKeys"] = min(self.page_size, remaining)

    async def list_prefixes(self, prefix: str) -> AsyncIterator[str]:
        """Common prefixes under ``prefix`` with ``Delimiter='/'``: one request per page."""
        async for page in self._pages_of({"Prefix": prefix, "Delimiter": "/", "MaxKeys": self.page_size}):
            for common in page.get("CommonPrefixes", []):
                yield common["Prefix"]

    async def _remove(self, key: str) -> None:
        client = await self.client()
        with self._mapping(Op.DELETE, key):
            await client.delete_object(Bucket=self.bucket, Key=key)


def async_store_from_url(bucket: str, prefix: str, **options: Any) -> AsyncS3Store:
    """``s3://bucket/prefix`` for asyncio: an :class:`AsyncS3Store` whose probe stays under ``prefix``.

    Credentials, region and endpoint come from the environment as for
    :func:`cairnflow.savers.s3.store_from_url`; ``options`` go to :class:`AsyncS3Store`.
    """
    options.setdefault("probe_prefix", prefix)
    return AsyncS3Store(bucket, **options)
