"""Google Cloud Storage backend (``gs://bucket/prefix``), on ``google-cloud-storage``.

Guarantees relied on
--------------------
* **Create-only** is an upload with ``ifGenerationMatch=0``: GCS refuses it
  with 412 when any live object has the name. **Compare-and-swap** is an upload
  with ``ifGenerationMatch=<generation>``: 412 when the live object has
  another generation or none. GCS evaluates both atomically on the server; this
  module never checks existence first and never emulates a condition.
* The version ("etag" in :mod:`cairnflow.core.store`) of an object is its
  **generation**, as a decimal string. Generations are never reused for a name,
  so there is no ABA problem.
* GCS is strongly consistent for reads after writes, deletes and listings.
* ``get`` is **one request**: ``Blob.download_as_bytes()`` fills
  ``Blob.generation`` from the ``x-goog-generation`` header of the *same*
  response that carried the body (``Blob._extract_headers_from_download``), and
  a download that the SDK resumes after an error pins ``?generation=`` to the
  generation of its first response (``_media/requests/download.py``). Body and
  generation therefore always belong to the same object version. (Verified by
  reading google-cloud-storage 3.17 and on fake-gcs-server.)
* Listing is in ascending byte order of names. ``startOffset`` is inclusive,
  so an exact match of ``start_after`` is skipped here and one extra result is
  asked for; ``list(..., limit=n)`` sends ``maxResults`` so that ``limit=1``
  costs one request.

Upload-size threshold
---------------------
The SDK sends bodies of at most 8 MiB (``blob._MAX_MULTIPART_SIZE``, inclusive)
as one multipart request, and larger ones as a *resumable* upload (one request
to open the session, carrying the precondition, then the body in 100 MiB
chunks). The threshold is a private module constant: ``chunk_size`` only sizes
the chunks of a resumable upload and does not select the upload type, so no
public SDK setting sends larger bodies in one request. This module keeps the
SDK's choice rather than drive private upload classes. Real GCS takes the
precondition on the request that opens a resumable session and answers 412
when it fails (googleapis/google-cloud-java#201 saw it evaluated when the
upload completes; not re-verified here against real GCS). fake-gcs-server
ignores it, so create-only and CAS of bodies over 8 MiB are not refused on the
emulator (the tests mark that as an expected failure). Checkpoints are far
smaller.

Error mapping (all in :func:`_raise_mapped`)
--------------------------------------------
=======================================  ==========================================
GCS / SDK error                          cairnflow error
=======================================  ==========================================
412 on create-only upload                AlreadyExistsError
412 on CAS upload or conditional delete  PreconditionFailedError
404 on get / conditional delete          NotFoundError (StoreAccessError when the
                                         message says the bucket does not exist)
404 on upload or list                    StoreAccessError (the bucket is missing)
401, 403, DefaultCredentialsError,       StoreAccessError naming bucket and key
RefreshError
429, 503                                 TransientStoreError (ambiguous=False unless
                                         an earlier retried attempt may have landed)
408, 500, 502, 504, connection errors,   TransientStoreError (ambiguous=True for
timeouts, RetryError, DataCorruption     writes; connect timeouts count as unsent)
other 4xx                                StoreError
=======================================  ==========================================

Reads and listings are never ambiguous (``ambiguous=False``).

Retries
-------
Every SDK call gets an explicit ``retry=`` (by default the SDK's
``DEFAULT_RETRY``: 429, 408, 5xx and connection errors, exponential backoff,
120 s deadline). google-cloud-storage retries an upload only under the policy
it is given; its 2.x default for uploads was ``ConditionalRetryPolicy``
(``DEFAULT_RETRY_IF_GENERATION_SPECIFIED``: retry only when
``ifGenerationMatch`` is set), 3.x retries uploads by default. Every write this
module makes for the protocol carries ``ifGenerationMatch``, so each SDK retry
is itself conditional and cannot clobber anything:

* a create (``ifGenerationMatch=0``) whose first attempt landed but whose
  response was lost is retried, meets its own object and gets 412, surfaced as
  :class:`~cairnflow.core.errors.AlreadyExistsError`;
* a CAS whose first attempt landed is retried with the old generation and gets
  412, surfaced as :class:`~cairnflow.core.errors.PreconditionFailedError`.

Both are safe: the checkpoint protocol writes create-only and, on
``AlreadyExistsError``, reads the object back and compares bytes (every
checkpoint carries a unique writer token), so its own landed write counts as
success (``CheckpointLog._create``); a caller of ``Update`` must likewise
re-read after ``PreconditionFailedError``. This backend never tries to
recognise its own object. To report ``ambiguous`` exactly, each write watches
the errors its retry policy sees: a final 429/503 is reported as certainly not
applied only if no earlier attempt could have landed. ``OVERWRITE`` (tools and
tests only) is retried the same way; a repeat of an unconditional write
writes the same bytes again. Pass ``retry=None`` to disable SDK retries (each
failure is then reported at once). Deletes are retried too: a retried
unconditional delete that finds nothing is success; a retried conditional
delete whose first attempt landed reports
:class:`~cairnflow.core.errors.NotFoundError` (the object is gone either way).

Clients built here (not the user's own) have google-cloud-storage 3.x's
background bucket-metadata fetch switched off: it costs a bucket GET per
client, only to label OpenTelemetry spans, even with tracing disabled.

Write rate per object name
--------------------------
GCS allows about one write per second to one object name (more gets 429).
cairnflow never rewrites a hot object per step: checkpoint keys are immutable,
each checkpoint is a new name, written once.
"""

