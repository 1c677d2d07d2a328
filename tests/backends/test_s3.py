"""S3-specific behaviour of cairnflow.savers.s3, against a moto server (and a fault proxy).

The shared contract (tests/contract) runs against S3 through the ``store``
fixture, and tests/backends/test_base.py the scaffold every backend shares; this
file covers S3 on the wire: the conditional-write probe's requests, request
counts, paging at S3's real page size, multipart uploads, the error mapping
under injected faults, and botocore's own retries.

moto does not check credentials or signatures (unless started with
INITIAL_NO_AUTH_ACTION_COUNT), so access errors are injected through the
proxy, and NoCredentialsError is produced by a client that has none.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from cairnflow.core.errors import (
    AlreadyExistsError,
    ConditionalWritesUnsupportedError,
    NotFoundError,
    PreconditionFailedError,
    StoreAccessError,
    TransientStoreError,
)
from cairnflow.core.store import CREATE, OVERWRITE, Update
from tests.emulators import StoreLocation, free_port
from tests.emulators.s3 import (
    ACCESS_KEY,
    REGION,
    SECRET_KEY,
    make_s3_client,
    new_bucket,
)
from tests.support.faultproxy import (
    DropAfterForward,
    DropBeforeForward,
    Fault,
    FaultProxy,
    Request,
    Respond,
    StripHeaders,
)

if TYPE_CHECKING:
    from types_boto3_s3.client import S3Client

    from cairnflow.savers.s3 import S3Store

boto3 = pytest.importorskip("boto3")
s3 = pytest.importorskip("cairnflow.savers.s3")

MiB = 1024 * 1024


# --------------------------------------------------------------------------- helpers


class SentRequests:
    """Every HTTP request a client sends (each attempt), via botocore's before-send event."""

    def __init__(self, client: S3Client) -> None:
        self.sent: list[tuple[str, str, dict[str, str]]] = []
        self._lock = threading.Lock()
        client.meta.events.register("before-send.s3.*", self._on_send)

    def _on_send(self, request: Any, event_name: str, **_: Any) -> None:
        headers = {k: v.decode() if isinstance(v, bytes) else str(v) for k, v in request.headers.items()}
        with self._lock:
            self.sent.append((event_name.rsplit(".", 1)[-1], request.url, headers))

    def ops(self) -> list[str]:
        with self._lock:
            return [op for op, _, _ in self.sent]

    def clear(self) -> None:
        with self._lock:
            self.sent.clear()


def _session() -> Any:
    return boto3.session.Session(
        aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY, region_name=REGION
    )


def make_store(endpoint: str, bucket: str, **options: Any) -> S3Store:
    store: S3Store = s3.S3Store(bucket, session=_session(), endpoint_url=endpoint, **options)
    return store


def s3_error(status: int, code: str, message: str = "injected") -> Respond:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f"<Error><Code>{code}</Code><Message>{message}</Message>"
        "<RequestId>injected</RequestId></Error>"
    ).encode()
    return Respond(status, body, {"Content-Type": "application/xml"})


def object_puts(proxy: FaultProxy, bucket: str, key: str) -> list[int | None]:
    """Statuses of the PUTs of ``key`` the proxy saw (None: connection dropped)."""
    return [status for req, status in proxy.log if req.method == "PUT" and req.path == f"/{bucket}/{key}"]


def read_object(client: S3Client, bucket: str, key: str) -> bytes | None:
    try:
        return client.get_object(Bucket=bucket, Key=key)["Body"].read()
    except client.exceptions.NoSuchKey:
        return None


@pytest.fixture
def bucket(s3_server_url: str) -> str:
    return new_bucket(s3_server_url)


@pytest.fixture
def direct(s3_server_url: str) -> S3Client:
    """A plain client straight to moto, to check what really got stored."""
    return make_s3_client(s3_server_url)


@pytest.fixture
def proxy(s3_server_url: str) -> Iterator[FaultProxy]:
    with FaultProxy(s3_server_url, log_bodies=False) as p:
        yield p


