"""The official LangGraph conformance suite (langgraph-checkpoint-conformance), on every backend.

It exercises only the async methods (the sync path has its own tests in test_saver.py).
Every capability, base and extended, must be detected and pass: once with a saver on a
sync store only (its a* methods in worker threads), and once opened with ``from_url``,
whose a* methods make their requests on the store's asyncio backend.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.capabilities import ALL_CAPABILITIES

from cairnflow.core.store import ObjectStore
from cairnflow.langgraph import LangGraphSaver
from cairnflow.langgraph._bridge import BridgedStore
from tests.emulators import StoreLocation

LOCATED_BACKENDS = [
    "local",
    *(
        pytest.param(cloud, marks=(getattr(pytest.mark, cloud), pytest.mark.emulator))
        for cloud in ("s3", "gcs", "azure")
    ),
]


def test_conformance_suite_passes_every_capability(
    backend: str, store_factory: Callable[[], ObjectStore]
) -> None:
    @checkpointer_test(name=f"cairnflow-{backend}")
    async def factory() -> AsyncIterator[LangGraphSaver]:
        saver = LangGraphSaver(store_factory(), prefix=f"conformance/{uuid.uuid4().hex}/")
        yield saver
        saver.close()

    _check(backend, asyncio.run(validate(factory)))


@pytest.mark.parametrize("located", LOCATED_BACKENDS)
def test_conformance_suite_passes_on_the_async_store_from_url(
    located: str, request: pytest.FixtureRequest, use_env: Callable[[StoreLocation], StoreLocation]
) -> None:
    location = use_env(request.getfixturevalue(f"{located}_location"))
    savers: list[LangGraphSaver] = []

    @checkpointer_test(name=f"cairnflow-{located}-async")
    async def factory() -> AsyncIterator[LangGraphSaver]:
        saver = LangGraphSaver.from_url(f"{location.url.rstrip('/')}/lg-{uuid.uuid4().hex}")
        savers.append(saver)
        yield saver
        await saver.aclose()

    _check(f"{located} (async store)", asyncio.run(validate(factory)))
    assert savers and all(isinstance(s.bridged_store, BridgedStore) for s in savers), (
        "the a* methods did not use the store's asyncio backend"
    )


def _check(backend: str, report: Any) -> None:
    lines = [f"conformance on {backend}: {report.conformance_level()}"]
    for name in sorted(report.results):
        r = report.results[name]
        lines.append(f"  {name:16s} passed={r.tests_passed:3d} failed={r.tests_failed}")
        lines += [f"    FAIL {failure}" for failure in r.failures]
    total = sum(r.tests_passed for r in report.results.values())
    lines.append(f"  total passed: {total}")
    print("\n".join(lines))
    assert {c.value for c in ALL_CAPABILITIES} == set(report.results)
    assert all(r.detected for r in report.results.values()), "a capability was not detected"
    assert sum(r.tests_failed for r in report.results.values()) == 0, "\n".join(lines)
    assert report.passed_all() and report.conformance_level() == "FULL"
