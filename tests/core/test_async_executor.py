"""``async def`` workflows and tasks: the asyncio executor keeps the sync executor's records and rules.

Each test runs on every backend of :data:`tests.core.asavers.ASYNC_BACKENDS` (the
``apair`` fixture); a sync saver on the same objects reads what was stored.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from cairnflow.core import (
    FlavourMismatchError,
    MisuseError,
    NondeterminismError,
    RetryPolicy,
    interrupt,
    now,
    random,
    task,
    uuid4,
    workflow,
)
from cairnflow.core.checkpoint import AsyncCheckpointSaver, CheckpointSaver
from cairnflow.core.errors import ConflictError, ResumeError
from tests.core.asavers import Runner, open_pair

calls: Counter[str] = Counter()


@pytest.fixture
def pair(apair: tuple[AsyncCheckpointSaver, CheckpointSaver]) -> tuple[AsyncCheckpointSaver, CheckpointSaver]:
    calls.clear()
    return apair


def ops(saver: CheckpointSaver, thread_id: str) -> list[tuple[Any, ...]]:
    head = saver.latest(thread_id)
    assert head is not None
    return [(r["op"], r.get("pos"), r.get("name"), r.get("value")) for r in head.records]


# ------------------------------------------------------------------ workflows under test


@task
async def double(x: int) -> int:
    calls[f"double:{x}"] += 1
    await asyncio.sleep(0)
    return x * 2


@task
def plain_add(x: int, y: int) -> int:
    calls[f"add:{x}"] += 1
    return x + y


@workflow(name="order")
async def order(n: int) -> dict[str, Any]:
    a = await double(n)
    b = await plain_add(a, 1)
    answer = interrupt({"approve": b})
    c = await double(b) if answer == "yes" else 0
    return {"a": a, "b": b, "c": c, "answer": answer}


@workflow(name="order")
def order_sync(n: int) -> dict[str, Any]:
    a = double(n).result()
    b = plain_add(a, 1).result()
    answer = interrupt({"approve": b})
    c = double(b).result() if answer == "yes" else 0
    return {"a": a, "b": b, "c": c, "answer": answer}


# ------------------------------------------------------------------ tests


def test_async_workflow_runs_interrupts_and_resumes_with_the_sync_records(
    pair: tuple[AsyncCheckpointSaver, CheckpointSaver],
    tmp_path: Path,
    aio: Runner,
) -> None:
    asaver, view = pair

    async def scenario() -> None:
        first = await order.arun(5, thread_id="t1", saver=asaver)
        assert (first.status, first.interrupt) == ("interrupted", {"approve": 11})
        done = await order.aresume("yes", thread_id="t1", saver=asaver, interrupt_id=first.interrupt_id)
        assert done.status == "completed"
        assert done.result == {"a": 10, "b": 11, "c": 22, "answer": "yes"}
        again = await order.aget_run(thread_id="t1", saver=asaver)
        assert again is not None and again.result == done.result

    aio(scenario())
    assert calls == {"double:5": 1, "add:10": 1, "double:11": 1}  # replay ran nothing twice
    # The same history as the sync executor writes for the sync twin of the body (one
    # difference: the async start record names its flavour).
    sync_saver = open_pair("memory", tmp_path)[1]
    first = order_sync.run(5, thread_id="t1", saver=sync_saver)
    order_sync.resume("yes", thread_id="t1", saver=sync_saver, interrupt_id=first.interrupt_id)
    assert ops(view, "t1") == ops(sync_saver, "t1")
    start = view.latest("t1").records[0]  # type: ignore[union-attr]
    assert start["flavour"] == "async"
    assert "flavour" not in sync_saver.latest("t1").records[0]  # type: ignore[union-attr]


def test_gather_numbers_calls_in_call_order_and_runs_them_concurrently(
    pair: tuple[AsyncCheckpointSaver, CheckpointSaver],
    aio: Runner,
) -> None:
    asaver, view = pair
    release = asyncio.Event()

    @task(name="waiter")
    async def waiter(i: int) -> int:
        await release.wait()  # only finishes if the releaser runs while it waits
        return i

    @task(name="releaser")
    async def releaser() -> str:
        release.set()
        return "released"

    @workflow(name="fan")
    async def fan(n: int) -> list[Any]:
        return list(await asyncio.gather(*[waiter(i) for i in range(n)], releaser()))

    async def scenario() -> Any:
        return await asyncio.wait_for(fan.arun(5, thread_id="f", saver=asaver), timeout=30)

    run = aio(scenario())
    assert run.result == [0, 1, 2, 3, 4, "released"]
    recorded = {pos: name for op, pos, name, _ in ops(view, "f") if op == "task"}
    assert recorded == {0: "waiter", 1: "waiter", 2: "waiter", 3: "waiter", 4: "waiter", 5: "releaser"}


def test_a_sync_task_runs_in_a_worker_thread_while_the_loop_goes_on(
    pair: tuple[AsyncCheckpointSaver, CheckpointSaver],
    aio: Runner,
) -> None:
    asaver, _ = pair
    unblock = threading.Event()
    threads: dict[str, int] = {}

    @task(name="blocking")
    def blocking() -> str:
        threads["task"] = threading.get_ident()
        assert unblock.wait(30), "the loop was blocked: the async task never ran"
        return "unblocked"

    @task(name="unblocker")
    async def unblocker() -> str:
        await asyncio.sleep(0.01)
        unblock.set()
        return "set"

    @workflow(name="mixed")
    async def mixed() -> list[str]:
        threads["body"] = threading.get_ident()
        return list(await asyncio.gather(blocking(), unblocker()))

    run = aio(mixed.arun(thread_id="m", saver=asaver))
    assert run.result == ["unblocked", "set"]
    assert threads["task"] != threads["body"]


def test_retries_back_off_with_asyncio_sleeps_and_are_recorded(
    pair: tuple[AsyncCheckpointSaver, CheckpointSaver],
    aio: Runner,
) -> None:
    asaver, view = pair
    attempts: list[int] = []

    @task(name="flaky", retry=RetryPolicy(max_attempts=3, initial_interval=0.01))
    async def flaky() -> str:
        attempts.append(1)
        if len(attempts) < 3:
            raise ConnectionError("try again")
        return "ok"

    ticks: list[int] = []

    @task(name="ticker")
    async def ticker() -> int:
        for _ in range(5):  # runs during the backoff: the loop is not blocked by it
            ticks.append(1)
            await asyncio.sleep(0.002)
        return len(ticks)

    @workflow(name="retrying")
    async def retrying() -> list[Any]:
        return list(await asyncio.gather(flaky(), ticker()))

    run = aio(retrying.arun(thread_id="r", saver=asaver))
    assert run.result == ["ok", 5]
    assert len(attempts) == 3
    head = view.latest("r")
    assert head is not None
    assert [r["attempt"] for r in head.records if r["op"] == "attempt"] == [1, 2]


@pytest.mark.parametrize("durability", ["sync", "async", "exit"])
def test_every_durability_mode_records_the_same_history(
    pair: tuple[AsyncCheckpointSaver, CheckpointSaver],
    durability: Any,
    aio: Runner,
) -> None:
    asaver, view = pair

    @workflow(name="modes")
    async def modes(n: int) -> int:
        total = 0
        for i in range(n):
            total += await double(i)
        parts = await asyncio.gather(*[double(10 + i) for i in range(3)])
        return total + sum(parts)

    run = aio(modes.arun(4, thread_id="d", saver=asaver, durability=durability))
    assert run.result == 2 * (0 + 1 + 2 + 3) + 2 * (10 + 11 + 12)
    recorded = [(op, pos, value) for op, pos, _, value in ops(view, "d")]
    assert recorded[0][0] == "start" and recorded[-1] == ("end", None, run.result)
    assert sorted((pos, value) for op, pos, value in recorded if op == "task") == [
        (i, 2 * v) for i, v in enumerate([0, 1, 2, 3, 10, 11, 12])
    ]


def test_replay_safe_helpers_return_the_recorded_values(
    pair: tuple[AsyncCheckpointSaver, CheckpointSaver],
    aio: Runner,
) -> None:
    asaver, _ = pair
    seen: list[tuple[Any, ...]] = []

    @workflow(name="helpers")
    async def helpers() -> str:
        values = (now(), random(), uuid4())
        seen.append(values)
        interrupt("next")
        seen.append((now(), random(), uuid4()))
        return "done"

    async def scenario() -> None:
        await helpers.arun(thread_id="h", saver=asaver)
        await helpers.aresume("go", thread_id="h", saver=asaver)

    aio(scenario())
    assert seen[0] == seen[1]


def test_a_thread_of_the_other_flavour_is_refused_with_what_to_do(
    pair: tuple[AsyncCheckpointSaver, CheckpointSaver],
    aio: Runner,
) -> None:
    asaver, view = pair
    first = order_sync.run(1, thread_id="s", saver=view)  # started by the plain `def` twin
    assert first.status == "interrupted"
    with pytest.raises(FlavourMismatchError, match=r"plain `def` workflow.*start a new thread id") as caught:
        aio(order.aresume("yes", thread_id="s", saver=asaver))
    assert isinstance(caught.value, NondeterminismError)
    aio(order.arun(1, thread_id="a", saver=asaver))
    before = view.latest("a")
    with pytest.raises(FlavourMismatchError, match="`async def`"):
        order_sync.resume("yes", thread_id="a", saver=view)
    assert view.latest("a") == before  # refused before anything was written


def test_misuse_across_flavours_is_refused_with_what_to_do(
    pair: tuple[AsyncCheckpointSaver, CheckpointSaver],
    aio: Runner,
) -> None:
    asaver, view = pair
    with pytest.raises(MisuseError, match=r"await order\.arun"):
        order.run(1, thread_id="x", saver=view)
    with pytest.raises(MisuseError, match="open_async_saver"):
        aio(order.arun(1, thread_id="x", saver=view))
    with pytest.raises(MisuseError, match=r"order\.run\(\.\.\.\)"):
        aio(order_sync.arun(1, thread_id="x", saver=asaver))
    with pytest.raises(MisuseError, match="open_saver"):
        order_sync.run(1, thread_id="x", saver=asaver)  # type: ignore[arg-type]
    with pytest.raises(MisuseError, match=r"await order\.arun"):
        order(1)
    assert view.latest("x") is None


def test_an_async_task_called_from_a_sync_workflow_runs_on_its_own_loop(
    pair: tuple[AsyncCheckpointSaver, CheckpointSaver],
) -> None:
    _, view = pair

    @workflow(name="sync_calls_async")
    def sync_calls_async() -> int:
        return double(21).result()

    assert sync_calls_async.run(thread_id="sa", saver=view).result == 42


@pytest.mark.parametrize("durability", ["sync", "async", "exit"])
def test_divergence_is_detected_before_anything_is_written(
    pair: tuple[AsyncCheckpointSaver, CheckpointSaver],
    aio: Runner,
    durability: Any,
) -> None:
    asaver, view = pair

    @workflow(name="diverges")
    async def before_change() -> int:
        await double(1)
        return int(interrupt("q"))

    @workflow(name="diverges")
    async def after_change() -> int:
        await plain_add(1, 1)  # another task at position 0
        return int(interrupt("q"))

    aio(before_change.arun(thread_id="v", saver=asaver, durability=durability))
    head = view.latest("v")
    with pytest.raises(NondeterminismError, match="position 0"):
        aio(after_change.aresume(3, thread_id="v", saver=asaver, durability=durability))
    assert view.latest("v") == head
    done = aio(before_change.aresume(3, thread_id="v", saver=asaver, durability=durability))
    assert done.result == 3


def test_two_concurrent_resumes_one_conflict_nothing_recorded_twice(
    pair: tuple[AsyncCheckpointSaver, CheckpointSaver],
    aio: Runner,
) -> None:
    asaver, view = pair
    aio(order.arun(2, thread_id="race", saver=asaver))

    async def race() -> list[Any]:
        return list(
            await asyncio.gather(
                order.aresume("yes", thread_id="race", saver=asaver),
                order.aresume("yes", thread_id="race", saver=asaver),
                return_exceptions=True,
            )
        )

    outcomes = aio(race())
    losers = [o for o in outcomes if isinstance(o, BaseException)]
    winners = [o for o in outcomes if not isinstance(o, BaseException)]
    assert len(winners) == 1 and winners[0].status == "completed"
    assert len(losers) == 1 and isinstance(losers[0], (ConflictError, ResumeError)), losers
    head = view.latest("race")
    assert head is not None
    positions = [r["pos"] for r in head.records if r["op"] in ("task", "resume")]
    assert len(positions) == len(set(positions))
    assert [h.seq for h in view.history("race")] == list(range(head.seq, -1, -1))


def test_a_cancelled_run_cancels_its_tasks_writes_nothing_more_and_can_be_resumed(
    pair: tuple[AsyncCheckpointSaver, CheckpointSaver],
    aio: Runner,
) -> None:
    asaver, view = pair
    state: dict[str, Any] = {"block": True, "cancelled": 0}
    started = asyncio.Event()

    @task(name="stuck")
    async def stuck() -> str:
        if state["block"]:
            started.set()
            try:
                await asyncio.Event().wait()  # never set: only the cancellation ends it
            except asyncio.CancelledError:
                state["cancelled"] += 1
                raise
        return "free"

    @workflow(name="cancellable")
    async def cancellable() -> str:
        first = await double(4)
        return f"{first}:{await stuck()}"

    async def scenario() -> None:
        running = asyncio.ensure_future(cancellable.arun(thread_id="c", saver=asaver))
        await asyncio.wait_for(started.wait(), timeout=30)
        head = view.latest("c")
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running
        assert view.latest("c") == head  # nothing written after the cancellation
        assert state["cancelled"] == 1
        state["block"] = False
        done = await cancellable.aresume(thread_id="c", saver=asaver)
        assert done.result == "8:free"

    aio(scenario())
    assert calls["double:4"] == 1


def test_a_task_is_not_the_body_even_though_it_runs_in_the_bodys_context_copy(
    pair: tuple[AsyncCheckpointSaver, CheckpointSaver],
    aio: Runner,
) -> None:
    asaver, _ = pair

    @task(name="sneaky")
    async def sneaky() -> Any:
        return interrupt("from a task")

    @task(name="sneaky_thread")
    def sneaky_thread() -> Any:
        return double(1)  # a task calling a task, from the worker thread

    @workflow(name="misuses")
    async def misuses(which: str) -> Any:
        return await (sneaky() if which == "async" else sneaky_thread())

    for which in ("async", "thread"):
        with pytest.raises(MisuseError, match="outside a workflow body"):
            aio(misuses.arun(which, thread_id=f"mis-{which}", saver=asaver))
