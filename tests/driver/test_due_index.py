"""The store-kept due index: ordered by time, one LIST when idle, create-only claims."""

from __future__ import annotations

import pytest

from cairnflow.core.counting import CountingStore
from cairnflow.core.errors import InvalidArgumentError, SerializationError
from cairnflow.core.log import CheckpointLog
from cairnflow.core.wake import Wakeup
from cairnflow.driver import DueIndex
from cairnflow.savers.memory import MemoryStore


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make(now: float = 1_000_000.0) -> tuple[DueIndex, CountingStore, Clock]:
    counting = CountingStore(MemoryStore())
    clock = Clock(now)
    return DueIndex(CheckpointLog(counting), clock=clock, claim_seconds=60), counting, clock


def test_wakeups_come_due_in_time_order_and_only_when_due() -> None:
    index, _, clock = make()
    index.schedule(Wakeup("late", "wf", clock.now + 100))
    index.schedule(Wakeup("early", "wf", clock.now - 5))
    index.schedule(Wakeup("now", "wf", clock.now))
    assert [e.wakeup.thread_id for e in index.due()] == ["early", "now"]
    clock.now += 100
    assert [e.wakeup.thread_id for e in index.due()] == ["early", "now", "late"]


def test_scheduling_the_same_wakeup_twice_stores_one_entry() -> None:
    index, counting, clock = make()
    wakeup = Wakeup("t", "wf", clock.now, "suspended")
    index.schedule(wakeup)
    index.schedule(wakeup)
    assert len(list(counting.inner.list(""))) == 1


def test_a_wakeup_whose_twin_is_being_handled_is_kept_for_after() -> None:
    # A child ends while a worker handles its parent's wake-up for the same millisecond
    # (which may have read the child before it ended): deleting that entry when done
    # must not swallow the new one.
    index, _, clock = make()
    wakeup = Wakeup("parent", "wf", clock.now, "child")
    index.schedule(wakeup)
    (entry,) = index.due()
    assert index.claim(entry)
    index.schedule(wakeup)  # the twin, while the first is claimed
    index.done(entry)
    clock.now += 1
    (later,) = index.due()
    assert later.wakeup == Wakeup("parent", "wf", wakeup.at + 0.001, "child")
    index.schedule(later.wakeup)  # not claimed: one entry, as before
    assert [e.key for e in index.due()] == [later.key]


def test_an_idle_poll_is_one_list_however_many_wakeups_are_pending() -> None:
    index, counting, clock = make()
    for n in range(300):
        index.schedule(Wakeup(f"t-{n}", "wf", clock.now + 60 + n, "lease"))
    counting.reset()
    assert list(index.due()) == []
    assert dict(counting.counts) == {"LIST": 1}


def test_claims_exclude_other_workers_until_they_expire() -> None:
    index, _, clock = make()
    other = DueIndex(CheckpointLog(index.store), clock=clock, claim_seconds=60, worker_id="other")
    index.schedule(Wakeup("t", "wf", clock.now))
    (entry,) = index.due()
    assert index.claim(entry)
    assert not other.claim(entry)
    clock.now += 61  # the first worker died holding it
    assert other.claim(entry)
    assert not index.claim(entry)
    index.done(entry)
    assert list(index.store.list("")) == []


def test_thread_ids_of_any_shape_round_trip() -> None:
    index, _, clock = make()
    hostile = "../../etc/passwd\n\u00e9/\x00"
    index.schedule(Wakeup(hostile, "wf", clock.now))
    (entry,) = index.due()
    assert entry.wakeup.thread_id == hostile


def test_a_foreign_object_in_the_index_is_named() -> None:
    index, _, _clock = make()
    index.store.put(f"{index.root}at/{0:016d}-junk", b"{not json")
    with pytest.raises(SerializationError, match="junk"):
        list(index.due())


@pytest.mark.parametrize("at", [float("nan"), -1.0, float("inf")])
def test_bad_wake_times_are_refused(at: float) -> None:
    with pytest.raises(InvalidArgumentError, match="epoch seconds"):
        Wakeup("t", "wf", at)


def test_wakeup_json_round_trip_and_refusal() -> None:
    wakeup = Wakeup("t", "wf", 12.5, "timer", "s3://b/p")
    assert Wakeup.from_json(wakeup.to_json()) == wakeup
    with pytest.raises(SerializationError, match="shared with another application"):
        Wakeup.from_json('{"hello": 1}')
