"""Azurite's queue service for the Azure driver tests.

One ``azurite-queue`` process per test session, started on first use on a
free 127.0.0.1 port with in-memory storage, stopped when the session ends.
Fixture: ``azure_queue_service`` (session): a ``QueueServiceClient``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.emulators import emulator_unavailable, free_port, require_marker
from tests.emulators.azure import ACCOUNT, ACCOUNT_KEY, REPO

AZURITE_QUEUE_BIN = REPO / ".cache" / "azurite" / "node_modules" / ".bin" / "azurite-queue"
STARTUP_TIMEOUT = 30.0

_lock = threading.Lock()
_process: subprocess.Popen[bytes] | None = None
_endpoint: str | None = None


def _start() -> tuple[subprocess.Popen[bytes], str]:
    import time

    from azure.core.exceptions import ServiceRequestError
    from azure.storage.queue import QueueServiceClient

    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="cairnflow-azurite-queue-"))
    with (workdir / "azurite.log").open("wb") as log:
        process = subprocess.Popen(
            [
                str(AZURITE_QUEUE_BIN),
                "--queueHost",
                "127.0.0.1",
                "--queuePort",
                str(port),
                "--inMemoryPersistence",
                "--disableTelemetry",
                "--skipApiVersionCheck",
                "--silent",
            ],
            cwd=workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    endpoint = f"http://127.0.0.1:{port}/{ACCOUNT}"
    service = QueueServiceClient.from_connection_string(connection_string(endpoint), retry_total=0)
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while True:  # readiness: the first request that the service answers
        try:
            service.get_service_properties()
            return process, endpoint
        except ServiceRequestError as exc:
            if process.poll() is not None or time.monotonic() > deadline:
                os.killpg(process.pid, signal.SIGKILL)
                raise RuntimeError(
                    f"azurite-queue did not start: {(workdir / 'azurite.log').read_text()[-500:]}"
                ) from exc
            threading.Event().wait(0.1)


def connection_string(queue_endpoint: str) -> str:
    return (
        f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
        f"QueueEndpoint={queue_endpoint};"
    )


@pytest.fixture(scope="session")
def azure_queue_service(request: pytest.FixtureRequest) -> Any:
    global _process, _endpoint
    require_marker("azure")
    pytest.importorskip("azure.storage.queue")
    with _lock:
        if _process is None or _process.poll() is not None:
            if not AZURITE_QUEUE_BIN.exists():
                emulator_unavailable("azurite-queue (run scripts/install-emulators.sh)")
            _process, _endpoint = _start()
            started = _process
            request.config.add_cleanup(lambda: os.killpg(started.pid, signal.SIGTERM))
    from azure.storage.queue import QueueServiceClient

    assert _endpoint is not None
    return QueueServiceClient.from_connection_string(connection_string(_endpoint))
