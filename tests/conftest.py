"""Shared fixtures.

``store`` is parametrized over every backend. Each cloud backend's emulator
fixtures live in ``tests/emulators/<name>.py`` and are registered once, for every
test, by the plugin ``tests/emulators/plugin.py`` (loaded below), which also marks
the tests that need an emulator. Each backend provides ``<name>_store`` (a store on
a fresh, empty bucket), ``<name>_store_factory`` (a callable making more stores on
the same fresh bucket, for tests that need several clients, e.g. several processes'
views of one bucket) and ``<name>_location`` (a fresh bucket as a URL plus the
environment a child process needs); ``memory`` and ``local`` are defined here.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cairnflow.core.store import ObjectStore
from cairnflow.savers.local import AsyncLocalStore, LocalStore
from cairnflow.savers.memory import AsyncMemoryStore, MemoryStore
from tests.emulators import StoreLocation
from tests.support.async_bridge import SyncStore

pytest_plugins = ["tests.emulators.plugin"]

#: Every backend the contract suites run against. A new backend adds its name here
#: and an emulator fixture module; the suites themselves do not change.
BACKENDS = ["memory", "local", "s3", "gcs", "azure"]
#: The asyncio backends the contract suites run against (through the sync bridges of
#: tests/support/async_bridge.py). A fixture ``<name>_store`` returns a bridged store.
ASYNC_BACKENDS = ["memory_async", "local_async", "s3_async", "gcs_async", "azure_async"]


#: Contract tests that an emulator cannot pass although the real cloud does. Each is run and
#: marked as an expected failure (strict: if the emulator starts passing, we hear of it).
EMULATOR_GAPS: dict[tuple[str, str], str] = {}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        callspec = getattr(item, "callspec", None)
        backend = callspec.params.get("backend") if callspec else None
        name = getattr(item, "originalname", item.name)
        reason = EMULATOR_GAPS.get((str(backend), name))
        if reason:
            item.add_marker(pytest.mark.xfail(strict=True, reason=reason))


@pytest.fixture
def memory_store() -> ObjectStore:
    return MemoryStore()


@pytest.fixture
def memory_store_factory(memory_store: ObjectStore) -> Callable[[], ObjectStore]:
    # A memory store is one process's dict: every "client" shares the same one.
    return lambda: memory_store


@pytest.fixture
def local_store_factory(tmp_path: Path) -> Callable[[], ObjectStore]:
    root = tmp_path / "store"
    return lambda: LocalStore(root)


@pytest.fixture
def local_store(local_store_factory: Callable[[], ObjectStore]) -> ObjectStore:
    return local_store_factory()


@pytest.fixture
def memory_async_store() -> ObjectStore:
    return SyncStore(AsyncMemoryStore())


@pytest.fixture
def memory_async_store_factory(memory_async_store: ObjectStore) -> Callable[[], ObjectStore]:
    return lambda: memory_async_store


@pytest.fixture
def local_async_store_factory(tmp_path: Path) -> Callable[[], ObjectStore]:
    root = tmp_path / "store"
    return lambda: SyncStore(AsyncLocalStore(root))


@pytest.fixture
def local_async_store(local_async_store_factory: Callable[[], ObjectStore]) -> ObjectStore:
    return local_async_store_factory()


@pytest.fixture
def local_location(tmp_path: Path) -> StoreLocation:
    return StoreLocation(url=f"file://{tmp_path}/store")


@pytest.fixture
def use_env(monkeypatch: pytest.MonkeyPatch) -> Callable[[StoreLocation], StoreLocation]:
    """Apply a location's environment to this (the test) process too, to open the store here."""

    def apply(location: StoreLocation) -> StoreLocation:
        for key, value in location.env.items():
            monkeypatch.setenv(key, value)
        return location

    return apply


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store(backend: str, request: pytest.FixtureRequest) -> ObjectStore:
    result: ObjectStore = request.getfixturevalue(f"{backend}_store")
    return result


@pytest.fixture
def store_factory(backend: str, request: pytest.FixtureRequest) -> Callable[[], ObjectStore]:
    result: Callable[[], ObjectStore] = request.getfixturevalue(f"{backend}_store_factory")
    return result


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
