"""Async savers for the executor tests, by backend name, plus a sync saver on the same store.

Tests take the saver from here (through the ``flavour``/``backend`` fixtures), so that the
emulator backends are one more name once the async cloud stores land.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from cairnflow.core import CheckpointLog
from cairnflow.core.checkpoint import (
    AsyncCheckpointSaver,
    CheckpointSaver,
)
from cairnflow.core.log import AsyncCheckpointLog
from cairnflow.core.store import ObjectStore
from cairnflow.savers import open_async_saver, open_saver

#: What the ``aio`` fixture gives a test: run a coroutine on the test's one event loop.
Runner = Callable[[Awaitable[Any]], Any]

#: The store URL scheme of each emulated cloud.
CLOUD_SCHEMES = {"s3": "s3", "gcs": "gs", "azure": "az"}


def _async_backends() -> list[Any]:
    """memory, local, and each cloud whose async backend exists (on its emulator)."""
    from cairnflow.savers import _ASYNC_SCHEMES

    clouds = [
        pytest.param(cloud, marks=(getattr(pytest.mark, cloud), pytest.mark.emulator))
        for cloud, scheme in CLOUD_SCHEMES.items()
        if scheme in _ASYNC_SCHEMES
    ]
    return ["memory", "local", *clouds]


#: Backends the in-process async executor tests run on (the ``apair`` fixture).
ASYNC_BACKENDS = _async_backends()


def async_twin(saver: CheckpointLog, url: str, wrapped: bool = False) -> AsyncCheckpointSaver:
    """An async saver on what the sync ``saver`` (opened on ``url``) reads.

    ``open_async_saver(url)`` where the scheme has an async backend. Otherwise (a cloud
    whose async backend has not landed), and when a test wrapped the store (a barrier),
    the async log runs on the sync store through the test bridge (a thread per request):
    the executor's asyncio flow is still the one under test.
    """
    from cairnflow.savers import _ASYNC_SCHEMES

    if wrapped or url.partition("://")[0] not in ("memory", "file", *_ASYNC_SCHEMES):
        from tests.support.async_bridge import AsyncStore

        return AsyncCheckpointLog(
            AsyncStore(saver.store), prefix=saver.prefix, serializer=saver.serializer, cipher=saver.cipher
        )
    return open_async_saver(url)


def url_of(backend: str, tmp_path: Path) -> str:
    if backend == "memory":
        return "memory://"
    if backend == "local":
        return f"file://{tmp_path / 'store'}"
    raise AssertionError(f"no async saver for backend {backend!r} yet")


def on_store(store: ObjectStore, **options: Any) -> tuple[AsyncCheckpointSaver, CheckpointSaver]:
    """An async saver and a sync saver on ``store`` (a sync store, e.g. a counting wrapper);
    ``options`` go to both logs (e.g. ``store_retry``)."""
    from tests.support.async_bridge import AsyncStore

    return AsyncCheckpointLog(AsyncStore(store), **options), CheckpointLog(store, **options)


def open_pair(backend: str, tmp_path: Path) -> tuple[AsyncCheckpointSaver, CheckpointSaver]:
    """An async saver on ``backend`` and a sync saver on the same objects (to inspect, or to
    complete callbacks with)."""
    url = url_of(backend, tmp_path)
    if backend == "memory":
        from cairnflow.savers.memory import AsyncMemoryStore, MemoryStore

        shared = MemoryStore()
        return AsyncCheckpointLog(AsyncMemoryStore(shared=shared)), CheckpointLog(shared)
    return open_async_saver(url), open_saver(url)


class Flavoured:
    """Drive a workflow in the flavour under test, so one test body covers both executors.

    ``twins`` maps a name to ``(plain def workflow, async def twin)``; :meth:`run` and
    :meth:`resume` call ``run``/``resume`` on the sync saver, or ``await arun``/``aresume``
    on the async saver through ``runner`` (default ``asyncio.run``: each in a fresh event
    loop; a saver on an asyncio cloud client needs one loop for all, e.g. ``aio``'s).
    """

    def __init__(
        self,
        flavour: str,
        twins: dict[str, tuple[Any, Any]],
        sync_saver: CheckpointSaver,
        async_saver: AsyncCheckpointSaver | None,
        runner: Callable[[Awaitable[Any]], Any] | None = None,
    ) -> None:
        self.flavour = flavour
        self.runner: Callable[[Awaitable[Any]], Any] = runner or asyncio.run  # type: ignore[assignment]
        self.twins = twins
        self.saver = sync_saver
        self.async_saver = async_saver

    def run(self, name: str, *args: Any, **kwargs: Any) -> Any:
        plain, twin = self.twins[name]
        if self.flavour == "sync":
            return plain.run(*args, saver=self.saver, **kwargs)
        return self.runner(twin.arun(*args, saver=self.async_saver, **kwargs))

    def resume(self, name: str, *args: Any, **kwargs: Any) -> Any:
        plain, twin = self.twins[name]
        if self.flavour == "sync":
            return plain.resume(*args, saver=self.saver, **kwargs)
        return self.runner(twin.aresume(*args, saver=self.async_saver, **kwargs))
