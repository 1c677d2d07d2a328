"""verify: a clean store passes; each kind of damage is found, named and located (exit 1)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from cairnflow import ops
from cairnflow.core import UnsafePickleSerializer, codec, keys
from cairnflow.core.log import CheckpointLog
from cairnflow.core.store import OVERWRITE, ObjectStore
from cairnflow.savers import open_saver, open_store
from tests.cli.flows import Expected, long, order
from tests.cli.support import cli, one_line_error
from tests.emulators import StoreLocation

REPORT_FIELDS = {
    "store",
    "prefix",
    "thread_id",
    "ok",
    "threads_checked",
    "objects_checked",
    "errors",
    "warnings",
    "problems",
    "url",
}
PROBLEM_FIELDS = {"code", "severity", "thread_id", "checkpoint_id", "key", "message"}


def object_count(populated: dict[str, Expected]) -> int:
    return sum(e.head + 1 for e in populated.values())


def test_verify_clean_store(
    location: StoreLocation, populated: dict[str, Expected], capsys: pytest.CaptureFixture[str]
) -> None:
    result = cli(capsys, "verify", location.url)
    assert result.code == 0, result.out
    total = object_count(populated)
    assert result.out == f"ok: {total} object(s) in 6 thread(s) checked, 0 error(s), 0 warning(s)\n"
    doc = cli(capsys, "verify", location.url, "--json").json()
    assert set(doc) == REPORT_FIELDS
    assert (doc["ok"], doc["errors"], doc["warnings"], doc["problems"]) == (True, 0, 0, [])
    assert (doc["threads_checked"], doc["objects_checked"]) == (6, total)
    assert doc["thread_id"] is None and doc["url"] == location.url
    assert doc["prefix"] == ("wf/" if location.url.startswith("s3://") else "")
    one = cli(capsys, "verify", location.url, "long-1", "--json")
    assert one.code == 0
    assert (one.json()["thread_id"], one.json()["objects_checked"]) == (
        "long-1",
        populated["long-1"].head + 1,
    )
    assert "no thread 'nope'" in one_line_error(cli(capsys, "verify", location.url, "nope"), 4)


# --------------------------------------------------------------------------- damage


def _store(location: StoreLocation) -> tuple[ObjectStore, str]:
    return open_store(location.url)


def _key(location: StoreLocation, thread_id: str, seq: int) -> str:
    return keys.checkpoint_key(_store(location)[1], thread_id, seq)


def _rewrite(location: StoreLocation, thread_id: str, seq: int, change: Callable[[bytes], bytes]) -> None:
    store, _ = _store(location)
    key = _key(location, thread_id, seq)
    store.put(key, change(store.get(key).data), OVERWRITE)


def _reheader(location: StoreLocation, thread_id: str, seq: int, **fields: Any) -> None:
    """Rewrite a header with a valid checksum: damage only the logic can see."""

    def change(data: bytes) -> bytes:
        env = codec.decode(data)
        return codec.encode({**env.header, **fields}, env.body, env.flags)

    _rewrite(location, thread_id, seq, change)


def _flip(data: bytes) -> bytes:
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0x01]) + data[middle + 1 :]


def _a_plain_delta(location: StoreLocation, thread_id: str) -> int:
    """A delta in the middle of the thread that is nobody's base."""
    saver = open_saver(location.url)
    infos = list(saver.history(thread_id))
    bases = {saver.get(thread_id, i.seq).base_seq for i in infos}
    return next(i.seq for i in infos[1:-1] if i.kind == "delta" and i.seq not in bases)


def damage_corrupt(location: StoreLocation) -> set[tuple[str, str | None, int | None]]:
    _rewrite(location, "done-1", 2, _flip)
    return {("corrupt", "done-1", 2)}


def damage_truncated(location: StoreLocation) -> set[tuple[str, str | None, int | None]]:
    _rewrite(location, "wait-1", 1, lambda d: d[:-7])
    return {("corrupt", "wait-1", 1)}


def damage_newer_format(location: StoreLocation) -> set[tuple[str, str | None, int | None]]:
    _rewrite(location, "run-1", 0, lambda d: d[:3] + b"\x02" + d[4:])
    return {("unsupported_format", "run-1", 0)}