from __future__ import annotations

import http.client
import os
from collections.abc import Callable, Iterator
from typing import Any, NoReturn

import requests
import urllib3
from google.api_core import exceptions as gexc
from google.api_core.retry import Retry
from google.auth import exceptions as auth_exc
from google.auth.credentials import AnonymousCredentials, Credentials
from google.cloud import storage  # type: ignore[import-untyped,attr-defined]
from google.cloud.storage.exceptions import (  # type: ignore[import-untyped]
    DataCorruption,
    InvalidResponse,
)
from google.cloud.storage.retry import DEFAULT_RETRY  # type: ignore[import-untyped]

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

__all__ = ["EMULATOR_DEFAULT_PROJECT", "GCSStore", "store_from_url"]

#: Project used with ``STORAGE_EMULATOR_HOST`` when none is given.
EMULATOR_DEFAULT_PROJECT = "cairnflow-local"
#: The most objects one GCS list request returns.
MAX_PAGE_SIZE = 1000
_DEFAULT_TIMEOUT = 60.0
_LIST_FIELDS = "items(name,size,generation),nextPageToken"
_CONTENT_TYPE = "application/octet-stream"

# Every exception the SDK and its transport raise for a failed request.
_SDK_ERRORS: tuple[type[BaseException], ...] = (
    gexc.GoogleAPIError,  # GoogleAPICallError (HTTP status) and RetryError
    auth_exc.GoogleAuthError,
    InvalidResponse,
    DataCorruption,
    requests.RequestException,
    urllib3.exceptions.HTTPError,
    http.client.HTTPException,
    ConnectionError,
    TimeoutError,
)

# Statuses that mean "not applied": the service refused to start the request.
_UNAPPLIED_STATUSES = frozenset({429, 503})


def _status(exc: BaseException) -> int | None:
    if isinstance(exc, gexc.GoogleAPICallError):
        code = exc.code
        return int(code) if code is not None else None
    if isinstance(exc, InvalidResponse):
        status: int = exc.response.status_code
        return status
    return None


def _may_have_landed(exc: BaseException) -> bool:
    """Whether a failed write attempt may nevertheless have been applied."""
    status = _status(exc)
    if status is not None:
        return status == 408 or (status >= 500 and status not in _UNAPPLIED_STATUSES)
    # The connection was never made: nothing was sent.
    return not isinstance(exc, requests.ConnectTimeout)


class _Attempts:
    """Watches the errors a retry policy sees during one write."""

    def __init__(self) -> None:
        self.maybe_landed = False

    def policy(self, base: Retry | None) -> Retry | None:
        if base is None:
            return None
        # Retry exposes no public accessor for its predicate; wrap it to observe errors.
        base_predicate: Callable[[Exception], bool] | None = getattr(base, "_predicate", None)
        if base_predicate is None or not isinstance(base, Retry):
            # A policy we cannot watch (e.g. a ConditionalRetryPolicy): assume the worst.
            self.maybe_landed = True
            return base

        def predicate(exc: Exception) -> bool:
            retried = bool(base_predicate(exc))
            if retried and _may_have_landed(exc):
                self.maybe_landed = True
            return retried

        return base.with_predicate(predicate)


