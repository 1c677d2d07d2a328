"""The checkpoint log's contract, run against every backend through the ``store`` fixture."""

from __future__ import annotations

import pickle
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from cairnflow.core import codec, keys
from cairnflow.core.counting import CountingStore
from cairnflow.core.errors import (
    ConflictError,
    CorruptCheckpointError,
    InvalidThreadIdError,
    SerializationError,
    ThreadNotFoundError,
    TransientStoreError,
    UnsupportedFormatError,
)
from cairnflow.core.log import CheckpointLog
from cairnflow.core.serde import UnsafePickleSerializer
from cairnflow.core.store import CREATE, OVERWRITE, ObjectInfo, ObjectStore, PutMode
from tests.support.forwarding import ForwardingStore

PREFIX = "app/"


def rec(n: int, size: int = 10) -> dict[str, Any]:
    return {"op": "task", "pos": n, "name": "t", "args": "x", "value": "v" * size + str(n)}


def test_append_and_latest_round_trip_through_snapshots_and_deltas(store: ObjectStore) -> None:
    saver = CheckpointLog(store, prefix=PREFIX, snapshot_every=4)
    head = None
    expected: list[Any] = []
    kinds = []
    for n in range(11):
        batch = [rec(n, size=(n * 37) % 50)]
        head = saver.append("t-1", head, batch, status="running")
        expected += batch
        kinds.append(head.info.kind)
        latest = saver.latest("t-1")
        assert latest is not None
        assert list(latest.records) == expected
        assert latest.seq == n
    assert "delta" in kinds and kinds.count("snapshot") >= 2  # both shapes were exercised
    # Every older checkpoint still reads back as the state it stood for.
    for n in range(11):
        assert [r["pos"] for r in saver.get("t-1", n).records] == list(range(n + 1))


def test_stale_head_gets_conflict_and_nothing_is_written(store: ObjectStore) -> None:
    saver = CheckpointLog(store, prefix=PREFIX)
    h0 = saver.append("t", None, [rec(0)], status="running")
    saver.append("t", h0, [rec(1)], status="running")
    with pytest.raises(ConflictError) as info:
        saver.append("t", h0, [rec(99)], status="running")
    assert info.value.thread_id == "t"
    latest = saver.latest("t")
    assert latest is not None and [r["pos"] for r in latest.records] == [0, 1]
    # A second "new thread" writer also loses rather than overwriting checkpoint 0.
    with pytest.raises(ConflictError):
        saver.append("t", None, [rec(7)], status="running")


class FlakyStore(ForwardingStore):
    """Makes the next ``fail_puts`` puts fail ambiguously: the write lands, the answer is lost."""

    def __init__(self, inner: ObjectStore, *, land: bool) -> None:
        super().__init__(inner)
        self.land = land
        self.fail_puts = 0
        self.puts = 0

    def put(self, key: str, data: bytes, mode: PutMode = CREATE) -> str:
        self.puts += 1
        if self.fail_puts:
            self.fail_puts -= 1
            if self.land:
                self.inner.put(key, data, mode)
            raise TransientStoreError("timed out", key=key, ambiguous=True)
        return self.inner.put(key, data, mode)


@pytest.mark.parametrize("land", [True, False], ids=["write-landed", "write-lost"])
def test_retry_after_ambiguous_write_recognises_its_own_checkpoint(store: ObjectStore, land: bool) -> None:
    flaky = FlakyStore(store, land=land)
    saver = CheckpointLog(flaky, prefix=PREFIX)
    head = saver.append("t", None, [rec(0)], status="running")
    flaky.fail_puts = 2
    head = saver.append("t", head, [rec(1)], status="running")  # no false conflict
    # landed: the retry finds the key taken and reads back its own bytes; lost: a third try lands.
    assert flaky.puts == (1 + 2 if land else 1 + 3)
    latest = saver.latest("t")
    assert latest is not None and [r["pos"] for r in latest.records] == [0, 1]
    assert [i.seq for i in saver.history("t")] == [1, 0]  # no duplicate checkpoint


