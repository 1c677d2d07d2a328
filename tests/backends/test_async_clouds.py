"""The asyncio cloud backends under injected faults: ambiguity, the probe, S3's 409.

Each test runs on S3 (moto), GCS (fake-gcs-server) and Azure (Azurite) through a
:class:`~tests.support.faultproxy.FaultProxy`, with the async store seen through
:class:`~tests.support.async_bridge.SyncStore` (its requests awaited on one loop);
a second store straight to the emulator checks what really landed. The sync
backends' own fault tests are in ``test_s3.py``, ``test_gcs.py`` and ``test_azure.py``:
these check that the async clients' errors reach the same tables with the same
meaning. The unit tests at the end need no emulator.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from botocore import exceptions as bx

from cairnflow.core.errors import (
    AlreadyExistsError,
    ConditionalWritesUnsupportedError,
    NotFoundError,
    TransientStoreError,
)
from cairnflow.core.store import CREATE, PROBE_SUFFIX, ObjectStore, StoredObject
from cairnflow.savers import open_async_saver, open_async_store, open_saver
from cairnflow.savers._abase import AsyncCloudStore
from cairnflow.savers._base import Classified, Failure, Op, current_attempts
from tests.emulators import StoreLocation, free_port
from tests.support.async_bridge import SyncStore
from tests.support.faultproxy import (
    DropAfterForward,
    Fault,
    FaultProxy,
    Request,
    Respond,
    StripHeaders,
    StripQueryParams,
)

WRITES = ("PUT", "POST")


@dataclass
class Cloud:
    """One emulator, a bucket on it, and how to build async stores on that bucket at any endpoint."""

    backend: str
    upstream: str  # scheme, host and port of the emulator (what the proxy forwards to)
    make: Callable[..., ObjectStore]  # make(endpoint, **options): a bridged async store
    direct: ObjectStore  # straight to the emulator
    #: How the condition of a create travels, for a gateway that drops it.
    strip_create_condition: Fault
    #: make_sync(endpoint, **options): the sync backend's store on the same bucket.
    make_sync: Callable[..., ObjectStore]

    def error(self, status: int, code: str) -> Respond:
        """An error answer shaped like the service's own."""
        if self.backend == "s3":
            body = f"<Error><Code>{code}</Code><Message>injected</Message></Error>".encode()
            return Respond(status, body, {"Content-Type": "application/xml"})
        if self.backend == "azure":
            body = f"<Error><Code>{code}</Code><Message>injected</Message></Error>".encode()
            return Respond(status, body, {"x-ms-error-code": code, "Content-Type": "application/xml"})
        body = f'{{"error": {{"code": {status}, "message": "{code}"}}}}'.encode()
        return Respond(status, body, {"Content-Type": "application/json"})


def _s3(request: pytest.FixtureRequest, stores: list[ObjectStore]) -> Cloud:
    from aiobotocore.session import AioSession

    from cairnflow.savers.s3_async import AsyncS3Store
    from tests.emulators.s3 import ACCESS_KEY, REGION, SECRET_KEY, new_bucket

    url = request.getfixturevalue("s3_server_url")
    bucket = new_bucket(url)
    session = AioSession()
    session.set_credentials(ACCESS_KEY, SECRET_KEY)

    def make(endpoint: str, **options: Any) -> ObjectStore:
        store = AsyncS3Store(bucket, session=session, endpoint_url=endpoint, region_name=REGION, **options)
        stores.append(SyncStore(store))
        return stores[-1]

    def make_sync(endpoint: str, **options: Any) -> ObjectStore:
        import boto3.session

        from cairnflow.savers.s3 import S3Store

        boto = boto3.session.Session(
            aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY, region_name=REGION
        )
        stores.append(S3Store(bucket, session=boto, endpoint_url=endpoint, **options))
        return stores[-1]

    return Cloud("s3", url, make, make(url), StripHeaders(("If-None-Match",)), make_sync)


