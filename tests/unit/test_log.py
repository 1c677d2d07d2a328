"""The checkpoint log: byte compatibility of what it writes, and THE delta + base reconstruction."""

from __future__ import annotations

import hashlib
import itertools
import uuid
from collections.abc import Sequence
from typing import Any

import pytest

from cairnflow.core.errors import CorruptCheckpointError, ThreadNotFoundError
from cairnflow.core.format import Header, parse_header
from cairnflow.core.log import CheckpointLog, state_records
from cairnflow.savers.memory import MemoryStore

#: SHA-256 of every object the scenario below writes, as produced by the code before
#: core/format.py existed (commit 1bd0859): snapshots, deltas, a fork, a tombstone and a
#: snapshot after it. Stores written by earlier releases stay readable and new objects
#: stay byte-identical.
GOLDEN = {
    "plain/v1/threads/t/999999999992": "b1552d5f9b9bd3807e0c1935bd0bfe445d1f62d88b4c720a72be87cba11b7007",
    "plain/v1/threads/t/999999999993": "acdf8f1430166b0618016f8615066d5d4f9ef693ebfc24bd5a3ba3f57413a5a6",
    "plain/v1/threads/t/999999999994": "6171c39691f5bdff9c7b39c01ed7b663c7622e4cc0a2304336cfecd4d6964b6e",
    "plain/v1/threads/t/999999999995": "96ccffc11bbc46bf8d3567bc10fefeb0804a4f36d9c2ef650ae84ea803a5b86c",
    "plain/v1/threads/t/999999999996": "612297fec55ab0b286df41549614dae842169ee0825fd5699bf4f0cb1c1e8aa4",
    "plain/v1/threads/t/999999999997": "ea80e192a61ad4f6231c1873161cb92378163047ceb6bb1a0b14b1d1f67019bd",
    "plain/v1/threads/t/999999999998": "02fa827b63b1a88c2bdc3378a06f6395c203b0dbc816795f83bd8f76f31aa8b6",
    "plain/v1/threads/t/999999999999": "df0cc75696288e168364eada24fd3e5a2205ffaae5b86f917ecd2faa784db31c",
    # The tombstone's status index entry (core/status_index.py, added after 1bd0859): an empty
    # body, everything in its key. The checkpoints above are unchanged by the index.
    "plain/v1/index/t/999999999993.deleted.1700000000250.wf": hashlib.sha256(b"").hexdigest(),
}


def test_written_objects_are_byte_identical_to_the_previous_release(monkeypatch: pytest.MonkeyPatch) -> None:
    counter = itertools.count()
    monkeypatch.setattr("time.time", lambda: 1700000000.25)
    monkeypatch.setattr("secrets.token_hex", lambda n: uuid.UUID(int=next(counter)).hex)
    store = MemoryStore()
    log = CheckpointLog(store, prefix="plain", snapshot_every=2)
    seen: dict[str, str] = {}

    def snapshot_store() -> None:
        for info in store.list(""):
            seen[info.key] = hashlib.sha256(store.get(info.key).data).hexdigest()

    head = log.append("t", None, [{"op": "start"}], status="running", workflow="wf")
    for i in range(4):
        head = log.append("t", head, [{"op": "task", "i": i}], status="running")
    log.fork("t", 1)
    snapshot_store()
    log.delete_thread("t")
    log.append("t", log.latest("t"), [{"op": "again"}], status="completed")
    snapshot_store()
    assert seen == GOLDEN
    kinds = [h.kind for h in log.history("t")]
    assert kinds == ["snapshot", "tombstone"]


def _header(seq: int, **fields: Any) -> Header:
    raw = {"thread": "t", "seq": seq, "kind": "snapshot", "status": "running", "base": seq, "new": 1}
    raw.update(fields)
    raw.setdefault("total", raw["new"])
    return parse_header(raw, key=f"k{seq}")


def _reader(objects: dict[int, tuple[Header, Sequence[str] | None]]) -> Any:
    calls: list[int] = []

    def read_base(seq: int) -> tuple[Header, Sequence[str] | None]:
        calls.append(seq)
        if seq not in objects:
            raise ThreadNotFoundError(f"no checkpoint {seq}")
        return objects[seq]

    read_base.calls = calls  # type: ignore[attr-defined]
    return read_base


def test_a_snapshot_is_its_own_state_without_reading_anything() -> None:
    read = _reader({})
    assert state_records(_header(3, new=1, total=2), ["a", "b"], key="k", read_base=read) == (("a", "b"), 2)
    assert read.calls == []


def test_a_delta_is_its_base_plus_its_tail() -> None:
    base = _header(1, new=2, total=2)
    delta = _header(3, kind="delta", base=1, new=1, total=4)
    read = _reader({1: (base, ["a", "b"])})
    assert state_records(delta, ["c", "d"], key="k", read_base=read) == (("a", "b", "c", "d"), 2)
    assert read.calls == [1]


def test_a_delta_on_a_fork_reads() -> None:
    fork = _header(2, kind="fork", parent=0, new=0, total=1)
    delta = _header(3, kind="delta", base=2, new=1, total=2)
    assert state_records(delta, ["b"], key="k", read_base=_reader({2: (fork, ["a"])})) == (("a", "b"), 1)


@pytest.mark.parametrize(
    ("objects", "body", "message"),
    [
        ({}, ["c"], "history has a gap: base checkpoint 1 is missing"),
        ({1: (_header(1, kind="delta", base=0, total=2), ["a", "b"])}, ["c"], "not a snapshot"),
        ({1: (_header(1, kind="tombstone", status="deleted", new=0), [])}, ["c"], "not a snapshot"),
        ({1: (_header(1, new=2, total=2), ["a", "b"])}, ["c", "d"], "record count"),
        ({1: (_header(1, new=2, total=2), ["a", "b"])}, [], "record count"),  # fewer than it adds
    ],
)
def test_a_delta_that_cannot_be_read_names_its_key(
    objects: dict[int, tuple[Header, Sequence[str] | None]], body: list[str], message: str
) -> None:
    delta = _header(3, kind="delta", base=1, new=1, total=3)
    with pytest.raises(CorruptCheckpointError, match=message) as info:
        state_records(delta, body, key="the/key", read_base=_reader(objects))
    assert info.value.key == "the/key"


def test_a_snapshot_whose_body_disagrees_with_its_header_is_refused() -> None:
    with pytest.raises(CorruptCheckpointError, match="record count"):
        state_records(_header(0, new=1, total=1), ["a", "b"], key="k", read_base=_reader({}))


def test_unreadable_bodies_give_no_state_but_the_base_kind_is_still_checked() -> None:
    delta = _header(3, kind="delta", base=1, new=1, total=3)
    assert state_records(delta, None, key="k", read_base=_reader({})) is None
    base = _header(1, new=2, total=2)
    assert state_records(delta, ["c"], key="k", read_base=_reader({1: (base, None)})) is None
    bad_base = _header(1, kind="delta", base=0, new=1, total=2)
    with pytest.raises(CorruptCheckpointError, match="not a snapshot"):
        state_records(delta, ["c"], key="k", read_base=_reader({1: (bad_base, None)}))
