"""The committer: when each durability mode writes, group commit, and a failed write poisoning the run."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import pytest

from cairnflow.core.checkpoint import Checkpoint
from cairnflow.core.committer import Committer
from cairnflow.core.errors import ConflictError
from cairnflow.core.log import CheckpointLog
from cairnflow.savers.memory import MemoryStore


class RecordingLog(CheckpointLog):
    """A log that remembers each append's records and status, and can hold or fail one."""

    def __init__(self) -> None:
        super().__init__(MemoryStore())
        self.appends: list[tuple[list[Any], str]] = []
        self.hold: threading.Event | None = None
        self.entered = threading.Event()
        self.fail_with: BaseException | None = None

    def append(
        self,
        thread_id: str,
        head: Checkpoint | None,
        records: Sequence[Any],
        *,
        status: Any,
        workflow: str | None = None,
    ) -> Checkpoint:
        self.entered.set()
        if self.hold is not None:
            assert self.hold.wait(10)
        if self.fail_with is not None:
            raise self.fail_with
        self.appends.append((list(records), status))
        return super().append(thread_id, head, records, status=status, workflow=workflow)


def rec(n: int) -> dict[str, Any]:
    return {"op": "task", "pos": n, "name": "t", "args": "0", "value": n}


def test_sync_writes_each_commit_before_returning_and_stage_waits_for_the_next() -> None:
    log = RecordingLog()
    committer = Committer(log, "t", None, "sync", "wf")
    committer.stage([{"op": "start"}])
    assert log.appends == []  # staged: no write of its own
    committer.commit([rec(0)])
    assert log.appends == [([{"op": "start"}, rec(0)], "running")]
    committer.finish([{"op": "end"}], "completed")
    assert log.appends[-1] == ([{"op": "end"}], "completed")
    assert committer.writes == 2


def test_sync_group_commit_shares_a_write_among_results_that_wait() -> None:
    log = RecordingLog()
    log.hold = threading.Event()
    committer = Committer(log, "t", None, "sync", "wf")
    first = threading.Thread(target=committer.commit, args=([rec(0)],))
    first.start()
    assert log.entered.wait(10)  # the first write is in flight and held
    waiting = [threading.Thread(target=committer.commit, args=([rec(n)],)) for n in (1, 2)]
    for t in waiting:
        t.start()
    for _ in range(10_000):  # both queued behind the write in flight (polled, bounded)
        if committer.queued() >= 3:
            break
        threading.Event().wait(0.001)
    assert committer.queued() == 3
    log.hold.set()
    for t in (first, *waiting):
        t.join(10)
    assert [len(records) for records, _ in log.appends] == [1, 2]  # three results, two writes


def test_exit_mode_writes_once_at_finish() -> None:
    log = RecordingLog()
    committer = Committer(log, "t", None, "exit", "wf")
    committer.commit([rec(0)])
    committer.commit([rec(1)], wait=True)  # cannot wait in exit mode: still nothing written
    assert log.appends == []
    committer.finish([{"op": "end"}], "completed")
    assert log.appends == [([rec(0), rec(1), {"op": "end"}], "completed")]


def test_async_mode_writes_in_the_background_and_finish_joins_the_writer() -> None:
    log = RecordingLog()
    committer = Committer(log, "t", None, "async", "wf")
    committer.commit([rec(0)], wait=True)
    assert log.appends[0][0] == [rec(0)]
    committer.commit([rec(1)])
    committer.finish([{"op": "end"}], "completed")
    written = [r for records, _ in log.appends for r in records]
    assert written == [rec(0), rec(1), {"op": "end"}]
    assert not [t for t in threading.enumerate() if t.name == "cairnflow-writer"]


def test_a_failed_write_poisons_the_committer() -> None:
    log = RecordingLog()
    log.fail_with = ConflictError("lost", thread_id="t")
    committer = Committer(log, "t", None, "sync", "wf")
    with pytest.raises(ConflictError):
        committer.commit([rec(0)])
    log.fail_with = None
    with pytest.raises(ConflictError):
        committer.commit([rec(1)])  # nothing more is written after the first failure
    assert committer.error is not None and log.appends == []
