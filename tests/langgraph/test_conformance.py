"""The official LangGraph conformance suite (langgraph-checkpoint-conformance), on every backend.

It exercises only the async methods (the sync path has its own tests in test_saver.py).
Every capability, base and extended, must be detected and pass.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable

from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.capabilities import ALL_CAPABILITIES

from cairnflow.core.store import ObjectStore
from cairnflow.langgraph import LangGraphSaver


def test_conformance_suite_passes_every_capability(
    backend: str, store_factory: Callable[[], ObjectStore]
) -> None:
    @checkpointer_test(name=f"cairnflow-{backend}")
    async def factory() -> AsyncIterator[LangGraphSaver]:
        saver = LangGraphSaver(store_factory(), prefix=f"conformance/{uuid.uuid4().hex}/")
        yield saver
        saver.close()

    report = asyncio.run(validate(factory))
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
