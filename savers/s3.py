"""Amazon S3 (and S3-compatible stores) as a cairnflow object store, through boto3.

This is the only module that imports boto3/botocore; ``import cairnflow`` and
``open_store("file://...")`` never do.

What S3 guarantees, and what this backend relies on
---------------------------------------------------
* **Create-only writes**: ``PutObject`` and ``CompleteMultipartUpload`` with
  ``If-None-Match: *`` fail with 412 ``PreconditionFailed`` when the key exists.
* **Compare-and-swap**: ``PutObject``/``CompleteMultipartUpload`` with
  ``If-Match: <etag>`` fail with 412 when the current ETag differs and with 404
  ``NoSuchKey`` when there is no object; ``DeleteObject`` takes ``If-Match`` too.
* **Strong read-after-write consistency** for GET and LIST (since December 2020).
* **LIST in ascending UTF-8 byte order** for general-purpose buckets.
  Directory buckets (S3 Express One Zone) do *not* list in order: do not use
  them with cairnflow.
* A 409 ``ConditionalRequestConflict`` means a conflicting operation ran at the
  same time and this request **did not** take effect; AWS documents "retry".

ETags are kept exactly as S3 returns them, *with* their double quotes, in
every result (``put``, ``get`` and ``list``), and are sent back unchanged.

Error mapping (the one place is :meth:`S3Store._map_error`)
-----------------------------------------------------------
=============================================  ==========================================
S3 / botocore                                  cairnflow
=============================================  ==========================================
412 on create-only write                       AlreadyExistsError
412 on update or conditional delete            PreconditionFailedError
404 NoSuchKey on update (``If-Match``)         PreconditionFailedError
404 NoSuchKey on get / conditional delete      NotFoundError
404 NoSuchBucket; 403; AccessDenied,           StoreAccessError (names bucket and prefix)
InvalidAccessKeyId, SignatureDoesNotMatch,
ExpiredToken, ...; NoCredentialsError & co.
501 NotImplemented on a conditional write      ConditionalWritesUnsupportedError
409 ConditionalRequestConflict (any 409)       TransientStoreError(ambiguous=False)
429, 503 SlowDown / ServiceUnavailable,        TransientStoreError(ambiguous=False)
400 RequestTimeout
500, 502, 504 and other 5xx                    TransientStoreError(ambiguous=True for writes)
ReadTimeoutError, ConnectionClosedError,       TransientStoreError(ambiguous=True for writes)
other HTTP client errors
EndpointConnectionError, ConnectTimeoutError,  TransientStoreError(ambiguous=False)
ProxyConnectionError (never connected)
anything else from S3                          StoreError
=============================================  ==========================================

"ambiguous=False" above is for the *final* attempt; botocore may have made
several (see below). A write is reported ambiguous when *any* attempt of the
call may have been applied: every attempt's outcome is recorded through
botocore's ``response-received`` event, so a 503 that follows a dropped
connection is reported as ``ambiguous=True``. Reads and lists are never
ambiguous.

Retries
-------
Clients built here use botocore's ``standard`` retry mode (3 attempts,
exponential backoff with jitter) and a pool of 32 connections. botocore
retries *every* operation the same way, conditional writes included: after a
timeout, a dropped connection, a 500/502/503/504 or a throttling answer it
sends the same ``PutObject`` (with the same condition header) again. This
backend adds no retries of its own. Two consequences, both safe:

* a first attempt that was applied but whose answer was lost makes the retry
  fail its own condition: the caller sees ``AlreadyExistsError`` (create) or
  ``PreconditionFailedError`` (update) for a write that actually landed;
* a condition can never be *bypassed* by a retry: every attempt carries it.

So a conditional write's error never proves that nothing was written. The core
protocol layer therefore reads the object back after any failed or ambiguous
conditional write and compares bytes (each checkpoint body carries a unique
writer token); that is the one place where "was it mine?" is decided. The
backend never guesses.

The conditional-write probe
---------------------------
Some S3-compatible stores and gateways accept ``If-None-Match``/``If-Match``
and silently ignore them, which would let two writers both "win". Unless
``verify_conditional_writes=False``, each store object, lazily before its
first write (thread-safe, once), writes the key ``<probe_prefix>.cairnflow-probe``
create-only: a 412 proves the store evaluates the condition (the steady state:
one request). If that write was accepted (the key was new), a second
create-only write of the same key must then be refused with 412; if it is
accepted too, :class:`~cairnflow.core.errors.ConditionalWritesUnsupportedError`
is raised. Before the first ``Update`` or conditional delete, one more write
to the probe key with an ``If-Match`` that cannot match must be refused too.
``store_from_url`` passes the URL's prefix as ``probe_prefix``, so the probe
stays inside the prefix the credentials are scoped to. The probe object is
tiny, is hidden from this store's listings, and may be deleted at any time (the
next probe re-creates it).

Large objects
-------------
Bodies up to ``multipart_threshold`` (default 64 MiB) go in one ``PutObject``.
Larger ones are uploaded by hand as a multipart upload (parts of
``multipart_part_size``, default 16 MiB, grown as needed to stay within 10,000
parts; each part with a CRC32 checksum declared on ``CreateMultipartUpload``),
and the condition goes on ``CompleteMultipartUpload`` (``If-None-Match: *``
or ``If-Match``); nothing is visible before it. On any failure the upload is
aborted (best effort; a bucket lifecycle rule for incomplete multipart uploads
is still recommended). boto3's ``upload_file``/``upload_fileobj`` are not used:
they refuse the condition arguments.
"""

