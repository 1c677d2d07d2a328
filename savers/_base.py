"""The one scaffold every backend builds on: what is the same for all stores is written here.

A backend subclasses :class:`BackendStore` (memory, local) or :class:`CloudStore`
(S3, GCS, Azure) and supplies only its own requests:

* ``_write(key, data, op, etag)`` for the three put operations (:class:`Op`),
  ``_read(key)``, ``_list(prefix, start_after, limit)`` and ``_remove(key)``;
* a cloud store also supplies ``_classify(exc)``: its status table, which names
  the :class:`Failure` an SDK error stands for.

Everything else happens once, here:

* **put-mode dispatch**: :func:`put_op` turns a :data:`~cairnflow.core.store.PutMode`
  into an :class:`Op` and the version a CAS write must match;
* **key checks**: :meth:`BackendStore._check_key`;
* **error mapping**: ``with self._mapping(op, key): sdk_call()`` turns an SDK
  error into the typed errors of :mod:`cairnflow.core.errors` through two tables,
  :data:`REINTERPRET` (what a failure means for an operation) and
  :data:`ERROR_TYPES`;
* **ambiguity**: :data:`MAY_HAVE_LANDED`, the one table of "may a write that
  failed like this have been applied?" (a timeout after sending: yes; a 503,
  S3's 409 ``ConditionalRequestConflict``, a refused connection: no). Reads
  and listings are never ambiguous;
* **the conditional-write probe** (:class:`~cairnflow.savers._probe.ConditionalWriteProbe`)
  before a cloud store's first write, and its hiding from listings
  (:meth:`BackendStore.list`).
"""

from __future__ import annotations

import abc
import contextlib
import contextvars
import enum
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, ClassVar, Final, NamedTuple, TypeVar

from cairnflow.core import observe
from cairnflow.core.errors import (
    AlreadyExistsError,
    ConditionalWritesUnsupportedError,
    InvalidArgumentError,
    NotFoundError,
    PreconditionFailedError,
    StoreAccessError,
    StoreError,
    TransientStoreError,
)
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
    from cairnflow.savers._probe import ConditionalWriteProbe

__all__ = [
    "ERROR_TYPES",
    "MAY_HAVE_LANDED",
    "REINTERPRET",
    "Attempts",
    "BackendStore",
    "Classified",
    "CloudMapping",
    "CloudStore",
    "Failure",
    "Op",
    "by_status",
    "put_op",
]

P = TypeVar("P", bound=Iterable[Any])


class Op(enum.Enum):
    """What a request was doing: the one set of operation names every backend uses."""

    CREATE = "create"  # put, create-only
    UPDATE = "update"  # put, if-match (CAS)
    OVERWRITE = "overwrite"  # put, unconditional
    GET = "get"
    LIST = "list"
    DELETE = "delete"

    @property
    def writes(self) -> bool:
        """Whether the request changes the store (so that a failure of it may be ambiguous)."""
        return self not in (Op.GET, Op.LIST)


def put_op(mode: PutMode) -> tuple[Op, str | None]:
    """The put operation a mode asks for, and the version an update must match."""
    if isinstance(mode, Create):
        return Op.CREATE, None
    if isinstance(mode, Update):
        return Op.UPDATE, mode.etag
    if isinstance(mode, Overwrite):
        return Op.OVERWRITE, None
    raise TypeError(f"unknown put mode {mode!r}: pass CREATE, OVERWRITE or Update(etag)")


class Failure(enum.Enum):
    """What an SDK error means, whatever the cloud: the words of every status table."""

    CONDITION = "the condition was not met"  # 412; Azure's 409 BlobAlreadyExists
    MISSING = "no such object"  # 404
    NO_BUCKET = "the bucket does not exist"
    DENIED = "access denied"  # 401, 403, no credentials
    UNSUPPORTED = "conditional writes are not implemented"  # 501
    BUSY = "busy or in conflict"  # 429, 503, S3 409, Azure InvalidBlockList
    NOT_SENT = "the request could not be sent"  # connection refused, connect timeout
    LOST = "no complete answer"  # read timeout, dropped connection, body cut short
    SERVER = "server error"  # other 5xx
    REFUSED = "the store refused the request"  # any other answer


class Classified(NamedTuple):
    """A backend's reading of one SDK error: the failure, the HTTP status and the error code."""

    kind: Failure
    status: int | None = None
    code: str = ""


