"""Azure-specific tests for cairnflow.savers.azure, on Azurite (the shared contract is in tests/contract).

Faults are injected with tests.support.faultproxy.FaultProxy placed between the
SDK and Azurite: the store's account URL is the proxy's URL, and the shared-key
signature stays valid because the proxy keeps the path and the Host header.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from azure.core.exceptions import (
    ClientAuthenticationError,
    ResourceExistsError,
    ResourceModifiedError,
)
from azure.storage.blob import BlobServiceClient

from cairnflow.core.errors import (
    AlreadyExistsError,
    NotFoundError,
    PreconditionFailedError,
    StoreAccessError,
    StoreError,
    TransientStoreError,
)
from cairnflow.core.store import CREATE, OVERWRITE, ObjectStore, Update
from cairnflow.savers._base import Op
from cairnflow.savers.azure import AzureBlobStore, store_from_url
from tests.emulators import StoreLocation, free_port
from tests.emulators.azure import ACCOUNT, ACCOUNT_KEY, Azurite, connection_string, make_store
from tests.support.faultproxy import (
    DropAfterForward,
    DropBeforeForward,
    FaultProxy,
    Request,
    Respond,
    StripHeaders,
)

REPO = Path(__file__).resolve().parents[2]


# --------------------------------------------------------------------------- helpers


def _error_body(code: str, message: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        f"<Error><Code>{code}</Code><Message>{message}</Message></Error>"
    ).encode()


def azure_error(status: int, code: str, message: str = "injected") -> Respond:
    """An answer shaped like the service's own error responses."""
    return Respond(
        status,
        _error_body(code, message),
        {"x-ms-error-code": code, "Content-Type": "application/xml"},
    )


def blob_put(req: Request, blob: str) -> bool:
    """True for the request that writes ``blob`` (Put Blob or Put Block List)."""
    return (
        req.method == "PUT"
        and req.path.endswith(f"/{blob}")
        and req.query_params.get("comp", "blocklist") == "blocklist"
    )


@pytest.fixture
def proxy(azure_server: Azurite) -> Iterator[FaultProxy]:
    with FaultProxy(azure_server.upstream, log_bodies=False) as p:
        yield p


@pytest.fixture
def direct(azure_server: Azurite, azure_container: str) -> Iterator[ObjectStore]:
    """A store that talks to Azurite directly, to check what really landed."""
    store = make_store(azure_container, azure_server.url)
    yield store
    store.close()


@pytest.fixture
def via_proxy(proxy: FaultProxy, azure_container: str) -> Iterator[Callable[..., ObjectStore]]:
    """Make stores whose requests go through the proxy (no SDK retries unless asked)."""
    stores: list[ObjectStore] = []

    def make(**options: object) -> ObjectStore:
        options.setdefault("retry_total", 0)
        # Wire-level tests count the adapter's own requests: the probe has its own tests.
        options.setdefault("verify_conditional_writes", False)
        store = make_store(azure_container, f"{proxy.url}/{ACCOUNT}", **options)
        stores.append(store)
        return store

    yield make
    for store in stores:
        store.close()


def requests_seen(proxy: FaultProxy) -> list[tuple[str, str, int | None]]:
    return [(r.method, r.query, status) for r, status in proxy.log]


# --------------------------------------------------------------------------- opening


