"""Async workflows that wait: ``await sleep()``, ``await cb.wait()``, ``await child.start()``, deadlines.

The same records and statuses as the sync executor's timers, callbacks and children
(tests/core/test_timers.py, test_callbacks.py, test_children.py); the waits here are
real, short ``asyncio`` sleeps.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import pytest

from cairnflow.core import (
    CallbackCompletedError,
    CallbackTimeoutError,
    MisuseError,
    acomplete_callback,
    afail_callback,
    callback,
    callbacks,
    complete_callback,
    sleep,
    sleep_until,
    task,
    timers,
    workflow,
)
from cairnflow.core.checkpoint import AsyncCheckpointSaver, CheckpointSaver
from tests.core.asavers import Runner

Pair = tuple[AsyncCheckpointSaver, CheckpointSaver]
ran: Counter[str] = Counter()


@pytest.fixture(autouse=True)
def _fresh() -> None:
    ran.clear()


def records(view: CheckpointSaver, thread_id: str) -> list[dict[str, Any]]:
    head = view.latest(thread_id)
    assert head is not None
    return list(head.records)


#: When each ``note`` task last ran (``time.monotonic()``), by label.
stamps: dict[str, float] = {}


@task
async def note(label: str) -> str:
    ran[label] += 1
    stamps[label] = time.monotonic()
    return label


class Shifted:
    """``time.time()`` plus an offset that the test moves (a day passes at once)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def time(self) -> float:
        return time.time() + self.offset


@workflow(name="napper")
async def napper(seconds: float) -> str:
    await note("before")
    await sleep(seconds)
    return await note("after")


def test_a_timer_within_the_deadline_waits_in_process_without_blocking_the_loop(
    apair: Pair, aio: Runner
) -> None:
    asaver, view = apair
    ticks: list[float] = []

    async def ticker(finished: asyncio.Future[Any]) -> None:
        while not finished.done():
            ticks.append(time.monotonic())
            await asyncio.sleep(0.01)

    async def scenario() -> Any:
        run = asyncio.ensure_future(napper.arun(0.2, thread_id="n", saver=asaver, deadline=time.time() + 30))
        await ticker(run)
        return await run

    run = aio(scenario())
    assert run.status == "completed" and run.result == "after"
    before, after = stamps["before"], stamps["after"]
    assert after - before >= 0.2  # the timer was waited for
    assert len([t for t in ticks if before < t < after]) >= 5  # and the loop ran meanwhile
    timers = [r for r in records(view, "n") if r["op"] == "timer"]
    assert len(timers) == 1