def faults_for(
    bucket: str, key: str, fault: Callable[[int], Fault | None]
) -> Callable[[Request], Fault | None]:
    """A fault function hitting only PUTs of ``key``; ``fault(n)`` gets the 1-based attempt number."""
    lock = threading.Lock()
    count = [0]

    def fn(req: Request) -> Fault | None:
        if req.method != "PUT" or req.path != f"/{bucket}/{key}":
            return None
        with lock:
            count[0] += 1
            n = count[0]
        return fault(n)

    return fn


# --------------------------------------------------------------------------- construction & URLs


def test_open_store_builds_s3_store_and_passes_prefix_to_probe(
    s3_server_url: str,
    bucket: str,
    direct: S3Client,
) -> None:
    from cairnflow.savers import open_store

    store, prefix = open_store(f"s3://{bucket}/p", session=_session(), endpoint_url=s3_server_url)
    assert isinstance(store, s3.S3Store)
    assert prefix == "p/"
    assert store.probe_prefix == "p/"
    store.put("p/x", b"x", CREATE)
    probe = direct.get_object(Bucket=bucket, Key="p/.cairnflow-probe")["Body"].read()
    assert probe.startswith(b"cairnflow conditional-write probe")
    # The probe object stays out of the store's own listings, and out of the bucket root.
    assert [i.key for i in store.list("p/")] == ["p/x"]
    assert [o["Key"] for o in direct.list_objects_v2(Bucket=bucket)["Contents"]] == [
        "p/.cairnflow-probe",
        "p/x",
    ]


