"""The Cloud Tasks emulator (gcloud-tasks-emulator, from PyPI) for the Google Cloud driver tests.

One emulator process per test session, started on first use on a free
127.0.0.1 port and stopped when the session ends. It keeps queues in memory
and POSTs each HTTP task to its URL once its schedule time has passed.
Fixture: ``cloud_tasks`` (session): the gRPC address and a client for it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.emulators import emulator_unavailable, free_port, require_marker

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
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)


_lock = threading.Lock()
_emulator: CloudTasksEmulator | None = None


def _command() -> list[str] | None:
    exe = Path(sys.executable).parent / "gcloud-tasks-emulator"
    if exe.exists():
        return [str(exe)]
    found = shutil.which("gcloud-tasks-emulator")
    return [found] if found else None


def _start(command: list[str]) -> CloudTasksEmulator:
    import grpc

    port = free_port()
    fd, log_name = tempfile.mkstemp(prefix="cairnflow-cloudtasks-", suffix=".log")
    with os.fdopen(fd, "wb") as log:
        process = subprocess.Popen(
            [*command, "start", "-p", str(port), "-q"],
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


@pytest.fixture(scope="session")
def cloud_tasks(request: pytest.FixtureRequest) -> CloudTasksEmulator:
    global _emulator
    require_marker("gcs")
    with _lock:
        if _emulator is None or _emulator.process.poll() is not None:
            pytest.importorskip("google.cloud.tasks_v2")
            command = _command()
            if command is None:
                emulator_unavailable("gcloud-tasks-emulator (pip install gcloud-tasks-emulator)")
                raise AssertionError("unreachable")
            _emulator = _start(command)
            request.config.add_cleanup(_emulator.stop)
        return _emulator