def test_ambiguous_write_that_lost_the_race_is_still_a_conflict(store: ObjectStore) -> None:
    saver = CheckpointLog(store, prefix=PREFIX)
    h0 = saver.append("t", None, [rec(0)], status="running")
    saver.append("t", h0, [rec(1)], status="running")  # the other writer wins seq 1
    flaky = FlakyStore(store, land=False)
    flaky.fail_puts = 1
    with pytest.raises(ConflictError):
        CheckpointLog(flaky, prefix=PREFIX).append("t", h0, [rec(2)], status="running")


def test_latest_costs_the_same_requests_at_any_history_length(store: ObjectStore) -> None:
    counting = CountingStore(store)
    saver = CheckpointLog(counting, prefix=PREFIX, snapshot_every=4)
    costs = {}
    head = None
    for n in range(40):
        head = saver.append("t", head, [rec(n)], status="running")
        if n in (3, 9, 39):
            counting.reset()
            assert saver.latest("t") is not None
            costs[n] = (counting.counts["LIST"], counting.counts["GET"])
    assert all(lists == 1 and gets <= 2 for lists, gets in costs.values()), costs


def test_history_is_newest_first_with_limit_and_before(store: ObjectStore) -> None:
    saver = CheckpointLog(store, prefix=PREFIX)
    head = None
    for n in range(6):
        head = saver.append("h", head, [rec(n)], status="running")
    assert [i.seq for i in saver.history("h")] == [5, 4, 3, 2, 1, 0]
    assert [i.seq for i in saver.history("h", limit=2)] == [5, 4]
    assert [i.seq for i in saver.history("h", before=3)] == [2, 1, 0]
    assert [i.seq for i in saver.history("h", before="3", limit=1)] == [2]
    assert list(saver.history("nobody")) == []
    with pytest.raises(ThreadNotFoundError):
        saver.get("h", 17)


TRICKY_IDS = [
    "a",
    "a/b",
    "a%2Fb",
    "A",
    "..",
    ".",
    "a b",
    "ä-ü",
    "🙂",
    "nul\x00byte",
    "tab\tnew\nline",
    "%",
    "-_",
]


def test_thread_ids_never_collide_or_escape(store: ObjectStore) -> None:
    saver = CheckpointLog(store, prefix=PREFIX)
    for n, thread_id in enumerate(TRICKY_IDS):
        saver.append(thread_id, None, [rec(n)], status="running")
    for n, thread_id in enumerate(TRICKY_IDS):
        latest = saver.latest(thread_id)
        assert latest is not None and latest.records[0]["pos"] == n, thread_id
    assert sorted(saver.threads()) == sorted(TRICKY_IDS)
    assert all(key.key.startswith(PREFIX + "v1/threads/") for key in store.list(""))

    saver.delete_thread("a", purge=True)
    assert saver.latest("a") is None
    for thread_id in TRICKY_IDS[1:]:
        assert saver.latest(thread_id) is not None, f"deleting 'a' touched {thread_id!r}"


@pytest.mark.parametrize("bad", ["", "x" * 241, 7, "\ud800"])
def test_invalid_thread_ids_are_refused_before_any_request(store: ObjectStore, bad: Any) -> None:
    counting = CountingStore(store)
    saver = CheckpointLog(counting, prefix=PREFIX)
    with pytest.raises(InvalidThreadIdError):
        saver.append(bad, None, [rec(0)], status="running")
    with pytest.raises(InvalidThreadIdError):
        saver.latest(bad)
    assert sum(counting.counts.values()) == 0