def damage_gap(location: StoreLocation) -> set[tuple[str, str | None, int | None]]:
    seq = _a_plain_delta(location, "long-1")
    store, _ = _store(location)
    store.delete(_key(location, "long-1", seq))
    return {("gap", "long-1", seq)}


def damage_missing_base(location: StoreLocation) -> set[tuple[str, str | None, int | None]]:
    store, _ = _store(location)
    store.delete(_key(location, "done-1", 0))  # the oldest: no gap, but deltas 1..3 lose their base
    return {("missing_base", "done-1", 1), ("missing_base", "done-1", 2), ("missing_base", "done-1", 3)}


def damage_key_mismatch(location: StoreLocation) -> set[tuple[str, str | None, int | None]]:
    store, _ = _store(location)
    other = store.get(_key(location, "done-1", 0)).data
    store.put(_key(location, "susp-1", 0), other, OVERWRITE)  # an object copied to the wrong place
    return {("key_mismatch", "susp-1", 0)}


def damage_foreign(location: StoreLocation) -> set[tuple[str, str | None, int | None]]:
    store, prefix = _store(location)
    store.put(f"{prefix}notes.txt", b"hello", OVERWRITE)
    store.put(f"{prefix}v1/threads/done-1/zz-junk", b"junk", OVERWRITE)
    return {("foreign_object", None, None), ("foreign_object", "done-1", None)}


def damage_counts(location: StoreLocation) -> set[tuple[str, str | None, int | None]]:
    _reheader(location, "fail-1", 1, total=9)
    return {("count_mismatch", "fail-1", 1)}


def damage_bad_header(location: StoreLocation) -> set[tuple[str, str | None, int | None]]:
    _reheader(location, "fail-1", 2, kind="sideways")
    return {("bad_header", "fail-1", 2)}


def damage_bad_base(location: StoreLocation) -> set[tuple[str, str | None, int | None]]:
    _reheader(location, "done-1", 3, base=2)  # a delta on a delta
    return {("bad_base", "done-1", 3)}


