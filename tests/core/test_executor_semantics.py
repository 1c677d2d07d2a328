"""Issue 16: the first run and every replay see exactly the same thing.

One test (or a few) per finding of the issue, each on the local store and on S3
(moto); each fails on the executor before the change. Misuse errors at the end.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import importlib
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from cairnflow.core import (
    CheckpointLog,
    NondeterminismError,
    ResumeError,
    RetryPolicy,
    SerializationError,
    TaskFailedError,
    interrupt,
    register_type,
    task,
    workflow,
)
from cairnflow.core.errors import InvalidArgumentError, MisuseError
from cairnflow.core.serde import JsonSerializer
from cairnflow.savers import open_saver, open_store
from tests.emulators import StoreLocation

BACKENDS = ["local", "s3"]


@pytest.fixture(params=BACKENDS)
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


class SimulatedKill(BaseException):
    """Stands for the process dying: not an Exception, so nothing records a failure."""


class FakeClock:
    """``time.time`` under the test's control (``advance`` moves it)."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(time, "time", fake)
    return fake


# --------------------------------------------------------------------------- 1 exceptions


class PaymentDeclined(Exception):
    """A user exception registered with register_type: replayed as itself."""


class OutOfStock(ValueError):
    """A user exception that is not registered: surfaces as TaskFailedError, both times."""


@pytest.mark.parametrize("durability", ["sync", "async", "exit"])
def test_1_registered_exception_replays_as_itself(saver: CheckpointLog, durability: Any) -> None:
    register_type(PaymentDeclined, name="tests.PaymentDeclined")  # exception classes need no encode/decode

    def build() -> Any:
        @task(name="charge")
        def charge(amount: int) -> str:
            raise PaymentDeclined("card declined", amount)

        @workflow(name="pay")
        def pay() -> Any:
            try:
                charge(42).result()
            except PaymentDeclined as exc:
                seen = list(exc.args)
            return {"seen": seen, "answer": interrupt(seen)}

        return pay

    first = build().run(thread_id="pay-1", saver=saver, durability=durability)
    assert (first.status, first.interrupt) == ("interrupted", ["card declined", 42])
    done = build().resume("no", thread_id="pay-1", saver=saver, durability=durability)  # fresh objects
    assert done.result == {"seen": ["card declined", 42], "answer": "no"}


def test_1_builtin_exception_keeps_its_args(saver: CheckpointLog) -> None:
    @task
    def reserve(sku: str) -> int:
        raise KeyError(sku)

    @workflow(name="stock")
    def stock() -> Any:
        try:
            reserve("sku-1").result()
        except KeyError as exc:
            missing = exc.args[0]
        return {"missing": missing, "answer": interrupt(missing)}

    assert stock.run(thread_id="k", saver=saver).interrupt == "sku-1"
    assert stock.resume("ok", thread_id="k", saver=saver).result == {"missing": "sku-1", "answer": "ok"}


def test_1_unregistered_exception_is_task_failed_error_both_times(saver: CheckpointLog) -> None:
    causes: list[BaseException | None] = []

    @task(name="pick")
    def pick() -> None:
        raise OutOfStock("none left")

    @workflow(name="picker")
    def picker() -> Any:
        try:
            pick().result()
        except TaskFailedError as exc:
            causes.append(exc.__cause__)
            caught = [exc.error_type, str(exc)]
        return {"caught": caught, "answer": interrupt(caught)}

    first = picker.run(thread_id="p", saver=saver)
    error_type = f"{OutOfStock.__module__}.OutOfStock"
    assert first.interrupt == [error_type, f"task 'pick' failed: {error_type}: none left"]
    assert isinstance(causes[0], OutOfStock)  # the original, on the first run
    done = picker.resume("fine", thread_id="p", saver=saver)
    assert done.result == {"caught": first.interrupt, "answer": "fine"}
    head = saver.latest("p")
    assert head is not None
    (failure,) = [r for r in head.records if r.get("op") == "task_error"]
    assert set(failure["error"]) == {"type", "message"}  # the unregistered class itself is not stored


# --------------------------------------------------------------------------- 2 deadline at start


