"""The executor's contract: replay, interrupts, retries, failures, durability, deadlines."""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import threading
import time
import uuid
from typing import Any

import pytest

from cairnflow.core import (
    CheckpointLog,
    ConflictError,
    NondeterminismError,
    ResumeError,
    RetryPolicy,
    SerializationError,
    ThreadNotFoundError,
    interrupt,
    task,
    workflow,
)
from cairnflow.core.counting import CountingStore
from cairnflow.core.errors import MisuseError
from cairnflow.core.serde import JsonSerializer
from cairnflow.savers.memory import MemoryStore

FAST = RetryPolicy(max_attempts=3, initial_interval=0.001, max_interval=0.002)


@pytest.fixture
def saver() -> CheckpointLog:
    return CheckpointLog(MemoryStore())


class Ledger:
    """Counts executions per task name (thread-safe)."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self._lock = threading.Lock()

    def add(self, name: str) -> None:
        with self._lock:
            self.calls.append(name)

    def count(self, name: str) -> int:
        return self.calls.count(name)


def make_checkout(ledger: Ledger) -> Any:
    @task(retry=FAST)
    def charge(order_id: str, amount: int) -> str:
        ledger.add("charge")
        return f"rcpt-{order_id}-{amount}"

    @task
    def ship(order_id: str) -> str:
        ledger.add("ship")
        return f"track-{order_id}"

    @workflow(name="checkout")
    def checkout(order: dict[str, Any]) -> dict[str, Any]:
        receipt = charge(order["id"], order["amount"]).result()
        answer = interrupt({"question": "ship it?", "receipt": receipt})
        tracking = ship(order["id"]).result() if answer == "yes" else None
        return {"receipt": receipt, "shipped": answer == "yes", "tracking": tracking}

    return checkout


def test_run_interrupt_resume_complete(saver: CheckpointLog) -> None:
    ledger = Ledger()
    checkout = make_checkout(ledger)
    run = checkout.run({"id": "o-1", "amount": 5}, thread_id="order-1", saver=saver)
    assert run.status == "interrupted"
    assert run.interrupt == {"question": "ship it?", "receipt": "rcpt-o-1-5"}
    assert ledger.calls == ["charge"]

    run = checkout.resume("yes", thread_id="order-1", saver=saver)
    assert run.status == "completed"
    assert run.result == {"receipt": "rcpt-o-1-5", "shipped": True, "tracking": "track-o-1"}
    assert ledger.calls == ["charge", "ship"]  # charge was replayed, not re-run


def test_run_on_completed_thread_returns_stored_result_without_running(saver: CheckpointLog) -> None:
    ledger = Ledger()
    checkout = make_checkout(ledger)
    checkout.run({"id": "o", "amount": 1}, thread_id="t", saver=saver)
    first = checkout.resume("no", thread_id="t", saver=saver)
    counting = CountingStore(saver.store)
    again = make_checkout(ledger).run({"id": "o", "amount": 1}, thread_id="t", saver=CheckpointLog(counting))
    assert again.status == "completed"
    assert again.result == first.result
    assert ledger.calls == ["charge"]
    assert counting.counts["PUT"] == 0


def test_run_on_interrupted_thread_returns_the_pending_question(saver: CheckpointLog) -> None:
    ledger = Ledger()
    checkout = make_checkout(ledger)
    first = checkout.run({"id": "o", "amount": 1}, thread_id="t", saver=saver)
    second = checkout.run({"id": "o", "amount": 1}, thread_id="t", saver=saver)
    assert (second.status, second.interrupt, second.interrupt_id) == (
        "interrupted",
        first.interrupt,
        first.interrupt_id,
    )
    assert ledger.calls == ["charge"]


def test_run_with_different_input_on_existing_thread_is_refused(saver: CheckpointLog) -> None:
    checkout = make_checkout(Ledger())
    checkout.run({"id": "o", "amount": 1}, thread_id="t", saver=saver)
    with pytest.raises(NondeterminismError, match="different input"):
        checkout.run({"id": "o", "amount": 2}, thread_id="t", saver=saver)


def test_several_interrupts_resume_in_order(saver: CheckpointLog) -> None:
    @workflow
    def survey() -> list[Any]:
        a = interrupt("q1")
        b = interrupt("q2")
        c = interrupt("q3")
        return [a, b, c]

    run = survey.run(thread_id="s", saver=saver)
    assert (run.status, run.interrupt) == ("interrupted", "q1")
    run = survey.resume(1, thread_id="s", saver=saver)
    assert run.interrupt == "q2"
    run = survey.resume({"x": 2}, thread_id="s", saver=saver)
    assert run.interrupt == "q3"
    run = survey.resume([3], thread_id="s", saver=saver)
    assert (run.status, run.result) == ("completed", [1, {"x": 2}, [3]])


def test_duplicate_answer_with_interrupt_id_is_refused(saver: CheckpointLog) -> None:
    @workflow
    def two() -> tuple[Any, Any]:
        return interrupt("a"), interrupt("b")

    first = two.run(thread_id="d", saver=saver)
    two.resume("yes", thread_id="d", saver=saver, interrupt_id=first.interrupt_id)
    # The same answer delivered again (a retried event) must not answer question "b".
    with pytest.raises(ResumeError, match="waiting on interrupt"):
        two.resume("yes", thread_id="d", saver=saver, interrupt_id=first.interrupt_id)


def test_resume_errors(saver: CheckpointLog) -> None:
    checkout = make_checkout(Ledger())
    with pytest.raises(ThreadNotFoundError):
        checkout.resume("yes", thread_id="nope", saver=saver)
    checkout.run({"id": "o", "amount": 1}, thread_id="t", saver=saver)
    with pytest.raises(ResumeError, match="waiting for an answer"):
        checkout.resume(thread_id="t", saver=saver)


def test_replay_detects_changed_task_name_and_arguments(saver: CheckpointLog) -> None:
    @task
    def step(x: int) -> int:
        return x

    @workflow(name="wf")
    def original() -> Any:
        step(1).result()
        return interrupt("pause")

    original.run(thread_id="n", saver=saver)

    @task(name="other")
    def renamed(x: int) -> int:
        return x

    @workflow(name="wf")
    def changed_name() -> Any:
        renamed(1).result()
        return interrupt("pause")

    with pytest.raises(NondeterminismError, match="history records task"):
        changed_name.resume("go", thread_id="n", saver=saver)

    @workflow(name="wf")
    def changed_args() -> Any:
        step(2).result()
        return interrupt("pause")

    # The replay diverged before reaching the interrupt, so the answer was not written
    # (it is written only then, as the fence): the thread still waits for it.
    head = saver.latest("n")
    assert head is not None and head.status == "interrupted"
    assert [r["op"] for r in head.records] == ["start", "task", "interrupt"]
    with pytest.raises(NondeterminismError, match="with arguments"):
        changed_args.resume("go", thread_id="n", saver=saver)

    @workflow(name="wf")
    def interrupt_first() -> Any:
        return interrupt("pause")

    with pytest.raises(NondeterminismError, match="called interrupt"):
        interrupt_first.resume("go", thread_id="n", saver=saver)
    assert saver.latest("n") == head  # the failed replays wrote nothing
    assert original.resume("go", thread_id="n", saver=saver).result == "go"


def test_thread_of_another_workflow_is_refused(saver: CheckpointLog) -> None:
    make_checkout(Ledger()).run({"id": "o", "amount": 1}, thread_id="t", saver=saver)

    @workflow(name="something-else")
    def other() -> int:
        return 1

    with pytest.raises(NondeterminismError, match="belongs to workflow"):
        other.resume(thread_id="t", saver=saver)


def test_retry_policy_retries_then_succeeds(saver: CheckpointLog) -> None:
    attempts: list[int] = []

    @task(retry=RetryPolicy(max_attempts=4, initial_interval=0.001, retry_on=(ConnectionError,)))
    def flaky() -> str:
        attempts.append(1)
        if len(attempts) < 3:
            raise ConnectionError("blip")
        return "ok"

    @workflow
    def wf() -> str:
        return flaky().result()

    assert wf.run(thread_id="r", saver=saver).result == "ok"
    assert len(attempts) == 3


def test_retry_policy_does_not_retry_other_errors(saver: CheckpointLog) -> None:
    attempts: list[int] = []

    @task(retry=RetryPolicy(max_attempts=4, initial_interval=0.001, retry_on=(ConnectionError,)))
    def broken() -> str:
        attempts.append(1)
        raise KeyError("bug")

    @workflow
    def wf() -> str:
        return broken().result()

    with pytest.raises(KeyError):
        wf.run(thread_id="r", saver=saver)
    assert len(attempts) == 1


def test_retry_backoff_grows_and_is_capped() -> None:
    policy = RetryPolicy(initial_interval=1.0, backoff_factor=2.0, max_interval=5.0, jitter=False)
    assert [policy.delay(n) for n in range(1, 6)] == [1.0, 2.0, 4.0, 5.0, 5.0]
    jittered = RetryPolicy(initial_interval=1.0, backoff_factor=2.0, max_interval=5.0)
    assert all(0.0 <= jittered.delay(3) <= 4.0 for _ in range(100))


def test_failed_task_is_recorded_reraised_and_retried_on_resume(saver: CheckpointLog) -> None:
    ledger = Ledger()
    fail = {"on": True}

    @task
    def prepare() -> int:
        ledger.add("prepare")
        return 1

    @task
    def fragile(x: int) -> int:
        ledger.add("fragile")
        if fail["on"]:
            raise ValueError("downstream is down")
        return x + 1

    @workflow
    def wf() -> int:
        return fragile(prepare().result()).result()

    with pytest.raises(ValueError, match="downstream is down"):
        wf.run(thread_id="f", saver=saver)
    head = saver.latest("f")
    assert head is not None and head.status == "failed"
    assert [r["op"] for r in head.records] == ["start", "task", "task_error", "end"]
    assert head.records[2]["error"] == {
        "type": "builtins.ValueError",
        "message": "downstream is down",
        "args": ["downstream is down"],  # a builtin exception is replayed as itself
    }

    fail["on"] = False
    run = wf.resume(thread_id="f", saver=saver)
    assert (run.status, run.result) == ("completed", 2)
    assert ledger.calls == ["prepare", "fragile", "fragile"]


def test_failure_in_workflow_body_is_recorded(saver: CheckpointLog) -> None:
    @workflow
    def wf() -> None:
        raise RuntimeError("bad body")

    with pytest.raises(RuntimeError, match="bad body"):
        wf.run(thread_id="b", saver=saver)
    head = saver.latest("b")
    assert head is not None and head.status == "failed"
    assert head.records[-1] == {
        "op": "end",
        "status": "failed",
        "error": {"type": "builtins.RuntimeError", "message": "bad body"},
    }


def test_parallel_tasks_run_concurrently_and_each_result_is_recorded(saver: CheckpointLog) -> None:
    barrier = threading.Barrier(4, timeout=10)

    @task
    def part(n: int) -> int:
        barrier.wait()  # proves the four calls are in flight at once
        return n * n

    @workflow
    def fan_out() -> int:
        futures = [part(n) for n in range(4)]
        return sum(f.result() for f in futures)

    run = fan_out.run(thread_id="p", saver=saver)
    assert run.result == 0 + 1 + 4 + 9
    head = saver.latest("p")
    assert head is not None
    recorded = sorted(r["pos"] for r in head.records if r["op"] == "task")
    assert recorded == [0, 1, 2, 3]


@pytest.mark.parametrize("durability", ["sync", "async", "exit"])
def test_every_durability_mode_records_the_same_history(durability: str) -> None:
    counting = CountingStore(MemoryStore())
    saver = CheckpointLog(counting)
    ledger = Ledger()
    checkout = make_checkout(ledger)
    run = checkout.run({"id": "o", "amount": 3}, thread_id="d", saver=saver, durability=durability)  # type: ignore[arg-type]
    assert run.status == "interrupted"
    run = checkout.resume("yes", thread_id="d", saver=saver, durability=durability)  # type: ignore[arg-type]
    assert run.result == {"receipt": "rcpt-o-3", "shipped": True, "tracking": "track-o"}
    head = saver.latest("d")
    assert head is not None
    assert [r["op"] for r in head.records] == ["start", "task", "interrupt", "resume", "task", "end"]
    assert ledger.calls == ["charge", "ship"]
    if durability == "exit":
        assert counting.counts["PUT"] == 2 + 2  # one per run() / resume() call, + its status index entry
    elif durability == "sync":
        # start, charge, interrupt | answer (the fence), ship, end; + one status index entry per stop
        assert counting.counts["PUT"] == 6 + 2
    else:
        assert 4 + 2 <= counting.counts["PUT"] <= 6 + 2  # the background writer may batch records


def test_async_mode_returns_only_after_every_write_and_leaves_no_writer_thread() -> None:
    saver = CheckpointLog(MemoryStore())

    @task
    def step(n: int) -> int:
        return n

    @workflow
    def wf() -> int:
        return sum(step(n).result() for n in range(20))

    before = {t.name for t in threading.enumerate()}
    run = wf.run(thread_id="a", saver=saver, durability="async")
    assert run.result == sum(range(20))
    head = saver.latest("a")
    assert head is not None and head.status == "completed"
    assert sum(1 for r in head.records if r["op"] == "task") == 20
    assert not any(t.name == "cairnflow-writer" for t in threading.enumerate() if t.name not in before)


def test_deadline_suspends_cleanly_and_resume_continues() -> None:
    saver = CheckpointLog(MemoryStore())
    ledger = Ledger()

    @task
    def step(n: int) -> int:
        ledger.add(f"step{n}")
        return n

    @workflow
    def wf() -> int:
        return sum(step(n).result() for n in range(6))

    # A deadline already passed: no task may start, the run suspends at once.
    run = wf.run(thread_id="dl", saver=saver, deadline=time.time() - 1)
    assert run.status == "suspended"
    assert ledger.calls == []
    run = wf.resume(thread_id="dl", saver=saver)
    assert (run.status, run.result) == ("completed", 15)
    assert ledger.calls == [f"step{n}" for n in range(6)]


def test_deadline_stops_between_tasks_and_no_task_runs_twice() -> None:
    saver = CheckpointLog(MemoryStore())
    ledger = Ledger()
    clock = {"now": 0.0}

    @task
    def step(n: int) -> int:
        ledger.add(f"step{n}")
        clock["now"] += 1.0  # each task "takes" one second of the budget
        return n

    @workflow
    def wf() -> int:
        return sum(step(n).result() for n in range(7))

    results = []
    invocations = 0
    while True:
        invocations += 1
        # Each invocation gets a budget of 3 "seconds", measured against the fake clock.
        start = clock["now"]
        monkey_deadline = time.time() + 3.0
        offset = time.time() - start

        def fake_time(offset: float = offset) -> float:
            return clock["now"] + offset

        import cairnflow.core.executor as executor_module

        original = executor_module.time.time
        executor_module.time.time = fake_time  # type: ignore[assignment]
        try:
            run = (
                wf.resume(thread_id="x", saver=saver, deadline=monkey_deadline)
                if invocations > 1
                else wf.run(thread_id="x", saver=saver, deadline=monkey_deadline)
            )
        finally:
            executor_module.time.time = original  # type: ignore[assignment]
        results.append(run.status)
        if run.status == "completed":
            break
    assert run.result == sum(range(7))
    assert results == ["suspended", "suspended", "completed"]
    assert sorted(ledger.calls) == sorted(f"step{n}" for n in range(7))  # each ran exactly once


def test_unserialisable_task_result_fails_naming_the_task(saver: CheckpointLog) -> None:
    @task
    def leaky() -> object:
        return threading.Lock()

    @workflow
    def wf() -> object:
        return leaky().result()

    with pytest.raises(SerializationError, match="leaky"):
        wf.run(thread_id="u", saver=saver)
    head = saver.latest("u")
    assert head is not None and head.status == "failed"


def test_unserialisable_argument_fails_naming_the_task(saver: CheckpointLog) -> None:
    @task
    def takes(x: object) -> int:
        return 1

    @workflow
    def wf() -> int:
        return takes(threading.Lock()).result()

    with pytest.raises(SerializationError, match="arguments of task 'test_unserialisable_argument"):
        wf.run(thread_id="u", saver=saver)


@dataclasses.dataclass
class Invoice:
    number: str
    total: decimal.Decimal
    issued: dt.datetime
    lines: tuple[str, ...]


def test_rich_values_round_trip_through_replay() -> None:
    serializer = JsonSerializer()
    serializer.register(Invoice)
    saver = CheckpointLog(MemoryStore(), serializer=serializer)
    value = Invoice(
        "INV-1",
        decimal.Decimal("10.50"),
        dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc),
        ("a", "b"),
    )
    token = uuid.uuid4()

    @task
    def make() -> dict[str, Any]:
        return {"invoice": value, "raw": b"\x00\xff", "id": token, "tags": {1, 2}, 3: "int key"}

    @workflow
    def wf() -> Any:
        made = make().result()
        interrupt("check")
        return made

    wf.run(thread_id="v", saver=saver)
    run = wf.resume("ok", thread_id="v", saver=saver)
    assert run.result == {"invoice": value, "raw": b"\x00\xff", "id": token, "tags": {1, 2}, 3: "int key"}


def test_task_called_outside_a_workflow_is_an_error() -> None:
    @task
    def lonely() -> int:
        return 1

    with pytest.raises(MisuseError, match="outside a workflow"):
        lonely()
    assert lonely.fn() == 1


def test_fork_answers_an_earlier_interrupt_differently(saver: CheckpointLog) -> None:
    ledger = Ledger()
    checkout = make_checkout(ledger)
    paused = checkout.run({"id": "o", "amount": 1}, thread_id="tt", saver=saver)
    done = checkout.resume("no", thread_id="tt", saver=saver)
    assert done.result["shipped"] is False

    forked = checkout.fork(thread_id="tt", checkpoint_id=paused.checkpoint_id or "", saver=saver)
    assert forked.status == "interrupted"
    redo = checkout.resume("yes", thread_id="tt", saver=saver)
    assert redo.result["shipped"] is True
    history = list(saver.history("tt"))
    seqs = [info.seq for info in history]
    assert seqs == list(range(seqs[0], -1, -1))  # still one line, newest first
    forks = [info for info in history if info.kind == "fork"]
    assert len(forks) == 1 and forks[0].parent == int(paused.checkpoint_id or -1)
    assert ledger.calls == ["charge", "ship"]  # the fork replays charge, only ship runs


def test_a_stale_writer_gets_conflict_and_writes_nothing(saver: CheckpointLog) -> None:
    ledger = Ledger()
    checkout = make_checkout(ledger)
    checkout.run({"id": "o", "amount": 1}, thread_id="c", saver=saver)
    stale_head = saver.latest("c")
    checkout.resume("yes", thread_id="c", saver=saver)
    final = saver.latest("c")
    assert stale_head is not None and final is not None
    with pytest.raises(ConflictError):
        saver.append("c", stale_head, [{"op": "resume", "pos": 1, "value": "no"}], status="running")
    assert saver.latest("c") == final