from __future__ import annotations

import contextlib
import threading
import urllib.parse
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, Final, Literal

import boto3
import boto3.session
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    CredentialRetrievalError,
    EndpointConnectionError,
    FlexibleChecksumError,
    HTTPClientError,
    IncompleteReadError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    ProxyConnectionError,
    ResponseStreamingError,
    SSOError,
    TokenRetrievalError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from cairnflow.core.errors import (
    AlreadyExistsError,
    ConditionalWritesUnsupportedError,
    NotFoundError,
    PreconditionFailedError,
    StoreAccessError,
    StoreError,
    TransientStoreError,
)
from cairnflow.core.probe import PROBE_SUFFIX
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

if TYPE_CHECKING:
    from types_boto3_s3.client import S3Client
    from types_boto3_s3.type_defs import CompletedPartTypeDef

__all__ = [
    "DEFAULT_MULTIPART_PART_SIZE",
    "DEFAULT_MULTIPART_THRESHOLD",
    "PROBE_SUFFIX",
    "S3Store",
    "default_client_config",
    "store_from_url",
]

MiB: Final = 1024 * 1024
#: Bodies larger than this are uploaded as multipart uploads.
DEFAULT_MULTIPART_THRESHOLD: Final = 64 * MiB
#: Part size of multipart uploads (S3's minimum is 5 MiB, its maximum 5 GiB).
DEFAULT_MULTIPART_PART_SIZE: Final = 16 * MiB
_MIN_PART_SIZE: Final = 5 * MiB
_MAX_SINGLE_PUT: Final = 5 * 1024 * MiB
_MAX_PARTS: Final = 10_000
#: The probe object's key is ``probe_prefix + PROBE_SUFFIX`` (the one name every backend's probe uses).
_PROBE_BODY: Final = b"cairnflow conditional-write probe; safe to delete\n"
# An ETag no object can have (S3 ETags are hex digests), for the If-Match probe.
_NEVER_MATCHING_ETAG: Final = '"cairnflow-probe-etag-that-never-matches"'

_ACCESS_CODES: Final = frozenset(
    {
        "AccessDenied",
        "AccountProblem",
        "AllAccessDisabled",
        "AuthorizationHeaderMalformed",
        "ExpiredToken",
        "Forbidden",
        "InvalidAccessKeyId",
        "InvalidBucketName",
        "InvalidToken",
        "NoSuchBucket",
        "PermanentRedirect",
        "SignatureDoesNotMatch",
        "TokenRefreshRequired",
    }
)
_THROTTLE_CODES: Final = frozenset(
    {
        "BandwidthLimitExceeded",
        "RequestLimitExceeded",
        "RequestThrottled",
        "ServiceUnavailable",
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "TooManyRequests",
        "TooManyRequestsException",
    }
)
# Errors raised before a request could be sent (or while connecting): never applied.
_NOT_SENT: Final = (EndpointConnectionError, ConnectTimeoutError, ProxyConnectionError)
_CREDENTIAL_ERRORS: Final = (
    NoCredentialsError,
    PartialCredentialsError,
    CredentialRetrievalError,
    TokenRetrievalError,
    SSOError,
    NoRegionError,
)
_SDK_ERRORS: Final = (ClientError, BotoCoreError)

