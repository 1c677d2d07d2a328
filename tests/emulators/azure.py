"""Azurite (the Azure Storage emulator) for the azure backend's tests.

One ``azurite-blob`` process per test session, started on first use on a free
127.0.0.1 port with in-memory storage, its output going to a log file, and
stopped (its whole process group) when the session ends. Azurite comes from
npm (``scripts/install-emulators.sh`` puts it under ``.cache/azurite``); when
it is missing the fixtures skip locally and fail under CI.

Fixtures: ``azure_server_url`` and ``azure_connection_string`` (session),
``azure_store_factory`` (a fresh container per test; each call makes a new
:class:`AzureBlobStore` with its own client), ``azure_store`` and
``azure_location``. ``tests/conftest.py`` imports only ``azure_store`` and
``azure_store_factory``, so those two must not depend on the others by name:
all of them go through :func:`azurite`, which starts the server once.
"""

from __future__ import annotations

import contextlib
import functools
import http.client
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cairnflow.core.store import ObjectStore
from tests.emulators import SessionEmulator, StoreLocation, free_port, stop_process, wait_until_ready

REPO = Path(__file__).resolve().parents[2]
AZURITE_BIN = REPO / ".cache" / "azurite" / "node_modules" / ".bin" / "azurite-blob"

#: Azurite's well-known development account and key (public, documented by Microsoft).
ACCOUNT = "devstoreaccount1"
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
STARTUP_TIMEOUT = 30.0

#: Client options for test stores: the SDK's retry policy without its waits (it sleeps
#: initial_backoff + increment_base ** n, n = 1, 2, ...), so that a connection the
#: emulator closed while idle is retried at once instead of failing the test.
FAST_RETRY: dict[str, Any] = {"initial_backoff": 0, "increment_base": 0, "random_jitter_range": 0}


@dataclass
class Azurite:
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        """The blob endpoint, ``http://127.0.0.1:PORT/devstoreaccount1``."""
        return f"http://127.0.0.1:{self.port}/{ACCOUNT}"

    @property
    def upstream(self) -> str:
        """Scheme, host and port only (for a proxy in front of the emulator)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def connection_string(self) -> str:
        return connection_string(self.url)

    def stop(self) -> None:
        stop_process(self.process, group=True)  # npm's shim may run node as a child


def connection_string(blob_endpoint: str, account_key: str = ACCOUNT_KEY) -> str:
    return (
        f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={account_key};"
        f"BlobEndpoint={blob_endpoint};"
    )


def _log_tail(path: Path) -> str:
    try:
        return path.read_text(errors="replace")[-2000:]
    except OSError:
        return ""


def _responds(port: int) -> bool:
    """True once Azurite answers HTTP on ``port`` (any status: it wants signed requests)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
    try:
        conn.request("GET", f"/{ACCOUNT}?comp=list")
        conn.getresponse().read()
        return True
    except OSError:
        return False
    finally:
        conn.close()


def _listens(log_path: Path, port: int) -> bool:
    # The log line proves that this process (not another one) holds the port.
    return f"listens on http://127.0.0.1:{port}" in _log_tail(log_path) and _responds(port)


def azurite_command(binary: Path, service: str, port: int) -> list[str]:
    """The command line of one Azurite service (``blob`` or ``queue``): 127.0.0.1, in memory, quiet."""
    return [
        str(binary),
        f"--{service}Host",
        "127.0.0.1",
        f"--{service}Port",
        str(port),
        "--inMemoryPersistence",
        "--disableTelemetry",
        "--skipApiVersionCheck",
        "--silent",
    ]


def start_azurite() -> Azurite:
    """Start Azurite (blob only, in memory) on a free 127.0.0.1 port; return once it answers.

    The caller stops it (``Azurite.stop``). ``RuntimeError`` if it is not installed or
    does not come up. The benchmarks start theirs with this too.
    """
    if not AZURITE_BIN.exists():
        raise RuntimeError(f"Azurite is not installed ({AZURITE_BIN}); run scripts/install-emulators.sh")
    workdir = Path(tempfile.mkdtemp(prefix="cairnflow-azurite-"))
    log_path = workdir / "azurite.log"
    for _attempt in range(3):  # the free port may be taken between probe and bind
        port = free_port()
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                azurite_command(AZURITE_BIN, "blob", port),
                cwd=workdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        server = Azurite(process, port, log_path)
        if wait_until_ready(process, functools.partial(_listens, log_path, port), STARTUP_TIMEOUT):
            return server
        server.stop()
    raise RuntimeError(f"Azurite did not start; log {log_path}:\n{_log_tail(log_path)}")