def by_status(status: int, table: dict[int, Failure]) -> Failure:
    """A status's failure in a backend's ``table``; else a 5xx is a server error, the rest refused."""
    return table.get(status) or (Failure.SERVER if status >= 500 else Failure.REFUSED)


#: May a write attempt that failed like this have been applied? The one ambiguity table.
MAY_HAVE_LANDED: Final[dict[Failure, bool]] = {
    Failure.CONDITION: False,
    Failure.MISSING: False,
    Failure.NO_BUCKET: False,
    Failure.DENIED: False,
    Failure.UNSUPPORTED: False,
    Failure.BUSY: False,
    Failure.NOT_SENT: False,
    Failure.LOST: True,
    Failure.SERVER: True,
    Failure.REFUSED: False,
}

#: What a failure means for one operation, where that differs from what it means in general.
REINTERPRET: Final[dict[tuple[Op, Failure], Failure]] = {
    (Op.UPDATE, Failure.MISSING): Failure.CONDITION,  # If-Match on a missing object
    (Op.CREATE, Failure.MISSING): Failure.NO_BUCKET,  # a write cannot miss its object
    (Op.OVERWRITE, Failure.MISSING): Failure.NO_BUCKET,
    (Op.LIST, Failure.MISSING): Failure.NO_BUCKET,
    (Op.GET, Failure.CONDITION): Failure.BUSY,  # replaced between the ranged reads of one get
    (Op.GET, Failure.UNSUPPORTED): Failure.REFUSED,  # only conditional writes can be unsupported
    (Op.LIST, Failure.UNSUPPORTED): Failure.REFUSED,
    (Op.OVERWRITE, Failure.UNSUPPORTED): Failure.REFUSED,
    (Op.DELETE, Failure.UNSUPPORTED): Failure.REFUSED,
}

#: The typed error of each failure (a create's CONDITION is AlreadyExistsError; a
#: delete's MISSING is success: the delete is idempotent).
ERROR_TYPES: Final[dict[Failure, type[StoreError]]] = {
    Failure.CONDITION: PreconditionFailedError,
    Failure.MISSING: NotFoundError,
    Failure.NO_BUCKET: StoreAccessError,
    Failure.DENIED: StoreAccessError,
    Failure.UNSUPPORTED: ConditionalWritesUnsupportedError,
    Failure.BUSY: TransientStoreError,
    Failure.NOT_SENT: TransientStoreError,
    Failure.LOST: TransientStoreError,
    Failure.SERVER: TransientStoreError,
    Failure.REFUSED: StoreError,
}

# What to do, appended to the message of the failures a user can act on.
_ADVICE: Final[dict[Failure, str]] = {
    Failure.NO_BUCKET: "create it or correct the URL (or the credentials cannot see it)",
    Failure.DENIED: "check the credentials and their permissions",
    Failure.UNSUPPORTED: "use a store that supports conditional writes",
}


class Attempts:
    """Whether any attempt of one SDK call (the SDK may retry) may have been applied."""

    def __init__(self) -> None:
        self.maybe_landed = False

    def record(self, kind: Failure | None) -> None:
        """Note one attempt's outcome: ``None`` for an answer that was a success."""
        if kind is None or MAY_HAVE_LANDED[kind]:
            self.maybe_landed = True


# A context variable, not a thread-local: an asyncio store runs many ``_mapping`` blocks
# on one thread at once (one per task), and each task has its own context.
_current: contextvars.ContextVar[Attempts | None] = contextvars.ContextVar("cairnflow_attempts", default=None)


def current_attempts() -> Attempts | None:
    """The :class:`Attempts` of the ``_mapping`` block running in this thread or task, if any."""
    return _current.get()


