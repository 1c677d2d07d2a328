"""Fixtures of the executor tests: ``apair``, an async saver and a sync saver on the same objects."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from cairnflow.core.checkpoint import AsyncCheckpointSaver, CheckpointSaver
from cairnflow.savers import open_async_saver, open_saver
from tests.core.asavers import ASYNC_BACKENDS, open_pair
from tests.emulators import StoreLocation


@pytest.fixture(params=ASYNC_BACKENDS)
def apair(
    request: pytest.FixtureRequest, tmp_path: Path, use_env: Callable[[StoreLocation], StoreLocation]
) -> tuple[AsyncCheckpointSaver, CheckpointSaver]:
    """An async saver on each backend of ASYNC_BACKENDS, and a sync saver on the same objects."""
    if request.param in ("memory", "local"):
        return open_pair(request.param, tmp_path)
    location: StoreLocation = use_env(request.getfixturevalue(f"{request.param}_location"))
    return open_async_saver(location.url), open_saver(location.url)
