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

Error mapping
-------------
GCS's status table itself is shared with the asyncio backend (:mod:`cairnflow.savers._gcs_rules`).
What every backend shares (put-mode dispatch, key checks, the error and
ambiguity tables, the conditional-write probe and its hiding from listings) is
in :mod:`cairnflow.savers._base`; this module holds its requests and GCS's
status table (:func:`_failure`): 412 is a failed condition (``AlreadyExistsError``
on a create); 404 a missing object (``StoreAccessError`` on an upload or listing,
or when the message says the bucket does not exist); 401/403 and credential
errors access errors; 429 and 503 busy (not applied); 408, other 5xx, timeouts
and dropped connections may have been applied; a connect timeout was not sent.

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
delete that finds nothing is success.

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
from typing import Any, ClassVar

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

from cairnflow.core.errors import PreconditionFailedError, StoreAccessError, StoreError
from cairnflow.core.store import ObjectInfo, StoredObject
from cairnflow.savers._base import Attempts, Classified, CloudStore, Failure, Op
from cairnflow.savers._gcs_rules import (
    EMULATOR_DEFAULT_PROJECT,
    LIST_FIELDS,
    MAX_PAGE_SIZE,
    PREFIX_FIELDS,
    GCSRules,
    generation,
    status_failure,
)

__all__ = ["EMULATOR_DEFAULT_PROJECT", "GCSStore", "store_from_url"]

_DEFAULT_TIMEOUT = 60.0
_CONTENT_TYPE = "application/octet-stream"


def _status(exc: BaseException) -> int | None:
    if isinstance(exc, gexc.GoogleAPICallError):
        code = exc.code
        return int(code) if code is not None else None
    if isinstance(exc, InvalidResponse):
        status: int = exc.response.status_code
        return status
    return None


def _failure(exc: BaseException) -> Classified:
    """GCS's status table: what an SDK or transport error means."""
    retried = isinstance(exc, gexc.RetryError) and exc.cause is not None
    final = exc.cause if retried and isinstance(exc, gexc.RetryError) else exc
    name = type(final).__name__ + (" after retries" if retried else "")
    if isinstance(final, (auth_exc.DefaultCredentialsError, auth_exc.RefreshError)):
        return Classified(Failure.DENIED, None, f"{name}: no usable Google credentials")
    status = _status(final)
    if status is None:
        # A connect timeout never sent anything; any other transport failure may have.
        return Classified(
            Failure.NOT_SENT if isinstance(final, requests.ConnectTimeout) else Failure.LOST, None, name
        )
    return status_failure(status, str(final), name)


def _watched(base: Retry | None, attempts: Attempts) -> Retry | None:
    """``base``, wrapped so that every error it retries is recorded in ``attempts``."""
    if base is None:
        return None
    # Retry exposes no public accessor for its predicate; wrap it to observe errors.
    base_predicate: Callable[[Exception], bool] | None = getattr(base, "_predicate", None)
    if base_predicate is None or not isinstance(base, Retry):
        attempts.maybe_landed = True  # a policy we cannot watch: assume the worst
        return base

    def predicate(exc: Exception) -> bool:
        retried = bool(base_predicate(exc))
        if retried:
            attempts.record(_failure(exc).kind)
        return retried

    return base.with_predicate(predicate)


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
    # off): an extra billed request and a thread per client. The public switch is a
    # process-wide environment variable, which a library must not set, so it is
    # switched off on the clients built here; a user's own client is left alone.
    if getattr(client, "_bucket_metadata_cache", None) is not None:
        client._bucket_metadata_cache = None
    return client


class GCSStore(GCSRules, CloudStore):
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

    # Every exception the SDK and its transport raise for a failed request.
    _SDK_ERRORS: ClassVar[tuple[type[BaseException], ...]] = (
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
        self.where = f"bucket {bucket!r}"
        self.page_size = page_size
        self._owns_client = client is None
        self._client: storage.Client = (
            client if client is not None else _make_client(bucket, project, credentials, client_options)
        )
        self._bucket: storage.Bucket = self._client.bucket(bucket)
        self._retry = retry
        self._timeout = timeout
        self._init_probe(probe_prefix, enabled=verify_conditional_writes)

    _classify = staticmethod(_failure)  # its status table

    def _write(self, key: str, data: bytes, op: Op, etag: str | None) -> str:
        wanted = generation(etag)
        if op is Op.UPDATE and wanted is None:
            # No object version of this store has that etag.
            raise PreconditionFailedError(f"not a GCS generation: {etag!r}", key=key, store=self.url)
        blob = self._bucket.blob(key)  # chunk_size=None: single request up to 8 MiB
        with self._mapping(op, key) as attempts:
            blob.upload_from_string(
                data,
                content_type=_CONTENT_TYPE,
                if_generation_match={Op.CREATE: 0, Op.UPDATE: wanted}.get(op),
                retry=_watched(self._retry, attempts),
                timeout=self._timeout,
            )
        return self._generation_of(blob, key)

    def _generation_of(self, blob: Any, key: str) -> str:
        generation = blob.generation  # from the very response that carried the body
        if generation is None:
            raise StoreError("GCS response carried no generation", key=key, store=self.url)
        return str(generation)

    def _read(self, key: str) -> StoredObject:
        blob = self._bucket.blob(key)
        with self._mapping(Op.GET, key):
            data: bytes = blob.download_as_bytes(retry=self._retry, timeout=self._timeout)
        return StoredObject(data, self._generation_of(blob, key))

    def _list(self, prefix: str, start_after: str | None, limit: int | None) -> Iterator[ObjectInfo]:
        # Keys below the prefix all sort after start_after when start_after < prefix.
        start_offset = start_after if start_after is not None and start_after >= prefix else None
        max_results = None
        page_size = self.page_size
        if limit is not None:
            # startOffset is inclusive: leave room for an exact match (list() skips it).
            max_results = limit + 1 if start_offset is not None else limit
            page_size = min(MAX_PAGE_SIZE, max(page_size, max_results))
        iterator = self._client.list_blobs(
            self._bucket,
            prefix=prefix or None,
            start_offset=start_offset,
            max_results=max_results,
            page_size=page_size,
            fields=LIST_FIELDS,
            retry=self._retry,
            timeout=self._timeout,
        )
        for _, blobs in self._pages(iterator.pages, prefix):
            for blob in blobs:
                generation = blob.generation
                yield ObjectInfo(
                    blob.name, int(blob.size or 0), None if generation is None else str(generation)
                )

    def list_prefixes(self, prefix: str) -> Iterator[str]:
        """Common prefixes under ``prefix`` with ``delimiter='/'``: one request per page."""
        iterator = self._client.list_blobs(
            self._bucket,
            prefix=prefix or None,
            delimiter="/",
            page_size=self.page_size,
            fields=PREFIX_FIELDS,
            retry=self._retry,
            timeout=self._timeout,
        )
        for page, _ in self._pages(iterator.pages, prefix):  # consuming a page fills page.prefixes
            yield from sorted(page.prefixes)

    def _remove(self, key: str) -> None:
        with self._mapping(Op.DELETE, key):
            self._bucket.blob(key).delete(retry=self._retry, timeout=self._timeout)

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