def _missing() -> str | None:
    return None if AZURITE_BIN.exists() else f"Azurite ({AZURITE_BIN.relative_to(REPO)})"


_azurite = SessionEmulator("azure", start_azurite, _missing)


def azurite(config: pytest.Config) -> Azurite:
    """The session's Azurite, started on first use and stopped when the session ends."""
    return _azurite.get(config)


def unique_container() -> str:
    """A container name no other test uses (3-63 lowercase letters, digits, hyphens)."""
    return f"cf-{uuid.uuid4().hex[:20]}"


def make_store(container: str, endpoint: str, **options: Any) -> ObjectStore:
    """A new store with its own client on ``endpoint`` (Azurite or a proxy in front of it)."""
    from cairnflow.savers.azure import AzureBlobStore

    options.setdefault("client_options", FAST_RETRY)
    return AzureBlobStore(container, connection_string=connection_string(endpoint), **options)


def make_async_store(container: str, endpoint: str, **options: Any) -> ObjectStore:
    """As :func:`make_store`, an :class:`~cairnflow.savers.azure_async.AsyncAzureBlobStore`
    seen through :class:`tests.support.async_bridge.SyncStore`."""
    from cairnflow.savers.azure_async import AsyncAzureBlobStore
    from tests.support.async_bridge import SyncStore

    options.setdefault("client_options", FAST_RETRY)
    return SyncStore(AsyncAzureBlobStore(container, connection_string=connection_string(endpoint), **options))


@contextlib.contextmanager
def fresh_container(server: Azurite) -> Iterator[str]:
    """Create a uniquely named container; delete it afterwards."""
    from azure.storage.blob import BlobServiceClient

    name = unique_container()
    with BlobServiceClient.from_connection_string(server.connection_string, **FAST_RETRY) as service:
        service.create_container(name)
        try:
            yield name
        finally:
            with contextlib.suppress(Exception):
                service.delete_container(name)


@pytest.fixture(scope="session")
def azure_server(request: pytest.FixtureRequest) -> Azurite:
    return azurite(request.config)


@pytest.fixture(scope="session")
def azure_server_url(request: pytest.FixtureRequest) -> str:
    return azurite(request.config).url


@pytest.fixture(scope="session")
def azure_connection_string(request: pytest.FixtureRequest) -> str:
    return azurite(request.config).connection_string


@pytest.fixture
def azure_container(request: pytest.FixtureRequest) -> Iterator[str]:
    with fresh_container(azurite(request.config)) as name:
        yield name


@pytest.fixture
def azure_store_factory(request: pytest.FixtureRequest) -> Iterator[Callable[[], ObjectStore]]:
    server = azurite(request.config)
    stores: list[ObjectStore] = []

    def factory() -> ObjectStore:
        # page_size=7 so that the contract suite's listings span several pages.
        store = make_store(container, server.url, page_size=7)
        stores.append(store)
        return store

    with fresh_container(server) as container:
        yield factory
        for store in stores:
            store.close()


@pytest.fixture
def azure_store(azure_store_factory: Callable[[], ObjectStore]) -> ObjectStore:
    return azure_store_factory()


@pytest.fixture
def azure_async_store_factory(request: pytest.FixtureRequest) -> Iterator[Callable[[], ObjectStore]]:
    """As ``azure_store_factory``, for the asyncio store (through the sync bridge)."""
    server = azurite(request.config)
    stores: list[ObjectStore] = []

    def factory() -> ObjectStore:
        stores.append(make_async_store(container, server.url, page_size=7))
        return stores[-1]

    with fresh_container(server) as container:
        yield factory
        for store in stores:
            store.close()


@pytest.fixture
def azure_async_store(azure_async_store_factory: Callable[[], ObjectStore]) -> ObjectStore:
    return azure_async_store_factory()


@pytest.fixture
def azure_location(request: pytest.FixtureRequest) -> Iterator[StoreLocation]:
    server = azurite(request.config)
    with fresh_container(server) as container:
        yield StoreLocation(
            url=f"az://{container}/wf",
            env={"AZURE_STORAGE_CONNECTION_STRING": server.connection_string},
        )