class BackendStore(ObjectStore):
    """An :class:`ObjectStore` whose public methods check keys, dispatch and hide the probe once."""

    # ------------------------------------------------------------------ what a backend supplies

    @abc.abstractmethod
    def _write(self, key: str, data: bytes, op: Op, etag: str | None) -> str:
        """One write: ``op`` is CREATE, UPDATE (``etag`` set) or OVERWRITE; return the new version."""

    @abc.abstractmethod
    def _read(self, key: str) -> StoredObject:
        """Read one object."""

    @abc.abstractmethod
    def _list(self, prefix: str, start_after: str | None, limit: int | None) -> Iterator[ObjectInfo]:
        """Yield the objects under ``prefix`` in key order, lazily, from ``start_after`` on.

        :meth:`list` drops ``start_after`` itself and stops after ``limit`` objects, so
        a backend may yield those too; ``limit`` (positive or ``None``) is for sizing
        its requests.
        """

    @abc.abstractmethod
    def _remove(self, key: str) -> None:
        """Delete one object; a missing one is success."""

    # ------------------------------------------------------------------ the seam, once

    def _before_write(self, op: Op) -> None:
        """Hook run before each public write (a cloud store probes its conditions here)."""

    def _hidden_key(self) -> str | None:
        """A key of the store's own that listings must not show (the probe object), if any."""
        return None

    def _check_key(self, key: str) -> None:
        if not isinstance(key, str) or not key:
            raise InvalidArgumentError(f"object keys must be non-empty strings, not {key!r} (in {self.url})")

    def put(self, key: str, data: bytes, mode: PutMode = CREATE) -> str:
        op, etag = put_op(mode)
        self._check_key(key)
        self._before_write(op)
        with _request(op, self.url, len(data)):
            return self._write(key, bytes(data), op, etag)

    def get(self, key: str) -> StoredObject:
        self._check_key(key)
        with _request(Op.GET, self.url) as span:
            found = self._read(key)
            span.set("cairnflow.store.bytes", len(found.data))
            return found

    def list(
        self, prefix: str, *, start_after: str | None = None, limit: int | None = None
    ) -> Iterator[ObjectInfo]:
        if limit is not None and limit <= 0:
            return
        # The probe object is the store's own business: hidden from listings. While it may
        # turn up, one more key is asked for, so that skipping it never costs a request.
        probe = self._hidden_key()
        hidden = (
            probe
            if probe is not None and probe.startswith(prefix) and (start_after is None or probe > start_after)
            else None
        )
        wanted = None if limit is None else limit + (hidden is not None)
        count = 0
        # One span for the whole (lazy, possibly paged) listing; never the thread's current span.
        listing = observe.start("cairnflow.store", store_operation=Op.LIST.value, store_url=self.url)
        try:
            for info in self._list(prefix, start_after, wanted):
                if info.key == hidden or (start_after is not None and info.key <= start_after):
                    continue
                yield info
                count += 1
                if limit is not None and count >= limit:
                    return
        except BaseException as error:
            listing.end(error)
            raise
        finally:
            listing.set("cairnflow.store.keys", count)
            listing.end()

    def delete(self, key: str) -> None:
        self._check_key(key)
        with _request(Op.DELETE, self.url):
            self._remove(key)


#: Outcomes of store requests that are answers, not failures (telemetry's ``cairnflow.outcome``).
_OUTCOMES: tuple[tuple[type[BaseException], str], ...] = (
    (AlreadyExistsError, "exists"),
    (PreconditionFailedError, "precondition_failed"),
    (NotFoundError, "not_found"),
)


@contextlib.contextmanager
def _request(op: Op, url: str, size: int | None = None) -> Iterator[observe.Span]:
    """Report one store request (its operation, bytes and outcome) through :mod:`observe`."""
    with observe.span("cairnflow.store", store_operation=op.value, store_url=url, store_bytes=size) as span:
        try:
            yield span
        except BaseException as error:
            span.outcome = next((name for kind, name in _OUTCOMES if isinstance(error, kind)), "error")
            raise


