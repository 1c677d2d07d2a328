"""Amazon S3 (and S3-compatible stores) as a cairnflow object store, through boto3.

This is the only module that imports boto3/botocore; ``import cairnflow`` and
``open_store("file://...")`` never do. What every backend shares (put-mode
dispatch, key checks, the error and ambiguity tables, the conditional-write
probe and its hiding from listings) is in :mod:`cairnflow.savers._base`; this
module holds S3's requests and its status table (:func:`_failure`).

What S3 guarantees, and what this backend relies on
---------------------------------------------------
* **Create-only writes**: ``PutObject``/``CompleteMultipartUpload`` with
  ``If-None-Match: *`` fail with 412 ``PreconditionFailed`` when the key exists.
* **Compare-and-swap**: the same with ``If-Match: <etag>`` fail with 412 when the
  current ETag differs and with 404 ``NoSuchKey`` when there is no object.
* **Strong read-after-write consistency** for GET and LIST, and LIST in ascending
  UTF-8 byte order for general-purpose buckets. Directory buckets (S3 Express
  One Zone) do *not* list in order: do not use them with cairnflow.
* A 409 ``ConditionalRequestConflict`` means a conflicting operation ran at the
  same time and this request **did not** take effect; AWS documents "retry".

ETags are kept exactly as S3 returns them, *with* their double quotes, in every
result (``put``, ``get`` and ``list``), and are sent back unchanged.

Retries and ambiguity
---------------------
Clients built here use botocore's ``standard`` retry mode (3 attempts). botocore
retries conditional writes with the same condition, so a retry never bypasses it,
but a lost answer makes the retry fail its own condition: the core protocol reads
back after any failed or ambiguous write (the backend never guesses). A write is
``ambiguous`` when *any* attempt may have been applied: each attempt's outcome is
recorded through botocore's ``response-received`` event.

Large objects
-------------
Bodies over ``multipart_threshold`` (64 MiB) go as a multipart upload (CRC32 parts
of ``multipart_part_size``, within 10,000 parts); the condition goes on
``CompleteMultipartUpload``: nothing is visible before it. A failed upload is
aborted (best effort: keep a lifecycle rule for incomplete uploads).
"""

from __future__ import annotations

import contextlib
import secrets
import threading
import urllib.parse
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Final

import boto3
import boto3.session
import botocore.loaders
import botocore.session
from botocore import exceptions as bx
from botocore.config import Config

from cairnflow.core.store import PROBE_SUFFIX, ObjectInfo, StoredObject
from cairnflow.savers._base import Classified, CloudStore, Failure, Op, by_status, current_attempts

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
_TRACE_HANDLER_ID: Final = "cairnflow-s3-attempt-trace"
_INVOCATION_HANDLER_ID: Final = "cairnflow-s3-invocation-id"


def invocation_id(params: dict[str, Any] | None = None, **_: Any) -> None:
    """botocore's ``before-call`` hook: draw the request's invocation id from ``secrets``.

    botocore would call ``uuid.uuid4()``, which callers (LangGraph's tests among them)
    patch to make their own ids deterministic; a store request must not consume them.
    """
    if params is not None and isinstance(params.get("context"), dict):
        retries = params["context"].setdefault("retries", {})
        retries.setdefault("invocation-id", str(uuid.UUID(bytes=secrets.token_bytes(16), version=4)))


# --------------------------------------------------------------------------- the status table

