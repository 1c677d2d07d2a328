"""The status index (cairnflow.core.status_index): its keys, the executor's one write per stop,
deletes and forks keeping it right, and failures that never fail a run."""

from __future__ import annotations

import pytest

from cairnflow.core import CheckpointLog, interrupt, status_index, task, workflow
from cairnflow.core.checkpoint import CheckpointInfo
from cairnflow.core.counting import CountingStore
from cairnflow.core.errors import TransientStoreError
from cairnflow.core.retry import RetryPolicy
from cairnflow.core.store import CREATE, ObjectStore, PutMode
from cairnflow.savers.local import LocalStore
from cairnflow.savers.memory import MemoryStore

HOSTILE = ["a", "../..", "a/b", "A", "%41", "x.y", "é ü", "\x00", "~", "a" * 80, "q?r#s&t=u"]
NO_RETRY = RetryPolicy(max_attempts=1, initial_interval=0, max_interval=0, retry_on=())


@task
def double(x: int) -> int:
    return 2 * x


@workflow(name="indexed")
def indexed(x: int) -> int:
    y = double(x).result()
    answer = interrupt("more?")
    return y + int(answer)


def _info(
    thread: str, seq: int, status: str = "completed", wf: str | None = "w", t: float = 1.5
) -> CheckpointInfo:
    return CheckpointInfo(thread, seq, "snapshot", status, t, 0, 0, workflow=wf)  # type: ignore[arg-type]


def _index_keys(store: ObjectStore, prefix: str = "") -> list[str]:
    return [o.key for o in store.list(status_index.index_prefix(prefix))]


@pytest.mark.parametrize("thread", HOSTILE)
@pytest.mark.parametrize("wf", [None, "w", "My.Workflow/ü", "~", "x" * 300])
def test_entry_keys_round_trip_for_hostile_ids_and_names(
    thread: str, wf: str | None, tmp_path: object
) -> None:
    key = status_index.entry_key("pre/", _info(thread, 7, "interrupted", wf, 1234.5678))
    entry = status_index.parse_entry_key("pre/", key)
    assert (entry.thread_id, entry.seq, entry.status) == (thread, 7, "interrupted")
    assert entry.updated_at == 1234.567
    if wf is not None and len(wf) == 300:
        assert entry.workflow_elided and entry.workflow is None
    else:
        assert entry.workflow == wf and not entry.workflow_elided
    assert key.startswith(status_index.thread_index_prefix("pre/", thread))
    # Every segment is a legal file name of the local store (no '..', no '/', <= 255 bytes).
    store = LocalStore(str(tmp_path))
    store.put(key, b"", CREATE)
    assert _index_keys(store, "pre/") == [key]


@pytest.mark.parametrize(
    "bad",
    [
        "v1/index/t/000000000001.completed.5",  # three fields
        "v1/index/t/000000000001.done.5.w",  # unknown status
        "v1/index/t/1.completed.5.w",  # not an inverted seq
        "v1/index/t/000000000001.completed.x5.w",  # not millis
        "v1/index/T/000000000001.completed.5.w",  # not an encoded thread id
        "v1/index/t/000000000001.completed.5.%61",  # not the canonical escape of "a"
        "v1/index/000000000001.completed.5.w",  # no thread folder
        "v1/threads/t/000000000001",  # a checkpoint key
    ],
)
def test_keys_that_are_not_entries_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        status_index.parse_entry_key("", bad)


def test_a_run_writes_one_entry_per_stop_and_deletes_the_superseded_one() -> None:
    counting = CountingStore(MemoryStore())
    saver = CheckpointLog(counting, prefix="app")
    first = indexed.run(4, thread_id="t/1", saver=saver)
    assert first.status == "interrupted"
    [key] = _index_keys(counting, "app/")
    entry = status_index.parse_entry_key("app/", key)
    head = saver.latest("t/1")
    assert head is not None
    assert (entry.thread_id, entry.seq, entry.status, entry.workflow) == (
        "t/1",
        head.seq,
        "interrupted",
        "indexed",
    )
    assert entry.updated_at == pytest.approx(head.info.created_at, abs=0.001)

    counting.reset()
    done = indexed.resume(1, thread_id="t/1", saver=saver)
    assert done.result == 9
    [key2] = _index_keys(counting, "app/")  # the interrupt's entry is gone
    assert status_index.parse_entry_key("app/", key2).status == "completed"
    assert counting.counts["DELETE"] == 1

    counting.reset()  # a run of a finished thread writes nothing, the index included
    assert indexed.run(4, thread_id="t/1", saver=saver).result == 9
    assert counting.counts["PUT"] == counting.counts["DELETE"] == 0


