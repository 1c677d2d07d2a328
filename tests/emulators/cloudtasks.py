"""The Cloud Tasks emulator (gcloud-tasks-emulator, from PyPI) for the Google Cloud driver tests.

One emulator process per test session, started on first use on a free
127.0.0.1 port and stopped when the session ends. It keeps queues in memory
and POSTs each HTTP task to its URL once its schedule time has passed.
Fixture: ``cloud_tasks`` (session): the gRPC address and a client for it.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.emulators import SessionEmulator, free_port, stop_process

STARTUP_TIMEOUT = 30.0


@dataclass
class CloudTasksEmulator:
    process: subprocess.Popen[bytes]
    address: str
    log_path: Path

    def client(self) -> Any:
        import grpc
        from google.cloud.tasks_v2 import CloudTasksClient
        from google.cloud.tasks_v2.services.cloud_tasks.transports import CloudTasksGrpcTransport

        channel = grpc.insecure_channel(self.address)
        return CloudTasksClient(transport=CloudTasksGrpcTransport(channel=channel))

    def stop(self) -> None:
        stop_process(self.process, group=True)


def _command() -> list[str] | None:
    exe = Path(sys.executable).parent / "gcloud-tasks-emulator"
    if exe.exists():
        return [str(exe)]
    found = shutil.which("gcloud-tasks-emulator")
    return [found] if found else None


def start_cloud_tasks() -> CloudTasksEmulator:
    """Start the emulator on a free port; return once its gRPC channel is ready (``RuntimeError`` if not)."""
    import grpc

    command = _command()
    if command is None:
        raise RuntimeError("gcloud-tasks-emulator is not installed")
    port = free_port()
    fd, log_name = tempfile.mkstemp(prefix="cairnflow-cloudtasks-", suffix=".log")
    with os.fdopen(fd, "wb") as log:
        process = subprocess.Popen(
            [*command, "start", "-p", str(port), "-q"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    emulator = CloudTasksEmulator(process, f"127.0.0.1:{port}", Path(log_name))
    channel = grpc.insecure_channel(emulator.address)
    try:
        grpc.channel_ready_future(channel).result(timeout=STARTUP_TIMEOUT)
    except grpc.FutureTimeoutError:
        emulator.stop()
        raise RuntimeError(
            f"Cloud Tasks emulator did not start: {Path(log_name).read_text()[-500:]}"
        ) from None
    finally:
        channel.close()
    return emulator


def _missing() -> str | None:
    if importlib.util.find_spec("google.cloud.tasks_v2") is None:
        return "google-cloud-tasks (pip install 'cairnflow[gcp-tasks]')"
    if _command() is None:
        return "gcloud-tasks-emulator (pip install gcloud-tasks-emulator)"
    return None


_emulator = SessionEmulator("gcs", start_cloud_tasks, _missing)


@pytest.fixture(scope="session")
def cloud_tasks(request: pytest.FixtureRequest) -> CloudTasksEmulator:
    return _emulator.get(request.config)
