"""GCS-specific behaviour, on fake-gcs-server (tests/emulators/gcs.py).

The store contract itself is tests/contract (``pytest tests/contract -k gcs``).
Here: opening ``gs://`` URLs, request counts, the 8 MiB upload threshold,
emulator gaps (marked xfail), error mapping and injected network faults
through :class:`tests.support.faultproxy.FaultProxy`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from google.cloud.storage.retry import DEFAULT_RETRY  # type: ignore[import-untyped]

from cairnflow.core.errors import (
    AlreadyExistsError,
    ConditionalWritesUnsupportedError,
    NotFoundError,
    PreconditionFailedError,
    StoreAccessError,
    StoreError,
    TransientStoreError,
)
from cairnflow.core.store import CREATE, StoredObject, Update
from cairnflow.savers import open_store
from cairnflow.savers.gcs import GCSStore
from tests.emulators import StoreLocation
from tests.emulators.gcs import GCSStoreFactory, make_client
from tests.support.faultproxy import (
    DropAfterForward,
    DropBeforeForward,
    Fault,
    FaultProxy,
    Request,
    Respond,
    StripQueryParams,
)

MiB = 1 << 20
SDK_SINGLE_REQUEST_MAX = 8 * MiB  # google-cloud-storage's _MAX_MULTIPART_SIZE (inclusive)
#: Retries as the SDK's default policy, but fast, so persistent faults end quickly.
FAST_RETRY = DEFAULT_RETRY.with_delay(initial=0.01, maximum=0.05, multiplier=2.0).with_timeout(1.0)
REPO = Path(__file__).resolve().parents[2]


# --------------------------------------------------------------------------- helpers


@pytest.fixture
def proxy(gcs_store_factory: GCSStoreFactory) -> Iterator[FaultProxy]:
    with FaultProxy(gcs_store_factory.server_url, log_bodies=False) as p:
        yield p


@pytest.fixture
def proxied(gcs_store_factory: GCSStoreFactory, proxy: FaultProxy) -> Callable[..., GCSStore]:
    """GCSStores whose requests go through the fault proxy (fast retries unless overridden)."""

    def make(**options: Any) -> GCSStore:
        options.setdefault("retry", FAST_RETRY)
        # Wire-level tests count the adapter's own requests: the probe has its own tests.
        options.setdefault("verify_conditional_writes", False)
        store = gcs_store_factory(endpoint=proxy.url, **options)
        assert isinstance(store, GCSStore)
        return store

    return make


def is_upload(req: Request) -> bool:
    return req.method == "POST" and req.path.startswith("/upload/")


def is_download(req: Request) -> bool:
    return req.method == "GET" and req.path.startswith("/download/")


def first_n(n: int, match: Callable[[Request], bool], fault: Fault) -> Callable[[Request], Fault | None]:
    """Inject ``fault`` into the first ``n`` matching requests, then forward normally."""
    lock = threading.Lock()
    left = [n]

    def fn(req: Request) -> Fault | None:
        if not match(req):
            return None
        with lock:
            if left[0] <= 0:
                return None
            left[0] -= 1
        return fault

    return fn


def then(
    first: Callable[[Request], Fault | None], after: Fault, match: Callable[[Request], bool]
) -> Callable[[Request], Fault | None]:
    """``first`` until it forwards a matching request, then ``after`` for every matching request."""
    switched = threading.Event()

    def fn(req: Request) -> Fault | None:
        if not match(req):
            return None
        if switched.is_set():
            return after
        fault = first(req)
        if fault is None:
            switched.set()
            return after
        return fault

    return fn


def statuses(proxy: FaultProxy, match: Callable[[Request], bool]) -> list[int | None]:
    return [status for req, status in proxy.log if match(req)]


def absent(store: GCSStore, key: str) -> bool:
    try:
        store.get(key)
    except NotFoundError:
        return True
    return False


# --------------------------------------------------------------------------- opening


def test_open_store_with_users_client(gcs_store_factory: GCSStoreFactory) -> None:
    client = make_client(gcs_store_factory.server_url)
    try:
        store, prefix = open_store(f"gs://{gcs_store_factory.bucket}/p/q", client=client, page_size=3)
        assert isinstance(store, GCSStore)
        assert (store.url, prefix, store.page_size) == (f"gs://{gcs_store_factory.bucket}", "p/q/", 3)
        etag = store.put(prefix + "k", b"v", CREATE)
        assert (gcs_store_factory().get("p/q/k").data, etag.isdigit()) == (b"v", True)
        store.close()
        # The user's client is the user's: closing the store leaves it usable.
        assert client.bucket(gcs_store_factory.bucket).blob("p/q/k").download_as_bytes() == b"v"
    finally:
        client.close()


def test_open_store_in_child_process_from_environment(
    gcs_location: StoreLocation, gcs_store_factory: GCSStoreFactory
) -> None:
    code = textwrap.dedent(
        """
        import sys
        from cairnflow.savers import open_store
        store, prefix = open_store(sys.argv[1])
        print(type(store).__name__, prefix, store.put(prefix + "child", b"from-child"))
        """
    )
    env = {**os.environ, **gcs_location.env}
    out = subprocess.run(
        [sys.executable, "-c", code, gcs_location.url],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    kind, prefix, etag = out.stdout.split()
    assert (kind, prefix) == ("GCSStore", "wf/")
    got = gcs_store_factory().get("wf/child")
    assert (got.data, got.etag) == (b"from-child", etag)


def test_store_from_url_without_credentials_is_access_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # google.auth reads these from the environment; there is no other way to hide ADC.
    for name in ("STORAGE_EMULATOR_HOST", "GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_CLOUD_PROJECT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path))  # no gcloud ADC file here
    monkeypatch.setenv("NO_GCE_CHECK", "True")  # do not probe the GCE metadata server
    with pytest.raises(StoreAccessError, match="no-such-bucket") as info:
        open_store("gs://no-such-bucket/x")
    assert type(info.value.__cause__).__name__ == "DefaultCredentialsError"


def test_importing_core_and_savers_imports_no_google_module(tmp_path: Path) -> None:
    code = textwrap.dedent(
        """
        import sys
        import cairnflow.core, cairnflow.savers
        from cairnflow.core.store import CREATE
        store, prefix = cairnflow.savers.open_store(sys.argv[1])
        store.put(prefix + "k", b"v", CREATE)
        assert store.get(prefix + "k").data == b"v"
        assert [i.key for i in store.list(prefix)] == [prefix + "k"]
        print(sorted(m for m in sys.modules if m == "google" or m.startswith("google.")))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code, f"file://{tmp_path / 'store'}"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