def _gcs(request: pytest.FixtureRequest, stores: list[ObjectStore]) -> Cloud:
    from cairnflow.savers.gcs_async import AsyncGCSStore
    from tests.emulators.gcs import new_bucket

    url = request.getfixturevalue("gcs_server_url")
    bucket = new_bucket(url)

    def make(endpoint: str, **options: Any) -> ObjectStore:
        stores.append(SyncStore(AsyncGCSStore(bucket, api_root=endpoint, **options)))
        return stores[-1]

    def make_sync(endpoint: str, **options: Any) -> ObjectStore:
        from google.auth.credentials import AnonymousCredentials

        from cairnflow.savers.gcs import GCSStore
        from tests.emulators.gcs import PROJECT

        anonymous = AnonymousCredentials()  # type: ignore[no-untyped-call]
        options.setdefault("client_options", {"api_endpoint": endpoint})
        stores.append(GCSStore(bucket, project=PROJECT, credentials=anonymous, **options))
        return stores[-1]

    return Cloud("gcs", url, make, make(url), StripQueryParams(("ifGenerationMatch",)), make_sync)


def _azure(request: pytest.FixtureRequest, stores: list[ObjectStore]) -> Cloud:
    from tests.emulators.azure import ACCOUNT, make_async_store

    server = request.getfixturevalue("azure_server")
    container = request.getfixturevalue("azure_container")

    def make(endpoint: str, **options: Any) -> ObjectStore:
        stores.append(make_async_store(container, f"{endpoint}/{ACCOUNT}", **options))
        return stores[-1]

    def make_sync(endpoint: str, **options: Any) -> ObjectStore:
        from tests.emulators.azure import make_store

        stores.append(make_store(container, f"{endpoint}/{ACCOUNT}", **options))
        return stores[-1]

    return Cloud(
        "azure", server.upstream, make, make(server.upstream), StripHeaders(("If-None-Match",)), make_sync
    )