def _bucket_missing(exc: BaseException) -> bool:
    """Real GCS says so in the message of a 404 whose bucket is missing."""
    return "bucket does not exist" in str(exc).lower()


def _raise_mapped(
    exc: BaseException,
    *,
    op: str,
    store: GCSStore,
    key: str | None,
    attempts: _Attempts | None = None,
) -> NoReturn:
    """Translate one SDK/transport error into cairnflow's tree. The only mapping in this module.

    ``op`` is one of ``create``, ``update``, ``overwrite``, ``get``, ``list``,
    ``delete`` (unconditional) and ``delete_if`` (conditional).
    """
    where = f"gs://{store.bucket_name}"
    is_write = op in ("create", "update", "overwrite", "delete", "delete_if")
    final = exc.cause if isinstance(exc, gexc.RetryError) and exc.cause is not None else exc
    status = _status(final)

    if isinstance(final, (auth_exc.DefaultCredentialsError, auth_exc.RefreshError)):
        raise StoreAccessError(
            f"no usable Google credentials for {where} ({type(final).__name__})",
            key=key,
            store=store.url,
        ) from exc
    if status == 412:
        if op == "create":
            raise AlreadyExistsError("object exists", key=key, store=store.url) from exc
        if op in ("update", "delete_if"):
            raise PreconditionFailedError(
                "object generation changed (or object is gone)", key=key, store=store.url
            ) from exc
    if status == 404:
        if op in ("create", "update", "overwrite", "list") or _bucket_missing(final):
            raise StoreAccessError(
                f"bucket {store.bucket_name!r} does not exist (or is not visible)",
                key=key,
                store=store.url,
            ) from exc
        raise NotFoundError("no such object", key=key, store=store.url) from exc
    if status in (401, 403):
        reason = getattr(final, "message", "") or ""
        raise StoreAccessError(
            f"access to {where} denied (HTTP {status}: {str(reason)[:200]})",
            key=key,
            store=store.url,
        ) from exc
    if status is not None and status < 500 and status not in (408, 429):
        raise StoreError(f"GCS refused the request (HTTP {status})", key=key, store=store.url) from exc

    # Transient: 408, 429, 5xx, RetryError, transport failures, checksum mismatches.
    ambiguous = is_write and (_may_have_landed(final) or (attempts is not None and attempts.maybe_landed))
    what = f"HTTP {status}" if status is not None else type(final).__name__
    if isinstance(exc, gexc.RetryError):
        what += " after retries"
    raise TransientStoreError(
        f"GCS request failed ({what})", key=key, store=store.url, ambiguous=ambiguous
    ) from exc


def _generation(etag: str) -> int | None:
    """A store etag as a GCS generation; ``None`` if it cannot be one."""
    return int(etag) if etag.isdigit() else None


def _make_client(
    bucket: str,
    project: str | None,
    credentials: Credentials | None,
    client_options: dict[str, Any] | None,
) -> storage.Client:
    """A ``storage.Client`` built the way GCS users expect.

    With ``STORAGE_EMULATOR_HOST`` set (the SDK's own emulator switch, which
    also makes it send requests there) credentials default to anonymous and
    the project comes from ``project``, ``GOOGLE_CLOUD_PROJECT`` or
    :data:`EMULATOR_DEFAULT_PROJECT`. Otherwise Application Default
    Credentials are used, as ``storage.Client()`` does. ``client_options``
    (e.g. ``{"api_endpoint": ...}``) go to the client unchanged.
    """
    kwargs: dict[str, Any] = {"credentials": credentials, "client_options": client_options}
    if os.environ.get("STORAGE_EMULATOR_HOST"):
        project = project or os.environ.get("GOOGLE_CLOUD_PROJECT") or EMULATOR_DEFAULT_PROJECT
        if credentials is None:
            kwargs["credentials"] = AnonymousCredentials()  # type: ignore[no-untyped-call]
    if project is not None:
        kwargs["project"] = project
    try:
        client = storage.Client(**kwargs)
    except auth_exc.DefaultCredentialsError as exc:
        raise StoreAccessError(
            f"no Google credentials found for gs://{bucket} (set up Application Default "
            "Credentials, or pass client=)",
            store=f"gs://{bucket}",
        ) from exc
    # google-cloud-storage 3.x starts a background bucket GET on a client's first
    # request to each bucket, only to label OpenTelemetry spans (even with tracing
    # off). That is an extra billed request and a thread per client; the public
    # switch is a process-wide environment variable
    # (DISABLE_GCS_PYTHON_CLIENT_OTEL_BUCKET_METADATA), which a library must not
    # set, so it is switched off on the clients this module builds. A client
    # passed in by the user is left as the user configured it.
    if getattr(client, "_bucket_metadata_cache", None) is not None:
        client._bucket_metadata_cache = None
    return client


