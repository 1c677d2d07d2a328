"""Emulator fixtures: each module starts one cloud emulator on 127.0.0.1.

What they share is here: a free port, stopping a process by its id, the one
process per test session (:class:`SessionEmulator`), skipping or failing when an
emulator is missing, and the check that a test reaching an emulator is marked.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

import pytest


def emulator_unavailable(what: str) -> None:
    """Skip locally, but fail under CI: CI must exercise every backend."""
    if os.environ.get("CI"):
        pytest.fail(f"{what} is not available under CI")
    pytest.skip(f"{what} is not available (run scripts/test.sh to install it)")


def free_port() -> int:
    """A port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def stop_process(process: subprocess.Popen[bytes], *, group: bool = False, timeout: float = 10) -> None:
    """Stop a launcher's process by its id: SIGTERM, then SIGKILL if it lingers.

    ``group``: signal its whole process group (it was started with
    ``start_new_session=True``, e.g. npm's shim running node as a child).
    """
    if process.poll() is not None:
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            if group:
                os.killpg(process.pid, sig)
            else:
                process.send_signal(sig)
        try:
            process.wait(timeout=timeout)
            return
        except subprocess.TimeoutExpired:
            continue


def wait_until_ready(process: subprocess.Popen[bytes], ready: Callable[[], bool], timeout: float) -> bool:
    """Poll ``ready()`` until it is true (True), or the process exited or ``timeout`` passed (False)."""
    deadline = time.monotonic() + timeout
    while process.poll() is None and time.monotonic() < deadline:
        if ready():
            return True
        # Poll, do not guess: wait for the process to exit or for the next probe.
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=0.05)
    return False


class Server(Protocol):
    """A running emulator: its process and how to stop it."""

    @property
    def process(self) -> subprocess.Popen[bytes]: ...

    def stop(self) -> None: ...


S = TypeVar("S", bound=Server)


class SessionEmulator(Generic[S]):
    """One emulator process per test session: started by the first test that needs it
    (under a lock: tests may ask from several threads), started again if it died, and
    stopped when the session ends.

    ``missing()`` names what is not installed, or returns None; ``start()`` returns
    the running server or raises ``RuntimeError``/``OSError``. Either way the test
    skips locally and fails under CI (:func:`emulator_unavailable`), and later tests
    are told the same without trying again.
    """

    def __init__(self, cloud: str, start: Callable[[], S], missing: Callable[[], str | None]) -> None:
        self.cloud = cloud
        self._start = start
        self._missing = missing
        self._server: S | None = None
        self._error: str | None = None
        self._lock = threading.Lock()

    def get(self, config: pytest.Config) -> S:
        require_marker(self.cloud)
        with self._lock:
            if self._server is not None and self._server.process.poll() is None:
                return self._server
            if self._error is None:
                self._error = self._missing()
            if self._error is None:
                try:
                    server = self._start()
                except (OSError, RuntimeError) as exc:
                    self._error = str(exc)
                else:
                    self._server = server
                    config.add_cleanup(server.stop)
                    return server
        emulator_unavailable(self._error)
        raise AssertionError("unreachable")


class _Running:
    """The test being set up, run or torn down (set by ``tests/emulators/plugin.py``)."""

    item: pytest.Item | None = None


running = _Running()


def require_marker(cloud: str) -> None:
    """Fail the current test if it reaches the ``cloud`` emulator without the ``emulator`` marker.

    Outside a test (a benchmark starting an emulator) there is nothing to check.
    """
    item = running.item
    if item is not None and item.get_closest_marker("emulator") is None:
        pytest.fail(
            f"{item.nodeid} uses the {cloud} emulator but is not marked: add @pytest.mark.{cloud} "
            "(or take a backend parameter) so that the default run deselects it",
            pytrace=False,
        )


@dataclass(frozen=True)
class StoreLocation:
    """A fresh, empty bucket as a URL, plus the environment a subprocess needs to open it.

    ``open_saver(location.url)`` must work in a child process started with
    ``env={**os.environ, **location.env}``.
    """

    url: str
    env: dict[str, str] = field(default_factory=dict)