# What a request was doing, for the error mapping.
_Kind = Literal["create", "update", "overwrite", "get", "list", "delete", "delete-if-match"]


def default_client_config() -> Config:
    """The botocore config of clients this module builds: pooled, standard retries."""
    return Config(
        max_pool_connections=32,
        retries={"mode": "standard", "total_max_attempts": 3},
        connect_timeout=10,
        read_timeout=60,
    )


# --------------------------------------------------------------------------- attempt tracing
#
# botocore may send one call several times. To tell whether *any* attempt of a
# write may have been applied, a handler on the client's "response-received"
# event records each attempt's outcome into a list owned by the calling thread
# (botocore sends synchronously on the caller's thread).

_trace_local = threading.local()
_TRACE_HANDLER_ID: Final = "cairnflow-s3-attempt-trace"


def _attempt_may_have_landed(exception: BaseException | None, status: int | None) -> bool:
    """Whether one attempt that ended like this may have been applied by S3."""
    if exception is not None:
        return not isinstance(exception, _NOT_SENT)
    if status is None:
        return True
    if 200 <= status < 300:
        return True
    # 4xx: refused; 501: not implemented; 503: throttled before any work.
    return status >= 500 and status not in (501, 503)


def _record_attempt(
    exception: BaseException | None = None,
    response_dict: Mapping[str, Any] | None = None,
    **_: Any,
) -> None:
    trace: list[bool] | None = getattr(_trace_local, "trace", None)
    if trace is None:
        return
    status = response_dict.get("status_code") if response_dict else None
    trace.append(_attempt_may_have_landed(exception, status if isinstance(status, int) else None))


@contextlib.contextmanager
def _attempts() -> Iterator[list[bool]]:
    """Collect, per attempt of the calls made inside, whether it may have been applied."""
    previous = getattr(_trace_local, "trace", None)
    trace: list[bool] = []
    _trace_local.trace = trace
    try:
        yield trace
    finally:
        _trace_local.trace = previous


def _safe_endpoint(url: str | None) -> str:
    """An endpoint URL fit for messages: scheme, host and port only."""
    if not url:
        return "the default S3 endpoint"
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or "?"
    return f"{parts.scheme}://{host}{f':{parts.port}' if parts.port else ''}"


# --------------------------------------------------------------------------- the store