class GCSStore(ObjectStore):
    """One GCS bucket seen through the store seam.

    ``client`` is the user's own ``google.cloud.storage.Client`` (never closed
    here); without it one is built from the environment, ``project``,
    ``credentials`` and ``client_options`` (see :func:`store_from_url`).
    ``page_size`` bounds each list request of an unlimited listing (GCS
    returns at most 1000); a listing with ``limit`` asks for all it needs in
    one request where it can. ``retry`` is the ``google.api_core`` retry
    policy for every request (``None``: no SDK retries); ``timeout`` is the
    per-request HTTP timeout in seconds. The client is thread-safe and reused
    by every call.
    """

    def __init__(
        self,
        bucket: str,
        *,
        client: storage.Client | None = None,
        project: str | None = None,
        credentials: Credentials | None = None,
        client_options: dict[str, Any] | None = None,
        page_size: int = MAX_PAGE_SIZE,
        retry: Retry | None = DEFAULT_RETRY,
        timeout: float | tuple[float, float] = _DEFAULT_TIMEOUT,
        verify_conditional_writes: bool = True,
        probe_prefix: str = "",
    ) -> None:
        if not bucket:
            raise ValueError("GCSStore needs a bucket name")
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be between 1 and {MAX_PAGE_SIZE}, not {page_size}")
        if client is not None and (project, credentials, client_options) != (None, None, None):
            raise ValueError("pass either client= or project=/credentials=/client_options=")
        self.bucket_name = bucket
        self.url = f"gs://{bucket}"
        self.page_size = page_size
        self._owns_client = client is None
        self._client: storage.Client = (
            client if client is not None else _make_client(bucket, project, credentials, client_options)
        )
        self._bucket: storage.Bucket = self._client.bucket(bucket)
        self._retry = retry
        self._timeout = timeout
        self._probe = CreateOnlyProbe(probe_prefix, enabled=verify_conditional_writes)

    # ------------------------------------------------------------------ write

    def put(self, key: str, data: bytes, mode: PutMode = CREATE) -> str:
        # Before the first write: make sure the service really refuses a second create.
        self._probe.ensure(lambda k, b: self._put(k, b, CREATE), store=self.url)
        return self._put(key, data, mode)

    def _put(self, key: str, data: bytes, mode: PutMode) -> str:
        if not key:
            raise ValueError("empty key")
        if isinstance(mode, Create):
            op, if_generation_match = "create", 0
        elif isinstance(mode, Update):
            generation = _generation(mode.etag)
            if generation is None:
                # No object version of this store has that etag.
                raise PreconditionFailedError(f"not a GCS generation: {mode.etag!r}", key=key, store=self.url)
            op, if_generation_match = "update", generation
        elif isinstance(mode, Overwrite):
            op, if_generation_match = "overwrite", None
        else:
            raise TypeError(f"unknown put mode {mode!r}")

        blob = self._bucket.blob(key)  # chunk_size=None: single request up to 8 MiB
        attempts = _Attempts()
        try:
            blob.upload_from_string(
                bytes(data),
                content_type=_CONTENT_TYPE,
                if_generation_match=if_generation_match,
                retry=attempts.policy(self._retry),
                timeout=self._timeout,
            )
        except _SDK_ERRORS as exc:
            _raise_mapped(exc, op=op, store=self, key=key, attempts=attempts)
        generation = blob.generation
        if generation is None:
            raise StoreError("GCS upload response carried no generation", key=key, store=self.url)
        return str(generation)

    # ------------------------------------------------------------------ read

    def get(self, key: str) -> StoredObject:
        if not key:
            raise ValueError("empty key")
        blob = self._bucket.blob(key)
        try:
            data: bytes = blob.download_as_bytes(retry=self._retry, timeout=self._timeout)
        except _SDK_ERRORS as exc:
            _raise_mapped(exc, op="get", store=self, key=key)
        generation = blob.generation  # from this very response's x-goog-generation header
        if generation is None:
            raise StoreError("GCS download response carried no generation", key=key, store=self.url)
        return StoredObject(data, str(generation))

    def list(
        self, prefix: str, *, start_after: str | None = None, limit: int | None = None
    ) -> Iterator[ObjectInfo]:
        if limit is not None and limit <= 0:
            return
        # Keys below the prefix all sort after start_after when start_after < prefix.
        start_offset = start_after if start_after is not None and start_after >= prefix else None
        max_results = None
        page_size = self.page_size
        # The probe object is this store's own business: hidden from listings, with room
        # asked for it so that skipping it never costs another request.
        probe_in_range = self._probe.key.startswith(prefix) and (
            start_after is None or self._probe.key > start_after
        )
        if limit is not None:
            # startOffset is inclusive: leave room for an exact match, skipped below.
            max_results = (limit + 1 if start_offset is not None else limit) + probe_in_range
            page_size = min(MAX_PAGE_SIZE, max(page_size, max_results))
        iterator = self._client.list_blobs(
            self._bucket,
            prefix=prefix or None,
            start_offset=start_offset,
            max_results=max_results,
            page_size=page_size,
            fields=_LIST_FIELDS,
            retry=self._retry,
            timeout=self._timeout,
        )
        pages = iterator.pages
        count = 0
        while True:
            try:
                page = next(pages, None)
                blobs = [] if page is None else list(page)
            except _SDK_ERRORS as exc:
                _raise_mapped(exc, op="list", store=self, key=prefix)
            if page is None:
                return
            for blob in blobs:
                name: str = blob.name
                if (start_after is not None and name <= start_after) or self._probe.hides(name):
                    continue
                generation = blob.generation
                yield ObjectInfo(name, int(blob.size or 0), None if generation is None else str(generation))
                count += 1
                if limit is not None and count >= limit:
                    return

    def list_prefixes(self, prefix: str) -> Iterator[str]:
        """Common prefixes under ``prefix`` with ``delimiter='/'``: one request per page."""
        iterator = self._client.list_blobs(
            self._bucket,
            prefix=prefix or None,
            delimiter="/",
            page_size=self.page_size,
            fields="prefixes,nextPageToken",
            retry=self._retry,
            timeout=self._timeout,
        )
        pages = iterator.pages
        while True:
            try:
                page = next(pages, None)
                if page is not None:
                    list(page)  # consuming the page fills page.prefixes
            except _SDK_ERRORS as exc:
                _raise_mapped(exc, op="list", store=self, key=prefix)
            if page is None:
                return
            yield from sorted(page.prefixes)

    # ------------------------------------------------------------------ delete

    def delete(self, key: str, *, etag: str | None = None) -> None:
        if not key:
            raise ValueError("empty key")
        blob = self._bucket.blob(key)
        if etag is None:
            try:
                blob.delete(retry=self._retry, timeout=self._timeout)
            except gexc.NotFound as exc:
                if _bucket_missing(exc):
                    _raise_mapped(exc, op="delete", store=self, key=key)
                return  # already gone: unconditional delete is idempotent
            except _SDK_ERRORS as exc:
                _raise_mapped(exc, op="delete", store=self, key=key)
            return
        generation = _generation(etag)
        if generation is None:
            raise PreconditionFailedError(f"not a GCS generation: {etag!r}", key=key, store=self.url)
        try:
            blob.delete(if_generation_match=generation, retry=self._retry, timeout=self._timeout)
        except _SDK_ERRORS as exc:
            _raise_mapped(exc, op="delete_if", store=self, key=key)

    def close(self) -> None:
        if self._owns_client:
            self._client.close()


def store_from_url(bucket: str, prefix: str, **options: Any) -> GCSStore:
    """Open ``gs://bucket/prefix``. Options: those of :class:`GCSStore`.

    Without ``client=``: with ``STORAGE_EMULATOR_HOST`` set, an anonymous
    client on the emulator (project from ``project=``, ``GOOGLE_CLOUD_PROJECT``
    or ``cairnflow-local``); otherwise Application Default Credentials.
    The prefix is applied by the caller to every key.
    """
    options.setdefault("probe_prefix", prefix)  # keys arrive already prefixed; the probe sits beside them
    return GCSStore(bucket, **options)