# --------------------------------------------------------------------------- request counts


def test_get_and_small_put_are_one_request_each(proxied: Callable[..., GCSStore], proxy: FaultProxy) -> None:
    store = proxied()
    etag = store.put("one", b"body", CREATE)
    got = store.get("one")
    assert (got.data, got.etag) == (b"body", etag)
    assert [(r.method, r.query_params.get("uploadType"), s) for r, s in proxy.log] == [
        ("POST", "multipart", 200),
        ("GET", None, 200),
    ]
    assert proxy.log[0][0].query_params["ifGenerationMatch"] == "0"


def test_list_limit_one_costs_one_request(
    proxied: Callable[..., GCSStore], proxy: FaultProxy, gcs_store_factory: GCSStoreFactory
) -> None:
    writer = gcs_store_factory()
    keys = [f"l/{n:03d}" for n in range(20)]
    for key in keys:
        writer.put(key, b"", CREATE)
    store = proxied(page_size=7)

    def listing(**kw: Any) -> tuple[list[str], int]:
        proxy.clear_log()
        names = [i.key for i in store.list("l/", **kw)]
        return names, len(proxy.log)

    assert listing(limit=1) == (keys[:1], 1)
    # An exact match of start_after is skipped client-side (startOffset is inclusive).
    assert listing(start_after="l/004", limit=1) == (keys[5:6], 1)
    assert listing(start_after="l/004", limit=7) == (keys[5:12], 1)
    assert listing() == (keys, 3)  # 20 keys in pages of 7
    # Lazy paging: taking 8 entries fetches only two pages.
    proxy.clear_log()
    it = store.list("l/")
    taken = [next(it).key for _ in range(8)]
    assert (taken, len(proxy.log)) == (keys[:8], 2)
    assert all(req.query_params.get("maxResults") in ("1", "2", "7", "8") for req, _ in proxy.log)


# --------------------------------------------------------------------------- upload sizes


