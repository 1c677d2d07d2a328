"""Fixtures of the executor tests: ``apair``, an async saver and a sync saver on the same objects."""

from __future__ import annotations

from pathlib import Path

import pytest

from cairnflow.core.checkpoint import AsyncCheckpointSaver, CheckpointSaver
from tests.core.asavers import ASYNC_BACKENDS, open_pair


@pytest.fixture(params=ASYNC_BACKENDS)
def apair(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[AsyncCheckpointSaver, CheckpointSaver]:
    """An async saver on each backend of ASYNC_BACKENDS, and a sync saver on the same objects."""
    return open_pair(request.param, tmp_path)
