"""Fixtures for the core acceptance tests.

``<backend>_location`` for backend in :data:`LOCATION_BACKENDS` is a fresh,
empty store as a :class:`~tests.emulators.StoreLocation` (a URL plus the
environment a child process needs). ``local_location`` is defined here; the
emulator ones come from ``tests/emulators/<name>.py`` and are re-exported here
so that ``request.getfixturevalue(f"{backend}_location")`` finds them. A
module that does not provide its fixture yet gets a stand-in that skips
locally and fails under CI, like every other missing emulator.
"""

from __future__ import annotations

import importlib
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.emulators import StoreLocation, emulator_unavailable


@pytest.fixture
def local_location(tmp_path: Path) -> StoreLocation:
    return StoreLocation(url=f"file://{tmp_path}/store")


def _missing_location(name: str) -> Callable[[], Any]:
    @pytest.fixture(name=f"{name}_location")
    def fixture() -> Any:
        emulator_unavailable(f"the {name} emulator's {name}_location fixture")

    return fixture


for _name in ("s3", "gcs", "azure"):
    try:
        _module = importlib.import_module(f"tests.emulators.{_name}")
        _fixture = getattr(_module, f"{_name}_location")
    except (ImportError, AttributeError):
        _fixture = _missing_location(_name)
    globals()[f"{_name}_location"] = _fixture


@pytest.fixture
def location_env(monkeypatch: pytest.MonkeyPatch) -> Callable[[StoreLocation], None]:
    """Apply a location's environment to this (the test) process too, to read the store here."""

    def apply(location: StoreLocation) -> None:
        for key, value in location.env.items():
            monkeypatch.setenv(key, value)

    return apply


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
