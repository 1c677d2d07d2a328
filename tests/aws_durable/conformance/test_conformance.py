"""The AWS conformance package's own validation pipeline, judging cairnflow (local directory and S3).

The slow test runs all 155 requirements on each store and needs at least 150 to pass;
every failure must be listed in ``known_failures.py`` with its reason, and every listed
one must still fail (a fixed one shows up). The fast tests run a few requirements that
need no waiting, and show the pipeline can fail a handler.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aws_durable_execution_sdk_python import DurableContext, durable_execution

from cairnflow.core.log import CheckpointLog
from cairnflow.core.store import ObjectStore
from cairnflow.savers.local import LocalStore

from . import registry
from .harness import Outcome, run
from .known_failures import KNOWN_FAILURES

MIN_PASSING = 150


def report(outcome: Outcome, store: str) -> str:
    lines = [f"conformance on {store}: {len(outcome.passed())}/{len(outcome.results)} passed"]
    lines += [f"  {suite:20s} {p}/{t}" for suite, (p, t) in sorted(outcome.per_suite().items())]
    for rid, errors in outcome.failed().items():
        reason = KNOWN_FAILURES.get(rid, "NOT LISTED in known_failures.py")
        lines.append(f"  FAIL {rid}: {reason}")
        lines += [f"       {e}" for e in errors[:4]]
    lines += [f"  background error: {e}" for e in outcome.background_errors]
    return "\n".join(lines)


def check_all(outcome: Outcome, store: str) -> None:
    text = report(outcome, store)
    print(text)
    assert len(outcome.results) == 155, text
    assert len(outcome.passed()) >= MIN_PASSING, text
    unlisted = sorted(set(outcome.failed()) - set(KNOWN_FAILURES))
    assert not unlisted, f"failing but not in known_failures.py: {unlisted}\n{text}"
    fixed = sorted(rid for rid in KNOWN_FAILURES if outcome.results[rid].passed)
    assert not fixed, f"passing now, remove from known_failures.py: {fixed}\n{text}"


@pytest.mark.slow
def test_all_requirements_on_a_local_directory(tmp_path: Path) -> None:
    check_all(run(CheckpointLog(LocalStore(tmp_path))), "local")


@pytest.mark.slow
def test_all_requirements_on_s3(s3_store_factory: Callable[[], ObjectStore]) -> None:
    check_all(run(CheckpointLog(s3_store_factory(), prefix="conformance")), "s3")


def test_requirements_without_waits_pass(tmp_path: Path) -> None:
    ids = ["1-1", "1-3", "1-4", "1-5", "1-6", "1-19", "1-20"]
    outcome = run(CheckpointLog(LocalStore(tmp_path)), ids)
    assert sorted(outcome.results) == sorted(ids)
    assert outcome.failed() == {}, report(outcome, "local")


def test_the_pipeline_fails_a_wrong_handler(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    @durable_execution
    def wrong(event: Any, context: DurableContext) -> Any:
        context.step(lambda _: "one")
        return context.step(lambda _: f"Hello, {event}!")  # one step too many, right result

    monkeypatch.setitem(registry.REQUIREMENTS, "1-1", wrong)
    outcome = run(CheckpointLog(LocalStore(tmp_path)), ["1-1", "1-19"])
    errors = outcome.failed()
    assert list(errors) == ["1-1"]  # 1-19 (its own handler) still passes
    assert any("EventId=4" in e and "InvocationCompleted" in e for e in errors["1-1"]), errors


@pytest.mark.slow
def test_requirements_still_validate_when_the_runner_dies_at_random_points(tmp_path: Path) -> None:
    """Each runner-side service call (begin or end an invocation, before or after its write
    lands) kills the runner with chance 0.1; a fresh runner (a cold process) carries on.

    Executions must complete and their histories validate: a dead runner's unfinished
    invocation is simply invoked again, and the SDK's replay adds nothing. What cannot
    survive is what only the dead runner knew: if it dies right after its handler crashed
    (1-17, 1-18: ``Runtime.ExitError``), that crash is never recorded; and a handler run
    twice logs twice (ExpectedLogs counts). So the bar is the same 150, not 155.
    """
    outcome = run(CheckpointLog(LocalStore(tmp_path)), kill_rate=0.1, seed=20)
    text = report(outcome, f"local, the runner killed {len(outcome.kills)} times")
    print(text)
    assert len(outcome.kills) >= 50, text  # the runner really died, many times
    assert {k.split(" ", 2)[0] + " " + k.split(" ", 2)[1] for k in outcome.kills} == {
        "before begin",
        "after begin",
        "before end",
        "after end",
    }, text
    assert len(outcome.passed()) >= MIN_PASSING, text