def test_delete_fences_stale_writers_and_the_id_can_be_reused(store: ObjectStore) -> None:
    saver = CheckpointLog(store, prefix=PREFIX)
    head = saver.append("d", None, [rec(0)], status="running")
    head = saver.append("d", head, [rec(1)], status="running")
    saver.delete_thread("d")
    tomb = saver.latest("d")
    assert tomb is not None and tomb.info.kind == "tombstone" and tomb.status == "deleted"
    assert [i.seq for i in saver.history("d")] == [2]  # only the tombstone is left
    with pytest.raises(ConflictError):  # a writer still holding the old head cannot resurrect it
        saver.append("d", head, [rec(2)], status="running")
    fresh = saver.append("d", tomb, [rec(0, size=3)], status="running")
    assert fresh.info.kind == "snapshot" and [r["pos"] for r in fresh.records] == [0]
    saver.delete_thread("d", purge=True)
    assert list(store.list(keys.thread_prefix(PREFIX, "d"))) == []


def test_fork_appends_a_copy_of_an_older_state(store: ObjectStore) -> None:
    saver = CheckpointLog(store, prefix=PREFIX)
    head = None
    for n in range(4):
        head = saver.append("f", head, [rec(n)], status="running")
    forked = saver.fork("f", 1)
    assert forked.seq == 4 and forked.info.kind == "fork" and forked.info.parent == 1
    assert [r["pos"] for r in forked.records] == [0, 1]
    after = saver.append("f", forked, [rec(9)], status="running")
    assert [r["pos"] for r in after.records] == [0, 1, 9]
    latest = saver.latest("f")
    assert latest is not None and [r["pos"] for r in latest.records] == [0, 1, 9]


# ----------------------------------------------------------------------------- bad input


