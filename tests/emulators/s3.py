"""Emulator fixtures for the s3 backend: one moto server per test session.

The server runs as a separate process (``moto_server -H 127.0.0.1 -p PORT``),
so moto's own locks cannot serialise the test's client threads. It is started
lazily by the first fixture that needs it, its readiness is detected by
polling it over HTTP, and it is stopped by its process id when the pytest
session ends (``config.add_cleanup``). Every test gets a fresh, uniquely named
bucket; moto keeps state for the life of the server.

Fixtures:

* ``s3_server_url`` (session) -- ``http://127.0.0.1:PORT`` of the moto server,
  e.g. to put a :class:`tests.support.faultproxy.FaultProxy` in front of it;
* ``s3_store_factory`` -- a callable returning a NEW ``S3Store`` (with its own
  client) on the test's fresh bucket, ``page_size=7`` so listings page;
* ``s3_store`` -- one such store;
* ``s3_location`` -- a fresh bucket as ``s3://BUCKET/wf`` plus the environment
  a child process needs for ``open_store(url)`` to reach it.

The conftest imports only ``s3_store`` and ``s3_store_factory``, so those two
depend on no other fixture of this module (they start the server through a
module-level helper); test modules that want ``s3_server_url`` or
``s3_location`` import them.
"""

from __future__ import annotations

import contextlib
import functools
import http.client
import importlib.util
import os
import subprocess
import sys
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from cairnflow.core.store import ObjectStore
from tests.emulators import SessionEmulator, StoreLocation, free_port, stop_process, wait_until_ready

if TYPE_CHECKING:
    from types_boto3_s3.client import S3Client

    from cairnflow.savers.s3 import S3Store

__all__ = [
    "ACCESS_KEY",
    "REGION",
    "SECRET_KEY",
    "MotoServer",
    "make_s3_client",
    "new_bucket",
    "s3_async_store",
    "s3_async_store_factory",
    "s3_location",
    "s3_server",
    "s3_server_url",
    "s3_store",
    "s3_store_factory",
    "start_moto",
]

ACCESS_KEY = "cairnflow-test"
SECRET_KEY = "cairnflow-test-secret"
REGION = "us-east-1"
#: Page size of fixture stores: small, so the contract suite's listings span pages.
PAGE_SIZE = 7
_READY_TIMEOUT = 60.0


@dataclass
class MotoServer:
    process: subprocess.Popen[bytes]
    url: str
    log_path: Path

    def stop(self) -> None:
        stop_process(self.process)
        with contextlib.suppress(OSError):
            self.log_path.unlink()


def _moto_command() -> list[str] | None:
    if importlib.util.find_spec("boto3") is None or importlib.util.find_spec("moto") is None:
        return None
    if importlib.util.find_spec("moto.server") is None:
        return None
    # moto_server with S3's condition-and-write made atomic (see moto_atomic.py)
    return [sys.executable, str(Path(__file__).with_name("moto_atomic.py"))]


