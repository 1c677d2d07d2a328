"""Azurite's queue service for the Azure driver tests.

One ``azurite-queue`` process per test session, started on first use on a
free 127.0.0.1 port with in-memory storage, stopped when the session ends.
Fixture: ``azure_queue_service`` (session): a ``QueueServiceClient``.
"""

from __future__ import annotations

import functools
import importlib.util
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.emulators import SessionEmulator, free_port, stop_process, wait_until_ready
from tests.emulators.azure import ACCOUNT, ACCOUNT_KEY, REPO, azurite_command

AZURITE_QUEUE_BIN = REPO / ".cache" / "azurite" / "node_modules" / ".bin" / "azurite-queue"
STARTUP_TIMEOUT = 30.0


@dataclass
class AzuriteQueue:
    process: subprocess.Popen[bytes]
    endpoint: str  # http://127.0.0.1:PORT/devstoreaccount1
    log_path: Path

    def stop(self) -> None:
        stop_process(self.process, group=True)  # npm's shim may run node as a child


def _answers(service: Any) -> bool:
    from azure.core.exceptions import ServiceRequestError

    try:
        service.get_service_properties()
        return True
    except ServiceRequestError:
        return False


def start_azurite_queue() -> AzuriteQueue:
    """Start azurite-queue on a free port; return once the service answers (``RuntimeError`` if not)."""
    from azure.storage.queue import QueueServiceClient

    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="cairnflow-azurite-queue-"))
    log_path = workdir / "azurite.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            azurite_command(AZURITE_QUEUE_BIN, "queue", port),
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = AzuriteQueue(process, f"http://127.0.0.1:{port}/{ACCOUNT}", log_path)
    service = QueueServiceClient.from_connection_string(connection_string(server.endpoint), retry_total=0)
    if wait_until_ready(process, functools.partial(_answers, service), STARTUP_TIMEOUT):
        return server
    server.stop()
    raise RuntimeError(f"azurite-queue did not start: {log_path.read_text()[-500:]}")


def connection_string(queue_endpoint: str) -> str:
    return (
        f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
        f"QueueEndpoint={queue_endpoint};"
    )


def _missing() -> str | None:
    if importlib.util.find_spec("azure.storage.queue") is None:
        return "azure-storage-queue (pip install 'cairnflow[azure-queue]')"
    if not AZURITE_QUEUE_BIN.exists():
        return "azurite-queue (run scripts/install-emulators.sh)"
    return None


_queue = SessionEmulator("azure", start_azurite_queue, _missing)


@pytest.fixture(scope="session")
def azure_queue_service(request: pytest.FixtureRequest) -> Any:
    from azure.storage.queue import QueueServiceClient

    server = _queue.get(request.config)
    return QueueServiceClient.from_connection_string(connection_string(server.endpoint))