_DENIED_CODES: Final = frozenset(
    {
        "AccessDenied",
        "AccountProblem",
        "AllAccessDisabled",
        "AuthorizationHeaderMalformed",  # the bucket is in another region
        "ExpiredToken",
        "Forbidden",
        "InvalidAccessKeyId",
        "InvalidBucketName",
        "InvalidToken",
        "PermanentRedirect",  # the bucket is in another region or behind another endpoint
        "SignatureDoesNotMatch",
        "TokenRefreshRequired",
    }
)
_CODES: Final[Mapping[str, Failure]] = {
    "NoSuchBucket": Failure.NO_BUCKET,
    **dict.fromkeys(_DENIED_CODES, Failure.DENIED),
    "PreconditionFailed": Failure.CONDITION,
    # Only our own CompleteMultipartUpload can have consumed the upload (or it was aborted):
    # ambiguous on completion, harmless on a part (part requests are never "landing").
    "NoSuchUpload": Failure.LOST,
    "NoSuchKey": Failure.MISSING,
    "NotImplemented": Failure.UNSUPPORTED,
    "ConditionalRequestConflict": Failure.BUSY,  # not applied; AWS says retry
    "RequestTimeout": Failure.BUSY,  # 400: the body did not arrive in time, nothing applied
    **dict.fromkeys(
        (
            "BandwidthLimitExceeded",
            "RequestLimitExceeded",
            "RequestThrottled",
            "ServiceUnavailable",
            "SlowDown",
            "Throttling",
            "ThrottlingException",
            "TooManyRequests",
            "TooManyRequestsException",
        ),
        Failure.BUSY,
    ),
}
_STATUSES: Final[dict[int, Failure]] = {
    401: Failure.DENIED,
    403: Failure.DENIED,
    404: Failure.MISSING,
    409: Failure.BUSY,
    412: Failure.CONDITION,
    429: Failure.BUSY,
    501: Failure.UNSUPPORTED,
    503: Failure.BUSY,
}
_CREDENTIAL_ERRORS: Final = (
    bx.NoCredentialsError,
    bx.PartialCredentialsError,
    bx.CredentialRetrievalError,
    bx.TokenRetrievalError,
    bx.SSOError,
    bx.NoRegionError,
)
# Raised before a request could be sent (or while connecting): never applied.
_NOT_SENT: Final = (bx.EndpointConnectionError, bx.ConnectTimeoutError, bx.ProxyConnectionError)


def status_failure(status: int, code: str = "") -> Failure:
    return _CODES.get(code) or by_status(status, _STATUSES)


def _failure(exc: BaseException) -> Classified:
    """S3's status table: what a boto3/botocore error means."""
    if isinstance(exc, bx.ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        return Classified(status_failure(status, code), status or None, code)
    name = type(exc).__name__
    if isinstance(exc, _CREDENTIAL_ERRORS):
        return Classified(Failure.DENIED, None, f"{name}: no usable AWS credentials or region")
    if isinstance(exc, _NOT_SENT):
        return Classified(Failure.NOT_SENT, None, name)
    # Read timeouts, dropped connections, answers cut short or failing their checksum.
    return Classified(Failure.LOST, None, name)


def attempt_recorder(classify: Callable[[BaseException], Classified]) -> Callable[..., None]:
    """A botocore ``response-received`` hook noting each attempt's outcome, read by ``classify``.

    It runs where the request was made (the caller's thread, or its asyncio task), so
    :func:`current_attempts` is that request's ``_mapping`` block.
    """

    def record(
        exception: BaseException | None = None, response_dict: Mapping[str, Any] | None = None, **_: Any
    ) -> None:
        attempts = current_attempts()
        if attempts is None:
            return
        status = response_dict.get("status_code") if response_dict else None
        if exception is not None:
            attempts.record(classify(exception).kind)
        elif not isinstance(status, int):
            attempts.record(Failure.LOST)
        else:
            attempts.record(None if 200 <= status < 300 else status_failure(status))

    return record


_record_attempt = attempt_recorder(_failure)

#: The options of the botocore config of every client this module (and the asyncio one) builds.
CLIENT_OPTIONS: Final[Mapping[str, Any]] = {
    "max_pool_connections": 32,
    "retries": {"mode": "standard", "total_max_attempts": 3},
    "connect_timeout": 10,
    "read_timeout": 60,
}


def check_sdk_supports_conditions(client: Any) -> None:
    """Refuse a botocore too old to send S3's write conditions (it would drop them silently)."""
    model = client.meta.service_model

    def members(operation: str) -> set[str]:
        shape = model.operation_model(operation).input_shape
        return set(shape.members) if shape is not None else set()

    if not {"IfNoneMatch", "IfMatch"} <= members("PutObject") & members("CompleteMultipartUpload"):
        raise ImportError(
            "this botocore is too old for S3 conditional writes (PutObject If-Match, "
            "late 2024): upgrade boto3/botocore"
        )


_models_lock = threading.Lock()
_models_loader: botocore.loaders.Loader | None = None  # the first session's, shared with every later one


def share_service_models(session: botocore.session.Session) -> None:
    """Give ``session`` the process's one loader of botocore's service models.

    Every new botocore session parses S3's model and endpoint rules again (about
    50 ms of CPU on a small machine, blocking an event loop if it is asyncio's);
    the loader caches what it parsed, so with one loader per process only the first
    client pays it and a store opened per request or per test costs ~2 ms. Sessions
    passed in by the user are left as they are: only those the stores create share.
    """
    global _models_loader
    with _models_lock:
        if _models_loader is None:
            _models_loader = session.get_component("data_loader")
        else:
            session.register_component("data_loader", _models_loader)


def default_client_config() -> Config:
    """The botocore config of clients this module builds: pooled, standard retries."""
    return Config(**CLIENT_OPTIONS)


def safe_endpoint(url: str | None) -> str:
    """An endpoint URL fit for messages: scheme, host and port only."""
    if not url:
        return "the default S3 endpoint"
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or '?'}{f':{parts.port}' if parts.port else ''}"


