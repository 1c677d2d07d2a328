"""Azure Blob Storage backend (``az://container/prefix``), built on ``azure-storage-blob``.

Guarantees relied on
--------------------
* **Create-only is one conditional request.** ``put(key, data, CREATE)`` sends
  ``If-None-Match: *``; the service answers 409 ``BlobAlreadyExists`` when the
  blob exists and evaluates the condition atomically with the write.
* **Compare-and-swap.** ``put(key, data, Update(etag))``
  sends ``If-Match: <etag>``; a stale or missing blob
  answers 412 ``ConditionNotMet`` (404 ``BlobNotFound`` is treated the same way
  for updates).
* **Strong consistency** for reads and listings in the primary region; listings
  come back in ascending (byte) order of blob names.
* **ETags** are the quoted strings the service returns (``"0x8DC..."``). A
  listing returns them without quotes; this backend adds them so that
  ``ObjectInfo.etag``, ``StoredObject.etag`` and ``put``'s result compare equal.

Block uploads
-------------
``upload_blob`` sends a body of up to ``max_single_put_size`` (64 MiB by default)
as one Put Blob request. Above that it stages 4 MiB blocks (``max_block_size``)
with Put Block, which carries no condition (staged blocks are invisible and
have random ids, so racing writers cannot mix blocks), and then commits with Put
Block List, which carries the ``If-None-Match: *`` / ``If-Match`` condition.
The condition is therefore decided atomically by the commit; a refused commit
still costs the upload of every block. If a competing commit discards our
staged blocks first, the commit can be refused with 400 ``InvalidBlockList``;
nothing of ours landed, so that is mapped to ``TransientStoreError(ambiguous=False)``.

Reads
-----
``get`` is one ranged GET for bodies up to ``max_single_get_size`` (32 MiB); the
ETag comes from that same response. Larger bodies are read in further 4 MiB
GETs that carry ``If-Match`` on the first response's ETag, so the body and
ETag always belong to one version (a concurrent replacement surfaces as a
412, mapped to ``TransientStoreError(ambiguous=False)``). An empty blob costs
two GETs: the service refuses the range on an empty blob (416) and the SDK
then asks again without one.

Listing and ``start_after``
---------------------------
``list`` pages lazily through ``list_blobs(name_starts_with=prefix,
results_per_page=page_size)`` (``page_size`` at most 5000; default 1000).
With ``limit`` and no ``start_after`` inside the prefix, the first page asks
for only ``min(limit, page_size)`` names, so ``list(p, limit=1)`` costs one
request. The List Blobs API has no exclusive start key, and its continuation
markers are opaque, so ``start_after`` is applied by paging from the start of
the prefix and skipping: it costs ``ceil(n / page_size)`` requests for the
``n`` names under the prefix that sort at or before ``start_after`` before
the first result. (Newer SDKs accept ``start_from`` for a recent service
version; Azurite ignores it, so it cannot be tested here and is not used.)
When ``start_after`` sorts before the prefix nothing is skipped; when it
sorts after every name with the prefix, no request is sent.

Error mapping
-------------
What every backend shares (put-mode dispatch, key checks, the error and
ambiguity tables, the conditional-write probe and its hiding from listings) is
in :mod:`cairnflow.savers._base`; this module holds its requests and Azure's
status table (:func:`_failure`): 409 ``BlobAlreadyExists`` and any 412 are a
failed condition (``AlreadyExistsError`` on a create, ``PreconditionFailedError``
on an update; on a get, a blob replaced between ranged reads:
``TransientStoreError(ambiguous=False)``); 404 ``BlobNotFound`` a missing blob
(success for a delete); 404 ``ContainerNotFound`` (or any 404 of a listing), 401,
403 and a credential that failed without a response access errors naming the
container; 408, 429, 503 and 400 ``InvalidBlockList`` busy (not applied); other
5xx, ``ServiceResponseError`` and answers cut short may have been applied;
``ServiceRequestError`` was never sent; anything else is a ``StoreError``.

The decision uses the operation (put mode) and the HTTP status, never the
SDK's exception class:
``upload_blob(overwrite=False)`` relabels *any* 412 as ``ResourceExistsError``,
so this backend never uses ``overwrite=False``; it sends the condition itself
(``overwrite=True`` plus ``match_condition``), which produces exactly
``If-None-Match: *`` or ``If-Match: <etag>``. The error code comes from the
exception or the ``x-ms-error-code`` response header. Messages name the
container and account, never credentials, signatures or bodies.

Retries
-------
The storage SDK's ``ExponentialRetry`` retries *every* request, PUTs
included, on 408, 5xx (but 501/505), ``ServiceRequestError`` and
``ServiceResponseError`` (a connection dropped or timed out after the request
was sent). It waits 15 s + 3**n s (+-3 s) before retry n: about 18 s, 24 s,
42 s. Clients this backend builds pass ``retry_total`` explicitly (default 3;
0 turns SDK retries off); a client you pass in keeps its own policy. Default
client timeouts: 20 s to connect, 60 s per read. Consequences for conditional
writes (verified on Azurite through a fault-injecting proxy):

* a create whose answer was lost is retried and the retry gets 409: the caller
  sees ``AlreadyExistsError`` for what may be its own object;
* an update whose answer was lost is retried and gets 412:
  ``PreconditionFailedError`` although the update may have landed;
* a 503 ``ServerBusy`` (nothing applied) is retried and then succeeds.

This backend never retries a conditional write itself and never tries to
recognise its own object. That is safe because the checkpoint protocol in
:mod:`cairnflow.core` writes checkpoints create-only and, on
``AlreadyExistsError``, reads the object back and compares the bytes, which
carry a unique writer token: its own landed write counts as success, anyone
else's as a conflict. Callers that use ``Update`` themselves must likewise
read back after a ``PreconditionFailedError`` that may follow a lost answer.
Reads and listings are idempotent, so the SDK's retries are harmless there.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar, Final

from azure.core import MatchConditions
from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.storage.blob import BlobPrefix, BlobServiceClient, ContainerClient

from cairnflow.core.errors import StoreAccessError
from cairnflow.core.store import ObjectInfo, StoredObject
from cairnflow.savers._base import Classified, CloudStore, Failure, Op, by_status

__all__ = ["AzureBlobStore", "store_from_url"]

#: The largest page List Blobs returns.
MAX_PAGE_SIZE = 5000
#: Retries the SDK makes for clients this backend builds (the SDK's own default is 3 too).
DEFAULT_RETRY_TOTAL = 3

_CODES: Final = {
    "ContainerNotFound": Failure.NO_BUCKET,
    "BlobAlreadyExists": Failure.CONDITION,
    # A competing commit discarded our staged blocks: nothing of ours landed.
    "InvalidBlockList": Failure.BUSY,
}
_STATUSES: Final[dict[int, Failure]] = {
    401: Failure.DENIED,
    403: Failure.DENIED,
    404: Failure.MISSING,
    408: Failure.BUSY,  # Azure answers 408 before applying anything
    409: Failure.CONDITION,  # without a code; a 409 with any other code is refused
    412: Failure.CONDITION,
    429: Failure.BUSY,
    503: Failure.BUSY,  # ServerBusy
}


def _status_and_code(exc: AzureError) -> tuple[int | None, str | None]:
    """The HTTP status and the ``x-ms-error-code`` of an SDK error, where it has them."""
    response = getattr(exc, "response", None)
    status = getattr(exc, "status_code", None)
    if status is None and response is not None:
        status = getattr(response, "status_code", None)
    code: Any = getattr(exc, "error_code", None)
    if code is None and response is not None:
        headers = getattr(response, "headers", None) or {}
        code = headers.get("x-ms-error-code")
    if code is not None:
        code = str(getattr(code, "value", code))
    return (int(status) if status is not None else None), code


def _failure(exc: BaseException) -> Classified:
    """Azure's status table: what an azure-core/azure-storage-blob error means."""
    name = type(exc).__name__
    if isinstance(exc, ClientAuthenticationError) and exc.response is None:
        # Raised by a credential (e.g. DefaultAzureCredential found none) or by
        # request signing; no request reached the service.
        return Classified(Failure.DENIED, None, f"{name}: the credential failed")
    if isinstance(exc, ServiceRequestError):  # connection refused, DNS, TLS, connect timeout
        return Classified(Failure.NOT_SENT, None, name)
    if not isinstance(exc, AzureError) or isinstance(exc, ServiceResponseError):
        return Classified(Failure.LOST, None, name)  # sent, but no full answer
    status, code = _status_and_code(exc)
    if status is None:  # an HttpResponseError without a response: e.g. a body cut short
        return Classified(Failure.LOST, None, name)
    return Classified(status_failure(status, code), status, code or "")