class S3Store(ObjectStore):
    """One S3 bucket seen through cairnflow's store seam.

    Pass your own boto3 S3 ``client`` (used as is, including its retry
    config), or a boto3 ``session`` to build the client from; otherwise a new
    ``boto3.session.Session()`` reads credentials and region the usual way
    (environment, ``~/.aws``, instance roles, ...; ``AWS_ENDPOINT_URL_S3`` or
    ``endpoint_url`` for S3-compatible stores). The client is built once and
    shared by all threads. On a client you pass, the store registers one
    ``response-received`` event handler (a no-op outside the store's own
    calls) to see each retry attempt.
    """

    def __init__(
        self,
        bucket: str,
        *,
        client: S3Client | None = None,
        session: boto3.session.Session | None = None,
        endpoint_url: str | None = None,
        region_name: str | None = None,
        page_size: int = 1000,
        verify_conditional_writes: bool = True,
        probe_prefix: str = "",
        multipart_threshold: int = DEFAULT_MULTIPART_THRESHOLD,
        multipart_part_size: int = DEFAULT_MULTIPART_PART_SIZE,
    ) -> None:
        if not bucket or "/" in bucket:
            raise ValueError(f"not an S3 bucket name: {bucket!r}")
        if not 1 <= page_size <= 1000:
            raise ValueError("page_size must be between 1 and 1000 (S3's maximum)")
        if multipart_part_size < _MIN_PART_SIZE:
            raise ValueError("multipart_part_size must be at least 5 MiB (S3's minimum part size)")
        if not 0 < multipart_threshold <= _MAX_SINGLE_PUT:
            raise ValueError("multipart_threshold must be between 1 byte and 5 GiB")
        if client is not None and (
            session is not None or endpoint_url is not None or region_name is not None
        ):
            raise ValueError("pass either client= or session=/endpoint_url=/region_name=, not both")
        self.bucket = bucket
        self.probe_prefix = probe_prefix
        self.page_size = page_size
        self.verify_conditional_writes = verify_conditional_writes
        self.multipart_threshold = multipart_threshold
        self.multipart_part_size = multipart_part_size
        self.url = f"s3://{bucket}"
        self._owns_client = client is None
        if client is None:
            session = session if session is not None else boto3.session.Session()
            client = session.client(
                "s3",
                endpoint_url=endpoint_url,
                region_name=region_name,
                config=default_client_config(),
            )
        self._client: S3Client = client
        self._check_sdk_supports_conditions()
        # One handler per client (the unique id makes re-registration a no-op).
        client.meta.events.register("response-received.s3.*", _record_attempt, unique_id=_TRACE_HANDLER_ID)
        self._probe_lock = threading.Lock()
        self._create_probe_done = not verify_conditional_writes
        self._match_probe_done = not verify_conditional_writes
        self._probe_failure: str | None = None

    @property
    def client(self) -> S3Client:
        """The boto3 S3 client every request goes through."""
        return self._client

    @property
    def probe_key(self) -> str:
        return f"{self.probe_prefix}{PROBE_SUFFIX}"

    @property
    def endpoint(self) -> str:
        """The endpoint, safe for messages (no credentials, no path)."""
        return _safe_endpoint(self._client.meta.endpoint_url)

    def __repr__(self) -> str:
        return f"S3Store(bucket={self.bucket!r}, endpoint={self.endpoint!r})"

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    def _check_sdk_supports_conditions(self) -> None:
        model = self._client.meta.service_model

        def members(operation: str) -> set[str]:
            shape = model.operation_model(operation).input_shape
            return set(shape.members) if shape is not None else set()

        if not (
            {"IfNoneMatch", "IfMatch"} <= members("PutObject")
            and {"IfNoneMatch", "IfMatch"} <= members("CompleteMultipartUpload")
            and "IfMatch" in members("DeleteObject")
        ):
            raise ImportError(
                "this botocore is too old for S3 conditional writes (PutObject If-Match, "
                "late 2024): upgrade boto3/botocore"
            )

    # ------------------------------------------------------------------ error mapping

    def _map_error(
        self,
        exc: Exception,
        *,
        kind: _Kind,
        key: str | None,
        trace: list[bool],
        applies_write: bool = True,
        completing: bool = False,
    ) -> StoreError:
        """Translate a boto3/botocore error into cairnflow's tree (the one place)."""
        store = self.url
        is_write = kind in ("create", "update", "overwrite", "delete", "delete-if-match")
        # Whether an attempt of this call may have been applied (see module docstring).
        landed_before = is_write and applies_write and any(trace)
        if isinstance(exc, ClientError):
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
            what = f"S3 {exc.operation_name} answered {code or 'error'} (HTTP {status})"
            if code in _ACCESS_CODES or status in (401, 403):
                return StoreAccessError(self._access_message(what, code, kind, key), store=store)
            if code == "PreconditionFailed" or status == 412:
                if kind == "create":
                    return AlreadyExistsError("object exists", key=key, store=store)
                return PreconditionFailedError("object version changed", key=key, store=store)
            if code == "NoSuchUpload":
                # Only ours can have completed it; anything else means it was aborted.
                return TransientStoreError(
                    f"{what}: the multipart upload vanished",
                    key=key,
                    store=store,
                    ambiguous=is_write and completing,
                )
            if code == "NoSuchKey" or status == 404:
                if kind == "update":
                    return PreconditionFailedError("object does not exist", key=key, store=store)
                return NotFoundError("no such object", key=key, store=store)
            if status == 501 or code == "NotImplemented":
                if kind in ("create", "update", "delete-if-match"):
                    return ConditionalWritesUnsupportedError(
                        f"{what}: {self.endpoint} does not implement conditional writes",
                        key=key,
                        store=store,
                    )
                return StoreError(what, key=key, store=store)
            if status == 409:  # ConditionalRequestConflict: not applied; AWS says retry
                return TransientStoreError(what, key=key, store=store, ambiguous=landed_before)
            if status in (429, 503) or code in _THROTTLE_CODES or code == "RequestTimeout":
                return TransientStoreError(what, key=key, store=store, ambiguous=landed_before)
            if status >= 500:
                return TransientStoreError(what, key=key, store=store, ambiguous=is_write and applies_write)
            return StoreError(what, key=key, store=store)
        if isinstance(exc, _CREDENTIAL_ERRORS):
            return StoreAccessError(
                self._access_message(
                    f"no usable AWS credentials or region ({type(exc).__name__})", "", kind, key
                ),
                store=store,
            )
        if isinstance(exc, _NOT_SENT):
            return TransientStoreError(
                f"cannot connect to {self.endpoint} ({type(exc).__name__})",
                key=key,
                store=store,
                ambiguous=landed_before,
            )
        if isinstance(exc, (ResponseStreamingError, IncompleteReadError, FlexibleChecksumError)):
            return TransientStoreError(
                f"reading the answer from {self.endpoint} failed ({type(exc).__name__})",
                key=key,
                store=store,
                ambiguous=is_write and applies_write,
            )
        if isinstance(exc, (HTTPClientError, BotoConnectionError)):
            return TransientStoreError(
                f"request to {self.endpoint} failed ({type(exc).__name__})",
                key=key,
                store=store,
                ambiguous=is_write and applies_write,
            )
        return StoreError(f"S3 request failed ({type(exc).__name__})", key=key, store=store)

    def _access_message(self, what: str, code: str, kind: _Kind, key: str | None) -> str:
        if code == "NoSuchBucket":
            reason = "the bucket does not exist"
        elif code in ("PermanentRedirect", "AuthorizationHeaderMalformed"):
            reason = "the bucket is in another region or behind another endpoint"
        else:
            reason = "check the credentials and their permissions"
        target = key if key is not None else self.probe_prefix
        return (
            f"{what}: cannot {kind} in bucket {self.bucket!r} (prefix {self.probe_prefix!r}, "
            f"key or prefix {target!r}) at {self.endpoint}: {reason}"
        )

    # ------------------------------------------------------------------ probe

    def _ensure_probed(self, *, need_if_match: bool) -> None:
        if self._create_probe_done and (self._match_probe_done or not need_if_match):
            return
        with self._probe_lock:
            if self._probe_failure is not None:
                raise ConditionalWritesUnsupportedError(self._probe_failure, store=self.url)
            if not self._create_probe_done:
                self._probe_create()
                self._create_probe_done = True
            if need_if_match and not self._match_probe_done:
                self._probe_if_match()
                self._match_probe_done = True

    def _probe_put(self, **condition: str) -> bool:
        """One probe write; True if S3 accepted it, False if it refused it with 412 (or 404)."""
        key = self.probe_key
        with _attempts() as trace:
            try:
                self._client.put_object(
                    Bucket=self.bucket,
                    Key=key,
                    Body=_PROBE_BODY,
                    **condition,  # type: ignore[arg-type]
                )
            except _SDK_ERRORS as exc:
                kind: _Kind = "create" if "IfNoneMatch" in condition else "update"
                mapped = self._map_error(exc, kind=kind, key=key, trace=trace)
                if isinstance(mapped, (AlreadyExistsError, PreconditionFailedError)):
                    return False
                if isinstance(mapped, ConditionalWritesUnsupportedError):
                    self._probe_failure = self._unsupported_message(condition, "answered 501 NotImplemented")
                    raise ConditionalWritesUnsupportedError(
                        self._probe_failure, key=key, store=self.url
                    ) from exc
                raise mapped from exc
        return True

    def _probe_create(self) -> None:
        if not self._probe_put(IfNoneMatch="*"):
            return  # refused: the store evaluated If-None-Match (steady state: 1 request)
        # The probe object was new (or the store ignores the header): ask again.
        if self._probe_put(IfNoneMatch="*"):
            self._fail_probe({"IfNoneMatch": "*"})

    def _probe_if_match(self) -> None:
        if self._probe_put(IfMatch=_NEVER_MATCHING_ETAG):
            self._fail_probe({"IfMatch": _NEVER_MATCHING_ETAG})

    def _unsupported_message(self, condition: Mapping[str, str], outcome: str) -> str:
        header = "If-None-Match: *" if "IfNoneMatch" in condition else "If-Match: <etag>"
        return (
            f"the S3 endpoint {self.endpoint} {outcome} for a conditional write ({header}) "
            f"to s3://{self.bucket}/{self.probe_key} (bucket {self.bucket!r}, prefix "
            f"{self.probe_prefix!r}): this store does not honour conditional writes, so "
            "cairnflow's guarantees (one winner per checkpoint) would silently fail on it. "
            "Use a store that supports S3 conditional writes, or pass "
            "verify_conditional_writes=False to skip this check at your own risk."
        )

    def _fail_probe(self, condition: Mapping[str, str]) -> None:
        self._probe_failure = self._unsupported_message(
            condition, "accepted a write that its condition should have refused"
        )
        raise ConditionalWritesUnsupportedError(self._probe_failure, key=self.probe_key, store=self.url)

    # ------------------------------------------------------------------ put

    def put(self, key: str, data: bytes, mode: PutMode = CREATE) -> str:
        kind: _Kind
        if isinstance(mode, Create):
            kind = "create"
        elif isinstance(mode, Update):
            kind = "update"
        elif isinstance(mode, Overwrite):
            kind = "overwrite"
        else:
            raise TypeError(f"unknown put mode {mode!r}")
        data = bytes(data)
        self._ensure_probed(need_if_match=kind == "update")
        if len(data) > self.multipart_threshold:
            return self._put_multipart(key, data, mode, kind)
        with _attempts() as trace:
            try:
                if isinstance(mode, Create):
                    resp = self._client.put_object(Bucket=self.bucket, Key=key, Body=data, IfNoneMatch="*")
                elif isinstance(mode, Update):
                    resp = self._client.put_object(Bucket=self.bucket, Key=key, Body=data, IfMatch=mode.etag)
                else:
                    resp = self._client.put_object(Bucket=self.bucket, Key=key, Body=data)
            except _SDK_ERRORS as exc:
                raise self._map_error(exc, kind=kind, key=key, trace=trace) from exc
        return resp["ETag"]

    def _put_multipart(self, key: str, data: bytes, mode: PutMode, kind: _Kind) -> str:
        part_size = max(self.multipart_part_size, -(-len(data) // _MAX_PARTS))
        with _attempts() as trace:
            try:
                started = self._client.create_multipart_upload(
                    Bucket=self.bucket, Key=key, ChecksumAlgorithm="CRC32"
                )
            except _SDK_ERRORS as exc:
                raise self._map_error(exc, kind=kind, key=key, trace=trace, applies_write=False) from exc
        upload_id = started["UploadId"]
        completed = False
        try:
            parts: list[CompletedPartTypeDef] = []
            for number, offset in enumerate(range(0, len(data), part_size), start=1):
                with _attempts() as trace:
                    try:
                        uploaded = self._client.upload_part(
                            Bucket=self.bucket,
                            Key=key,
                            UploadId=upload_id,
                            PartNumber=number,
                            Body=data[offset : offset + part_size],
                            ChecksumAlgorithm="CRC32",
                        )
                    except _SDK_ERRORS as exc:
                        raise self._map_error(
                            exc, kind=kind, key=key, trace=trace, applies_write=False
                        ) from exc
                part: CompletedPartTypeDef = {"ETag": uploaded["ETag"], "PartNumber": number}
                if "ChecksumCRC32" in uploaded:
                    part["ChecksumCRC32"] = uploaded["ChecksumCRC32"]
                parts.append(part)
            with _attempts() as trace:
                try:
                    if isinstance(mode, Create):
                        done = self._client.complete_multipart_upload(
                            Bucket=self.bucket,
                            Key=key,
                            UploadId=upload_id,
                            MultipartUpload={"Parts": parts},
                            IfNoneMatch="*",
                        )
                    elif isinstance(mode, Update):
                        done = self._client.complete_multipart_upload(
                            Bucket=self.bucket,
                            Key=key,
                            UploadId=upload_id,
                            MultipartUpload={"Parts": parts},
                            IfMatch=mode.etag,
                        )
                    else:
                        done = self._client.complete_multipart_upload(
                            Bucket=self.bucket,
                            Key=key,
                            UploadId=upload_id,
                            MultipartUpload={"Parts": parts},
                        )
                except _SDK_ERRORS as exc:
                    raise self._map_error(exc, kind=kind, key=key, trace=trace, completing=True) from exc
            completed = True
            return done["ETag"]
        finally:
            if not completed:
                # Best effort: after an ambiguous complete this answers NoSuchUpload
                # (or loses a race with it); either way no object is half-written.
                with contextlib.suppress(*_SDK_ERRORS):
                    self._client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)

    # ------------------------------------------------------------------ get

    def get(self, key: str) -> StoredObject:
        with _attempts() as trace:
            try:
                resp = self._client.get_object(Bucket=self.bucket, Key=key)
                body = resp["Body"]
                try:
                    data = body.read()
                finally:
                    body.close()
            except _SDK_ERRORS as exc:
                raise self._map_error(exc, kind="get", key=key, trace=trace) from exc
        return StoredObject(data, resp["ETag"])

    # ------------------------------------------------------------------ list

    def list(
        self, prefix: str, *, start_after: str | None = None, limit: int | None = None
    ) -> Iterator[ObjectInfo]:
        remaining = limit
        token: str | None = None
        # The probe object is this backend's own business: hide it from listings.
        # While it may still turn up, ask for one key more than needed, so that
        # skipping it never costs an extra request (list(limit=1) stays one LIST).
        probe_key = self.probe_key
        hidden: str | None = (
            probe_key
            if probe_key.startswith(prefix) and (start_after is None or probe_key > start_after)
            else None
        )
        while remaining is None or remaining > 0:
            wanted = self.page_size if remaining is None else remaining + (hidden is not None)
            max_keys = min(self.page_size, wanted)
            with _attempts() as trace:
                try:
                    if token is not None:
                        page = self._client.list_objects_v2(
                            Bucket=self.bucket,
                            Prefix=prefix,
                            MaxKeys=max_keys,
                            ContinuationToken=token,
                        )
                    elif start_after is not None:
                        page = self._client.list_objects_v2(
                            Bucket=self.bucket,
                            Prefix=prefix,
                            MaxKeys=max_keys,
                            StartAfter=start_after,
                        )
                    else:
                        page = self._client.list_objects_v2(
                            Bucket=self.bucket, Prefix=prefix, MaxKeys=max_keys
                        )
                except _SDK_ERRORS as exc:
                    raise self._map_error(exc, kind="list", key=prefix, trace=trace) from exc
            for entry in page.get("Contents", []):
                if entry["Key"] == hidden:
                    hidden = None
                    continue
                yield ObjectInfo(entry["Key"], entry["Size"], entry.get("ETag"))
                if remaining is not None:
                    remaining -= 1
                    if remaining <= 0:
                        return
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return

    def list_prefixes(self, prefix: str) -> Iterator[str]:
        """Common prefixes under ``prefix`` with ``Delimiter='/'``: one request per page."""
        token: str | None = None
        while True:
            args: dict[str, Any] = {
                "Bucket": self.bucket,
                "Prefix": prefix,
                "Delimiter": "/",
                "MaxKeys": self.page_size,
            }
            if token is not None:
                args["ContinuationToken"] = token
            with _attempts() as trace:
                try:
                    page = self._client.list_objects_v2(**args)
                except _SDK_ERRORS as exc:
                    raise self._map_error(exc, kind="list", key=prefix, trace=trace) from exc
            for common in page.get("CommonPrefixes", []):
                yield common["Prefix"]
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return

    # ------------------------------------------------------------------ delete

    def delete(self, key: str, *, etag: str | None = None) -> None:
        if etag is not None:
            self._ensure_probed(need_if_match=True)
        kind: _Kind = "delete" if etag is None else "delete-if-match"
        with _attempts() as trace:
            try:
                if etag is None:
                    self._client.delete_object(Bucket=self.bucket, Key=key)
                else:
                    self._client.delete_object(Bucket=self.bucket, Key=key, IfMatch=etag)
            except _SDK_ERRORS as exc:
                raise self._map_error(exc, kind=kind, key=key, trace=trace) from exc


def store_from_url(bucket: str, prefix: str, **options: Any) -> S3Store:
    """``s3://bucket/prefix``: an :class:`S3Store` whose probe stays under ``prefix``.

    Credentials, region and endpoint come from the environment the way boto3
    users expect (``AWS_PROFILE``, ``AWS_ACCESS_KEY_ID``..., ``AWS_REGION``,
    ``AWS_ENDPOINT_URL_S3``); ``options`` go to :class:`S3Store`
    (``client=``, ``session=``, ``endpoint_url=``, ``verify_conditional_writes=``...).
    """
    options.setdefault("probe_prefix", prefix)
    return S3Store(bucket, **options)
