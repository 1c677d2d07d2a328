"""The backend scaffold (``cairnflow.savers._base``) on a fake SDK: no emulator, no network.

A :class:`FakeStore` keeps objects in a dict and raises :class:`FakeSDKError`
(an HTTP status and code) or transport errors the way a cloud SDK would, so
that the error table, the ambiguity table, the probe's phases and its hiding
from listings are exercised exactly, request by request.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import ClassVar

import pytest

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
from cairnflow.core.store import CREATE, OVERWRITE, PROBE_SUFFIX, ObjectInfo, StoredObject, Update
from cairnflow.savers._base import (
    ERROR_TYPES,
    MAY_HAVE_LANDED,
    Classified,
    CloudStore,
    Failure,
    Op,
    current_attempts,
    put_op,
)


class FakeSDKError(Exception):
    def __init__(self, status: int, code: str = "") -> None:
        super().__init__(f"{status} {code}")
        self.status = status
        self.code = code


class FakeReadTimeout(Exception):
    """Sent, no answer: may have been applied."""


class FakeConnectRefused(Exception):
    """Never sent."""


_FAKE_STATUSES = {
    403: Failure.DENIED,
    404: Failure.MISSING,
    409: Failure.BUSY,
    412: Failure.CONDITION,
    501: Failure.UNSUPPORTED,
    503: Failure.BUSY,
}

Fault = Callable[[Op, str], BaseException | None]


class FakeStore(CloudStore):
    """A dict behind a fake SDK; ``fault`` injects errors, ``ignore`` drops conditions."""

    _SDK_ERRORS: ClassVar[tuple[type[BaseException], ...]] = (
        FakeSDKError,
        FakeReadTimeout,
        FakeConnectRefused,
    )

    def __init__(self, *, prefix: str = "wf/", verify: bool = True) -> None:
        self.url = "fake://bkt"
        self.where = "bucket 'bkt' (prefix 'wf/')"
        self.objects: dict[str, tuple[bytes, str]] = {}
        self.requests: list[tuple[Op, str]] = []
        self.list_limits: list[int | None] = []
        self.fault: Fault | None = None
        self.ignore: set[Op] = set()  # conditions this "gateway" strips
        self._version = 0
        self._lock = threading.Lock()
        self._init_probe(prefix, enabled=verify)

    def _classify(self, exc: BaseException) -> Classified:
        if isinstance(exc, FakeSDKError):
            kind = _FAKE_STATUSES.get(exc.status, Failure.SERVER if exc.status >= 500 else Failure.REFUSED)
            return Classified(kind, exc.status, exc.code)
        if isinstance(exc, FakeConnectRefused):
            return Classified(Failure.NOT_SENT, None, type(exc).__name__)
        return Classified(Failure.LOST, None, type(exc).__name__)

    def _request(self, op: Op, key: str) -> None:
        with self._lock:
            self.requests.append((op, key))
        error = self.fault(op, key) if self.fault is not None else None
        if error is not None:
            raise error

    def _write(self, key: str, data: bytes, op: Op, etag: str | None) -> str:
        with self._mapping(op, key):
            self._request(op, key)
            with self._lock:
                current = self.objects.get(key)
                if op not in self.ignore:
                    if op is Op.CREATE and current is not None:
                        raise FakeSDKError(412, "PreconditionFailed")
                    if op is Op.UPDATE and current is None:
                        raise FakeSDKError(404, "NoSuchKey")
                    if op is Op.UPDATE and current is not None and current[1] != etag:
                        raise FakeSDKError(412, "PreconditionFailed")
                self._version += 1
                self.objects[key] = (data, f"v{self._version}")
                return f"v{self._version}"

    def _read(self, key: str) -> StoredObject:
        with self._mapping(Op.GET, key):
            self._request(Op.GET, key)
            if key not in self.objects:
                raise FakeSDKError(404, "NoSuchKey")
            data, etag = self.objects[key]
        return StoredObject(data, etag)

    def _list(self, prefix: str, start_after: str | None, limit: int | None) -> Iterator[ObjectInfo]:
        self.list_limits.append(limit)
        with self._mapping(Op.LIST, prefix):
            self._request(Op.LIST, prefix)
        keys = sorted(
            k for k in self.objects if k.startswith(prefix) and (start_after is None or k > start_after)
        )
        for key in keys[:limit]:
            yield ObjectInfo(key, len(self.objects[key][0]), self.objects[key][1])

    def _remove(self, key: str) -> None:
        with self._mapping(Op.DELETE, key):
            self._request(Op.DELETE, key)
            if key not in self.objects:
                raise FakeSDKError(404, "NoSuchKey")
            del self.objects[key]


def ready_store() -> FakeStore:
    """A store whose probe has run (so that faults hit only the writes under test)."""
    store = FakeStore()
    store.put("wf/warm-up", b"", CREATE)
    store.put("wf/warm-up", b"", Update(store.get("wf/warm-up").etag))
    store.requests.clear()
    return store


def fail_with(error: BaseException, only: Op | None = None) -> Fault:
    return lambda op, key: error if only is None or op is only else None


# --------------------------------------------------------------------------- the tables


def test_every_failure_has_an_error_type_and_an_ambiguity_rule() -> None:
    assert set(ERROR_TYPES) == set(Failure) == set(MAY_HAVE_LANDED)


def test_op_names_and_what_writes() -> None:
    assert [op.value for op in Op] == ["create", "update", "overwrite", "get", "list", "delete"]
    assert {op for op in Op if op.writes} == {Op.CREATE, Op.UPDATE, Op.OVERWRITE, Op.DELETE}


def test_put_mode_dispatch() -> None:
    assert put_op(CREATE) == (Op.CREATE, None)
    assert put_op(OVERWRITE) == (Op.OVERWRITE, None)
    assert put_op(Update('"e"')) == (Op.UPDATE, '"e"')
    with pytest.raises(TypeError, match="unknown put mode"):
        put_op("create")  # type: ignore[arg-type]


# (operation, injected SDK error) -> the typed error the store raises
MAPPING = [
    (Op.CREATE, FakeSDKError(412), AlreadyExistsError),
    (Op.UPDATE, FakeSDKError(412), PreconditionFailedError),
    (Op.UPDATE, FakeSDKError(404), PreconditionFailedError),
    (Op.GET, FakeSDKError(404), NotFoundError),
    (Op.GET, FakeSDKError(412), TransientStoreError),
    (Op.LIST, FakeSDKError(404), StoreAccessError),
    (Op.CREATE, FakeSDKError(404), StoreAccessError),
    (Op.CREATE, FakeSDKError(403, "AccessDenied"), StoreAccessError),
    (Op.GET, FakeSDKError(403, "AccessDenied"), StoreAccessError),
    (Op.CREATE, FakeSDKError(501, "NotImplemented"), ConditionalWritesUnsupportedError),
    (Op.GET, FakeSDKError(501, "NotImplemented"), StoreError),
    (Op.OVERWRITE, FakeSDKError(400, "InvalidArgument"), StoreError),
    (Op.DELETE, FakeSDKError(500), TransientStoreError),
]


def _call(store: FakeStore, op: Op) -> None:
    if op is Op.CREATE:
        store.put("wf/k", b"x", CREATE)
    elif op is Op.UPDATE:
        store.put("wf/k", b"x", Update("v0"))
    elif op is Op.OVERWRITE:
        store.put("wf/k", b"x", OVERWRITE)
    elif op is Op.GET:
        store.get("wf/k")
    elif op is Op.LIST:
        list(store.list("wf/"))
    else:
        store.delete("wf/k")


@pytest.mark.parametrize(("op", "error", "expected"), MAPPING, ids=lambda v: str(getattr(v, "value", v)))
def test_error_table(op: Op, error: FakeSDKError, expected: type[StoreError]) -> None:
    store = ready_store()
    store.fault = fail_with(error, only=op)
    with pytest.raises(StoreError) as info:
        _call(store, op)
    assert type(info.value) is expected
    assert info.value.__cause__ is error  # the SDK error stays reachable
    assert info.value.store == "fake://bkt"
    assert str(error.status) in str(info.value)


def test_access_errors_name_the_bucket_and_what_to_do() -> None:
    store = ready_store()
    store.fault = fail_with(FakeSDKError(403, "AccessDenied"))
    with pytest.raises(StoreAccessError) as info:
        store.get("wf/k")
    message = str(info.value)
    assert "bucket 'bkt'" in message and "'wf/'" in message
    assert "AccessDenied" in message and "check the credentials" in message


def test_delete_of_a_missing_object_is_success() -> None:
    store = ready_store()
    store.delete("wf/never-there")
    assert store.requests == [(Op.DELETE, "wf/never-there")]


# (operation, injected error) -> whether the TransientStoreError says "may have been applied"
AMBIGUITY = [
    (Op.CREATE, FakeSDKError(500), True),
    (Op.CREATE, FakeReadTimeout(), True),
    (Op.UPDATE, FakeReadTimeout(), True),
    (Op.DELETE, FakeReadTimeout(), True),
    (Op.CREATE, FakeSDKError(503, "SlowDown"), False),
    (Op.CREATE, FakeSDKError(409, "ConditionalRequestConflict"), False),
    (Op.CREATE, FakeConnectRefused(), False),
    (Op.GET, FakeSDKError(500), False),
    (Op.GET, FakeReadTimeout(), False),
    (Op.LIST, FakeReadTimeout(), False),
]


@pytest.mark.parametrize(("op", "error", "ambiguous"), AMBIGUITY, ids=lambda v: str(getattr(v, "value", v)))
def test_ambiguity_table(op: Op, error: BaseException, ambiguous: bool) -> None:
    store = ready_store()
    store.fault = fail_with(error, only=op)
    with pytest.raises(TransientStoreError) as info:
        _call(store, op)
    assert info.value.ambiguous is ambiguous
    # The message says it too, for writes; a read just says to try again.
    assert ("may have been applied" in str(info.value)) is ambiguous
    assert ("nothing was applied" in str(info.value)) is (op.writes and not ambiguous)


def test_an_earlier_attempt_that_may_have_landed_makes_a_final_503_ambiguous() -> None:
    store = ready_store()

    def fault(op: Op, key: str) -> BaseException | None:
        attempts = current_attempts()  # what an SDK retry hook records, as S3's does
        assert attempts is not None
        attempts.record(Failure.LOST)  # attempt 1: the answer was lost
        return FakeSDKError(503, "SlowDown")  # attempt 2: throttled

    store.fault = fault
    with pytest.raises(TransientStoreError) as info:
        store.put("wf/k", b"x", CREATE)
    assert info.value.ambiguous is True


def test_a_request_that_cannot_land_is_never_ambiguous() -> None:
    store = ready_store()
    with pytest.raises(TransientStoreError) as info, store._mapping(Op.CREATE, "wf/k", landing=False):
        raise FakeReadTimeout()  # e.g. an S3 part upload: nothing is visible before the commit
    assert info.value.ambiguous is False


# --------------------------------------------------------------------------- key checks


def test_empty_keys_are_refused_before_any_request() -> None:
    store = FakeStore(verify=False)
    calls: list[Callable[[], object]] = [
        lambda: store.put("", b"x"),
        lambda: store.get(""),
        lambda: store.delete(""),
    ]
    for call in calls:
        with pytest.raises(InvalidArgumentError, match="non-empty"):
            call()
    assert store.requests == []


# --------------------------------------------------------------------------- the probe

PROBE = f"wf/{PROBE_SUFFIX}"


def test_probe_on_a_fresh_prefix_costs_two_requests_then_none() -> None:
    store = FakeStore()
    store.put("wf/a", b"1", CREATE)
    store.put("wf/b", b"2", CREATE)
    assert store.requests == [
        (Op.CREATE, PROBE),
        (Op.CREATE, PROBE),
        (Op.CREATE, "wf/a"),
        (Op.CREATE, "wf/b"),
    ]


def test_probe_costs_one_request_once_the_probe_object_exists() -> None:
    first = FakeStore()
    first.put("wf/a", b"1", CREATE)
    second = FakeStore()
    second.objects = first.objects  # another client of the same bucket
    second.put("wf/b", b"2", OVERWRITE)
    assert second.requests == [(Op.CREATE, PROBE), (Op.OVERWRITE, "wf/b")]


def test_if_match_phase_runs_once_before_the_first_update() -> None:
    store = FakeStore()
    v1 = store.put("wf/a", b"1", CREATE)
    store.requests.clear()
    v2 = store.put("wf/a", b"2", Update(v1))
    store.put("wf/a", b"3", Update(v2))
    assert store.requests == [(Op.UPDATE, PROBE), (Op.UPDATE, "wf/a"), (Op.UPDATE, "wf/a")]


def test_probe_refuses_a_store_that_ignores_create_only_and_remembers() -> None:
    store = FakeStore()
    store.ignore = {Op.CREATE}
    with pytest.raises(ConditionalWritesUnsupportedError) as info:
        store.put("wf/a", b"1", CREATE)
    message = str(info.value)
    assert "bucket 'bkt'" in message and "If-None-Match" in message
    assert "ignores conditional writes" in message and "verify_conditional_writes=False" in message
    assert "wf/a" not in store.objects
    store.requests.clear()
    with pytest.raises(ConditionalWritesUnsupportedError):
        store.put("wf/a", b"1", OVERWRITE)
    assert store.requests == []  # the failure is remembered: no request is sent again


def test_probe_refuses_a_store_that_ignores_if_match() -> None:
    store = FakeStore()
    store.ignore = {Op.UPDATE}
    v1 = store.put("wf/a", b"1", CREATE)  # create-only is honoured
    with pytest.raises(ConditionalWritesUnsupportedError, match="If-Match"):
        store.put("wf/a", b"2", Update(v1))
    assert store.objects["wf/a"][0] == b"1"


def test_probe_refuses_a_store_answering_501() -> None:
    store = FakeStore()
    store.fault = lambda op, key: FakeSDKError(501, "NotImplemented") if key == PROBE else None
    with pytest.raises(ConditionalWritesUnsupportedError, match="501"):
        store.put("wf/a", b"1", CREATE)


def test_probe_errors_that_are_not_about_conditions_are_raised_and_retried_later() -> None:
    store = FakeStore()
    store.fault = fail_with(FakeSDKError(503, "SlowDown"))
    with pytest.raises(TransientStoreError):
        store.put("wf/a", b"1", CREATE)
    store.fault = None
    store.put("wf/a", b"1", CREATE)  # the probe runs again, and passes
    assert store.objects["wf/a"][0] == b"1"


def test_disabled_probe_sends_nothing() -> None:
    store = FakeStore(verify=False)
    v1 = store.put("wf/a", b"1", CREATE)
    store.put("wf/a", b"2", Update(v1))
    assert [key for _, key in store.requests] == ["wf/a", "wf/a"]


def test_probe_runs_once_under_concurrent_first_writes() -> None:
    store = FakeStore()
    barrier = threading.Barrier(8)

    def write(n: int) -> None:
        barrier.wait()
        store.put(f"wf/k{n}", b"x", CREATE)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [key for _, key in store.requests].count(PROBE) == 2
    assert len(store.objects) == 9


# --------------------------------------------------------------------------- probe hiding


def test_listings_hide_the_probe_object_at_no_extra_request() -> None:
    store = FakeStore()
    store.put("wf/a", b"1", CREATE)  # "wf/.cairnflow-probe" sorts before "wf/a"
    assert [i.key for i in store.list("wf/")] == ["wf/a"]
    store.requests.clear()
    store.list_limits.clear()
    assert [i.key for i in store.list("wf/", limit=1)] == ["wf/a"]
    assert store.list_limits == [2]  # one more asked for, in the same request
    assert store.requests == [(Op.LIST, "wf/")]


def test_listings_ask_for_no_extra_key_where_the_probe_cannot_be() -> None:
    store = FakeStore()
    store.put("wf/a", b"1", CREATE)
    store.put("wf/b", b"1", CREATE)
    assert [i.key for i in store.list("wf/", start_after="wf/a", limit=1)] == ["wf/b"]
    assert [i.key for i in store.list("wf/a", limit=1)] == ["wf/a"]
    assert store.list_limits == [1, 1]
    assert list(store.list("wf/", limit=0)) == []