def test_2_deadline_is_checked_when_a_pool_task_starts(saver: CheckpointLog, clock: FakeClock) -> None:
    ran: list[int] = []
    submitted = threading.Event()

    @task
    def work(i: int) -> int:
        ran.append(i)
        if i == 0 and not submitted.is_set():
            assert submitted.wait(30)  # every task is submitted (with time to spare) before this ends
            clock.advance(99.5)  # the first task ran long: 0.5 s left, less than the reserve
        return i

    @workflow(name="batch")
    def batch() -> int:
        futures = [work(i) for i in range(6)]  # all submitted at once, one worker
        submitted.set()
        return sum(f.result() for f in futures)

    run = batch.run(thread_id="b", saver=saver, deadline=clock.now + 100, reserve=1.0, max_workers=1)
    assert run.status == "suspended"
    assert ran == [0]  # waiting pool tasks were not started
    head = saver.latest("b")
    assert head is not None and head.status == "suspended"
    assert [r["pos"] for r in head.records if r.get("op") == "task"] == [0]  # the one in flight, recorded
    assert batch.resume(thread_id="b", saver=saver).result == sum(range(6))
    assert sorted(ran) == list(range(6))  # each ran exactly once


# --------------------------------------------------------------------------- 3 retries and deadline


def test_3_backoff_past_the_deadline_suspends(saver: CheckpointLog, monkeypatch: pytest.MonkeyPatch) -> None:
    attempts: list[float] = []
    slept: list[float] = []

    @task(retry=RetryPolicy(max_attempts=2, initial_interval=3.0, jitter=False))
    def flaky() -> str:
        attempts.append(time.time())
        if len(attempts) == 1:
            raise ConnectionError("try later")
        return "ok"

    @workflow(name="flaky")
    def flow() -> str:
        return flaky().result()

    monkeypatch.setattr(time, "sleep", slept.append)  # counted, not really slept
    run = flow.run(thread_id="f", saver=saver, deadline=time.time() + 2.0, reserve=0.5)
    assert run.status == "suspended"
    assert slept == []  # it did not sleep towards a retry that would start past the deadline
    head = saver.latest("f")
    assert head is not None
    (attempt,) = [r for r in head.records if r.get("op") == "attempt"]
    assert attempt["attempt"] == 1 and attempt["error"]["type"] == "builtins.ConnectionError"
    assert flow.resume(thread_id="f", saver=saver).result == "ok"
    assert len(attempts) == 2 and len(slept) == 1 and 0 < slept[0] <= 3.0