def _corrupt_cases() -> list[tuple[str, Callable[[bytes], bytes], type[Exception]]]:
    def bump_version(data: bytes) -> bytes:
        body = data[:3] + bytes([2]) + data[4:-32]
        import hashlib

        return body + hashlib.sha256(body).digest()

    return [
        ("truncated", lambda d: d[: len(d) // 2], CorruptCheckpointError),
        ("bit-flip", lambda d: d[:20] + bytes([d[20] ^ 1]) + d[21:], CorruptCheckpointError),
        ("empty", lambda d: b"", CorruptCheckpointError),
        ("foreign-bytes", lambda d: b'{"hello": "world"}' * 4, CorruptCheckpointError),
        ("newer-format", bump_version, UnsupportedFormatError),
    ]


@pytest.mark.parametrize(("name", "mangle", "error"), _corrupt_cases(), ids=[c[0] for c in _corrupt_cases()])
def test_damaged_checkpoints_raise_typed_errors_and_spare_other_threads(
    store: ObjectStore, name: str, mangle: Callable[[bytes], bytes], error: type[Exception]
) -> None:
    saver = CheckpointLog(store, prefix=PREFIX)
    saver.append("victim", None, [rec(0)], status="running")
    saver.append("bystander", None, [rec(1)], status="running")
    key = keys.checkpoint_key(PREFIX, "victim", 0)
    store.put(key, mangle(store.get(key).data), OVERWRITE)
    with pytest.raises(error) as info:
        saver.latest("victim")
    assert key in str(info.value)
    bystander = saver.latest("bystander")
    assert bystander is not None and bystander.records[0]["pos"] == 1


def test_checkpoint_copied_to_another_thread_is_rejected(store: ObjectStore) -> None:
    saver = CheckpointLog(store, prefix=PREFIX)
    saver.append("source", None, [rec(0)], status="running")
    data = store.get(keys.checkpoint_key(PREFIX, "source", 0)).data
    store.put(keys.checkpoint_key(PREFIX, "target", 0), data, CREATE)
    with pytest.raises(CorruptCheckpointError, match="does not belong"):
        saver.latest("target")


def test_foreign_object_under_a_thread_prefix_is_reported(store: ObjectStore) -> None:
    saver = CheckpointLog(store, prefix=PREFIX)
    saver.append("t", None, [rec(0)], status="running")
    store.put(keys.thread_prefix(PREFIX, "t") + "0README", b"hello", CREATE)
    with pytest.raises(CorruptCheckpointError, match="foreign"):
        saver.latest("t")


def test_gap_in_history_is_reported(store: ObjectStore) -> None:
    saver = CheckpointLog(store, prefix=PREFIX)
    head = saver.append("g", None, [rec(0)], status="running")
    saver.append("g", head, [rec(1)], status="running")  # a delta on snapshot 0
    store.delete(keys.checkpoint_key(PREFIX, "g", 0))
    with pytest.raises(CorruptCheckpointError, match="gap"):
        saver.latest("g")


class Boom:
    def __reduce__(self) -> tuple[Any, ...]:
        return (exec, ("import sys; sys.modules['__main__'].PWNED = True",))


def test_pickled_checkpoint_is_refused_by_the_default_serializer(store: ObjectStore) -> None:
    # A bucket writer plants a checkpoint whose body is a pickle that would run code.
    unsafe = CheckpointLog(store, prefix=PREFIX, serializer=UnsafePickleSerializer())
    header = {
        "thread": "p",
        "seq": 0,
        "kind": "snapshot",
        "status": "running",
        "base": 0,
        "new": 1,
        "total": 1,
        "time": 0,
        "writer": "x",
        "serde": "pickle",
    }
    store.put(keys.checkpoint_key(PREFIX, "p", 0), codec.encode(header, pickle.dumps([Boom()])), CREATE)
    import sys

    with pytest.raises(SerializationError, match="refusing"):
        CheckpointLog(store, prefix=PREFIX).latest("p")
    assert not hasattr(sys.modules["__main__"], "PWNED")
    # The same store read by a saver that opted in to pickle does load it (the opt-in is real).
    assert unsafe.serializer.name == "pickle"


def test_unknown_registered_type_is_refused_not_constructed(store: ObjectStore) -> None:
    saver = CheckpointLog(store, prefix=PREFIX)
    header = {
        "thread": "u",
        "seq": 0,
        "kind": "snapshot",
        "status": "running",
        "base": 0,
        "new": 1,
        "total": 1,
        "time": 0,
        "writer": "x",
        "serde": "json",
    }
    body = b'[{"$cf":"type","n":"os.system","v":"echo pwned"}]'
    store.put(keys.checkpoint_key(PREFIX, "u", 0), codec.encode(header, body), CREATE)
    with pytest.raises(SerializationError, match="not registered"):
        saver.latest("u")


class BeforeFullListing(FlakyStore):
    """Runs ``hook`` once, just before the first unbounded listing (a delete's sweep)."""

    def __init__(self, inner: ObjectStore, hook: Callable[[], None]) -> None:
        super().__init__(inner, land=False)
        self.hook: Callable[[], None] | None = hook

    def list(
        self, prefix: str, *, start_after: str | None = None, limit: int | None = None
    ) -> Iterator[ObjectInfo]:
        if limit is None and self.hook is not None:
            hook, self.hook = self.hook, None
            hook()
        return self.inner.list(prefix, start_after=start_after, limit=limit)


def test_delete_spares_a_run_started_above_the_tombstone(store: ObjectStore) -> None:
    other = CheckpointLog(store, prefix=PREFIX)

    def new_run_on_the_same_id() -> None:
        tomb = other.latest("r")
        assert tomb is not None and tomb.info.kind == "tombstone"
        other.append("r", tomb, [rec(5)], status="running")

    saver = CheckpointLog(BeforeFullListing(store, new_run_on_the_same_id), prefix=PREFIX)
    head = saver.append("r", None, [rec(0)], status="completed")
    assert saver.delete_thread("r", expected_head=head.seq) == 1
    latest = other.latest("r")
    assert latest is not None and latest.seq == 2 and [r["pos"] for r in latest.records] == [5]
    assert [i.seq for i in other.history("r")] == [2, 1]  # seq 0 deleted, the new run kept


def test_delete_with_expected_head_refuses_a_thread_that_moved(store: ObjectStore) -> None:
    saver = CheckpointLog(store, prefix=PREFIX)
    h0 = saver.append("m", None, [rec(0)], status="completed")
    saver.append("m", h0, [rec(1)], status="running")
    with pytest.raises(ConflictError, match="not 0"):
        saver.delete_thread("m", expected_head=0)
    latest = saver.latest("m")
    assert latest is not None and latest.seq == 1  # nothing deleted
