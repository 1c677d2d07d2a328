"""Azure Blob Storage backend (``az://container/prefix``), built on ``azure-storage-blob``.

Guarantees relied on
--------------------
* **Create-only is one conditional request.** ``put(key, data, CREATE)`` sends
  ``If-None-Match: *``; the service answers 409 ``BlobAlreadyExists`` when the
  blob exists and evaluates the condition atomically with the write.
* **Compare-and-swap.** ``put(key, data, Update(etag))`` and
  ``delete(key, etag=...)`` send ``If-Match: <etag>``; a stale or missing blob
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

Error mapping (all in :func:`_translate_error`)
-----------------------------------------------
========================================================  =========================================
Azure answer (operation)                                  cairnflow error
========================================================  =========================================
409 ``BlobAlreadyExists`` or any 412 (create)             ``AlreadyExistsError``
412 ``ConditionNotMet`` or 404 ``BlobNotFound`` (update)  ``PreconditionFailedError``
412 (delete with etag)                                    ``PreconditionFailedError``
404 ``BlobNotFound`` (get, delete with etag)              ``NotFoundError``
404 ``BlobNotFound`` (delete without etag)                success (already gone)
404 ``ContainerNotFound`` (any), 404 (list)               ``StoreAccessError`` naming the container
401, 403 (``AuthorizationFailure``, ...)                  ``StoreAccessError``
``ClientAuthenticationError`` without a response          ``StoreAccessError`` (credential failed)
412 (get of a > 32 MiB blob replaced mid-read)            ``TransientStoreError(ambiguous=False)``
400 ``InvalidBlockList`` (create, block upload)           ``TransientStoreError(ambiguous=False)``
408, 429, 503 ``ServerBusy``                              ``TransientStoreError(ambiguous=False)``
500 ``InternalError``/``OperationTimedOut``, other 5xx    ``TransientStoreError(ambiguous=write)``
``ServiceRequestError`` (request not sent)                ``TransientStoreError(ambiguous=False)``
``ServiceResponseError`` (sent, no or partial answer)     ``TransientStoreError(ambiguous=write)``
any other answer                                          ``StoreError`` (status and error code)
========================================================  =========================================

``ambiguous=write`` is true for puts and deletes, false for reads and
listings (nothing was written). The decision uses the operation (put mode)
and the HTTP status, never the SDK's exception class:
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
from typing import Any, Literal

from azure.core import MatchConditions
from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.storage.blob import BlobPrefix, BlobServiceClient, ContainerClient

from cairnflow.core.errors import (
    AlreadyExistsError,
    NotFoundError,
    PreconditionFailedError,
    StoreAccessError,
    StoreError,
    TransientStoreError,
)
from cairnflow.core.probe import CreateOnlyProbe
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

__all__ = ["AzureBlobStore", "store_from_url"]

#: The largest page List Blobs returns.
MAX_PAGE_SIZE = 5000
#: Retries the SDK makes for clients this backend builds (the SDK's own default is 3 too).
DEFAULT_RETRY_TOTAL = 3

_Op = Literal["create", "update", "overwrite", "get", "list", "delete", "delete_if"]
_WRITES: frozenset[_Op] = frozenset({"create", "update", "overwrite", "delete", "delete_if"})
# Answers that say the request was refused before it was applied.
_NOT_APPLIED_STATUSES = frozenset({408, 429, 503})


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


def _translate_error(
    exc: AzureError,
    *,
    op: _Op,
    key: str | None,
    store: str,
    container: str,
    account: str | None,
) -> StoreError:
    """Map one azure-core/azure-storage-blob exception to cairnflow's error tree.

    The only place this backend interprets SDK errors; see the module
    docstring for the table. The caller raises the result ``from exc``.
    """
    write = op in _WRITES
    where = f"container {container!r}" + (f" in storage account {account!r}" if account else "")

    if isinstance(exc, ClientAuthenticationError) and exc.response is None:
        # Raised by a credential (e.g. DefaultAzureCredential found none) or by
        # request signing; no request reached the service.
        return StoreAccessError(f"cannot authenticate to {where}: {type(exc).__name__}", key=key, store=store)
    if isinstance(exc, ServiceRequestError):
        # Connection refused, DNS failure, TLS failure, connect timeout: not sent.
        return TransientStoreError(
            f"request not sent ({type(exc).__name__})", key=key, store=store, ambiguous=False
        )
    if isinstance(exc, ServiceResponseError):
        # Sent, but the connection broke or timed out before a full answer.
        return TransientStoreError(
            f"no answer to the request ({type(exc).__name__})", key=key, store=store, ambiguous=write
        )

    status, code = _status_and_code(exc)
    detail = f"HTTP {status}" + (f" {code}" if code else "")

    if status is None:
        # An HttpResponseError without a response: e.g. a body cut short.
        return TransientStoreError(
            f"incomplete answer ({type(exc).__name__})", key=key, store=store, ambiguous=write
        )
    if status in (401, 403):
        return StoreAccessError(
            f"access denied to {where} ({detail}): check the credential and its permissions",
            key=key,
            store=store,
        )
    if status == 404 and (code == "ContainerNotFound" or op == "list"):
        return StoreAccessError(f"{where} does not exist ({detail})", key=key, store=store)
    if op == "create" and (status == 412 or (status == 409 and code in (None, "BlobAlreadyExists"))):
        return AlreadyExistsError(f"object exists ({detail})", key=key, store=store)
    if op == "update" and status in (404, 412):
        return PreconditionFailedError(f"object changed or no longer exists ({detail})", key=key, store=store)
    if op == "delete_if" and status == 412:
        return PreconditionFailedError(f"object version changed ({detail})", key=key, store=store)
    if status == 404:
        return NotFoundError(f"no such object ({detail})", key=key, store=store)
    if op == "get" and status == 412:
        # A multi-part download found the blob replaced between its requests.
        return TransientStoreError(
            f"object changed while being read ({detail})", key=key, store=store, ambiguous=False
        )
    if op == "create" and status == 400 and code == "InvalidBlockList":
        return TransientStoreError(
            f"block commit refused, nothing written ({detail})", key=key, store=store, ambiguous=False
        )
    if status in _NOT_APPLIED_STATUSES:
        return TransientStoreError(
            f"service busy or timed out ({detail})", key=key, store=store, ambiguous=False
        )
    if status >= 500:
        return TransientStoreError(f"service error ({detail})", key=key, store=store, ambiguous=write)
    return StoreError(f"request refused ({detail})", key=key, store=store)


def _quoted(etag: str) -> str:
    return etag if etag.startswith('"') else f'"{etag}"'


class AzureBlobStore(ObjectStore):
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
        options: dict[str, Any] = {"retry_total": retry_total, **(client_options or {})}
        self._owned: BlobServiceClient | ContainerClient | None = None
        if container_client is not None:
            if container and container_client.container_name != container:
                raise ValueError(
                    f"container {container!r} does not match the client's "
                    f"container {container_client.container_name!r}"
                )
            client = container_client
        else:
            if service_client is None:
                if connection_string is not None:
                    service_client = BlobServiceClient.from_connection_string(
                        connection_string, credential=credential, **options
                    )
                else:
                    assert account_url is not None
                    service_client = BlobServiceClient(account_url, credential=credential, **options)
                self._owned = service_client
            client = service_client.get_container_client(container)
        self._container = client
        self.container = client.container_name
        self.account: str | None = client.account_name
        self.page_size = page_size
        self.url = f"az://{self.container}"
        self._probe = CreateOnlyProbe(probe_prefix, enabled=verify_conditional_writes)

    # ------------------------------------------------------------------ helpers

    def _error(self, exc: AzureError, op: _Op, key: str | None) -> StoreError:
        return _translate_error(
            exc, op=op, key=key, store=self.url, container=self.container, account=self.account
        )

    @staticmethod
    def _check_key(key: str) -> None:
        if not key:
            raise ValueError("object keys must not be empty")

    # ------------------------------------------------------------------ ObjectStore

    def put(self, key: str, data: bytes, mode: PutMode = CREATE) -> str:
        # Before the first write: make sure the service really refuses a second create.
        self._probe.ensure(lambda k, b: self._put(k, b, CREATE), store=self.url)
        return self._put(key, data, mode)

    def _put(self, key: str, data: bytes, mode: PutMode) -> str:
        self._check_key(key)
        blob = self._container.get_blob_client(key)
        data = bytes(data)
        # Always overwrite=True: with overwrite=False the SDK relabels any 412 as
        # ResourceExistsError. The condition is sent explicitly instead.
        op: _Op
        kwargs: dict[str, Any]
        if isinstance(mode, Create):
            op, kwargs = "create", {"match_condition": MatchConditions.IfMissing}
        elif isinstance(mode, Update):
            op = "update"
            kwargs = {"etag": mode.etag, "match_condition": MatchConditions.IfNotModified}
        elif isinstance(mode, Overwrite):
            op, kwargs = "overwrite", {}
        else:
            raise TypeError(f"unknown put mode {mode!r}")
        try:
            result = blob.upload_blob(data, length=len(data), overwrite=True, **kwargs)
        except AzureError as exc:
            raise self._error(exc, op, key) from exc
        return _quoted(str(result["etag"]))

    def get(self, key: str) -> StoredObject:
        self._check_key(key)
        try:
            downloader = self._container.get_blob_client(key).download_blob()
            data = downloader.readall()
        except AzureError as exc:
            raise self._error(exc, "get", key) from exc
        etag = downloader.properties.etag
        return StoredObject(bytes(data), _quoted(str(etag)))

    def list(
        self, prefix: str, *, start_after: str | None = None, limit: int | None = None
    ) -> Iterator[ObjectInfo]:
        return self._list(prefix, start_after, limit)

    def _list(self, prefix: str, start_after: str | None, limit: int | None) -> Iterator[ObjectInfo]:
        if limit is not None and limit <= 0:
            return
        if start_after is not None:
            if start_after < prefix:
                start_after = None  # every name with the prefix sorts after it
            elif not start_after.startswith(prefix):
                return  # it sorts after every name with the prefix
        per_page = self.page_size
        if limit is not None and start_after is None:
            # Room for the hidden probe object, so that skipping it costs no extra request.
            per_page = min(per_page, limit + self._probe.key.startswith(prefix))
        pages = self._container.list_blobs(
            name_starts_with=prefix or None, results_per_page=per_page
        ).by_page()
        count = 0
        while True:
            try:
                page = next(pages, None)
                items = [] if page is None else [(b.name, b.size, b.etag) for b in page]
            except AzureError as exc:
                raise self._error(exc, "list", prefix) from exc
            if page is None:
                return
            for name, size, etag in items:
                if (start_after is not None and name <= start_after) or self._probe.hides(name):
                    continue
                yield ObjectInfo(name, int(size or 0), _quoted(etag) if etag else None)
                count += 1
                if limit is not None and count >= limit:
                    return

    def list_prefixes(self, prefix: str) -> Iterator[str]:
        """Blob prefixes under ``prefix`` with delimiter ``/``: one request per page."""
        pages = self._container.walk_blobs(
            name_starts_with=prefix or None, delimiter="/", results_per_page=self.page_size
        ).by_page()
        while True:
            try:
                page = next(pages, None)
                items = [] if page is None else list(page)
            except AzureError as exc:
                raise self._error(exc, "list", prefix) from exc
            if page is None:
                return
            for item in items:
                if isinstance(item, BlobPrefix):
                    yield str(item.name)

    def delete(self, key: str, *, etag: str | None = None) -> None:
        self._check_key(key)
        blob = self._container.get_blob_client(key)
        try:
            if etag is None:
                blob.delete_blob()
            else:
                blob.delete_blob(etag=etag, match_condition=MatchConditions.IfNotModified)
        except AzureError as exc:
            error = self._error(exc, "delete" if etag is None else "delete_if", key)
            if etag is None and type(error) is NotFoundError:
                return  # idempotent: already gone
            raise error from exc

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

    ``prefix`` is not needed here: keys arrive already prefixed.
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
                options["credential"] = _default_credential()
        else:
            raise StoreAccessError(
                "no Azure storage account configured: set AZURE_STORAGE_CONNECTION_STRING, "
                "AZURE_STORAGE_ACCOUNT_URL or AZURE_STORAGE_ACCOUNT, or pass service_client=",
                store=f"az://{bucket}",
            )
    options.setdefault("probe_prefix", prefix)
    return AzureBlobStore(bucket, **options)


def _default_credential() -> Any:
    try:
        # Imported by name: azure-identity is optional and may lack type information.
        identity = importlib.import_module("azure.identity")
    except ImportError as exc:
        from cairnflow.savers import MissingDependencyError

        raise MissingDependencyError(
            "az:// with AZURE_STORAGE_ACCOUNT_URL or AZURE_STORAGE_ACCOUNT authenticates with "
            "DefaultAzureCredential: pip install azure-identity, or set "
            "AZURE_STORAGE_CONNECTION_STRING instead"
        ) from exc
    return identity.DefaultAzureCredential()
