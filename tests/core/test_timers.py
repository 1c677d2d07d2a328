"""Durable timers: sleep() and sleep_until() inside a workflow body (issue 17).

Time is under the test's control (``time.time`` and ``time.sleep`` patched), on
the local store and on S3 (moto).
"""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from cairnflow.core import (
    CheckpointLog,
    NondeterminismError,
    sleep,
    sleep_until,
    task,
    workflow,
)
from cairnflow.core.errors import InvalidArgumentError, MisuseError
from cairnflow.savers import open_saver
from tests.emulators import StoreLocation


@pytest.fixture(params=["local", "s3"])
def location(
    request: pytest.FixtureRequest, use_env: Callable[[StoreLocation], StoreLocation]
) -> StoreLocation:
    found: StoreLocation = request.getfixturevalue(f"{request.param}_location")
    return use_env(found)


@pytest.fixture
def saver(location: StoreLocation) -> CheckpointLog:
    opened = open_saver(location.url)
    assert isinstance(opened, CheckpointLog)
    return opened


class Clock:
    """``time.time`` under the test's control; ``time.sleep`` advances it (and is counted)."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0
        self.slept: list[float] = []

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    RAN.clear()
    monkeypatch.setattr(time, "time", fake.time)
    monkeypatch.setattr(time, "sleep", fake.sleep)
    return fake


RAN: Counter[str] = Counter()


@task
def note(label: str) -> str:
    RAN[label] += 1
    return label


def records(saver: CheckpointLog, thread_id: str, op: str) -> list[dict[str, Any]]:
    head = saver.latest(thread_id)
    assert head is not None
    return [r for r in head.records if isinstance(r, dict) and r.get("op") == op]


@workflow
def remind(thread: str) -> list[str]:
    first = note(f"{thread}:before").result()
    sleep(dt.timedelta(hours=1))
    return [first, note(f"{thread}:after").result()]


def test_a_sleep_without_deadline_stops_waiting_and_every_replay_sees_the_same_wake_time(
    saver: CheckpointLog, clock: Clock
) -> None:
    started = clock.now
    run = remind.run("t1", thread_id="t1", saver=saver)
    assert (run.status, run.wake_at) == ("waiting", started + 3600)
    assert clock.slept == []  # a run without a deadline never idles in process
    assert [r["wake_at"] for r in records(saver, "t1", "timer")] == [started + 3600]
    standing = remind.get_run(thread_id="t1", saver=saver)
    assert standing is not None and (standing.status, standing.wake_at) == ("waiting", started + 3600)

    clock.now += 1800  # resumed early: waiting again, for the same moment, nothing written
    head = saver.latest("t1")
    early = remind.resume(thread_id="t1", saver=saver)
    assert (early.status, early.wake_at) == ("waiting", started + 3600)
    assert saver.latest("t1") == head

    clock.now += 1801
    done = remind.resume(thread_id="t1", saver=saver)
    assert (done.status, done.result) == ("completed", ["t1:before", "t1:after"])
    assert (RAN["t1:before"], RAN["t1:after"]) == (1, 1)
    assert [r["wake_at"] for r in records(saver, "t1", "timer")] == [started + 3600]


def test_a_sleep_that_ends_before_the_deadline_waits_in_process(saver: CheckpointLog, clock: Clock) -> None:
    @workflow(name="short_nap")
    def short_nap() -> float:
        sleep(10)
        return time.time()

    started = clock.now
    run = short_nap.run(thread_id="n1", saver=saver, deadline=started + 100, reserve=5)
    assert (run.status, run.result) == ("completed", started + 10)
    assert clock.slept == [10]
    assert [r["wake_at"] for r in records(saver, "n1", "timer")] == [started + 10]


def test_a_sleep_past_the_deadline_less_the_reserve_stops_waiting(saver: CheckpointLog, clock: Clock) -> None:
    @workflow(name="long_nap")
    def long_nap() -> str:
        sleep(96)
        return "awake"

    started = clock.now
    run = long_nap.run(thread_id="n2", saver=saver, deadline=started + 100, reserve=5)
    assert (run.status, run.wake_at, clock.slept) == ("waiting", started + 96, [])
    clock.now += 96
    assert long_nap.resume(thread_id="n2", saver=saver).result == "awake"


def test_sleep_until_takes_an_aware_datetime_or_epoch_seconds(saver: CheckpointLog, clock: Clock) -> None:
    target = clock.now + 500

    @workflow(name="until")
    def until(kind: str) -> str:
        sleep_until(dt.datetime.fromtimestamp(target, dt.timezone.utc) if kind == "dt" else target)
        return kind

    for kind in ("dt", "epoch"):
        run = until.run(kind, thread_id=f"u-{kind}", saver=saver)
        assert (run.status, run.wake_at) == ("waiting", target)
    clock.now = target
    assert until.resume(thread_id="u-dt", saver=saver).result == "dt"


def test_a_process_killed_during_an_in_process_wait_resumes_towards_the_same_moment(
    saver: CheckpointLog, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Killed(BaseException):
        pass

    def killed(seconds: float) -> None:
        raise Killed()

    monkeypatch.setattr(time, "sleep", killed)
    started = clock.now
    with pytest.raises(Killed):
        remind.run("k1", thread_id="k1", saver=saver, deadline=started + 7200)
    assert [r["wake_at"] for r in records(saver, "k1", "timer")] == [started + 3600]

    monkeypatch.setattr(time, "sleep", clock.sleep)
    clock.now += 600  # a new process, later: it waits only for the rest
    run = remind.resume(thread_id="k1", saver=saver, deadline=clock.now + 7200)
    assert (run.status, run.result, clock.slept) == ("completed", ["k1:before", "k1:after"], [3000])
    assert (RAN["k1:before"], RAN["k1:after"]) == (1, 1)
    assert len(records(saver, "k1", "timer")) == 1


def test_a_body_that_no_longer_sleeps_where_the_history_does_is_refused(
    saver: CheckpointLog, clock: Clock
) -> None:
    assert remind.run("d1", thread_id="d1", saver=saver).status == "waiting"

    @workflow(name="remind")
    def changed(thread: str) -> str:
        note(f"{thread}:before").result()
        return note(f"{thread}:instead").result()

    head = saver.latest("d1")
    clock.now += 7200
    with pytest.raises(NondeterminismError, match="sleep"):
        changed.resume(thread_id="d1", saver=saver)
    assert saver.latest("d1") == head


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda: sleep(-1), "non-negative"),
        (lambda: sleep("5"), "timedelta"),  # type: ignore[arg-type]
        (lambda: sleep_until(dt.datetime(2030, 1, 1)), "timezone-aware"),
        (lambda: sleep_until("tomorrow"), "epoch seconds"),  # type: ignore[arg-type]
    ],
)
def test_bad_durations_are_refused_by_name(call: Callable[[], None], error: str) -> None:
    with pytest.raises(InvalidArgumentError, match=error):
        call()


def test_sleep_outside_a_workflow_body_is_a_misuse() -> None:
    with pytest.raises(MisuseError, match="sleep"):
        sleep(1)


def test_a_sleep_costs_one_write_to_stop_and_an_early_resume_only_reads(clock: Clock) -> None:
    from cairnflow.core.counting import CountingStore
    from cairnflow.savers.memory import MemoryStore

    counting = CountingStore(MemoryStore())
    saver = CheckpointLog(counting)
    assert remind.run("c1", thread_id="c1", saver=saver).status == "waiting"
    # The start (before the first task), the task's result, and the stop (timer + wait).
    assert [info.seq for info in saver.history("c1")] == [2, 1, 0]
    counting.reset()
    assert remind.resume(thread_id="c1", saver=saver).status == "waiting"
    assert counting.counts["PUT"] == 0 and counting.counts["DELETE"] == 0
    assert counting.counts["GET"] + counting.counts["LIST"] <= 3
