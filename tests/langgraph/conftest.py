"""Fixtures for the LangGraph checkpointer tests.

The root conftest's ``store``/``store_factory`` fixtures are parametrized over every
backend (memory, local, s3, gcs, azure); a test narrows them with
``@pytest.mark.parametrize("backend", [...], indirect=True)``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from cairnflow.core.store import ObjectStore
from cairnflow.langgraph import LangGraphSaver

PREFIX = "lg-test/"


@pytest.fixture
def saver(store: ObjectStore) -> Iterator[LangGraphSaver]:
    with LangGraphSaver(store, prefix=PREFIX) as s:
        yield s


@pytest.fixture
def saver_factory(store_factory: Callable[[], ObjectStore]) -> Iterator[Callable[[], LangGraphSaver]]:
    """New savers, each on its own store client of the same bucket (like separate processes)."""
    made: list[LangGraphSaver] = []

    def make() -> LangGraphSaver:
        s = LangGraphSaver(store_factory(), prefix=PREFIX)
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()