def test_open_store_from_environment_in_child_process(
    s3_location: StoreLocation,
    s3_server_url: str,
) -> None:
    code = (
        "import sys\n"
        "from cairnflow.savers import open_store\n"
        "from cairnflow.core.store import CREATE\n"
        "store, prefix = open_store(sys.argv[1])\n"
        "store.put(prefix + 'from-child', b'hello from child', CREATE)\n"
        "print(type(store).__name__, prefix, store.probe_prefix)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    result = subprocess.run(
        [sys.executable, "-c", code, s3_location.url],
        env={**env, **s3_location.env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["S3Store", "wf/", "wf/"]
    bucket = s3_location.url.removeprefix("s3://").split("/")[0]
    assert read_object(make_s3_client(s3_server_url), bucket, "wf/from-child") == b"hello from child"


def test_client_is_built_once_with_pooling_and_standard_retries(
    s3_server_url: str,
    bucket: str,
) -> None:
    store = make_store(s3_server_url, bucket)
    config: Any = store.client.meta.config  # botocore's stubs do not declare its options
    assert config.max_pool_connections == 32
    assert config.retries == {"mode": "standard", "total_max_attempts": 3}
    client = store.client
    store.put("a", b"1", CREATE)
    store.get("a")
    assert store.client is client


def test_users_own_client_is_used_as_is(s3_server_url: str, bucket: str) -> None:
    client = make_s3_client(s3_server_url)
    sent = SentRequests(client)
    store = s3.S3Store(bucket, client=client, verify_conditional_writes=False)
    assert store.client is client
    store.put("k", b"v", CREATE)
    assert sent.ops() == ["PutObject"]
    with pytest.raises(ValueError, match="either client"):
        s3.S3Store(bucket, client=client, endpoint_url=s3_server_url)


def test_etags_keep_their_quotes_everywhere(s3_server_url: str, bucket: str) -> None:
    store = make_store(s3_server_url, bucket)
    etag = store.put("e", b"body", CREATE)
    assert etag.startswith('"')
    assert etag.endswith('"')
    assert store.get("e").etag == etag
    assert [i.etag for i in store.list("e")] == [etag]


def test_importing_core_and_savers_never_imports_boto3(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "import cairnflow, cairnflow.core, cairnflow.savers\n"
        "from cairnflow.savers import open_store\n"
        "store, _ = open_store('file://' + sys.argv[1])\n"
        "assert 'boto3' not in sys.modules and 'botocore' not in sys.modules, 'SDK imported early'\n"
        "import cairnflow.savers.s3\n"
        "assert 'boto3' in sys.modules\n"
        "print('ok')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "store")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


# --------------------------------------------------------------------------- the probe


def test_probe_refuses_store_that_ignores_if_none_match(
    proxy: FaultProxy, bucket: str, direct: S3Client
) -> None:
    proxy.set_fault(lambda req: StripHeaders(("If-None-Match",)))
    store = make_store(proxy.url, bucket, probe_prefix="wf/")
    with pytest.raises(ConditionalWritesUnsupportedError) as info:
        store.put("wf/k", b"data", CREATE)
    message = str(info.value)
    assert bucket in message
    assert "'wf/'" in message
    assert proxy.url in message
    assert "verify_conditional_writes=False" in message
    assert read_object(direct, bucket, "wf/k") is None  # the real write was never sent
    # The verdict is kept: later writes fail at once, without new requests.
    requests_before = len(proxy.log)
    with pytest.raises(ConditionalWritesUnsupportedError):
        store.put("wf/other", b"data", CREATE)
    assert len(proxy.log) == requests_before


def test_probe_detects_ignored_if_none_match_when_probe_object_already_exists(
    s3_server_url: str,
    proxy: FaultProxy,
    bucket: str,
) -> None:
    make_store(s3_server_url, bucket).put("seed", b"x", CREATE)  # leaves the probe object
    proxy.set_fault(lambda req: StripHeaders(("If-None-Match",)))
    store = make_store(proxy.url, bucket)
    with pytest.raises(ConditionalWritesUnsupportedError):
        store.put("k", b"data", CREATE)
    assert [r.path for r, _ in proxy.log] == [f"/{bucket}/.cairnflow-probe"] * 2


def test_verify_conditional_writes_false_skips_the_probe(
    proxy: FaultProxy, bucket: str, direct: S3Client
) -> None:
    proxy.set_fault(lambda req: StripHeaders(("If-None-Match",)))
    store = make_store(proxy.url, bucket, verify_conditional_writes=False)
    store.put("k", b"data", CREATE)
    assert [(r.method, r.path) for r, _ in proxy.log] == [("PUT", f"/{bucket}/k")]
    assert read_object(direct, bucket, "k") == b"data"


def test_probe_refuses_store_that_ignores_if_match(proxy: FaultProxy, bucket: str, direct: S3Client) -> None:
    proxy.set_fault(lambda req: StripHeaders(("If-Match",)))
    store = make_store(proxy.url, bucket)
    etag = store.put("k", b"one", CREATE)  # create-only works on this store
    with pytest.raises(ConditionalWritesUnsupportedError, match="If-Match"):
        store.put("k", b"two", Update(etag))
    with pytest.raises(ConditionalWritesUnsupportedError):  # the failure is remembered
        store.put("k", b"two", Update(etag))
    assert read_object(direct, bucket, "k") == b"one"


def test_probe_refuses_store_answering_501(proxy: FaultProxy, bucket: str) -> None:
    def fn(req: Request) -> Fault | None:
        if req.header("If-None-Match"):
            return s3_error(
                501, "NotImplemented", "A header you provided implies functionality that is not implemented"
            )
        return None

    proxy.set_fault(fn)
    store = make_store(proxy.url, bucket)
    with pytest.raises(ConditionalWritesUnsupportedError, match="501"):
        store.put("k", b"v", CREATE)


def test_probe_costs_one_request_in_steady_state(s3_server_url: str, bucket: str) -> None:
    first = make_store(s3_server_url, bucket)
    sent = SentRequests(first.client)
    first.put("a", b"1", CREATE)  # fresh prefix: create probe (201), second create (412), put
    assert sent.ops() == ["PutObject"] * 3
    sent.clear()
    first.put("b", b"2", CREATE)
    assert sent.ops() == ["PutObject"]

    second = make_store(s3_server_url, bucket)  # probe object exists now
    sent = SentRequests(second.client)
    second.put("c", b"3", CREATE)
    assert sent.ops() == ["PutObject"] * 2  # one probe request (412), one real write
    sent.clear()
    etag = second.get("c").etag
    second.put("c", b"4", Update(etag))  # first update adds the If-Match probe: one request
    assert sent.ops() == ["GetObject", "PutObject", "PutObject"]
    sent.clear()
    second.put("c", b"5", Update(second.get("c").etag))
    assert sent.ops() == ["GetObject", "PutObject"]


def test_probe_runs_once_under_concurrent_first_writes(s3_server_url: str, bucket: str) -> None:
    store = make_store(s3_server_url, bucket)
    sent = SentRequests(store.client)
    barrier = threading.Barrier(8)

    def write(n: int) -> None:
        barrier.wait()
        store.put(f"k{n}", b"v", CREATE)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(write, range(8)))
    probe_requests = [url for _, url, _ in sent.sent if url.endswith("/.cairnflow-probe")]
    assert len(probe_requests) == 2
    assert len(sent.sent) == 10


# --------------------------------------------------------------------------- listing cost


def test_list_limit_one_costs_one_request(s3_server_url: str, bucket: str) -> None:
    store = make_store(s3_server_url, bucket, page_size=7)
    for n in range(20):
        store.put(f"l/{n:02d}", b"", CREATE)
    sent = SentRequests(store.client)
    assert [i.key for i in store.list("l/", limit=1)] == ["l/00"]
    assert sent.ops() == ["ListObjectsV2"]
    assert "max-keys=1" in sent.sent[0][1]
    # Also when the hidden probe object sorts first in the listed range.
    sent.clear()
    assert [i.key for i in store.list("", limit=1)] == ["l/00"]
    assert sent.ops() == ["ListObjectsV2"]
    sent.clear()
    assert [i.key for i in store.list("l/", start_after="l/05", limit=3)] == ["l/06", "l/07", "l/08"]
    assert sent.ops() == ["ListObjectsV2"]


def test_listing_more_than_1000_keys_takes_two_pages(s3_server_url: str, bucket: str) -> None:
    store = make_store(s3_server_url, bucket)
    assert store.page_size == 1000
    keys = [f"many/{n:05d}" for n in range(1001)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda key: store.put(key, b"", CREATE), keys))
    sent = SentRequests(store.client)
    assert [i.key for i in store.list("many/")] == keys
    assert sent.ops() == ["ListObjectsV2", "ListObjectsV2"]
    assert "continuation-token=" in sent.sent[1][1]


def test_listing_is_lazy(s3_server_url: str, bucket: str) -> None:
    store = make_store(s3_server_url, bucket, page_size=5)
    for n in range(12):
        store.put(f"z/{n:02d}", b"", CREATE)
    sent = SentRequests(store.client)
    listing = store.list("z/")
    assert sent.ops() == []
    taken = [next(listing).key for _ in range(6)]
    assert taken == [f"z/{n:02d}" for n in range(6)]
    assert sent.ops() == ["ListObjectsV2"] * 2


# --------------------------------------------------------------------------- large objects


@pytest.mark.slow
def test_100mb_object_round_trips_and_create_only_holds(
    s3_server_url: str,
    bucket: str,
    direct: S3Client,
) -> None:
    store = make_store(s3_server_url, bucket)
    body = os.urandom(100 * 1000 * 1000)
    sent = SentRequests(store.client)
    etag = store.put("big", body, CREATE)
    # 100 MB > 64 MiB threshold: a multipart upload of 16 MiB parts (6 full + 1).
    assert sent.ops().count("UploadPart") == 6
    assert etag.endswith('-6"')
    got = store.get("big")
    assert got.etag == etag
    assert got.data == body
    with pytest.raises(AlreadyExistsError):
        store.put("big", body[::-1], CREATE)
    assert direct.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []  # aborted
    assert store.get("big").etag == etag


def test_multipart_create_puts_the_condition_on_complete(
    proxy: FaultProxy, bucket: str, direct: S3Client
) -> None:
    store = make_store(proxy.url, bucket, multipart_threshold=6 * MiB, multipart_part_size=5 * MiB)
    body = os.urandom(11 * MiB)
    store.put("seed", b"", CREATE)  # the probe, out of the way
    proxy.clear_log()
    etag = store.put("mp", body, CREATE)
    calls = [(r.method, sorted(r.query_params), r.header("If-None-Match"), s) for r, s in proxy.log]
    assert calls == [
        ("POST", ["uploads"], None, 200),  # CreateMultipartUpload: no condition possible here
        ("PUT", ["partNumber", "uploadId"], None, 200),
        ("PUT", ["partNumber", "uploadId"], None, 200),
        ("PUT", ["partNumber", "uploadId"], None, 200),
        ("POST", ["uploadId"], "*", 200),  # CompleteMultipartUpload carries If-None-Match: *
    ]
    assert store.get("mp").data == body
    # A second multipart create of the same key uploads its parts, fails on complete, aborts.
    proxy.clear_log()
    with pytest.raises(AlreadyExistsError):
        store.put("mp", os.urandom(11 * MiB), CREATE)
    assert [(r.method, s) for r, s in proxy.log][-2:] == [("POST", 412), ("DELETE", 204)]
    assert direct.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert store.get("mp").etag == etag


def test_threshold_separates_single_put_from_multipart(s3_server_url: str, bucket: str) -> None:
    store = make_store(s3_server_url, bucket, multipart_threshold=6 * MiB, multipart_part_size=5 * MiB)
    store.put("seed", b"", CREATE)
    sent = SentRequests(store.client)
    store.put("at", b"a" * (6 * MiB), CREATE)
    assert sent.ops() == ["PutObject"]
    sent.clear()
    store.put("above", b"a" * (6 * MiB + 1), CREATE)
    assert sent.ops() == ["CreateMultipartUpload", "UploadPart", "UploadPart", "CompleteMultipartUpload"]


def test_multipart_update_sends_if_match_on_complete(proxy: FaultProxy, bucket: str) -> None:
    store = make_store(proxy.url, bucket, multipart_threshold=6 * MiB, multipart_part_size=5 * MiB)
    v1 = store.put("mp", b"small", CREATE)
    store.put("mp", b"x" * (7 * MiB), Update(v1))  # the probe for If-Match runs first
    completes = [r for r, _ in proxy.log if r.method == "POST" and "uploadId" in r.query_params]
    assert [r.header("If-Match") for r in completes] == [v1]
    assert store.get("mp").data == b"x" * (7 * MiB)


@pytest.mark.xfail(
    strict=True,
    reason="moto ignores If-Match on CompleteMultipartUpload (real S3 answers 412)",
)
def test_multipart_update_with_stale_etag_fails(s3_server_url: str, bucket: str) -> None:
    store = make_store(s3_server_url, bucket, multipart_threshold=6 * MiB, multipart_part_size=5 * MiB)
    v1 = store.put("mp", b"one", CREATE)
    store.put("mp", b"two", Update(v1))
    with pytest.raises(PreconditionFailedError):
        store.put("mp", b"y" * (7 * MiB), Update(v1))
    assert store.get("mp").data == b"two"


# --------------------------------------------------------------------------- injected faults


def _proxied_store_with_probe_done(proxy: FaultProxy, bucket: str) -> S3Store:
    store = make_store(proxy.url, bucket)
    store.put("warm-up", b"", CREATE)  # runs the probe, so faults below hit only real writes
    proxy.clear_log()
    return store


def test_conditional_request_conflict_409_is_transient_and_not_applied(
    proxy: FaultProxy, bucket: str, direct: S3Client
) -> None:
    # Real S3 answers 409 ConditionalRequestConflict when a conflicting write ran at the
    # same time; the request did not take effect and AWS says to retry it. So: transient,
    # and certainly not applied (ambiguous=False). moto never sends it: injected here.
    store = _proxied_store_with_probe_done(proxy, bucket)
    proxy.set_fault(faults_for(bucket, "k", lambda n: s3_error(409, "ConditionalRequestConflict")))
    with pytest.raises(TransientStoreError) as info:
        store.put("k", b"mine", CREATE)
    assert info.value.ambiguous is False
    assert object_puts(proxy, bucket, "k") == [409]  # botocore does not retry a 409
    assert read_object(direct, bucket, "k") is None


def test_slow_down_503_exhausts_sdk_retries_then_transient_not_applied(
    proxy: FaultProxy, bucket: str, direct: S3Client
) -> None:
    store = _proxied_store_with_probe_done(proxy, bucket)
    proxy.set_fault(
        faults_for(bucket, "k", lambda n: s3_error(503, "SlowDown", "Please reduce your request rate."))
    )
    with pytest.raises(TransientStoreError) as info:
        store.put("k", b"mine", CREATE)
    assert info.value.ambiguous is False
    assert object_puts(proxy, bucket, "k") == [503, 503, 503]  # standard mode: 3 attempts
    assert read_object(direct, bucket, "k") is None


def test_internal_error_500_on_write_is_ambiguous(proxy: FaultProxy, bucket: str) -> None:
    store = _proxied_store_with_probe_done(proxy, bucket)
    proxy.set_fault(faults_for(bucket, "k", lambda n: s3_error(500, "InternalError")))
    with pytest.raises(TransientStoreError) as info:
        store.put("k", b"mine", CREATE)
    assert info.value.ambiguous is True
    assert object_puts(proxy, bucket, "k") == [500, 500, 500]


def test_drop_after_forward_once_sdk_retry_meets_its_own_write(
    proxy: FaultProxy, bucket: str, direct: S3Client
) -> None:
    # The first attempt lands but its answer is lost; botocore retries the same
    # create-only PUT, which S3 refuses (412): the caller sees AlreadyExistsError for
    # its own write. The core reads the object back to tell (see the next test).
    store = _proxied_store_with_probe_done(proxy, bucket)
    proxy.set_fault(faults_for(bucket, "k", lambda n: DropAfterForward() if n == 1 else None))
    with pytest.raises(AlreadyExistsError):
        store.put("k", b"mine", CREATE)
    assert object_puts(proxy, bucket, "k") == [None, 412]
    assert read_object(direct, bucket, "k") == b"mine"


def test_core_recognises_its_own_write_after_a_lost_answer(proxy: FaultProxy, bucket: str) -> None:
    from cairnflow.core.log import CheckpointLog

    store = _proxied_store_with_probe_done(proxy, bucket)
    saver = CheckpointLog(store, prefix="app/")

    def drop_first_checkpoint_put(req: Request) -> Fault | None:
        first_put = not any(r.method == "PUT" for r, _ in proxy.log)
        if req.method == "PUT" and "/app/" in req.path and first_put:
            return DropAfterForward()
        return None

    proxy.set_fault(drop_first_checkpoint_put)
    head = saver.append("t", None, [{"op": "task", "pos": 0}], status="running")
    assert [s for r, s in proxy.log if r.method == "PUT"][:2] == [None, 412]
    latest = saver.latest("t")
    assert latest is not None
    assert latest.seq == head.seq == 0


def test_drop_after_forward_every_attempt_is_ambiguous_and_landed(
    proxy: FaultProxy, bucket: str, direct: S3Client
) -> None:
    store = _proxied_store_with_probe_done(proxy, bucket)
    proxy.set_fault(faults_for(bucket, "k", lambda n: DropAfterForward()))
    with pytest.raises(TransientStoreError) as info:
        store.put("k", b"mine", CREATE)
    assert info.value.ambiguous is True
    assert object_puts(proxy, bucket, "k") == [None, None, None]
    assert read_object(direct, bucket, "k") == b"mine"


def test_lost_answer_then_throttling_is_still_ambiguous(
    proxy: FaultProxy, bucket: str, direct: S3Client
) -> None:
    # The final attempt's 503 alone would mean "not applied", but the first attempt
    # landed: the error must say the write may have happened.
    store = _proxied_store_with_probe_done(proxy, bucket)
    proxy.set_fault(
        faults_for(bucket, "k", lambda n: DropAfterForward() if n == 1 else s3_error(503, "SlowDown"))
    )
    with pytest.raises(TransientStoreError) as info:
        store.put("k", b"mine", CREATE)
    assert info.value.ambiguous is True
    assert object_puts(proxy, bucket, "k") == [None, 503, 503]
    assert read_object(direct, bucket, "k") == b"mine"


def test_drop_before_forward_is_transient_and_nothing_lands(
    proxy: FaultProxy, bucket: str, direct: S3Client
) -> None:
    store = _proxied_store_with_probe_done(proxy, bucket)
    proxy.set_fault(faults_for(bucket, "k", lambda n: DropBeforeForward()))
    with pytest.raises(TransientStoreError) as info:
        store.put("k", b"mine", CREATE)
    # The client cannot tell a connection closed before forwarding from one closed
    # after: ambiguous. Nothing reached moto (every attempt dropped by the proxy).
    assert info.value.ambiguous is True
    assert object_puts(proxy, bucket, "k") == [None, None, None]
    assert read_object(direct, bucket, "k") is None


def test_unreachable_endpoint_is_transient_and_not_applied(bucket: str) -> None:
    store = make_store(f"http://127.0.0.1:{free_port()}", bucket, verify_conditional_writes=False)
    with pytest.raises(TransientStoreError) as info:
        store.put("k", b"v", CREATE)
    assert info.value.ambiguous is False
    assert type(info.value.__cause__).__name__ == "EndpointConnectionError"


def test_reads_are_retried_by_the_sdk(proxy: FaultProxy, bucket: str) -> None:
    store = _proxied_store_with_probe_done(proxy, bucket)
    store.put("r", b"data", CREATE)
    seen = [0]

    def fn(req: Request) -> Fault | None:
        if req.method == "GET" and req.path == f"/{bucket}/r":
            seen[0] += 1
            return DropBeforeForward() if seen[0] == 1 else None
        return None

    proxy.set_fault(fn)
    assert store.get("r").data == b"data"
    assert seen[0] == 2


# --------------------------------------------------------------------------- access errors


def test_missing_bucket_is_an_access_error_naming_it(s3_server_url: str) -> None:
    store = make_store(s3_server_url, "cf-no-such-bucket-here", probe_prefix="wf/")
    for call in (
        lambda: store.put("wf/k", b"v", CREATE),
        lambda: store.get("wf/k"),
        lambda: list(store.list("wf/")),
        lambda: store.delete("wf/k"),
    ):
        with pytest.raises(StoreAccessError) as info:
            call()
        assert "cf-no-such-bucket-here" in str(info.value)
        assert "'wf/'" in str(info.value)
        assert "does not exist" in str(info.value)


@pytest.mark.parametrize(
    "code", ["AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken"]
)
def test_credential_and_permission_errors_are_access_errors(
    proxy: FaultProxy, bucket: str, code: str
) -> None:
    proxy.set_fault(lambda req: s3_error(403 if code != "ExpiredToken" else 400, code))
    store = make_store(proxy.url, bucket, probe_prefix="wf/")
    with pytest.raises(StoreAccessError) as info:
        store.get("wf/k")
    message = str(info.value)
    assert code in message
    assert bucket in message
    assert "'wf/'" in message
    assert SECRET_KEY not in message
    assert ACCESS_KEY not in message
    assert len(proxy.log) == 1  # not retried


def test_no_credentials_is_an_access_error(s3_server_url: str, bucket: str) -> None:
    import botocore.credentials
    import botocore.session
    from botocore.config import Config

    session = botocore.session.Session()
    session.register_component("credential_provider", botocore.credentials.CredentialResolver([]))
    client = session.create_client("s3", region_name=REGION, endpoint_url=s3_server_url, config=Config())
    store = s3.S3Store(bucket, client=client)
    with pytest.raises(StoreAccessError, match="credentials") as info:
        store.get("k")
    assert type(info.value.__cause__).__name__ == "NoCredentialsError"
    with pytest.raises(StoreAccessError):
        store.put("k", b"v", CREATE)


def test_not_found_and_precondition_mapping(s3_server_url: str, bucket: str) -> None:
    store = make_store(s3_server_url, bucket)
    with pytest.raises(NotFoundError) as missing:
        store.get("nope")
    assert type(missing.value.__cause__).__name__ == "NoSuchKey"
    with pytest.raises(PreconditionFailedError) as update_missing:  # S3 answers 404 here
        store.put("nope", b"v", Update('"0123456789abcdef0123456789abcdef"'))
    assert update_missing.value.__cause__ is not None
    store.put("k", b"v", OVERWRITE)
    store.delete("gone")  # an unconditional delete of a missing key succeeds