def test_3_max_attempts_holds_across_a_kill_during_backoff(
    saver: CheckpointLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []

    @task(retry=RetryPolicy(max_attempts=3, initial_interval=5.0, jitter=False))  # time.sleep is patched
    def always_down() -> None:
        calls.append(1)
        raise ConnectionError("down")

    @workflow(name="down")
    def flow() -> None:
        always_down().result()

    def killed(seconds: float) -> None:
        raise SimulatedKill()

    monkeypatch.setattr(time, "sleep", killed)
    with pytest.raises(SimulatedKill):
        flow.run(thread_id="d", saver=saver)
    assert len(calls) == 1
    monkeypatch.setattr(time, "sleep", lambda seconds: None)
    with pytest.raises(ConnectionError, match="down"):
        flow.resume(thread_id="d", saver=saver)  # a new process picks the thread up
    assert len(calls) == 3  # not 1 + 3


# --------------------------------------------------------------------------- 4 nondeterminism


def _ordered(order: list[str]) -> Any:
    @task(name="visit")
    def visit(item: str) -> str:
        return item.upper()

    @workflow(name="tour")
    def tour() -> Any:
        seen = [visit(item).result() for item in order]
        return {"seen": seen, "answer": interrupt("go on?")}

    return tour


@pytest.mark.parametrize("durability", ["sync", "async", "exit"])
def test_4_divergence_is_detected_before_anything_is_written(saver: CheckpointLog, durability: Any) -> None:
    first = _ordered(["a", "b"]).run(thread_id="t", saver=saver, durability=durability)
    assert first.status == "interrupted"
    head = saver.latest("t")
    with pytest.raises(NondeterminismError) as caught:
        _ordered(["b", "a"]).resume("yes", thread_id="t", saver=saver, durability=durability)  # a set, anew
    message = str(caught.value)
    assert "position 0" in message and "task 'visit'" in message and "arguments" in message
    assert saver.latest("t") == head  # nothing written: the answer was not used up
    standing = _ordered(["a", "b"]).get_run(thread_id="t", saver=saver)
    assert standing is not None and (standing.status, standing.interrupt_id) == ("interrupted", "2")
    # The code that started the thread still resumes it, with the same answer.
    done = _ordered(["a", "b"]).resume("yes", thread_id="t", saver=saver, durability=durability)
    assert done.result == {"seen": ["A", "B"], "answer": "yes"}


def test_4_replay_safe_helpers_return_the_recorded_values(saver: CheckpointLog) -> None:
    core = importlib.import_module("cairnflow.core")

    @workflow(name="helpers")
    def helpers() -> Any:
        values = [core.now(), core.random(), core.uuid4()]
        return {"values": values, "answer": interrupt(values)}

    first = helpers.run(thread_id="h", saver=saver)
    stamp, number, ident = first.interrupt
    assert isinstance(stamp, dt.datetime) and stamp.tzinfo is not None
    assert 0 <= number < 1 and ident.version == 4
    done = helpers.resume("ok", thread_id="h", saver=saver)
    assert done.result == {"values": [stamp, number, ident], "answer": "ok"}


# --------------------------------------------------------------------------- 5 answers


def test_5_a_different_answer_to_a_completed_thread_is_refused(saver: CheckpointLog) -> None:
    @workflow(name="ask")
    def ask() -> str:
        return f"hello {interrupt('name?')}"

    ask.run(thread_id="a", saver=saver)
    assert ask.resume("alice", thread_id="a", saver=saver).result == "hello alice"
    head = saver.latest("a")
    with pytest.raises(ResumeError, match="different answer"):
        ask.resume("bob", thread_id="a", saver=saver)
    with pytest.raises(ResumeError, match="different answer"):
        ask.resume("bob", thread_id="a", saver=saver, interrupt_id="0")
    assert ask.resume("alice", thread_id="a", saver=saver).result == "hello alice"  # a retried request
    assert saver.latest("a") == head


# --------------------------------------------------------------------------- 6 arguments


@pytest.mark.parametrize(
    ("deadline", "match"),
    [
        (dt.datetime.now(), "deadline.timestamp"),
        ("soon", "seconds since the epoch"),
        (time.time() * 1000, "milliseconds"),
        (time.time() - 3 * 365 * 86400, "in the past"),
        (float("nan"), "deadline"),
    ],
    ids=["datetime", "string", "milliseconds", "past", "nan"],  # stable ids: values hold the time
)
def test_6_a_deadline_that_is_not_epoch_seconds_is_refused_before_any_write(
    saver: CheckpointLog, deadline: Any, match: str
) -> None:
    @task
    def step() -> int:
        return 1

    @workflow(name="w6")
    def flow() -> int:
        return step().result()

    with pytest.raises(InvalidArgumentError, match=match):
        flow.run(thread_id="d6", saver=saver, deadline=deadline)
    assert saver.latest("d6") is None  # nothing written, not even a failed thread


@pytest.mark.parametrize(
    "bad",
    [{"max_workers": 0}, {"max_workers": "4"}, {"durability": "fast"}, {"reserve": -1.0}, {"reserve": "1"}],
)
def test_6_bad_run_and_resume_arguments_are_refused(saver: CheckpointLog, bad: dict[str, Any]) -> None:
    @workflow(name="w6b")
    def flow() -> Any:
        return interrupt("?")

    with pytest.raises(InvalidArgumentError):
        flow.run(thread_id="b6", saver=saver, **bad)
    assert saver.latest("b6") is None
    flow.run(thread_id="b6", saver=saver)
    head = saver.latest("b6")
    with pytest.raises(InvalidArgumentError):
        flow.resume("x", thread_id="b6", saver=saver, **bad)
    with pytest.raises(InvalidArgumentError, match="interrupt_id"):
        flow.resume("x", thread_id="b6", saver=saver, interrupt_id=0)  # type: ignore[arg-type]
    assert saver.latest("b6") == head


def test_6_reserve_has_a_default_when_a_deadline_is_given(saver: CheckpointLog, clock: FakeClock) -> None:
    ran: list[int] = []

    @task
    def work(i: int) -> int:
        ran.append(i)
        clock.advance(19.5)  # 0.5 s left after the first task: less than the default reserve
        return i

    @workflow(name="w6r")
    def flow() -> int:
        return work(0).result() + work(1).result()

    run = flow.run(thread_id="r6", saver=saver, deadline=clock.now + 20)
    assert run.status == "suspended" and ran == [0]


# --------------------------------------------------------------------------- 7 register_type


def test_7_register_type_refuses_main_classes_without_a_name() -> None:
    point = dataclasses.make_dataclass("Point", [("x", int)])
    point.__module__ = "__main__"
    serializer = JsonSerializer()
    with pytest.raises(InvalidArgumentError, match="name="):
        serializer.register(point)
    serializer.register(point, name="geometry.Point")
    assert serializer.loads(serializer.dumps(point(3))) == point(3)


# --------------------------------------------------------------------------- 8 undecodable values


class _NotJson(JsonSerializer):
    def dumps(self, value: Any) -> bytes:
        return b"\xff not json"


@dataclasses.dataclass
class Widget:
    size: int


@pytest.mark.parametrize("writer", ["unregistered type", "not json"])
def test_8_an_undecodable_stored_value_names_its_key(location: StoreLocation, writer: str) -> None:
    store, prefix = open_store(location.url)
    if writer == "not json":
        written = CheckpointLog(store, prefix=prefix, serializer=_NotJson())
        records: list[Any] = [{"op": "start", "workflow": "w", "input": None}]
    else:
        serializer = JsonSerializer()
        serializer.register(Widget, name="tests.Widget")
        written = CheckpointLog(store, prefix=prefix, serializer=serializer)
        records = [{"op": "start", "workflow": "w", "input": Widget(2)}]
    written.append("u8", None, records, status="running", workflow="w")
    reader = CheckpointLog(store, prefix=prefix, serializer=JsonSerializer())
    with pytest.raises(SerializationError, match=r"key='[^']*u8[^']*'"):
        reader.latest("u8")


# --------------------------------------------------------------------------- 9 failed runs, start


def test_9_get_run_exposes_a_failed_run(saver: CheckpointLog) -> None:
    @task
    def broken() -> None:
        raise ValueError("boom")

    @workflow(name="w9")
    def flow() -> None:
        broken().result()

    with pytest.raises(ValueError, match="boom"):
        flow.run(thread_id="f9", saver=saver)
    standing = flow.get_run(thread_id="f9", saver=saver)
    assert standing is not None
    assert (standing.status, standing.error_type, standing.error) == ("failed", "builtins.ValueError", "boom")


def test_9_a_run_killed_in_its_first_task_can_be_resumed(saver: CheckpointLog) -> None:
    alive = {"ok": False}

    @task
    def first() -> str:
        if not alive["ok"]:
            raise SimulatedKill()
        return "done"

    @workflow(name="w9k")
    def flow(inp: str) -> str:
        return f"{inp}:{first().result()}"

    with pytest.raises(SimulatedKill):
        flow.run("in", thread_id="k9", saver=saver)
    head = saver.latest("k9")
    assert head is not None and head.status == "running"
    assert [r["op"] for r in head.records] == ["start"]
    alive["ok"] = True
    assert flow.resume(thread_id="k9", saver=saver).result == "in:done"


# --------------------------------------------------------------------------- misuse


def test_misuse_raises_typed_errors_that_say_what_to_do(saver: CheckpointLog) -> None:
    @task
    def asks() -> Any:
        return interrupt("from a task?")

    @workflow(name="mis")
    def flow() -> Any:
        return asks().result()

    with pytest.raises(MisuseError, match="inside a task") as caught:
        flow.run(thread_id="m", saver=saver)
    assert isinstance(caught.value, TypeError)
    with pytest.raises(MisuseError, match="open_saver") as bad_saver:
        flow.run(thread_id="m2", saver="file://./x")  # type: ignore[arg-type]
    assert isinstance(bad_saver.value, TypeError)
    with pytest.raises(MisuseError, match=r"\.run\("):
        flow()
    with pytest.raises(MisuseError, match="async generator"):

        @task
        async def items() -> AsyncIterator[int]:  # a task returns one value, not a stream
            yield 1

    with pytest.raises(MisuseError, match="outside a workflow"):
        interrupt("loose")