def _responds(port: int) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", "/moto-api/data.json")
        return conn.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def start_moto(command: list[str] | None = None) -> MotoServer:
    """Start a moto server on a free 127.0.0.1 port; return once it answers.

    The caller stops it (``MotoServer.stop``). ``RuntimeError`` if moto is not installed
    or the server does not come up. The benchmarks start theirs with this too.
    """
    command = command or _moto_command()
    if command is None:
        raise RuntimeError("moto server is not installed (pip install 'moto[server]' boto3)")
    last = "moto server did not start"
    for _ in range(3):  # a port picked by free_port() can be taken meanwhile: try another
        port = free_port()
        fd, log_name = tempfile.mkstemp(prefix="cairnflow-moto-", suffix=".log")
        log_path = Path(log_name)
        with os.fdopen(fd, "wb") as log:
            process = subprocess.Popen(
                [*command, "-H", "127.0.0.1", "-p", str(port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        server = MotoServer(process, f"http://127.0.0.1:{port}", log_path)
        if wait_until_ready(process, functools.partial(_responds, port), _READY_TIMEOUT):
            return server
        last = f"moto server exited or never answered: {log_path.read_text(errors='replace')[-500:]}"
        server.stop()
    raise RuntimeError(last)


def _missing() -> str | None:
    return None if _moto_command() else "moto server (pip install 'moto[server]' boto3)"


_moto = SessionEmulator("s3", start_moto, _missing)


def s3_server(config: pytest.Config) -> MotoServer:
    """The session's moto server, started on first use and stopped when the session ends."""
    return _moto.get(config)


def make_s3_client(endpoint_url: str, **config: Any) -> S3Client:
    """A boto3 S3 client for ``endpoint_url`` with the fixture credentials passed explicitly."""
    import boto3.session
    from botocore.config import Config

    session = boto3.session.Session(
        aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY, region_name=REGION
    )
    return session.client("s3", endpoint_url=endpoint_url, config=Config(**config))


_admin_clients: dict[str, S3Client] = {}
_admin_lock = threading.Lock()


def new_bucket(server_url: str) -> str:
    """Create a fresh, uniquely named bucket on the server; return its name."""
    with _admin_lock:
        admin = _admin_clients.get(server_url)
        if admin is None:
            admin = _admin_clients[server_url] = make_s3_client(server_url)
    name = f"cf-{uuid.uuid4().hex[:24]}"
    admin.create_bucket(Bucket=name)
    return name


@pytest.fixture(scope="session")
def s3_server_url(request: pytest.FixtureRequest) -> str:
    return s3_server(request.config).url


@pytest.fixture
def s3_store_factory(request: pytest.FixtureRequest) -> Iterator[Callable[[], ObjectStore]]:
    server = s3_server(request.config)
    import boto3.session

    from cairnflow.savers.s3 import S3Store

    bucket = new_bucket(server.url)
    # One boto3 session per test (sessions are not thread-safe, so clients are
    # made under a lock); every store gets its own client from it.
    session = boto3.session.Session(
        aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY, region_name=REGION
    )
    lock = threading.Lock()
    stores: list[S3Store] = []

    def factory() -> ObjectStore:
        with lock:
            store = S3Store(bucket, session=session, endpoint_url=server.url, page_size=PAGE_SIZE)
            stores.append(store)
        return store

    yield factory
    for store in stores:
        store.close()


@pytest.fixture
def s3_store(s3_store_factory: Callable[[], ObjectStore]) -> ObjectStore:
    return s3_store_factory()


@pytest.fixture
def s3_async_store_factory(request: pytest.FixtureRequest) -> Iterator[Callable[[], ObjectStore]]:
    """As ``s3_store_factory`` for :class:`~cairnflow.savers.s3_async.AsyncS3Store`, each seen
    through :class:`tests.support.async_bridge.SyncStore` (its requests awaited on one loop)."""
    server = s3_server(request.config)
    from aiobotocore.session import AioSession

    from cairnflow.savers.s3_async import AsyncS3Store
    from tests.support.async_bridge import SyncStore

    bucket = new_bucket(server.url)
    session = AioSession()
    session.set_credentials(ACCESS_KEY, SECRET_KEY)
    stores: list[SyncStore] = []

    def factory() -> ObjectStore:
        inner = AsyncS3Store(
            bucket, session=session, endpoint_url=server.url, region_name=REGION, page_size=PAGE_SIZE
        )
        stores.append(SyncStore(inner))
        return stores[-1]

    yield factory
    for store in stores:
        store.close()


@pytest.fixture
def s3_async_store(s3_async_store_factory: Callable[[], ObjectStore]) -> ObjectStore:
    return s3_async_store_factory()


@pytest.fixture
def s3_location(request: pytest.FixtureRequest) -> StoreLocation:
    server = s3_server(request.config)
    bucket = new_bucket(server.url)
    return StoreLocation(
        url=f"s3://{bucket}/wf",
        env={
            "AWS_ENDPOINT_URL_S3": server.url,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
        },
    )
