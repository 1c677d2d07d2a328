"""Fixtures of the reliability suite: the emulators' servers and locations, and child reaping.

The emulator fixtures come from ``tests/emulators``; the root conftest exposes
only the ``<backend>_store`` and ``<backend>_store_factory`` ones.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.emulators import StoreLocation
from tests.emulators.azure import azure_location, azure_server  # noqa: F401
from tests.emulators.gcs import gcs_location, gcs_server_url  # noqa: F401
from tests.emulators.s3 import s3_location, s3_server_url  # noqa: F401


@pytest.fixture
def local_location(tmp_path: Path) -> StoreLocation:
    return StoreLocation(url=f"file://{tmp_path}/store")


@pytest.fixture
def reap() -> Iterator[Callable[[subprocess.Popen[str]], subprocess.Popen[str]]]:
    """Register child processes; any still alive at teardown is killed (by its own pid)."""
    children: list[subprocess.Popen[str]] = []

    def register(proc: subprocess.Popen[str]) -> subprocess.Popen[str]:
        children.append(proc)
        return proc

    yield register
    for proc in children:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