def status_failure(status: int, code: str | None) -> Failure:
    """What an answer with this HTTP status and ``x-ms-error-code`` means."""
    if code in _CODES:
        return _CODES[code]
    if status == 409 and code:
        return Failure.REFUSED
    return by_status(status, _STATUSES)


def check_sources(
    container_client: Any, service_client: Any, connection_string: Any, account_url: Any
) -> None:
    """Refuse anything but exactly one way to reach the account (sync and asyncio stores alike)."""
    sources = [
        name
        for name, value in (
            ("container_client", container_client),
            ("service_client", service_client),
            ("connection_string", connection_string),
            ("account_url", account_url),
        )
        if value is not None
    ]
    if len(sources) != 1:
        raise ValueError(
            "pass exactly one of container_client, service_client, connection_string, "
            f"account_url (got {', '.join(sources) or 'none'})"
        )


def container_client_for(
    service_type: Any,
    container: str,
    *,
    container_client: Any,
    service_client: Any,
    connection_string: str | None,
    account_url: str | None,
    credential: Any,
    options: dict[str, Any],
) -> tuple[Any, Any]:
    """The container client a store talks to, and the service client it built for it (or None).

    ``service_type`` is the SDK's ``BlobServiceClient``, sync or ``aio``: the one rule
    for both stores of how the four ways of reaching an account are told apart. The
    store closes the service client it built, never one it was given.
    """
    check_sources(container_client, service_client, connection_string, account_url)
    if container_client is not None:
        if container and container_client.container_name != container:
            raise ValueError(
                f"container {container!r} does not match the client's "
                f"container {container_client.container_name!r}"
            )
        return container_client, None
    owned = None
    if service_client is None:
        if connection_string is not None:
            service_client = service_type.from_connection_string(
                connection_string, credential=credential, **options
            )
        else:
            assert account_url is not None
            service_client = service_type(account_url, credential=credential, **options)
        owned = service_client
    return service_client.get_container_client(container), owned


