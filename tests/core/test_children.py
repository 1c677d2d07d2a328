"""Child workflows: other.start(input) inside a workflow body (issue 17), run inline.

On the local store and on S3 (moto); time under the test's control.
"""

from __future__ import annotations

from typing import Any

import pytest

from cairnflow.core import CheckpointLog, NondeterminismError, sleep, workflow
from cairnflow.core.children import parent_of
from tests.core.test_timers import RAN, Clock, clock, location, note, records, saver

__all__ = ["clock", "location", "saver"]  # fixtures, imported to be shared


@workflow
def square(n: int) -> int:
    return int(note(f"square:{n}").result()[len("square:") :]) ** 2


@workflow
def picky(n: int) -> int:
    if n < 0:
        raise ValueError(f"negative: {n}")
    return n


@workflow
def fan_out(count: int) -> int:
    futures = [square.start(n) for n in range(count)]
    return sum(f.result() for f in futures)


@workflow
def sleepy_child(n: int) -> int:
    sleep(600)
    return note(f"sleepy:{n}").result() and n


@workflow
def waits_for_child(n: int) -> int:
    return sleepy_child.start(n).result() + 1


def start_record(saver: CheckpointLog, thread_id: str) -> dict[str, Any]:
    head = saver.latest(thread_id)
    assert head is not None
    found = [r for r in head.records if isinstance(r, dict) and r.get("op") == "start"]
    assert len(found) == 1
    return found[0]


def test_children_run_inline_on_their_own_threads_linked_both_ways(
    saver: CheckpointLog, clock: Clock
) -> None:
    run = fan_out.run(3, thread_id="p1", saver=saver)
    assert (run.status, run.result) == ("completed", 0 + 1 + 4)
    children = records(saver, "p1", "child")
    assert [(c["pos"], c["name"], c["thread"]) for c in children] == [
        (n, "square", f"p1~child-{n}") for n in range(3)
    ]
    assert [d["value"] for d in records(saver, "p1", "child_done")] == [0, 1, 4]
    for n in range(3):
        child = square.get_run(thread_id=f"p1~child-{n}", saver=saver)
        assert child is not None and (child.status, child.result) == ("completed", n * n)
        assert start_record(saver, f"p1~child-{n}")["parent"] == {
            "thread_id": "p1",
            "workflow": "fan_out",
            "pos": n,
        }
        assert parent_of(f"p1~child-{n}") == "p1"
        assert RAN[f"square:{n}"] == 1


def test_a_replayed_parent_takes_each_childs_result_from_its_own_record(
    saver: CheckpointLog, clock: Clock
) -> None:
    assert fan_out.run(2, thread_id="p2", saver=saver).result == 1
    saver.delete_thread("p2~child-1")  # the parent must not need the child's thread any more
    assert fan_out.run(2, thread_id="p2", saver=saver).result == 1
    assert RAN["square:1"] == 1


def test_a_failed_child_fails_its_future_with_the_same_exception(saver: CheckpointLog, clock: Clock) -> None:
    @workflow(name="catches")
    def catches() -> str:
        try:
            return str(picky.start(-2).result())
        except ValueError as exc:
            return f"caught {exc}"

    assert catches.run(thread_id="p3", saver=saver).result == "caught negative: -2"
    assert [d["error"]["type"] for d in records(saver, "p3", "child_done")] == ["builtins.ValueError"]
    failed = picky.get_run(thread_id="p3~child-0", saver=saver)
    assert failed is not None and failed.status == "failed"


def test_a_waiting_child_makes_the_parent_wait_until_its_wake_time(
    saver: CheckpointLog, clock: Clock
) -> None:
    run = waits_for_child.run(7, thread_id="p4", saver=saver)
    assert (run.status, run.wake_at) == ("waiting", clock.now + 600)
    clock.now += 601
    done = waits_for_child.resume(thread_id="p4", saver=saver)  # continues the child first
    assert (done.status, done.result) == ("completed", 8)
    assert RAN["sleepy:7"] == 1
    assert len(records(saver, "p4", "child_done")) == 1


def test_starting_another_child_where_the_history_has_one_is_refused(
    saver: CheckpointLog, clock: Clock
) -> None:
    assert waits_for_child.run(1, thread_id="p5", saver=saver).status == "waiting"

    @workflow(name="waits_for_child")
    def changed(n: int) -> int:
        return square.start(n).result()

    head = saver.latest("p5")
    with pytest.raises(NondeterminismError, match=r"sleepy_child\.start"):
        changed.resume(thread_id="p5", saver=saver)
    assert saver.latest("p5") == head