def test_object_over_8_mib_round_trips(gcs_store: GCSStore) -> None:
    body = os.urandom(1024) * (SDK_SINGLE_REQUEST_MAX // 1024) + b"tail"
    etag = gcs_store.put("big", body, CREATE)
    got = gcs_store.get("big")
    assert got.data == body
    assert got.etag == etag
    assert [(i.key, i.size) for i in gcs_store.list("big")] == [("big", len(body))]


def test_create_only_up_to_8_mib_is_one_conditional_request(
    proxied: Callable[..., GCSStore], proxy: FaultProxy
) -> None:
    store = proxied()
    body = b"a" * SDK_SINGLE_REQUEST_MAX
    store.put("edge", body, CREATE)
    with pytest.raises(AlreadyExistsError):
        store.put("edge", b"b" * SDK_SINGLE_REQUEST_MAX, CREATE)
    assert store.get("edge").data == body
    uploads = [(r.query_params.get("uploadType"), s) for r, s in proxy.log if is_upload(r)]
    assert uploads == [("multipart", 200), ("multipart", 412)]


@pytest.mark.xfail(
    strict=True,
    reason="fake-gcs-server ignores ifGenerationMatch on resumable uploads, which "
    "google-cloud-storage uses above 8 MiB; real GCS refuses the second create with 412",
)
def test_create_only_over_8_mib_refuses_existing_key(gcs_store: GCSStore) -> None:
    first = b"1" * (SDK_SINGLE_REQUEST_MAX + 1)
    gcs_store.put("big", first, CREATE)
    with pytest.raises(AlreadyExistsError):
        gcs_store.put("big", b"2" * (SDK_SINGLE_REQUEST_MAX + 1), CREATE)
    assert gcs_store.get("big").data == first


def test_non_generation_etags_are_precondition_failures(gcs_store: GCSStore) -> None:
    gcs_store.put("k", b"x", CREATE)
    with pytest.raises(PreconditionFailedError):
        gcs_store.put("k", b"y", Update('"abc"'))
    assert gcs_store.get("k").data == b"x"


# --------------------------------------------------------------------------- error mapping


def test_missing_bucket_is_access_error_naming_it(gcs_server_url: str) -> None:
    client = make_client(gcs_server_url)
    store = GCSStore("cf-no-such-bucket", client=client, retry=FAST_RETRY, verify_conditional_writes=False)
    try:
        with pytest.raises(StoreAccessError, match="cf-no-such-bucket") as put_info:
            store.put("wf/k", b"x", CREATE)
        assert put_info.value.key == "wf/k"
        with pytest.raises(StoreAccessError, match="cf-no-such-bucket") as list_info:
            list(store.list("wf/"))
        assert list_info.value.key == "wf/"
        with pytest.raises(StoreAccessError, match="cf-no-such-bucket"):
            store.put("wf/k", b"x", Update("1"))
    finally:
        client.close()


@pytest.mark.parametrize(
    ("status", "error"),
    [(401, StoreAccessError), (403, StoreAccessError), (400, StoreError), (404, NotFoundError)],
)
def test_get_error_statuses_map(
    proxied: Callable[..., GCSStore], proxy: FaultProxy, status: int, error: type[StoreError]
) -> None:
    store = proxied()
    store.put("k", b"x", CREATE)
    answer = Respond(
        status,
        b'{"error": {"code": %d, "message": "injected"}}' % status,
        {"Content-Type": "application/json"},
    )
    proxy.set_fault(lambda req: answer if is_download(req) else None)
    with pytest.raises(error) as info:
        store.get("k")
    assert type(info.value) is error
    assert info.value.key == "k"


def test_forbidden_upload_is_access_error(proxied: Callable[..., GCSStore], proxy: FaultProxy) -> None:
    store = proxied()
    answer = Respond(403, b'{"error": {"code": 403, "message": "denied"}}')
    proxy.set_fault(lambda req: answer if is_upload(req) else None)
    with pytest.raises(StoreAccessError, match="denied"):
        store.put("k", b"x", CREATE)
    assert statuses(proxy, is_upload) == [403]  # not retried


# --------------------------------------------------------------------------- injected faults


def test_one_503_on_create_is_retried_by_the_sdk(proxied: Callable[..., GCSStore], proxy: FaultProxy) -> None:
    store = proxied()
    proxy.set_fault(first_n(1, is_upload, Respond(503)))
    etag = store.put("k", b"ours", CREATE)
    assert statuses(proxy, is_upload) == [503, 200]
    assert store.get("k") == StoredObject(b"ours", etag)


@pytest.mark.parametrize("status", [503, 429])
def test_persistent_throttling_on_create_is_transient_and_unambiguous(
    proxied: Callable[..., GCSStore], proxy: FaultProxy, status: int
) -> None:
    store = proxied()
    proxy.set_fault(lambda req: Respond(status) if is_upload(req) else None)
    with pytest.raises(TransientStoreError) as info:
        store.put("k", b"ours", CREATE)
    assert info.value.ambiguous is False  # every attempt was refused before it was applied
    assert len(statuses(proxy, is_upload)) >= 2  # the SDK retried
    proxy.set_fault(None)
    assert absent(store, "k")


def test_503_without_sdk_retries_is_one_request(proxied: Callable[..., GCSStore], proxy: FaultProxy) -> None:
    store = proxied(retry=None)
    proxy.set_fault(lambda req: Respond(503) if is_upload(req) else None)
    with pytest.raises(TransientStoreError) as info:
        store.put("k", b"ours", CREATE)
    assert info.value.ambiguous is False
    assert statuses(proxy, is_upload) == [503]


def test_drop_after_forward_on_create_sdk_retry_meets_its_own_object(
    proxied: Callable[..., GCSStore], proxy: FaultProxy
) -> None:
    store = proxied()
    proxy.set_fault(first_n(1, is_upload, DropAfterForward()))
    # The first attempt landed; the SDK's retry (ifGenerationMatch=0) then gets 412.
    # The core's read-back turns this into success; the backend only reports it.
    with pytest.raises(AlreadyExistsError):
        store.put("k", b"ours", CREATE)
    assert statuses(proxy, is_upload) == [None, 412]
    assert store.get("k").data == b"ours"


def test_drop_after_forward_on_create_without_retries_is_ambiguous(
    proxied: Callable[..., GCSStore], proxy: FaultProxy
) -> None:
    store = proxied(retry=None)
    proxy.set_fault(first_n(1, is_upload, DropAfterForward()))
    with pytest.raises(TransientStoreError) as info:
        store.put("k", b"ours", CREATE)
    assert info.value.ambiguous is True
    assert store.get("k").data == b"ours"


def test_landed_attempt_then_503s_is_still_ambiguous(
    proxied: Callable[..., GCSStore], proxy: FaultProxy
) -> None:
    store = proxied()
    proxy.set_fault(then(first_n(1, is_upload, DropAfterForward()), Respond(503), is_upload))
    with pytest.raises(TransientStoreError) as info:
        store.put("k", b"ours", CREATE)
    # The last answer was a 503, but the first attempt was applied.
    assert info.value.ambiguous is True
    assert statuses(proxy, is_upload)[0] is None
    proxy.set_fault(None)
    assert store.get("k").data == b"ours"


def test_drop_before_forward_on_create_is_transient_and_nothing_written(
    proxied: Callable[..., GCSStore], proxy: FaultProxy
) -> None:
    store = proxied()
    proxy.set_fault(lambda req: DropBeforeForward() if is_upload(req) else None)
    with pytest.raises(TransientStoreError) as info:
        store.put("k", b"ours", CREATE)
    assert info.value.ambiguous is True  # the client cannot tell this drop from a later one
    proxy.set_fault(None)
    assert absent(store, "k")


def test_drop_after_forward_on_update_reports_precondition_failure(
    proxied: Callable[..., GCSStore], proxy: FaultProxy
) -> None:
    store = proxied()
    v1 = store.put("k", b"one", CREATE)
    proxy.set_fault(first_n(1, is_upload, DropAfterForward()))
    with pytest.raises(PreconditionFailedError):
        store.put("k", b"two", Update(v1))
    assert statuses(proxy, is_upload)[-2:] == [None, 412]
    assert store.get("k").data == b"two"


def test_reads_are_retried_and_never_ambiguous(proxied: Callable[..., GCSStore], proxy: FaultProxy) -> None:
    store = proxied()
    store.put("k", b"x", CREATE)
    proxy.set_fault(first_n(1, is_download, Respond(503)))
    assert store.get("k").data == b"x"
    proxy.set_fault(lambda req: DropBeforeForward() if req.method == "GET" else None)
    with pytest.raises(TransientStoreError) as get_info:
        store.get("k")
    with pytest.raises(TransientStoreError) as list_info:
        list(store.list(""))
    assert (get_info.value.ambiguous, list_info.value.ambiguous) == (False, False)


# --------------------------------------------------------------------------- conditional-write probe


def test_probe_refuses_a_store_that_ignores_if_generation_match(
    proxied: Callable[..., GCSStore], proxy: FaultProxy
) -> None:
    def drop_condition(req: Request) -> Fault | None:
        return StripQueryParams(("ifGenerationMatch",)) if is_upload(req) else None

    proxy.set_fault(drop_condition)
    store = proxied(verify_conditional_writes=True)
    with pytest.raises(ConditionalWritesUnsupportedError, match="ignores conditional writes"):
        store.put("wf/k", b"x", CREATE)
    with pytest.raises(ConditionalWritesUnsupportedError):  # remembered: no further writes
        store.put("wf/k", b"x", CREATE)
    proxy.set_fault(None)
    assert proxied(verify_conditional_writes=False).put("wf/k2", b"x", CREATE)  # the opt-out


def test_probe_costs_one_request_once_the_probe_object_exists(
    proxied: Callable[..., GCSStore], proxy: FaultProxy
) -> None:
    proxied(verify_conditional_writes=True).put("wf/a", b"x", CREATE)  # fresh: create + refused create + put
    assert [status for _, status in proxy.log] == [200, 412, 200]
    proxy.clear_log()
    store = proxied(verify_conditional_writes=True)
    store.put("wf/b", b"x", CREATE)
    store.put("wf/c", b"x", CREATE)
    assert [status for _, status in proxy.log] == [412, 200, 200]  # one refused probe, then the writes
    assert [i.key for i in store.list("")] == ["wf/a", "wf/b", "wf/c"]  # the probe object is hidden
    proxy.clear_log()
    assert [i.key for i in store.list("", limit=1)] == ["wf/a"]
    assert len(proxy.log) == 1