def test_open_store_reads_connection_string_from_env(
    azure_location: StoreLocation, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cairnflow.savers import open_store

    for name, value in azure_location.env.items():
        monkeypatch.setenv(name, value)
    store, prefix = open_store(azure_location.url)
    try:
        assert isinstance(store, AzureBlobStore)
        assert prefix == "wf/"
        assert store.url == f"az://{store.container}"
        etag = store.put(f"{prefix}k", b"v", CREATE)
        assert store.get(f"{prefix}k").etag == etag
        assert [i.key for i in store.list(prefix)] == ["wf/k"]
    finally:
        store.close()


def test_location_opens_in_a_child_process(azure_location: StoreLocation, azure_server: Azurite) -> None:
    code = (
        "import sys\n"
        "from cairnflow.savers import open_store\n"
        "store, prefix = open_store(sys.argv[1])\n"
        "print(store.put(prefix + 'child', b'from the child'))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, azure_location.url],
        env={**os.environ, **azure_location.env},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    container = azure_location.url.removeprefix("az://").partition("/")[0]
    got = make_store(container, azure_server.url).get("wf/child")
    assert (got.data, got.etag) == (b"from the child", result.stdout.strip())


def test_store_from_url_passes_a_users_clients(azure_connection_string: str, azure_container: str) -> None:
    service = BlobServiceClient.from_connection_string(azure_connection_string)
    with service:
        via_service = store_from_url(azure_container, "p/", service_client=service)
        via_container = store_from_url(
            azure_container, "p/", container_client=service.get_container_client(azure_container)
        )
        via_service.put("p/a", b"1", CREATE)
        assert via_container.get("p/a").data == b"1"
        via_service.close()  # not ours: the user's client stays usable
        assert via_container.get("p/a").data == b"1"
    with pytest.raises(ValueError, match="does not match"):
        AzureBlobStore("other", container_client=service.get_container_client(azure_container))


def test_store_from_url_without_any_account_is_an_access_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_ACCOUNT_URL", "AZURE_STORAGE_ACCOUNT"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(StoreAccessError, match="AZURE_STORAGE_CONNECTION_STRING") as info:
        store_from_url("box", "p/")
    assert "az://box" in str(info.value)


def test_store_from_url_account_name_without_azure_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    from cairnflow.savers import MissingDependencyError

    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING", raising=False)
    monkeypatch.delenv("AZURE_STORAGE_ACCOUNT_URL", raising=False)
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT", "someaccount")
    monkeypatch.setitem(sys.modules, "azure.identity", None)  # as if not installed
    with pytest.raises(MissingDependencyError, match="azure-identity") as info:
        store_from_url("box", "p/")
    assert "AZURE_STORAGE_CONNECTION_STRING" in str(info.value)


def test_store_from_url_account_name_builds_the_public_endpoint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from azure.core.credentials import AzureNamedKeyCredential

    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING", raising=False)
    monkeypatch.delenv("AZURE_STORAGE_ACCOUNT_URL", raising=False)
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT", "someaccount")
    credential = AzureNamedKeyCredential("someaccount", ACCOUNT_KEY)
    store = store_from_url("box", "p/", credential=credential)  # no request is sent
    assert isinstance(store, AzureBlobStore)
    assert store.account == "someaccount"
    assert store._container.url == "https://someaccount.blob.core.windows.net/box"
    store.close()


def test_constructor_validates_its_arguments(azure_connection_string: str) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        AzureBlobStore("box")
    with pytest.raises(ValueError, match="exactly one"):
        AzureBlobStore("box", connection_string=azure_connection_string, account_url="http://127.0.0.1:1/x")
    with pytest.raises(ValueError, match="page_size"):
        AzureBlobStore("box", connection_string=azure_connection_string, page_size=5001)


def test_file_stores_import_no_azure_module(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "import cairnflow.core, cairnflow.core.store, cairnflow.core.errors\n"
        "from cairnflow.savers import open_store\n"
        "store, _ = open_store('file://' + sys.argv[1])\n"
        "store.put('a/b', b'x')\n"
        "assert store.get('a/b').data == b'x'\n"
        "print(sorted(m for m in sys.modules if m == 'azure' or m.startswith('azure.')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "store")],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


# --------------------------------------------------------------------------- requests


def test_list_is_lazy_and_limit_one_costs_one_request(
    via_proxy: Callable[..., ObjectStore], direct: ObjectStore, proxy: FaultProxy
) -> None:
    for n in range(20):
        direct.put(f"l/{n:02d}", b"", CREATE)
    store = via_proxy(page_size=7)

    listing = store.list("l/", limit=1)
    assert proxy.log == []  # nothing is sent before the first item is asked for
    assert [i.key for i in listing] == ["l/00"]
    assert len(proxy.log) == 1
    assert proxy.log[0][0].query_params["maxresults"] == "1"

    proxy.clear_log()
    assert len(list(store.list("l/"))) == 20
    assert len(proxy.log) == 3  # 20 names in pages of 7

    # start_after before the prefix skips nothing, so limit=1 still costs one request.
    proxy.clear_log()
    assert [i.key for i in store.list("l/", start_after="a", limit=1)] == ["l/00"]
    assert len(proxy.log) == 1

    # start_after after every name with the prefix: no request at all.
    proxy.clear_log()
    assert list(store.list("l/", start_after="m")) == []
    assert proxy.log == []

    # Inside the prefix, start_after pages from the prefix's start and skips (documented cost).
    proxy.clear_log()
    assert [i.key for i in store.list("l/", start_after="l/15", limit=1)] == ["l/16"]
    assert len(proxy.log) == 3  # names 00-13 fill two pages before l/16 appears


def test_get_is_one_request_and_etags_agree_everywhere(
    via_proxy: Callable[..., ObjectStore], proxy: FaultProxy
) -> None:
    store = via_proxy()
    put_etag = store.put("e/k", b"body", CREATE)
    proxy.clear_log()
    got = store.get("e/k")
    assert [(r.method, s) for r, s in proxy.log] == [("GET", 206)]
    (listed,) = store.list("e/")
    assert got.etag == put_etag == listed.etag
    assert put_etag.startswith('"')
    assert listed.etag is not None
    # A listed ETag is a valid compare-and-swap token.
    store.put("e/k", b"next", Update(listed.etag))
    assert store.get("e/k").data == b"next"


def test_create_and_update_send_exactly_the_http_conditions(
    via_proxy: Callable[..., ObjectStore], proxy: FaultProxy
) -> None:
    store = via_proxy()
    etag = store.put("c/k", b"1", CREATE)
    store.put("c/k", b"2", Update(etag))
    store.put("c/k", b"3", OVERWRITE)
    conditions = [
        (r.header("If-None-Match"), r.header("If-Match")) for r, _ in proxy.log if r.method == "PUT"
    ]
    assert conditions == [("*", None), (None, etag), (None, None)]


def test_large_blob_commit_carries_the_create_condition(
    via_proxy: Callable[..., ObjectStore], proxy: FaultProxy
) -> None:
    store = via_proxy()
    body = os.urandom(1 << 20) * 65 + b"end"  # > 64 MiB: staged blocks plus a commit
    etag = store.put("big/blob", body, CREATE)
    got = store.get("big/blob")
    assert got.etag == etag
    assert got.data == body

    puts = [(r, status) for r, status in proxy.log if r.method == "PUT"]
    blocks = [(r, s) for r, s in puts if r.query_params.get("comp") == "block"]
    commits = [(r, s) for r, s in puts if r.query_params.get("comp") == "blocklist"]
    assert len(blocks) == 17  # 4 MiB blocks
    assert all(r.header("If-None-Match") is None and s == 201 for r, s in blocks)
    assert [(r.header("If-None-Match"), s) for r, s in commits] == [("*", 201)]

    proxy.clear_log()
    with pytest.raises(AlreadyExistsError):
        store.put("big/blob", body[::-1], CREATE)
    commit = [(r, s) for r, s in proxy.log if r.query_params.get("comp") == "blocklist"]
    assert [(r.header("If-None-Match"), s) for r, s in commit] == [("*", 409)]
    assert store.get("big/blob").etag == etag

    # Above 32 MiB a read takes several GETs, all after the first pinned with If-Match:
    # a replacement between them is a 412, reported as a transient read failure.
    proxy.set_fault(lambda r: azure_error(412, "ConditionNotMet") if r.header("If-Match") == etag else None)
    with pytest.raises(TransientStoreError) as info:
        store.get("big/blob")
    assert info.value.ambiguous is False


def test_block_commit_refused_for_lost_blocks_is_transient_and_not_applied(
    via_proxy: Callable[..., ObjectStore], proxy: FaultProxy, direct: ObjectStore
) -> None:
    # Small thresholds: a 3 KiB body goes as three staged blocks and a commit.
    store = via_proxy(client_options={"max_single_put_size": 1024, "max_block_size": 1024})
    proxy.set_fault(
        lambda r: azure_error(400, "InvalidBlockList") if r.query_params.get("comp") == "blocklist" else None
    )
    with pytest.raises(TransientStoreError) as info:
        store.put("bl/k", b"z" * 3072, CREATE)
    assert info.value.ambiguous is False
    assert [r.query_params.get("comp") for r, _ in proxy.log] == ["block"] * 3 + ["blocklist"]
    with pytest.raises(NotFoundError):
        direct.get("bl/k")


# --------------------------------------------------------------------------- error mapping


def test_a_412_on_create_is_already_exists_and_on_update_precondition_failed(
    via_proxy: Callable[..., ObjectStore], proxy: FaultProxy, direct: ObjectStore
) -> None:
    store = via_proxy()
    # Some gateways answer an If-None-Match: * conflict with 412 instead of 409.
    proxy.set_fault(lambda r: azure_error(412, "ConditionNotMet") if blob_put(r, "q/new") else None)
    with pytest.raises(AlreadyExistsError):
        store.put("q/new", b"x", CREATE)
    proxy.set_fault(None)

    # A real 412 from Azurite on a stale update.
    v1 = store.put("q/k", b"1", CREATE)
    store.put("q/k", b"2", Update(v1))
    with pytest.raises(PreconditionFailedError):
        store.put("q/k", b"3", Update(v1))
    # And an update of a missing blob (Azurite: 412; the service may say 404).
    with pytest.raises(PreconditionFailedError):
        store.put("q/none", b"3", Update(v1))
    proxy.set_fault(lambda r: azure_error(404, "BlobNotFound") if blob_put(r, "q/k") else None)
    with pytest.raises(PreconditionFailedError):
        store.put("q/k", b"3", Update(store.get("q/k").etag))
    assert direct.get("q/k").data == b"2"


def _offline_store() -> AzureBlobStore:
    """A store on container 'c' of account 'acct' that never sends a request (for mapping tests)."""
    return AzureBlobStore("c", account_url="https://acct.blob.core.windows.net")


@pytest.mark.parametrize("mode", ["create", "update"])
def test_mapping_decides_by_mode_not_by_the_sdk_exception_class(mode: str) -> None:
    # upload_blob(overwrite=False) turns every 412 into ResourceExistsError with code
    # BlobAlreadyExists: only the put mode tells what the 412 meant.
    # (The SDK sets error_code on its exceptions at run time; the stubs do not declare it.)
    relabelled = ResourceExistsError(message="The specified blob already exists.")
    relabelled.status_code = 412
    relabelled.error_code = "BlobAlreadyExists"  # type: ignore[attr-defined]
    genuine = ResourceModifiedError(message="The condition specified ... is not met.")
    genuine.status_code = 412
    genuine.error_code = "ConditionNotMet"  # type: ignore[attr-defined]
    expected = AlreadyExistsError if mode == "create" else PreconditionFailedError
    store = _offline_store()
    for exc in (relabelled, genuine):
        error = store._error(exc, Op.CREATE if mode == "create" else Op.UPDATE, "k")
        assert type(error) is expected


def test_a_failed_credential_is_an_access_error() -> None:
    # e.g. DefaultAzureCredential finding no identity: no request reached the service.
    error = _offline_store()._error(
        ClientAuthenticationError(message="DefaultAzureCredential failed to retrieve a token"), Op.GET, "k"
    )
    assert type(error) is StoreAccessError
    assert "'c'" in str(error)
    assert "'acct'" in str(error)


def test_server_busy_is_transient_and_not_ambiguous(
    via_proxy: Callable[..., ObjectStore], proxy: FaultProxy, direct: ObjectStore
) -> None:
    store = via_proxy()
    proxy.set_fault(lambda r: azure_error(503, "ServerBusy") if r.method == "PUT" else None)
    with pytest.raises(TransientStoreError) as info:
        store.put("b/k", b"x", CREATE)
    assert info.value.ambiguous is False
    assert "ServerBusy" in str(info.value)
    with pytest.raises(NotFoundError):
        direct.get("b/k")


def test_operation_timed_out_on_a_write_is_ambiguous(
    via_proxy: Callable[..., ObjectStore], proxy: FaultProxy
) -> None:
    store = via_proxy()
    v1 = store.put("t/k", b"1", CREATE)
    proxy.set_fault(lambda r: azure_error(500, "OperationTimedOut") if blob_put(r, "t/k") else None)
    with pytest.raises(TransientStoreError) as info:
        store.put("t/k", b"2", Update(v1))
    assert info.value.ambiguous is True
    proxy.set_fault(lambda r: azure_error(500, "InternalError") if r.method == "GET" else None)
    with pytest.raises(TransientStoreError) as read_info:
        store.get("t/k")
    assert read_info.value.ambiguous is False  # a read writes nothing


def test_dropped_answer_after_a_create_landed(
    via_proxy: Callable[..., ObjectStore], proxy: FaultProxy, direct: ObjectStore
) -> None:
    store = via_proxy()
    proxy.set_fault(lambda r: DropAfterForward() if blob_put(r, "d/k") else None)
    with pytest.raises(TransientStoreError) as info:
        store.put("d/k", b"ours", CREATE)
    assert info.value.ambiguous is True
    assert direct.get("d/k").data == b"ours"  # it landed: only a read-back can tell


def test_sdk_retry_turns_a_lost_create_answer_into_already_exists(
    via_proxy: Callable[..., ObjectStore], proxy: FaultProxy, direct: ObjectStore
) -> None:
    # With SDK retries on, the retried PUT finds our own blob: 409 -> AlreadyExistsError.
    # The core's read-back (writer token) is what recognises it as ours.
    store = via_proxy(retry_total=1)
    dropped: list[Request] = []

    def drop_first(r: Request) -> DropAfterForward | None:
        if blob_put(r, "d/k") and not dropped:
            dropped.append(r)
            return DropAfterForward()
        return None

    proxy.set_fault(drop_first)
    with pytest.raises(AlreadyExistsError):
        store.put("d/k", b"ours", CREATE)
    assert [s for r, s in proxy.log if blob_put(r, "d/k")] == [None, 409]
    assert direct.get("d/k").data == b"ours"


def test_sdk_retry_turns_a_lost_update_answer_into_precondition_failed(
    via_proxy: Callable[..., ObjectStore], proxy: FaultProxy, direct: ObjectStore
) -> None:
    store = via_proxy(retry_total=1)
    v1 = store.put("u/k", b"1", CREATE)
    dropped: list[Request] = []

    def drop_first(r: Request) -> DropAfterForward | None:
        if blob_put(r, "u/k") and not dropped:
            dropped.append(r)
            return DropAfterForward()
        return None

    proxy.set_fault(drop_first)
    with pytest.raises(PreconditionFailedError):
        store.put("u/k", b"2", Update(v1))
    assert direct.get("u/k").data == b"2"  # the update did land


def test_sdk_retries_a_put_refused_with_server_busy(
    via_proxy: Callable[..., ObjectStore], proxy: FaultProxy, direct: ObjectStore
) -> None:
    store = via_proxy(retry_total=1)
    busy: list[Request] = []

    def busy_once(r: Request) -> Respond | None:
        if blob_put(r, "r/k") and not busy:
            busy.append(r)
            return azure_error(503, "ServerBusy")
        return None

    proxy.set_fault(busy_once)
    store.put("r/k", b"x", CREATE)
    assert [s for r, s in proxy.log if blob_put(r, "r/k")] == [503, 201]
    assert direct.get("r/k").data == b"x"


def test_connection_dropped_before_forwarding(
    via_proxy: Callable[..., ObjectStore], proxy: FaultProxy, direct: ObjectStore
) -> None:
    store = via_proxy()
    proxy.set_fault(lambda r: DropBeforeForward() if blob_put(r, "x/k") else None)
    with pytest.raises(TransientStoreError) as info:
        store.put("x/k", b"x", CREATE)
    # The client cannot tell this from a drop after forwarding: it must say "ambiguous".
    assert info.value.ambiguous is True
    with pytest.raises(NotFoundError):
        direct.get("x/k")


def test_connection_refused_is_transient_and_certainly_not_applied(azure_container: str) -> None:
    store = make_store(azure_container, f"http://127.0.0.1:{free_port()}/{ACCOUNT}", retry_total=0)
    with pytest.raises(TransientStoreError) as info:
        store.put("k", b"x", CREATE)
    assert info.value.ambiguous is False
    store.close()


def test_missing_container_is_an_access_error_naming_it(azure_server: Azurite) -> None:
    store = make_store("no-such-container", azure_server.url, retry_total=0)
    calls: list[Callable[[], object]] = [
        lambda: store.put("p/k", b"x", CREATE),
        lambda: store.put("p/k", b"x", Update('"0x1"')),
        lambda: store.get("p/k"),
        lambda: list(store.list("p/")),
        lambda: store.delete("p/k"),
    ]
    for call in calls:
        with pytest.raises(StoreAccessError, match="'no-such-container'") as info:
            call()
        assert "does not exist" in str(info.value)
        assert ACCOUNT in str(info.value)
    store.close()


def test_wrong_account_key_is_an_access_error(azure_server: Azurite, azure_container: str) -> None:
    wrong_key = base64.b64encode(b"not the key".ljust(64, b"!")).decode()
    store = AzureBlobStore(
        azure_container,
        connection_string=connection_string(azure_server.url, account_key=wrong_key),
        retry_total=0,
    )
    for call in (lambda: store.put("k", b"x", CREATE), lambda: store.get("k"), lambda: list(store.list(""))):
        with pytest.raises(StoreAccessError) as info:
            call()
        message = str(info.value)
        assert "access denied" in message
        assert azure_container in message
        assert wrong_key not in message
        assert ACCOUNT_KEY not in message
    store.close()


def test_unexpected_refusals_are_plain_store_errors(
    via_proxy: Callable[..., ObjectStore], proxy: FaultProxy
) -> None:
    store = via_proxy()
    proxy.set_fault(lambda r: azure_error(400, "InvalidHeaderValue"))
    with pytest.raises(StoreError) as info:
        store.get("k")
    assert type(info.value) is StoreError
    assert "InvalidHeaderValue" in str(info.value)


# --------------------------------------------------------------------------- conditional-write probe


def test_probe_refuses_a_gateway_that_strips_if_none_match(
    via_proxy: Callable[..., ObjectStore], proxy: FaultProxy, azure_container: str
) -> None:
    import datetime

    from azure.storage.blob import AccountSasPermissions, ResourceTypes, generate_account_sas

    from cairnflow.core.errors import ConditionalWritesUnsupportedError
    from cairnflow.savers.azure import AzureBlobStore

    # A SAS token: unlike a shared-key signature it does not cover If-None-Match, so a
    # gateway can drop the header and the request still authenticates.
    sas = generate_account_sas(
        ACCOUNT,
        ACCOUNT_KEY,
        resource_types=ResourceTypes(container=True, object=True),
        permission=AccountSasPermissions(read=True, write=True, list=True, delete=True, create=True),
        expiry=datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1),
    )
    proxy.set_fault(lambda req: StripHeaders(("If-None-Match",)) if req.method == "PUT" else None)
    store = AzureBlobStore(
        azure_container, account_url=f"{proxy.url}/{ACCOUNT}", credential=sas, retry_total=0
    )
    with pytest.raises(ConditionalWritesUnsupportedError, match="ignores conditional writes"):
        store.put("wf/k", b"x", CREATE)
    with pytest.raises(ConditionalWritesUnsupportedError):  # remembered: no further writes
        store.put("wf/other", b"x", CREATE)
    proxy.set_fault(None)
    healthy = via_proxy(verify_conditional_writes=True)
    proxy.clear_log()
    healthy.put("wf/k", b"x", CREATE)
    assert [status for _, status in proxy.log] == [409, 201]  # the probe object exists: one refused probe
    assert [i.key for i in healthy.list("")] == ["wf/k"]  # and it is hidden from listings