@pytest.fixture(params=["s3", "gcs", "azure"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def cloud(backend: str, request: pytest.FixtureRequest) -> Iterator[Cloud]:
    stores: list[ObjectStore] = []
    yield {"s3": _s3, "gcs": _gcs, "azure": _azure}[backend](request, stores)
    for store in stores:
        store.close()


@pytest.fixture
def proxy(cloud: Cloud) -> Iterator[FaultProxy]:
    with FaultProxy(cloud.upstream) as p:
        yield p


def writes(proxy: FaultProxy) -> list[tuple[bool, int | None]]:
    """(whether it wrote the probe object, status) of each write the proxy saw."""
    return [
        (PROBE_SUFFIX in req.path or PROBE_SUFFIX.encode() in req.body, status)
        for req, status in proxy.log
        if req.method in WRITES
    ]


def on_writes(fault: Fault) -> Callable[[Request], Fault | None]:
    return lambda req: fault if req.method in WRITES else None


def warmed(cloud: Cloud, proxy: FaultProxy, **options: Any) -> ObjectStore:
    """A store through the proxy whose probe has run (so that faults hit only the test's writes)."""
    store = cloud.make(proxy.url, **options)
    store.put("warm", b"up", CREATE)
    proxy.clear_log()
    return store


def absent(store: ObjectStore, key: str) -> bool:
    try:
        store.get(key)
    except NotFoundError:
        return True
    return False


# --------------------------------------------------------------------------- the probe


def test_the_probe_runs_before_the_first_write_and_once(cloud: Cloud, proxy: FaultProxy) -> None:
    store = cloud.make(proxy.url)
    store.put("a", b"1", CREATE)
    store.put("b", b"2", CREATE)
    # A fresh prefix: the probe object is created, then refused (the condition holds).
    assert [probe for probe, _ in writes(proxy)] == [True, True, False, False]
    assert writes(proxy)[1][1] in (409, 412)
    assert [info.key for info in store.list("")] == ["a", "b"]  # the probe object is hidden


def _unsigned_azure_store(cloud: Cloud, proxy: FaultProxy) -> ObjectStore:
    """An async Azure store authenticated by a SAS token: unlike a shared-key signature it
    does not cover If-None-Match, so a gateway can drop the header and still get through."""
    import datetime

    from azure.storage.blob import AccountSasPermissions, ResourceTypes, generate_account_sas

    from cairnflow.savers.azure_async import AsyncAzureBlobStore
    from tests.emulators.azure import ACCOUNT, ACCOUNT_KEY

    sas = generate_account_sas(
        ACCOUNT,
        ACCOUNT_KEY,
        resource_types=ResourceTypes(container=True, object=True),
        permission=AccountSasPermissions(read=True, write=True, list=True, delete=True, create=True),
        expiry=datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1),
    )
    container = cloud.direct.url.removeprefix("az://")
    return SyncStore(
        AsyncAzureBlobStore(container, account_url=f"{proxy.url}/{ACCOUNT}", credential=sas, retry_total=0)
    )


def test_a_gateway_that_drops_the_create_condition_is_refused(cloud: Cloud, proxy: FaultProxy) -> None:
    store = _unsigned_azure_store(cloud, proxy) if cloud.backend == "azure" else cloud.make(proxy.url)
    proxy.set_fault(on_writes(cloud.strip_create_condition))
    with pytest.raises(ConditionalWritesUnsupportedError, match="verify_conditional_writes=False"):
        store.put("k", b"ours", CREATE)
    assert absent(cloud.direct, "k")  # refused before the write was sent
    with pytest.raises(ConditionalWritesUnsupportedError):  # remembered: no second probe
        store.put("k", b"ours", CREATE)
    assert all(probe for probe, _ in writes(proxy))
    store.close()


# --------------------------------------------------------------------------- ambiguity


def test_busy_answers_to_a_write_are_transient_and_not_applied(cloud: Cloud, proxy: FaultProxy) -> None:
    store = warmed(cloud, proxy)
    proxy.set_fault(on_writes(cloud.error(503, "SlowDown" if cloud.backend == "s3" else "ServerBusy")))
    with pytest.raises(TransientStoreError) as info:
        store.put("k", b"ours", CREATE)
    assert info.value.ambiguous is False
    assert {status for _, status in writes(proxy)} == {503}
    assert absent(cloud.direct, "k")


def test_a_server_error_on_a_write_is_ambiguous(cloud: Cloud, proxy: FaultProxy) -> None:
    store = warmed(cloud, proxy)
    proxy.set_fault(on_writes(cloud.error(500, "InternalError")))
    with pytest.raises(TransientStoreError) as info:
        store.put("k", b"ours", CREATE)
    assert info.value.ambiguous is True


def test_a_read_that_fails_is_never_ambiguous(cloud: Cloud, proxy: FaultProxy) -> None:
    store = warmed(cloud, proxy)
    proxy.set_fault(lambda req: cloud.error(500, "InternalError") if req.method == "GET" else None)
    with pytest.raises(TransientStoreError) as info:
        store.get("warm")
    assert info.value.ambiguous is False


def test_answers_lost_after_the_write_landed_are_ambiguous(cloud: Cloud, proxy: FaultProxy) -> None:
    store = warmed(cloud, proxy)
    proxy.set_fault(on_writes(DropAfterForward()))  # every attempt: forwarded, answer lost
    with pytest.raises(TransientStoreError) as info:
        store.put("k", b"ours", CREATE)
    assert info.value.ambiguous is True
    assert cloud.direct.get("k").data == b"ours"  # it had landed


def test_a_lost_answer_retried_by_the_sdk_meets_its_own_write(cloud: Cloud, proxy: FaultProxy) -> None:
    if cloud.backend == "gcs":
        pytest.skip("gcloud-aio-storage does not retry: the lost answer is reported (test above)")
    store = warmed(cloud, proxy)
    dropped: list[bool] = []

    def once(req: Request) -> Fault | None:
        if req.method in WRITES and not dropped:
            dropped.append(True)
            return DropAfterForward()
        return None

    proxy.set_fault(once)
    # The SDK's retry carries the same condition and meets the object its first attempt
    # wrote: AlreadyExistsError, which the checkpoint log resolves by reading it back.
    with pytest.raises(AlreadyExistsError):
        store.put("k", b"ours", CREATE)
    assert [status for _, status in writes(proxy)] == [None, 409 if cloud.backend == "azure" else 412]
    assert cloud.direct.get("k").data == b"ours"


def test_a_lost_answer_then_busy_retries_is_still_ambiguous(cloud: Cloud, proxy: FaultProxy) -> None:
    """The SDK's retries are watched: a first attempt that landed makes a final 503 ambiguous.

    It also fails if aiohttp resends the PUT on its own (below the SDK, unseen): see
    ``cairnflow.savers._abase.without_hidden_retry``.
    """
    store = warmed(cloud, proxy)
    seen: list[bool] = []

    def lost_then_busy(req: Request) -> Fault | None:
        if req.method not in WRITES:
            return None
        seen.append(True)
        return DropAfterForward() if len(seen) == 1 else cloud.error(503, "ServerBusy")

    proxy.set_fault(lost_then_busy)
    with pytest.raises(TransientStoreError) as info:
        store.put("k", b"ours", CREATE)
    assert info.value.ambiguous is True
    assert cloud.direct.get("k").data == b"ours"  # the first attempt had landed
    expected_retries = cloud.backend != "gcs"  # gcloud-aio-storage does not retry
    assert [status for _, status in writes(proxy)][:2] == ([None, 503] if expected_retries else [None])


def test_a_connection_refused_is_transient_and_not_ambiguous(cloud: Cloud) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    store = cloud.make(nowhere, verify_conditional_writes=False)
    with pytest.raises(TransientStoreError) as info:
        store.put("k", b"ours", CREATE)
    assert info.value.ambiguous is False


def test_s3_conditional_request_conflict_is_transient_and_not_applied(
    cloud: Cloud, proxy: FaultProxy
) -> None:
    if cloud.backend != "s3":
        pytest.skip("409 ConditionalRequestConflict is S3's answer")
    store = warmed(cloud, proxy)
    proxy.set_fault(on_writes(cloud.error(409, "ConditionalRequestConflict")))
    with pytest.raises(TransientStoreError, match="ConditionalRequestConflict") as info:
        store.put("k", b"ours", CREATE)
    assert info.value.ambiguous is False
    assert absent(cloud.direct, "k")


def test_open_async_saver_from_the_environment(
    backend: str, request: pytest.FixtureRequest, use_env: Callable[[StoreLocation], StoreLocation]
) -> None:
    """The URL and environment a child process gets (``<cloud>_location``) open the async log."""
    location = use_env(request.getfixturevalue(f"{backend}_location"))

    async def main() -> tuple[object, ...]:
        async with open_async_saver(location.url) as saver:
            await saver.append("t", None, [{"op": "note"}], status="running")
            head = await saver.latest("t")
            assert head is not None
            return tuple(head.records)

    assert asyncio.run(main()) == ({"op": "note"},)
    sync = open_saver(location.url)  # the sync backend sees the same checkpoint
    head = sync.latest("t")
    assert head is not None and tuple(head.records) == ({"op": "note"},)
    sync.store.close()


def test_the_async_log_makes_the_same_requests_as_the_sync_log(cloud: Cloud, proxy: FaultProxy) -> None:
    """Rule 4 in both flavours: the same steps cost the same requests, in the same order."""
    from cairnflow.core.log import AsyncCheckpointLog, CheckpointLog
    from tests.support.async_bridge import SyncSaver

    def requests_of(saver: Any) -> list[list[tuple[str, int | None]]]:
        steps: list[Callable[[], object]] = [
            lambda: saver.latest("t"),
            lambda: saver.append("t", None, [{"op": "one"}], status="running"),
            lambda: saver.append("t", saver.latest("t"), [{"op": "two"}], status="running"),
            lambda: saver.latest("t"),
            lambda: list(saver.history("t", limit=5)),
        ]
        seen = []
        for step in steps:
            proxy.clear_log()
            step()
            seen.append([(req.method, status) for req, status in proxy.log])
        return seen

    sync_saver = CheckpointLog(cloud.make_sync(proxy.url, probe_prefix="s/"), prefix="s/")
    async_store = cloud.make(proxy.url, probe_prefix="a/")
    assert isinstance(async_store, SyncStore)
    async_saver = SyncSaver(AsyncCheckpointLog(async_store.inner, prefix="a/"))
    sync_requests = requests_of(sync_saver)
    assert sum(map(len, sync_requests)) >= 8  # the probe's two writes, the checkpoints, the reads
    assert requests_of(async_saver) == sync_requests


# --------------------------------------------------------------------------- no emulator


def test_aiobotocore_connection_errors_after_sending_may_have_landed() -> None:
    from cairnflow.savers.s3_async import _async_failure

    refused = aiohttp.ClientConnectorError(None, OSError(111, "refused"))  # type: ignore[arg-type]
    reset = aiohttp.ClientOSError(104, "Connection reset by peer")
    assert (
        _async_failure(bx.EndpointConnectionError(endpoint_url="u", error=refused)).kind is Failure.NOT_SENT
    )
    # aiobotocore reports a reset after the request went out as EndpointConnectionError too.
    assert _async_failure(bx.EndpointConnectionError(endpoint_url="u", error=reset)).kind is Failure.LOST
    assert _async_failure(bx.ReadTimeoutError(endpoint_url="u")).kind is Failure.LOST


def test_azure_aio_transport_errors_after_sending_may_have_landed() -> None:
    from azure.core.exceptions import ServiceRequestError

    from cairnflow.savers.azure_async import _async_failure

    refused = aiohttp.ClientConnectorError(None, OSError(111, "refused"))  # type: ignore[arg-type]
    dropped = aiohttp.ServerDisconnectedError()
    assert _async_failure(ServiceRequestError("x", error=refused)).kind is Failure.NOT_SENT
    # The aio transport calls a dropped answer ServiceRequestError: it may have landed.
    assert _async_failure(ServiceRequestError("x", error=dropped)).kind is Failure.LOST


class _Lost(Exception):
    pass


class _Busy(Exception):
    pass


class _FakeAsyncCloud(AsyncCloudStore):
    """Writes that fail on cue; a 'retry hook' records an attempt that may have landed."""

    _SDK_ERRORS = (_Lost, _Busy)

    def __init__(self) -> None:
        self.url = "fake://"
        self._init_probe("", enabled=False)

    def _classify(self, exc: BaseException) -> Classified:
        return Classified(Failure.LOST if isinstance(exc, _Lost) else Failure.BUSY)

    async def _write(self, key: str, data: bytes, op: Op, etag: str | None) -> str:
        with self._mapping(op, key):
            await asyncio.sleep(0)  # both tasks are inside their _mapping blocks from here on
            if key == "landed-then-busy":
                attempts = current_attempts()  # a thread-local would give the other task's
                assert attempts is not None
                attempts.record(Failure.LOST)  # what an SDK hook records of a first attempt
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            raise _Busy
        raise AssertionError("unreachable")

    async def _read(self, key: str) -> StoredObject:
        raise NotImplementedError

    async def _list(self, prefix: str, start_after: str | None, limit: int | None) -> Any:
        raise NotImplementedError

    async def _remove(self, key: str) -> None:
        raise NotImplementedError


def test_concurrent_tasks_keep_their_attempts_apart() -> None:
    """Attempts live in a context variable: a task's landed attempt never marks another's failure."""

    async def main() -> tuple[BaseException, BaseException]:
        store = _FakeAsyncCloud()
        results = await asyncio.gather(
            store.put("landed-then-busy", b"x"), store.put("just-busy", b"y"), return_exceptions=True
        )
        return results[0], results[1]

    landed, busy = asyncio.run(main())
    assert isinstance(landed, TransientStoreError) and landed.ambiguous is True
    assert isinstance(busy, TransientStoreError) and busy.ambiguous is False


class _CondStore(AsyncCloudStore):
    """An honest conditional store in a dict, counting the writes it is sent (each awaits once)."""

    _SDK_ERRORS = ()

    def __init__(self) -> None:
        self.url = "fake://"
        self.objects: dict[str, bytes] = {}
        self.sent: list[str] = []
        self._init_probe("p/", enabled=True)

    def _classify(self, exc: BaseException) -> Classified:
        raise AssertionError("no SDK errors here")

    async def _write(self, key: str, data: bytes, op: Op, etag: str | None) -> str:
        self.sent.append(key)
        await asyncio.sleep(0)  # let the other tasks in: the probe must still run once
        if op is Op.CREATE and key in self.objects:
            raise AlreadyExistsError("exists", key=key, store=self.url)
        self.objects[key] = data
        return "v"

    async def _read(self, key: str) -> StoredObject:
        raise NotImplementedError

    async def _list(self, prefix: str, start_after: str | None, limit: int | None) -> Any:
        raise NotImplementedError

    async def _remove(self, key: str) -> None:
        raise NotImplementedError


def test_the_async_probe_runs_once_under_concurrent_first_writes() -> None:
    async def main() -> _CondStore:
        store = _CondStore()
        await asyncio.gather(*(store.put(f"p/k{n}", b"x") for n in range(20)))
        return store

    store = asyncio.run(main())
    probe = f"p/{PROBE_SUFFIX}"
    # A fresh prefix: created, then refused; then the twenty writes, none before the probe.
    assert store.sent[:2] == [probe, probe]
    assert store.sent.count(probe) == 2 and len(store.sent) == 22


@pytest.mark.parametrize(
    ("url", "module", "cls"),
    [
        ("s3://b/runs", "cairnflow.savers.s3_async", "AsyncS3Store"),
        ("gs://b/runs", "cairnflow.savers.gcs_async", "AsyncGCSStore"),
        ("az://b/runs", "cairnflow.savers.azure_async", "AsyncAzureBlobStore"),
    ],
)
def test_open_async_store_builds_each_cloud_without_a_request(
    url: str, module: str, cls: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv(
        "AZURE_STORAGE_CONNECTION_STRING",
        f"DefaultEndpointsProtocol=http;AccountName=a;AccountKey=a2V5;BlobEndpoint=http://127.0.0.1:{free_port()}/a;",
    )
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    store, prefix = open_async_store(url)
    assert type(store).__name__ == cls and type(store).__module__ == module
    assert prefix == "runs/" and store.probe_key == f"runs/{PROBE_SUFFIX}"  # type: ignore[attr-defined]
    asyncio.run(store.aclose())  # nothing was opened: nothing to close, and no request


def test_async_with_opens_the_s3_client_without_a_request(monkeypatch: pytest.MonkeyPatch) -> None:
    # nothing listens on the endpoint: a request would fail, so passing proves there was none
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    store, _ = open_async_store(
        "s3://b/runs", endpoint_url=f"http://127.0.0.1:{free_port()}", region_name="us-east-1"
    )

    assert store._client is None  # type: ignore[attr-defined]

    async def enter() -> Any:
        async with store:
            return store._client  # type: ignore[attr-defined]

    assert asyncio.run(enter()) is not None


def test_stores_that_make_their_own_sessions_share_one_loader_of_service_models(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # botocore parses S3's model per session (~50 ms); one loader per process parses it once
    import aiobotocore.session
    import boto3.session

    from cairnflow.savers import s3, s3_async

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    made: list[Any] = []

    def recording_aio_session() -> Any:
        made.append(aiobotocore.session.get_session())
        return made[-1]

    class RecordingSession(boto3.session.Session):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            made.append(self._session)

    monkeypatch.setattr(s3_async, "get_session", recording_aio_session)
    monkeypatch.setattr(s3.boto3.session, "Session", RecordingSession)
    endpoint = f"http://127.0.0.1:{free_port()}"
    s3.S3Store("b", endpoint_url=endpoint, region_name="us-east-1", verify_conditional_writes=False)
    s3.S3Store("b", endpoint_url=endpoint, region_name="us-east-1", verify_conditional_writes=False)

    async def open_two() -> None:
        for _ in range(2):
            async with s3_async.AsyncS3Store("b", endpoint_url=endpoint, region_name="us-east-1"):
                pass

    asyncio.run(open_two())
    loaders = {id(session.get_component("data_loader")) for session in made}
    assert len(made) == 4 and len(loaders) == 1
    # a session the user passes is left as it is
    own = aiobotocore.session.AioSession()
    s3_async.AsyncS3Store("b", session=own, endpoint_url=endpoint, region_name="us-east-1")
    assert id(own.get_component("data_loader")) not in loaders
