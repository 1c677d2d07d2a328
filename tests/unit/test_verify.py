"""verify reads headers through core.format and applies its rules (no emulator: a MemoryStore)."""

from __future__ import annotations

from typing import Any

from cairnflow.core import codec, keys
from cairnflow.core.log import CheckpointLog
from cairnflow.core.store import OVERWRITE
from cairnflow.core.verify import verify
from cairnflow.savers.memory import MemoryStore


def _thread(log: CheckpointLog, n: int) -> None:
    head = log.append("t", None, [{"op": "start"}], status="running")
    for i in range(n):
        head = log.append("t", head, [{"op": "task", "i": i}], status="running")


def _reheader(log: CheckpointLog, at: int, **fields: Any) -> None:
    key = keys.checkpoint_key(log.prefix, "t", at)
    env = codec.decode(log.store.get(key).data)
    log.store.put(key, codec.encode({**env.header, **fields}, env.body, env.flags), OVERWRITE)


def _codes(log: CheckpointLog) -> set[tuple[str, int | None]]:
    return {(p.code, p.seq) for p in verify(log, workers=2).problems}


def test_a_sound_thread_has_no_problem() -> None:
    log = CheckpointLog(MemoryStore(), prefix="p")
    _thread(log, 3)
    report = verify(log, workers=2)
    assert report.ok and report.objects_checked == 4 and report.threads_checked == 1


def test_header_rules_come_with_their_codes() -> None:
    log = CheckpointLog(MemoryStore(), prefix="p")
    _thread(log, 3)
    _reheader(log, 1, new=7)  # more than it holds: a rule between fields
    _reheader(log, 2, kind="patch")  # an unknown kind: a field
    _reheader(log, 3, seq=9)  # moved: the header disagrees with its key
    assert _codes(log) == {("count_mismatch", 1), ("bad_header", 2), ("key_mismatch", 3)}


def test_a_delta_on_a_tombstone_base_is_a_bad_base() -> None:
    log = CheckpointLog(MemoryStore(), prefix="p", snapshot_every=100)
    _thread(log, 2)  # 0 snapshot, 1..2 deltas on 0
    _reheader(log, 0, kind="tombstone", status="deleted", new=0, total=0)
    codes = _codes(log)
    assert ("bad_base", 1) in codes and ("bad_base", 2) in codes