def test_readers_take_the_newest_entry_of_each_thread_and_tolerate_stale_ones() -> None:
    store = MemoryStore()
    for info in (_info("a", 3, "interrupted"), _info("a", 9, "completed"), _info("b", 1, "failed")):
        store.put(status_index.entry_key("", info), b"", CREATE)
    store.put("v1/index/a/garbage", b"", CREATE)
    found = [(e.thread_id, e.seq, e.status) for e in status_index.latest_entries(store, "")]
    assert found == [("a", 9, "completed"), ("b", 1, "failed")]


def test_delete_leaves_one_deleted_entry_and_purge_none() -> None:
    saver = CheckpointLog(MemoryStore())
    for thread in ("keep", "gone"):
        assert indexed.run(1, thread_id=thread, saver=saver).status == "interrupted"
    saver.delete_thread("keep")
    saver.delete_thread("gone", purge=True)
    found = [(e.thread_id, e.status) for e in status_index.latest_entries(saver.store, "")]
    assert found == [("keep", "deleted")]
    assert len(_index_keys(saver.store)) == 1
    # A new run on the deleted id supersedes the tombstone's entry.
    assert indexed.run(2, thread_id="keep", saver=saver).status == "interrupted"
    assert [(e.thread_id, e.status) for e in status_index.latest_entries(saver.store, "")] == [
        ("keep", "interrupted")
    ]
    assert len(_index_keys(saver.store)) == 1


def test_a_fork_updates_the_entry() -> None:
    saver = CheckpointLog(MemoryStore())
    first = indexed.run(1, thread_id="f", saver=saver)
    assert indexed.resume(5, thread_id="f", saver=saver).status == "completed"
    assert first.checkpoint_id is not None
    indexed.fork(thread_id="f", checkpoint_id=first.checkpoint_id, saver=saver)
    [entry] = status_index.latest_entries(saver.store, "")
    head = saver.latest("f")
    assert head is not None and (entry.seq, entry.status) == (head.seq, "interrupted")


class _FailingIndex(MemoryStore):
    """Every write under the index fails (transiently, for ever)."""

    def put(self, key: str, data: bytes, mode: PutMode = CREATE) -> str:
        if "/index/" in key:
            raise TransientStoreError("index down", key=key)
        return super().put(key, data, mode)


def test_an_index_that_cannot_be_written_never_fails_the_run() -> None:
    saver = CheckpointLog(_FailingIndex(), store_retry=NO_RETRY)
    run = indexed.run(3, thread_id="t", saver=saver)
    assert run.status == "interrupted"
    assert indexed.resume(1, thread_id="t", saver=saver).result == 7
    assert _index_keys(saver.store) == []


def test_record_stop_recognises_its_own_entry() -> None:
    store = CountingStore(MemoryStore())
    info = _info("t", 4)
    assert status_index.record_stop(store, "", info, None, retry=NO_RETRY) is not None
    assert status_index.record_stop(store, "", info, None, retry=NO_RETRY) == status_index.entry_key("", info)
    assert len(_index_keys(store)) == 1
    # A previous head's entry (a stop, or a running head indexed by reindex) is deleted.
    store.put(status_index.entry_key("", _info("t", 5, "running")), b"", CREATE)
    store.reset()
    status_index.record_stop(store, "", _info("t", 6), _info("t", 5, "running"), retry=NO_RETRY)
    assert store.counts["DELETE"] == 1
    assert [e.seq for e in status_index.latest_entries(store, "")] == [6]
    assert len(_index_keys(store)) == 2  # 4 and 6: 4 was superseded by nothing we were told of


def test_remove_entries_below_a_sequence_number() -> None:
    store = MemoryStore()
    for seq in (1, 4, 8):
        store.put(status_index.entry_key("", _info("t", seq)), b"", CREATE)
    assert status_index.remove_entries(store, "", "t", below=8, retry=NO_RETRY) == 2
    assert [e.seq for e in status_index.thread_entries(store, "", "t", retry=NO_RETRY)] == [8]