def quoted(etag: str) -> str:
    """An ETag as the service sends it in headers (listings give it without quotes)."""
    return etag if etag.startswith('"') else f'"{etag}"'


class AzureBlobStore(CloudStore):
    """Objects as block blobs in one Azure Blob Storage container.

    Pass exactly one of: ``container_client`` (used as is; its container is
    the store's), ``service_client`` (a ``BlobServiceClient``), a
    ``connection_string``, or an ``account_url`` with an optional
    ``credential`` (anything ``BlobServiceClient`` accepts). Clients built
    here get ``retry_total`` retries and ``client_options`` (passed to
    ``BlobServiceClient``, e.g. ``read_timeout``, ``initial_backoff``,
    ``transport``); they are built once and reused by every call, and closed
    by :meth:`close`. A client passed in is never closed by the store.
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

    _classify = staticmethod(_failure)  # its status table

    def _write(self, key: str, data: bytes, op: Op, etag: str | None) -> str:
        # Always overwrite=True: with overwrite=False the SDK relabels any 412 as
        # ResourceExistsError. The condition is sent explicitly instead.
        conditions: dict[Op, dict[str, Any]] = {
            Op.CREATE: {"match_condition": MatchConditions.IfMissing},
            Op.UPDATE: {"etag": etag, "match_condition": MatchConditions.IfNotModified},
        }
        condition = conditions.get(op, {})
        with self._mapping(op, key):
            result = self._container.get_blob_client(key).upload_blob(
                data, length=len(data), overwrite=True, **condition
            )
        return quoted(str(result["etag"]))

    def _read(self, key: str) -> StoredObject:
        with self._mapping(Op.GET, key):
            downloader = self._container.get_blob_client(key).download_blob()
            data = downloader.readall()
        return StoredObject(bytes(data), quoted(str(downloader.properties.etag)))

    def _list(self, prefix: str, start_after: str | None, limit: int | None) -> Iterator[ObjectInfo]:
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
        for _, blobs in self._pages(pages, prefix):  # list() skips names up to start_after
            for blob in blobs:
                yield ObjectInfo(blob.name, int(blob.size or 0), quoted(blob.etag) if blob.etag else None)

    def list_prefixes(self, prefix: str) -> Iterator[str]:
        """Blob prefixes under ``prefix`` with delimiter ``/``: one request per page."""
        pages = self._container.walk_blobs(
            name_starts_with=prefix or None, delimiter="/", results_per_page=self.page_size
        ).by_page()
        for _, items in self._pages(pages, prefix):
            yield from (str(item.name) for item in items if isinstance(item, BlobPrefix))

    def _remove(self, key: str) -> None:
        with self._mapping(Op.DELETE, key):
            self._container.get_blob_client(key).delete_blob()

    def close(self) -> None:
        if self._owned is not None:
            self._owned.close()

    def __repr__(self) -> str:
        return f"AzureBlobStore({self.container!r}, account={self.account!r})"


def store_from_url(bucket: str, prefix: str, **options: Any) -> AzureBlobStore:
    """Open ``az://<bucket>/<prefix>``: ``bucket`` is the container.

    ``options`` go to :class:`AzureBlobStore` (``container_client``,
    ``service_client``, ``connection_string``, ``account_url``, ``credential``,
    ``page_size``, ``retry_total``, ``client_options``). Without a client,
    connection string or account URL among them, the account comes from the
    environment, as the Azure tools do:

    1. ``AZURE_STORAGE_CONNECTION_STRING``;
    2. else ``AZURE_STORAGE_ACCOUNT_URL``, or ``AZURE_STORAGE_ACCOUNT`` as
       ``https://<account>.blob.core.windows.net``, with the ``credential``
       option or else ``DefaultAzureCredential`` (needs ``azure-identity``).

    ``prefix`` keeps the conditional-write probe beside the keys, which arrive already prefixed.
    """
    options = account_from_env(bucket, options, "azure.identity")
    options.setdefault("probe_prefix", prefix)
    return AzureBlobStore(bucket, **options)


def account_from_env(bucket: str, options: dict[str, Any], identity: str) -> dict[str, Any]:
    """``options``, completed from the environment where they name no client, string or URL.

    ``identity`` is the module whose ``DefaultAzureCredential`` authenticates an account
    URL: ``azure.identity``, or ``azure.identity.aio`` for the asyncio store.
    """
    options = dict(options)
    if not any(
        options.get(name) is not None
        for name in ("container_client", "service_client", "connection_string", "account_url")
    ):
        connection_string = os.environ.get("AZURE_STORAGE_CONNECTION_STRING")
        account_url = os.environ.get("AZURE_STORAGE_ACCOUNT_URL")
        account = os.environ.get("AZURE_STORAGE_ACCOUNT")
        if connection_string:
            options["connection_string"] = connection_string
        elif account_url or account:
            options["account_url"] = account_url or f"https://{account}.blob.core.windows.net"
            if options.get("credential") is None:
                options["credential"] = _default_credential(identity)
        else:
            raise StoreAccessError(
                "no Azure storage account configured: set AZURE_STORAGE_CONNECTION_STRING, "
                "AZURE_STORAGE_ACCOUNT_URL or AZURE_STORAGE_ACCOUNT, or pass service_client=",
                store=f"az://{bucket}",
            )
    return options


def _default_credential(module: str) -> Any:
    try:
        # Imported by name: azure-identity is optional and may lack type information.
        identity = importlib.import_module(module)
    except ImportError as exc:
        from cairnflow.savers import MissingDependencyError

        raise MissingDependencyError(
            "az:// with AZURE_STORAGE_ACCOUNT_URL or AZURE_STORAGE_ACCOUNT authenticates with "
            "DefaultAzureCredential: pip install azure-identity, or set "
            "AZURE_STORAGE_CONNECTION_STRING instead"
        ) from exc
    return identity.DefaultAzureCredential()
