"""Fixtures of the executor tests: ``aio`` (one event loop per test) and ``apair`` (an async
saver and a sync saver on the same objects)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cairnflow.core.checkpoint import AsyncCheckpointSaver, CheckpointSaver
from cairnflow.savers import open_async_saver, open_saver
from tests.core.asavers import ASYNC_BACKENDS, Runner, open_pair
from tests.emulators import StoreLocation


@pytest.fixture
def aio() -> Iterator[Runner]:
    """Run a coroutine to completion on this test's event loop.

    One loop for the whole test: an async saver's client (aiohttp's session, for
    one) belongs to the loop it was first used on, as in an application.
    """
    loop = asyncio.new_event_loop()

    def run(work: Awaitable[Any]) -> Any:
        return loop.run_until_complete(work)

    yield run
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.close()


@pytest.fixture(params=ASYNC_BACKENDS)
def apair(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    use_env: Callable[[StoreLocation], StoreLocation],
    aio: Runner,
) -> Iterator[tuple[AsyncCheckpointSaver, CheckpointSaver]]:
    """An async saver on each backend of ASYNC_BACKENDS, and a sync saver on the same objects.

    The async saver is used on ``aio``'s loop, and closed there afterwards.
    """
    if request.param in ("memory", "local"):
        asaver, view = open_pair(request.param, tmp_path)
    else:
        location: StoreLocation = use_env(request.getfixturevalue(f"{request.param}_location"))
        asaver, view = open_async_saver(location.url), open_saver(location.url)
    yield asaver, view
    aio(asaver.aclose())