def test_a_timer_without_a_deadline_stops_as_waiting_and_resumes_after_its_time(
    apair: Pair, aio: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    asaver, view = apair
    clock = Shifted()
    monkeypatch.setattr(timers, "time", clock)  # the timers' clock: the test moves it on

    async def scenario() -> None:
        first = await napper.arun(3600, thread_id="w", saver=asaver)
        assert first.status == "waiting" and first.wake_at is not None
        head = view.latest("w")
        early = await napper.aresume(thread_id="w", saver=asaver)
        assert early.status == "waiting" and early.wake_at == first.wake_at
        assert view.latest("w") == head  # resumed before its time: nothing written
        clock.offset += 3601
        done = await napper.aresume(thread_id="w", saver=asaver)
        assert done.status == "completed"

    aio(scenario())
    assert ran == {"before": 1, "after": 1}


def test_sleep_until_a_past_moment_goes_on_at_once(apair: Pair, aio: Runner) -> None:
    asaver, _ = apair

    @workflow(name="past")
    async def past() -> str:
        await sleep_until(time.time() - 5)
        return "on"

    assert aio(past.arun(thread_id="p", saver=asaver)).result == "on"


#: What ``hand_out`` sees: the sync view of the store, and the tokens it was given.
outside: dict[str, Any] = {}


@task
async def hand_out(token: str) -> bool:
    outside["token"] = token
    head = outside["view"].latest("cb")
    # The callback record is stored before any task that could hand its token out runs.
    return any(r["op"] == "callback" for r in head.records)


def test_a_callback_is_stored_before_its_token_leaves_and_its_completion_continues_the_run(
    apair: Pair,
    aio: Runner,
) -> None:
    asaver, view = apair
    outside["view"] = view

    @workflow(name="approval")
    async def approval() -> Any:
        cb = callback()
        stored = await hand_out(cb.token)
        return [stored, await cb.wait()]

    async def scenario() -> None:
        first = await approval.arun(thread_id="cb", saver=asaver)
        assert first.status == "waiting" and first.wake_at is None
        await acomplete_callback(outside["token"], "approved", saver=asaver)
        await acomplete_callback(outside["token"], "approved", saver=asaver)  # a retried completion
        with pytest.raises(CallbackCompletedError):
            await acomplete_callback(outside["token"], "refused", saver=asaver)
        with pytest.raises(CallbackCompletedError):
            complete_callback(outside["token"], "refused", saver=view)  # the sync twin agrees
        done = await approval.aresume(thread_id="cb", saver=asaver)
        assert done.status == "completed" and done.result == [True, "approved"]

    aio(scenario())


def test_a_callback_timeout_is_recorded_before_the_body_sees_it(
    apair: Pair, aio: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    asaver, view = apair
    clock = Shifted()
    monkeypatch.setattr(callbacks, "time", clock)

    @workflow(name="impatient")
    async def impatient() -> str:
        cb = callback(timeout=60)
        try:
            return str(await cb.wait())
        except CallbackTimeoutError:
            return "timed out"

    async def scenario() -> None:
        first = await impatient.arun(thread_id="to", saver=asaver)
        assert first.status == "waiting" and first.wake_at is not None
        clock.offset += 61
        done = await impatient.aresume(thread_id="to", saver=asaver)
        assert done.result == "timed out"

    aio(scenario())
    ends = [r for r in records(view, "to") if r["op"] == "callback_done"]
    assert ends == [{"op": "callback_done", "pos": 0, "timeout": True}]


def test_afail_callback_raises_the_error_sent_in_the_body(apair: Pair, aio: Runner) -> None:
    asaver, view = apair

    @workflow(name="rejected")
    async def rejected() -> str:
        cb = callback()
        outside["token"] = cb.token
        try:
            return str(await cb.wait())
        except ValueError as exc:
            return f"refused: {exc}"

    async def scenario() -> None:
        first = await rejected.arun(thread_id="rj", saver=asaver)
        assert first.status == "waiting"
        await afail_callback(outside["token"], ValueError("no stock"), saver=asaver)
        done = await rejected.aresume(thread_id="rj", saver=asaver)
        assert done.result == "refused: no stock"

    aio(scenario())
    ends = [r for r in records(view, "rj") if r["op"] == "callback_done"]
    assert len(ends) == 1 and ends[0]["error"]["type"] == "builtins.ValueError"


@workflow(name="kid")
async def kid(n: int) -> int:
    return int(await note(f"kid{n}") == f"kid{n}") * n


@workflow(name="parent")
async def parent() -> list[int]:
    a, b = await asyncio.gather(kid.start(1), kid.start(2))
    answer = await note("parent")
    return [a, b, len(answer)]


def test_async_children_run_on_their_own_threads_and_are_recorded_once(apair: Pair, aio: Runner) -> None:
    asaver, view = apair
    run = aio(parent.arun(thread_id="P", saver=asaver))
    assert run.result == [1, 2, 6]
    for pos in (0, 1):
        child = records(view, f"P~child-{pos}")
        assert child[0]["parent"] == {"thread_id": "P", "workflow": "parent", "pos": pos}
        assert child[0]["flavour"] == "async"
    done = {r["pos"]: r["value"] for r in records(view, "P") if r["op"] == "child_done"}
    assert done == {0: 1, 1: 2}
    again = aio(parent.arun(thread_id="P", saver=asaver))
    assert again.result == run.result
    assert ran == {"kid1": 1, "kid2": 1, "parent": 1}


def test_a_sync_child_of_an_async_parent_is_refused(apair: Pair, aio: Runner) -> None:
    asaver, view = apair

    @workflow(name="plain_kid")
    def plain_kid() -> int:
        return 1

    @workflow(name="mixed_parent")
    async def mixed_parent() -> int:
        return int(await plain_kid.start())

    with pytest.raises(MisuseError, match="must be plain `def` like its parent"):
        aio(mixed_parent.arun(thread_id="mp", saver=asaver))
    assert view.latest("mp~child-0") is None


def test_a_deadline_suspends_between_tasks_and_resume_continues(apair: Pair, aio: Runner) -> None:
    asaver, view = apair

    @task(name="slow")
    async def slow() -> str:
        ran["slow"] += 1
        await asyncio.sleep(0.3)
        return "slow"

    @workflow(name="budget")
    async def budget() -> list[str]:
        return [await slow(), await note("next")]

    async def scenario() -> None:
        first = await budget.arun(thread_id="b", saver=asaver, deadline=time.time() + 1.0, reserve=0.9)
        assert first.status == "suspended"
        done = await budget.aresume(thread_id="b", saver=asaver)
        assert done.result == ["slow", "next"]

    aio(scenario())
    assert ran == {"slow": 1, "next": 1}
    assert [r["op"] for r in records(view, "b")].count("suspend") == 1


@workflow(name="sleepy_kid")
async def sleepy_kid(seconds: float) -> str:
    await sleep(seconds)
    return await note("kid woke")


@workflow(name="patient_parent")
async def patient_parent() -> str:
    return f"parent got {await sleepy_kid.start(3600)}"


def test_a_waiting_async_child_makes_its_parent_wait_and_resuming_the_parent_continues_it(
    apair: Pair, aio: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    asaver, view = apair
    clock = Shifted()
    monkeypatch.setattr(timers, "time", clock)

    async def scenario() -> None:
        first = await patient_parent.arun(thread_id="pp", saver=asaver)
        assert first.status == "waiting"
        child = view.latest("pp~child-0")
        assert child is not None and child.status == "waiting"
        assert first.wake_at is not None and abs(first.wake_at - (clock.time() + 3600)) < 60
        clock.offset += 3601
        done = await patient_parent.aresume(thread_id="pp", saver=asaver)
        assert done.result == "parent got kid woke"

    aio(scenario())
    assert ran == {"kid woke": 1}


@workflow(name="failing_kid")
async def failing_kid() -> int:
    raise KeyError("sku-1")


@workflow(name="careful_parent")
async def careful_parent() -> str:
    try:
        return str(await failing_kid.start())
    except KeyError as exc:
        return f"caught {exc.args[0]}"


def test_a_failed_async_child_fails_its_future_with_the_same_exception_once(apair: Pair, aio: Runner) -> None:
    asaver, view = apair
    assert aio(careful_parent.arun(thread_id="cp", saver=asaver)).result == "caught sku-1"
    done = [r for r in records(view, "cp") if r["op"] == "child_done"]
    assert len(done) == 1 and done[0]["error"]["type"] == "builtins.KeyError"
    child = view.latest("cp~child-0")
    assert child is not None and child.status == "failed"
