"""What GCS's two backends share, without importing either SDK: statuses, conditions, versions.

:mod:`cairnflow.savers.gcs` (google-cloud-storage) and
:mod:`cairnflow.savers.gcs_async` (gcloud-aio-storage) send the same JSON-API
requests through different SDKs; what the answers mean and how conditions and
versions are spelled is written once, here, so that importing one backend
never imports the other's SDK.
"""

from __future__ import annotations

from typing import ClassVar, Final

from cairnflow.savers._base import Classified, Failure, Op, by_status

__all__ = [
    "EMULATOR_DEFAULT_PROJECT",
    "LIST_FIELDS",
    "MAX_PAGE_SIZE",
    "PREFIX_FIELDS",
    "STATUSES",
    "GCSRules",
    "generation",
    "status_failure",
]

#: Project used with ``STORAGE_EMULATOR_HOST`` when none is given.
EMULATOR_DEFAULT_PROJECT: Final = "cairnflow-local"
#: The most objects one GCS list request returns.
MAX_PAGE_SIZE: Final = 1000
#: The fields a listing asks for (objects; folders).
LIST_FIELDS: Final = "items(name,size,generation),nextPageToken"
PREFIX_FIELDS: Final = "prefixes,nextPageToken"

#: GCS's status table.
STATUSES: Final[dict[int, Failure]] = {
    401: Failure.DENIED,
    403: Failure.DENIED,
    404: Failure.MISSING,
    408: Failure.LOST,  # the request timed out on the server: it may have been applied
    412: Failure.CONDITION,
    429: Failure.BUSY,
    503: Failure.BUSY,
}


def status_failure(status: int, message: str, name: str) -> Classified:
    """What an HTTP answer of GCS means (``message`` tells a missing bucket from a missing object)."""
    if status == 404 and "bucket does not exist" in message.lower():  # real GCS says so
        return Classified(Failure.NO_BUCKET, status, name)
    return Classified(by_status(status, STATUSES), status, name)


def generation(etag: str | None) -> int | None:
    """A store etag as a GCS generation; ``None`` if it cannot be one."""
    return int(etag) if etag is not None and etag.isdigit() else None


class GCSRules:
    """The class attributes of both GCS stores (mixed into each)."""

    _CONDITIONS: ClassVar[dict[Op, str]] = {
        Op.CREATE: "ifGenerationMatch=0",
        Op.UPDATE: "ifGenerationMatch=<generation>",
    }
    # An upload of a missing object is refused with 412, so a 404 means the bucket is missing.
    _REINTERPRET: ClassVar[dict[tuple[Op, Failure], Failure]] = {
        (Op.UPDATE, Failure.MISSING): Failure.NO_BUCKET
    }
    # A generation no object has (generations are microsecond timestamps).
    _NEVER_MATCHING_ETAG: ClassVar[str] = "999999999999999999"