class CloudMapping(abc.ABC):
    """What a store behind an SDK adds, sync or async: its status table, the error mapping, the probe.

    :class:`CloudStore` (sync) and :class:`~cairnflow.savers._abase.AsyncCloudStore`
    combine it with their scaffold; a backend module's status table serves both.
    """

    url: str

    #: The exceptions ``_mapping`` maps (everything the SDK and its transport raise).
    _SDK_ERRORS: ClassVar[tuple[type[BaseException], ...]] = ()
    #: How the store spells each condition, for messages.
    _CONDITIONS: ClassVar[dict[Op, str]] = {Op.CREATE: "If-None-Match: *", Op.UPDATE: "If-Match: <etag>"}
    #: The backend's own entries of :data:`REINTERPRET`, where its answers mean something else.
    _REINTERPRET: ClassVar[dict[tuple[Op, Failure], Failure]] = {}
    #: A version no object can have, for the probe's If-Match phase.
    _NEVER_MATCHING_ETAG: ClassVar[str] = '"cairnflow-probe-never-matches"'

    #: What the store calls a bucket.
    _BUCKET: ClassVar[str] = "bucket"
    #: Names the bucket (container, account, prefix, endpoint) in messages; never credentials.
    where: str = "the store"
    #: Set by ``_init_probe``, which every cloud store's constructor calls.
    _probe: ConditionalWriteProbe

    def _init_probe(self, prefix: str, *, enabled: bool) -> None:
        from cairnflow.savers._probe import ConditionalWriteProbe  # it builds on this module

        self._probe = ConditionalWriteProbe(prefix, enabled=enabled)

    @abc.abstractmethod
    def _write(self, key: str, data: bytes, op: Op, etag: str | None) -> Any:
        """One write (a coroutine function in an async store): what the probe sends."""

    @property
    def probe_key(self) -> str:
        """The key of this store's conditional-write probe object (hidden from listings)."""
        return self._probe.key

    def _hidden_key(self) -> str | None:
        return self._probe.key

    @abc.abstractmethod
    def _classify(self, exc: BaseException) -> Classified:
        """The backend's status table: what one of its SDK errors means."""

    @contextlib.contextmanager
    def _mapping(self, op: Op, key: str | None, *, landing: bool = True) -> Iterator[Attempts]:
        """Map SDK errors raised inside to cairnflow's errors (the one place per backend).

        ``landing=False`` marks a request that cannot make a write visible (an S3 part
        upload): its failures are never ambiguous. The :class:`Attempts` yielded
        collects what the SDK's own retries saw, where the backend can watch them.
        """
        attempts = Attempts()
        token = _current.set(attempts)
        try:
            yield attempts
        except self._SDK_ERRORS as exc:
            error = self._error(exc, op, key, landing=landing, attempts=attempts)
            if error is not None:
                raise error from exc
        finally:
            # Closed from another context (an abandoned coroutine, collected): not ours to restore.
            with contextlib.suppress(ValueError):
                _current.reset(token)

    def _error(
        self,
        exc: BaseException,
        op: Op,
        key: str | None,
        *,
        landing: bool = True,
        attempts: Attempts | None = None,
    ) -> StoreError | None:
        """The typed error for ``exc`` raised by ``op``; ``None`` where it means success."""
        kind, status, code = self._classify(exc)
        kind = self._REINTERPRET.get((op, kind)) or REINTERPRET.get((op, kind), kind)
        if op is Op.DELETE and kind is Failure.MISSING:
            return None  # already gone: an unconditional delete is idempotent
        detail = (
            " ".join(str(p) for p in (f"HTTP {status}" if status else "", code) if p) or type(exc).__name__
        )
        reason = f"the {self._BUCKET} does not exist" if kind is Failure.NO_BUCKET else kind.value
        message = f"{op.value} failed ({detail}): {reason}"
        if kind in _ADVICE:
            message = f"{op.value} failed ({detail}): {self.where}: {reason}; {_ADVICE[kind]}"
        error_type = AlreadyExistsError if (op, kind) == (Op.CREATE, Failure.CONDITION) else ERROR_TYPES[kind]
        if error_type is TransientStoreError:
            landed = MAY_HAVE_LANDED[kind] or (attempts is not None and attempts.maybe_landed)
            ambiguous = op.writes and landing and landed
            outcome = "it may have been applied" if ambiguous else "nothing was applied"
            return TransientStoreError(
                f"{message}; {outcome if op.writes else 'try again'}",
                key=key,
                store=self.url,
                ambiguous=ambiguous,
            )
        return error_type(message, key=key, store=self.url)


class CloudStore(CloudMapping, BackendStore):
    """A store behind a sync SDK: errors are mapped through the backend's status table."""

    def _before_write(self, op: Op) -> None:
        self._probe.ensure(self, op)

    def _pages(self, pages: Iterator[P], prefix: str) -> Iterator[tuple[P, list[Any]]]:
        """Fetch an SDK pager's pages one request at a time, mapping its errors as LIST errors."""
        while True:
            with self._mapping(Op.LIST, prefix):
                page = next(pages, None)
                items = [] if page is None else list(page)
            if page is None:
                return
            yield page, items