def condition(op: Op, etag: str | None) -> dict[str, Any]:
    if op is Op.CREATE:
        return {"IfNoneMatch": "*"}
    if op is Op.UPDATE:
        return {"IfMatch": etag}
    return {}


# --------------------------------------------------------------------------- the store


class S3Store(CloudStore):
    """One S3 bucket seen through cairnflow's store seam.

    Pass your own boto3 S3 ``client`` (used as is; the store registers one
    ``response-received`` handler on it to see each retry attempt), or a boto3
    ``session``; otherwise ``boto3.session.Session()`` finds credentials, region and
    endpoint (``AWS_ENDPOINT_URL_S3``) the usual way. ``probe_prefix`` keeps the
    conditional-write probe inside the prefix the credentials are scoped to.
    """

    _SDK_ERRORS: ClassVar[tuple[type[BaseException], ...]] = (bx.ClientError, bx.BotoCoreError)

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
        if client is not None and (session, endpoint_url, region_name) != (None, None, None):
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
            if session is None:
                session = boto3.session.Session()
                share_service_models(session._session)
            client = session.client(
                "s3", endpoint_url=endpoint_url, region_name=region_name, config=default_client_config()
            )
        self._client: S3Client = client
        check_sdk_supports_conditions(client)
        # One handler per client (the unique id makes re-registration a no-op).
        client.meta.events.register("response-received.s3.*", _record_attempt, unique_id=_TRACE_HANDLER_ID)
        client.meta.events.register("before-call.s3.*", invocation_id, unique_id=_INVOCATION_HANDLER_ID)
        self.endpoint = safe_endpoint(client.meta.endpoint_url)
        self.where = f"bucket {bucket!r} (prefix {probe_prefix!r}) at {self.endpoint}"
        self._init_probe(probe_prefix, enabled=verify_conditional_writes)

    @property
    def client(self) -> S3Client:
        """The boto3 S3 client every request goes through."""
        return self._client

    def __repr__(self) -> str:
        return f"S3Store(bucket={self.bucket!r}, endpoint={self.endpoint!r})"

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    _classify = staticmethod(_failure)  # its status table

    # ------------------------------------------------------------------ requests

    def _write(self, key: str, data: bytes, op: Op, etag: str | None) -> str:
        if len(data) > self.multipart_threshold:
            return self._write_multipart(key, data, op, etag)
        with self._mapping(op, key):
            resp = self._client.put_object(Bucket=self.bucket, Key=key, Body=data, **condition(op, etag))
        return resp["ETag"]

    def _write_multipart(self, key: str, data: bytes, op: Op, etag: str | None) -> str:
        part_size = max(self.multipart_part_size, -(-len(data) // _MAX_PARTS))
        with self._mapping(op, key, landing=False):
            started = self._client.create_multipart_upload(
                Bucket=self.bucket, Key=key, ChecksumAlgorithm="CRC32"
            )
        upload_id = started["UploadId"]
        completed = False
        try:
            parts: list[CompletedPartTypeDef] = []
            for number, offset in enumerate(range(0, len(data), part_size), start=1):
                with self._mapping(op, key, landing=False):
                    uploaded = self._client.upload_part(
                        Bucket=self.bucket,
                        Key=key,
                        UploadId=upload_id,
                        PartNumber=number,
                        Body=data[offset : offset + part_size],
                        ChecksumAlgorithm="CRC32",
                    )
                part: CompletedPartTypeDef = {"ETag": uploaded["ETag"], "PartNumber": number}
                if "ChecksumCRC32" in uploaded:
                    part["ChecksumCRC32"] = uploaded["ChecksumCRC32"]
                parts.append(part)
            with self._mapping(op, key):
                done = self._client.complete_multipart_upload(
                    Bucket=self.bucket,
                    Key=key,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": parts},
                    **condition(op, etag),
                )
            completed = True
            return done["ETag"]
        finally:
            if not completed:
                # Best effort: after an ambiguous complete this answers NoSuchUpload
                # (or loses a race with it); either way no object is half-written.
                with contextlib.suppress(*self._SDK_ERRORS):
                    self._client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)

    def _read(self, key: str) -> StoredObject:
        with self._mapping(Op.GET, key):
            resp = self._client.get_object(Bucket=self.bucket, Key=key)
            with contextlib.closing(resp["Body"]) as body:
                data = body.read()
        return StoredObject(data, resp["ETag"])

    def _pages_of(self, args: dict[str, Any]) -> Iterator[Any]:
        """``ListObjectsV2`` pages, one request each; ``args`` is re-read (and may change) per page."""
        while True:
            with self._mapping(Op.LIST, args["Prefix"]):
                page = self._client.list_objects_v2(Bucket=self.bucket, **args)
            yield page
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return
            args.pop("StartAfter", None)
            args["ContinuationToken"] = token

    def _list(self, prefix: str, start_after: str | None, limit: int | None) -> Iterator[ObjectInfo]:
        args: dict[str, Any] = {"Prefix": prefix, "MaxKeys": min(self.page_size, limit or self.page_size)}
        if start_after is not None:
            args["StartAfter"] = start_after
        remaining = limit
        for page in self._pages_of(args):
            for entry in page.get("Contents", []):
                yield ObjectInfo(entry["Key"], entry["Size"], entry.get("ETag"))
                if remaining is not None:
                    remaining -= 1
                    if remaining <= 0:
                        return
                    args["MaxKeys"] = min(self.page_size, remaining)

    def list_prefixes(self, prefix: str) -> Iterator[str]:
        """Common prefixes under ``prefix`` with ``Delimiter='/'``: one request per page."""
        for page in self._pages_of({"Prefix": prefix, "Delimiter": "/", "MaxKeys": self.page_size}):
            for common in page.get("CommonPrefixes", []):
                yield common["Prefix"]

    def _remove(self, key: str) -> None:
        with self._mapping(Op.DELETE, key):
            self._client.delete_object(Bucket=self.bucket, Key=key)


def store_from_url(bucket: str, prefix: str, **options: Any) -> S3Store:
    """``s3://bucket/prefix``: an :class:`S3Store` whose probe stays under ``prefix``.

    Credentials, region and endpoint come from the environment the way boto3
    users expect (``AWS_PROFILE``, ``AWS_ACCESS_KEY_ID``..., ``AWS_REGION``,
    ``AWS_ENDPOINT_URL_S3``); ``options`` go to :class:`S3Store`
    (``client=``, ``session=``, ``endpoint_url=``, ``verify_conditional_writes=``...).
    """
    options.setdefault("probe_prefix", prefix)
    return S3Store(bucket, **options)