DAMAGE = {
    "corrupt": damage_corrupt,
    "truncated": damage_truncated,
    "newer-format": damage_newer_format,
    "gap": damage_gap,
    "missing-base": damage_missing_base,
    "key-mismatch": damage_key_mismatch,
    "foreign-object": damage_foreign,
    "count-mismatch": damage_counts,
    "bad-header": damage_bad_header,
    "bad-base": damage_bad_base,
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_verify_finds_damage(
    location: StoreLocation,
    populated: dict[str, Expected],
    capsys: pytest.CaptureFixture[str],
    damage: str,
) -> None:
    expected = DAMAGE[damage](location)
    result = cli(capsys, "verify", location.url, "--json")
    assert result.code == 1, result.out
    doc = result.json()
    assert doc["ok"] is False and doc["errors"] >= len(expected)
    found = set()
    for problem in doc["problems"]:
        assert set(problem) == PROBLEM_FIELDS
        assert problem["severity"] == "error"
        assert problem["message"]
        seq = None if problem["checkpoint_id"] is None else int(problem["checkpoint_id"])
        found.add((problem["code"], problem["thread_id"], seq))
        if problem["code"] != "gap":
            assert problem["key"]
    assert expected <= found, doc["problems"]
    damaged = {thread for _, thread, _ in expected}
    assert {thread for _, thread, _ in found} <= damaged  # no false alarm elsewhere
    # Human output: the same, as a table and a verdict, exit 1.
    human = cli(capsys, "verify", location.url)
    assert human.code == 1
    assert human.out.splitlines()[0].split() == ["SEVERITY", "PROBLEM", "THREAD", "CHECKPOINT", "DETAIL"]
    assert human.out.splitlines()[-1].startswith("PROBLEMS FOUND: ")
    for code, _, _ in expected:
        assert f" {code} " in human.out
    # A thread that was not damaged still verifies on its own.
    clean = next(t for t in sorted(populated) if t not in damaged)
    assert cli(capsys, "verify", location.url, clean).code == 0


# --------------------------------------------------------------------------- sound histories


def test_verify_accepts_tombstones_leftovers_reruns_and_forks(
    local_location: StoreLocation, capsys: pytest.CaptureFixture[str]
) -> None:
    url = local_location.url
    saver = open_saver(url)
    order.run({"a": 1, "b": 1}, thread_id="t", saver=saver)
    order.resume("no", thread_id="t", saver=saver)
    order.fork(thread_id="t", checkpoint_id="2", saver=saver)  # time travel: a fork checkpoint
    order.resume("yes", thread_id="t", saver=saver)
    kinds = [i.kind for i in saver.history("t")]
    assert kinds[:3] == ["delta", "delta", "fork"]
    assert cli(capsys, "verify", url).code == 0

    # An interrupted delete: tombstone written, only the oldest checkpoints removed so far.
    store, _ = open_store(url)
    copies = {seq: store.get(_key(local_location, "t", seq)).data for seq in range(5, 8)}
    saver.delete_thread("t")
    for seq, data in copies.items():
        store.put(_key(local_location, "t", seq), data)
    assert cli(capsys, "verify", url).code == 0
    # A new run on the same id starts above the tombstone.
    long.run(3, thread_id="t2", saver=saver)
    saver.delete_thread("t2")
    long.run(3, thread_id="t2", saver=saver)
    assert [i.kind for i in saver.history("t2")][-1] == "tombstone"
    report = ops.verify(saver)
    assert report.ok and report.problems == ()


def test_verify_warns_about_bodies_it_will_not_load(
    local_location: StoreLocation, capsys: pytest.CaptureFixture[str]
) -> None:
    store, prefix = open_store(local_location.url)
    pickled = CheckpointLog(store, prefix=prefix, serializer=UnsafePickleSerializer())
    long.run(2, thread_id="p", saver=pickled)
    result = cli(capsys, "verify", local_location.url, "--json")
    assert result.code == 0
    (warning,) = result.json()["problems"]
    assert (warning["code"], warning["severity"], warning["thread_id"]) == ("unchecked_body", "warning", "p")
    assert "'pickle'" in warning["message"]
    # show still works, without loading the values
    shown = cli(capsys, "show", local_location.url, "p", "--json").json()
    assert (shown["status"], shown["values_readable"], shown["records"]) == ("completed", False, None)
    assert "pickle" in shown["unreadable"]


def test_verify_reports_progress(local_location: StoreLocation) -> None:
    saver = open_saver(local_location.url)
    long.run(5, thread_id="a", saver=saver)
    long.run(2, thread_id="b", saver=saver)
    seen: list[tuple[int, int]] = []
    report = ops.verify(saver, progress=lambda o, t: seen.append((o, t)))
    # start + 5 tasks + end, start + 2 tasks + end
    assert report.ok and (report.objects_checked, report.threads_checked) == (7 + 4, 2)
    assert seen[-1] == (11, 2)
    assert [o for o, _ in seen] == sorted(o for o, _ in seen)


def test_other_commands_live_with_damage(
    location: StoreLocation, populated: dict[str, Expected], capsys: pytest.CaptureFixture[str]
) -> None:
    """A damaged thread shows as ``corrupt``; the rest of the store stays usable."""
    damage_foreign(location)
    _rewrite(location, "long-1", populated["long-1"].head, _flip)  # the newest checkpoint
    listed = cli(capsys, "threads", location.url, "--json")
    assert listed.code == 0
    by_id = {t["thread_id"]: t for t in listed.json()["threads"]}
    assert set(by_id) == set(populated)
    assert by_id["long-1"]["status"] == "corrupt"
    assert "checksum mismatch" in by_id["long-1"]["error"]
    assert by_id["done-1"]["status"] == "completed"
    assert cli(capsys, "threads", location.url, "--status", "corrupt", "--json").json()["count"] == 1
    # history skips the foreign object under done-1; show of the damaged head is a data error
    history = cli(capsys, "history", location.url, "done-1", "--json").json()
    assert [c["checkpoint_id"] for c in history["checkpoints"]] == ["4", "3", "2", "1", "0"]
    line = one_line_error(cli(capsys, "show", location.url, "long-1"), 3)
    assert "checksum mismatch" in line and "cairnflow verify" in line
    # prune leaves a thread it cannot read alone and says so (exit 1)
    result = cli(capsys, "prune", location.url, "--keep-last", "1", "--json")
    assert result.code == 1
    skipped = [t for t in result.json()["threads"] if t["action"] == "skip"]
    assert [(t["thread_id"], t["status"]) for t in skipped] == [("long-1", "corrupt")]
    assert "checksum mismatch" in skipped[0]["reason"]
    assert len(list(open_saver(location.url).store.list(_key(location, "long-1", 0)))) == 1
