"""threads, history, show, delete and prune, on the local store and on S3 (moto).

The data comes from real workflow runs (tests/cli/flows.py): one thread each
completed, interrupted, failed, running (the process "died") and suspended,
plus a long completed thread with several snapshots.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from typing import Any

import pytest

from cairnflow import ops
from cairnflow.core import ConflictError
from cairnflow.core.errors import ThreadNotFoundError
from cairnflow.savers import open_saver
from tests.cli.flows import CALLS, Expected, populate, review, small_snapshot_saver
from tests.cli.support import FakeTTY, cli, one_line_error, recent
from tests.emulators import StoreLocation

Snapshot = Callable[[StoreLocation], dict[str, bytes]]

THREAD_FIELDS = {
    "thread_id",
    "layout",
    "status",
    "workflow",
    "checkpoint_id",
    "checkpoints",
    "steps",
    "records",
    "updated_at",
    "error",
    "waiting_for",
}
HISTORY_FIELDS = {
    "checkpoint_id",
    "kind",
    "status",
    "created_at",
    "new_records",
    "total_records",
    "base",
    "parent",
    "workflow",
    "summary",
    "records",
}
STATE_FIELDS = {
    "thread_id",
    "checkpoint_id",
    "latest_checkpoint_id",
    "is_latest",
    "kind",
    "status",
    "workflow",
    "created_at",
    "total_records",
    "values_readable",
    "unreadable",
    "input",
    "result",
    "error",
    "interrupt",
    "steps",
    "records",
}
STEP_FIELDS = {"pos", "type", "name", "status", "value", "error", "answer"}
PRUNED_FIELDS = {
    "thread_id",
    "layout",
    "status",
    "updated_at",
    "action",
    "deleted",
    "deleted_count",
    "keep_from",
    "head",
    "reason",
}


def thread_ids(capsys: pytest.CaptureFixture[str], url: str, *args: str) -> list[str]:
    result = cli(capsys, "threads", url, "--json", *args)
    return [t["thread_id"] for t in result.json()["threads"]]


def thread_keys(objects: dict[str, bytes], thread_id: str) -> dict[str, bytes]:
    return {k: v for k, v in objects.items() if f"/threads/{thread_id}/" in f"/{k}"}


# --------------------------------------------------------------------------- threads


def test_threads_json_field_by_field(
    location: StoreLocation, populated: dict[str, Expected], capsys: pytest.CaptureFixture[str]
) -> None:
    result = cli(capsys, "threads", location.url, "--json")
    assert result.code == 0, result.err
    doc = result.json()
    assert set(doc) == {"store", "count", "threads"}
    assert doc["store"] == location.url
    assert doc["count"] == len(populated) == len(doc["threads"])
    listed = [t["thread_id"] for t in doc["threads"]]
    assert listed == sorted(populated)
    for entry in doc["threads"]:
        expected = populated[entry["thread_id"]]
        assert set(entry) == THREAD_FIELDS
        assert entry["status"] == expected.status
        assert entry["workflow"] == expected.workflow
        assert entry["steps"] == expected.steps
        assert entry["checkpoint_id"] == str(expected.head)
        assert entry["checkpoints"] == expected.head + 1
        assert entry["records"] == expected.records
        assert recent(entry["updated_at"])
        assert entry["error"] == expected.error
        assert entry["waiting_for"] == expected.waiting_for


def test_threads_human_table(
    location: StoreLocation, populated: dict[str, Expected], capsys: pytest.CaptureFixture[str]
) -> None:
    result = cli(capsys, "threads", location.url)
    assert result.code == 0
    header, *rows = result.out.splitlines()
    columns = ["THREAD", "LAYOUT", "STATUS", "WORKFLOW", "STEPS", "CHECKPOINT", "UPDATED", "DETAIL"]
    assert header.split() == columns
    starts = [header.index(c) for c in columns]
    by_id = {row.split()[0]: row for row in rows}
    assert set(by_id) == set(populated)
    for thread_id, row in by_id.items():
        expected = populated[thread_id]

        def cell(i: int, row: str = row) -> str:
            return row[starts[i] :].split("  ")[0].strip()

        assert cell(1) == "executor"
        assert cell(2) == expected.status
        assert cell(3) == expected.workflow
        assert cell(4) == str(expected.steps)
        assert cell(5) == str(expected.head)
        assert re.fullmatch(r"just now|\d+s ago|\d+m ago", cell(6)), cell(6)
    assert by_id["fail-1"][starts[7] :] == "ValueError: boom 4"
    assert by_id["wait-1"][starts[7] :] == 'waiting: {"question": "ship?", "x": 7}'
    assert "\x1b[" not in result.out  # stdout is not a terminal: no colour
    assert result.err == ""  # nor a progress indicator


def test_threads_filters_and_limit(
    location: StoreLocation, populated: dict[str, Expected], capsys: pytest.CaptureFixture[str]
) -> None:
    url = location.url
    assert thread_ids(capsys, url, "--status", "failed") == ["fail-1"]
    assert thread_ids(capsys, url, "--status", "interrupted,suspended") == ["susp-1", "wait-1"]
    assert thread_ids(capsys, url, "--status", "running", "--status", "completed") == [
        "done-1",
        "long-1",
        "run-1",
    ]
    assert thread_ids(capsys, url, "--workflow", "order") == ["done-1", "susp-1", "wait-1"]
    assert thread_ids(capsys, url, "--limit", "2") == ["done-1", "fail-1"]
    assert thread_ids(capsys, url, "--newer-than", "1h") == sorted(populated)
    assert thread_ids(capsys, url, "--sort", "updated", "--limit", "1") == ["long-1"]  # written last
    # Nothing matched: exit 1 (like grep), a note on stderr, nothing on stdout.
    result = cli(capsys, "threads", url, "--older-than", "1d")
    assert (result.code, result.out) == (1, "")
    assert "no threads match" in result.err
    result = cli(capsys, "threads", url, "--status", "deleted", "--json")
    assert result.code == 1
    assert result.json()["threads"] == []


# --------------------------------------------------------------------------- history


def test_history_json_field_by_field(
    location: StoreLocation, populated: dict[str, Expected], capsys: pytest.CaptureFixture[str]
) -> None:
    result = cli(capsys, "history", location.url, "done-1", "--json")
    assert result.code == 0, result.err
    doc = result.json()
    assert set(doc) == {"thread_id", "checkpoints"}
    assert doc["thread_id"] == "done-1"
    cps = doc["checkpoints"]
    assert [c["checkpoint_id"] for c in cps] == ["4", "3", "2", "1", "0"]  # newest first
    for c in cps:
        assert set(c) == HISTORY_FIELDS
        assert recent(c["created_at"])
        assert c["workflow"] == "order"
        assert c["parent"] is None
    assert [c["kind"] for c in cps] == ["delta", "delta", "delta", "delta", "snapshot"]
    assert [c["status"] for c in cps] == ["completed", "running", "interrupted", "running", "running"]
    assert [c["new_records"] for c in cps] == [1, 1, 1, 1, 1]
    assert [c["total_records"] for c in cps] == [5, 4, 3, 2, 1]
    assert [c["base"] for c in cps] == ["0", "0", "0", "0", None]
    (start,) = cps[4]["records"]  # the start is written before the first task runs
    (first_task,) = cps[3]["records"]
    assert start["op"] == "start" and start["workflow"] == "order" and start["input"] == {"a": 1, "b": 2}
    assert {k: v for k, v in first_task.items() if k != "args"} == {
        "op": "task",
        "pos": 0,
        "name": "add",
        "value": 3,
    }
    assert cps[2]["records"] == [{"op": "interrupt", "pos": 1, "value": {"question": "ship?", "x": 3}}]
    assert cps[1]["records"] == [{"op": "resume", "pos": 1, "value": "yes"}]
    end_value = {"x": 3, "answer": "yes", "raw": {"$bytes": "b2s="}, "pair": [3, "yes"]}
    assert cps[0]["records"] == [{"op": "end", "status": "completed", "value": end_value}]
    assert cps[4]["summary"] == ['start order input={"a": 1, "b": 2}']
    assert cps[3]["summary"] == ["task #0 add -> 3"]
    assert cps[2]["summary"] == ['interrupt #1: {"question": "ship?", "x": 3}']
    assert cps[1]["summary"] == ['answer #1: "yes"']
    # Summaries are one line each; long values are cut at 60 characters (the records are whole).
    assert cps[0]["summary"] == ['completed -> {"answer": "yes", "pair": [3, "yes"], "raw": {"$bytes": "b2…']
    limited = cli(capsys, "history", location.url, "done-1", "--limit", "2", "--json").json()
    assert [c["checkpoint_id"] for c in limited["checkpoints"]] == ["4", "3"]


def test_history_human(
    location: StoreLocation, populated: dict[str, Expected], capsys: pytest.CaptureFixture[str]
) -> None:
    result = cli(capsys, "history", location.url, "fail-1")
    assert result.code == 0
    header, *rows = result.out.splitlines()
    assert header.split() == ["CHECKPOINT", "KIND", "STATUS", "WRITTEN", "RECORDS", "RECORDED"]
    recorded = header.index("RECORDED")
    assert [r.split()[0] for r in rows if r[:1].strip()] == ["3", "2", "1", "0"]
    assert rows[0].split()[:3] == ["3", "delta", "failed"]
    assert rows[0][recorded:] == "failed: ValueError: boom 4"
    assert rows[1][recorded:] == "task #1 boom failed: ValueError: boom 4"
    assert rows[2][recorded:] == "task #0 add -> 4"
    assert rows[3][recorded:] == "start fragile input=3"
    assert "+1 =1" in rows[3]
    # A checkpoint of several records: one line each (the suspended run wrote start and suspend).
    header, *rows = cli(capsys, "history", location.url, "susp-1").out.splitlines()
    recorded = header.index("RECORDED")
    assert rows[0][recorded:].startswith("start order input=")
    assert rows[1][recorded:] == "suspended (deadline)"  # a continuation line of checkpoint 0
    assert rows[1][:recorded].strip() == ""
    assert "+2 =2" in rows[0]


# --------------------------------------------------------------------------- show


def test_show_json_field_by_field(
    location: StoreLocation, populated: dict[str, Expected], capsys: pytest.CaptureFixture[str]
) -> None:
    def show(*args: str) -> Any:
        result = cli(capsys, "show", location.url, *args, "--json")
        assert result.code == 0, result.err
        doc = result.json()
        assert set(doc) == STATE_FIELDS
        for step in doc["steps"]:
            assert set(step) == STEP_FIELDS
        assert recent(doc["created_at"])
        assert doc["values_readable"] is True
        return doc

    done = show("done-1")
    assert done["thread_id"] == "done-1"
    assert (done["checkpoint_id"], done["latest_checkpoint_id"], done["is_latest"]) == ("4", "4", True)
    assert (done["kind"], done["status"], done["workflow"]) == ("delta", "completed", "order")
    assert done["total_records"] == 5 == len(done["records"])
    assert done["input"] == {"a": 1, "b": 2}
    assert done["result"] == {"x": 3, "answer": "yes", "raw": {"$bytes": "b2s="}, "pair": [3, "yes"]}
    assert done["error"] is None and done["interrupt"] is None
    assert done["steps"] == [
        {
            "pos": 0,
            "type": "task",
            "name": "add",
            "status": "done",
            "value": 3,
            "error": None,
            "answer": None,
        },
        {
            "pos": 1,
            "type": "interrupt",
            "name": None,
            "status": "answered",
            "value": {"question": "ship?", "x": 3},
            "error": None,
            "answer": "yes",
        },
    ]

    wait = show("wait-1")
    assert (wait["status"], wait["checkpoint_id"], wait["result"]) == ("interrupted", "2", None)
    assert wait["interrupt"] == {"id": "1", "value": {"question": "ship?", "x": 7}}
    assert [s["status"] for s in wait["steps"]] == ["done", "waiting"]

    fail = show("fail-1")
    assert (fail["status"], fail["error"]) == ("failed", "ValueError: boom 4")
    assert fail["steps"][1] == {
        "pos": 1,
        "type": "task",
        "name": "boom",
        "status": "failed",
        "value": None,
        "error": "ValueError: boom 4",
        "answer": None,
    }

    running = show("run-1")
    assert (running["status"], running["kind"], len(running["steps"])) == ("running", "delta", 1)
    suspended = show("susp-1")
    assert (suspended["status"], suspended["steps"]) == ("suspended", [])

    # An older checkpoint: the state as it was then.
    old = show("done-1", "2")
    assert (old["checkpoint_id"], old["latest_checkpoint_id"], old["is_latest"]) == ("2", "4", False)
    assert old["status"] == "interrupted"
    assert old["interrupt"] == {"id": "1", "value": {"question": "ship?", "x": 3}}
    assert old["result"] is None and old["total_records"] == 3


def test_show_human(
    location: StoreLocation, populated: dict[str, Expected], capsys: pytest.CaptureFixture[str]
) -> None:
    result = cli(capsys, "show", location.url, "wait-1")
    assert result.code == 0
    lines = result.out.splitlines()
    assert lines[:4] == [
        "thread       wait-1",
        "workflow     order",
        "status       interrupted",
        "checkpoint   2 (delta, latest)",
    ]
    assert "waiting for  interrupt 1: {" in lines
    assert '               "question": "ship?",' in lines
    table = lines[lines.index("") + 1 :]
    assert table[0].split() == ["POS", "TYPE", "NAME", "STATUS", "VALUE"]
    assert table[1].split()[:5] == ["0", "task", "add", "done", "7"]
    assert table[2].split()[:4] == ["1", "interrupt", "-", "waiting"]


# --------------------------------------------------------------------------- delete


def test_delete_dry_run_then_delete(
    location: StoreLocation,
    populated: dict[str, Expected],
    capsys: pytest.CaptureFixture[str],
    snapshot: Snapshot,
) -> None:
    url = location.url
    before = snapshot(location)
    plan = {
        "thread_id": "fail-1",
        "layout": "executor",
        "dry_run": True,
        "status": "failed",
        "deleted": ["0", "1", "2", "3"],
        "deleted_count": 4,
        "tombstone": "4",
        "purged": False,
    }
    result = cli(capsys, "delete", url, "fail-1", "--dry-run", "--json")
    assert (result.code, result.json()) == (0, plan)
    result = cli(capsys, "delete", url, "fail-1", "--dry-run")
    assert result.out.startswith("would delete thread 'fail-1' (failed): 4 checkpoint(s) (0..3)")
    assert snapshot(location) == before
    # Off a terminal, a delete without --yes is refused and changes nothing.
    one_line_error(cli(capsys, "delete", url, "fail-1"), 2)
    assert snapshot(location) == before

    saver = open_saver(url)
    stale = saver.latest("fail-1")  # a writer that loaded the thread before the delete
    result = cli(capsys, "delete", url, "fail-1", "--yes", "--json")
    assert (result.code, result.json()) == (0, {**plan, "dry_run": False})
    assert [(i.seq, i.kind) for i in saver.history("fail-1")] == [(4, "tombstone")]
    with pytest.raises(ConflictError):
        saver.append("fail-1", stale, [{"op": "suspend"}], status="running")
    assert "fail-1" not in thread_ids(capsys, url)
    assert thread_ids(capsys, url, "--status", "deleted") == ["fail-1"]
    assert "was deleted" in one_line_error(cli(capsys, "show", url, "fail-1"), 4)
    assert "already deleted" in one_line_error(cli(capsys, "delete", url, "fail-1", "--yes"), 4)
    after = snapshot(location)
    assert {k: v for k, v in after.items() if "fail-1" not in k} == {
        k: v for k, v in before.items() if "fail-1" not in k
    }

    result = cli(capsys, "delete", url, "fail-1", "--yes", "--purge", "--json")
    purged = {"dry_run": False, "status": "deleted", "deleted": ["4"], "deleted_count": 1, "tombstone": None}
    assert result.json() == {**plan, **purged, "purged": True}
    assert thread_keys(snapshot(location), "fail-1") == {}


def test_delete_asks_on_a_terminal(
    location: StoreLocation,
    populated: dict[str, Expected],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    snapshot: Snapshot,
) -> None:
    before = snapshot(location)
    monkeypatch.setattr(sys, "stdin", FakeTTY("n\n"))
    result = cli(capsys, "delete", location.url, "wait-1")
    assert result.code == 1
    assert "delete thread 'wait-1' (interrupted, 3 checkpoint(s))? [y/N]" in result.err
    assert snapshot(location) == before
    monkeypatch.setattr(sys, "stdin", FakeTTY("y\n"))
    result = cli(capsys, "delete", location.url, "wait-1")
    assert result.code == 0
    assert result.out.startswith("deleted thread 'wait-1' (interrupted): 3 checkpoint(s)")
    assert [i.kind for i in open_saver(location.url).history("wait-1")] == ["tombstone"]


# --------------------------------------------------------------------------- prune


def expected_trim(url: str, thread_ids: list[str], keep: int) -> dict[str, tuple[list[int], int]]:
    """Worked out from the saver's public API: keep the newest N and the base of the oldest of them."""
    saver = open_saver(url)
    out = {}
    for thread_id in thread_ids:
        infos = list(saver.history(thread_id))
        if len(infos) <= keep:
            continue
        cut = saver.get(thread_id, infos[keep - 1].seq).base_seq
        doomed = sorted(i.seq for i in infos if i.seq < cut)
        if doomed:
            out[thread_id] = (doomed, cut)
    return out


def test_prune_keep_last(
    location: StoreLocation,
    populated: dict[str, Expected],
    capsys: pytest.CaptureFixture[str],
    snapshot: Snapshot,
) -> None:
    url = location.url
    before = snapshot(location)
    expected = expected_trim(url, sorted(populated), 2)
    assert set(expected) == {"long-1"}  # the others' newest two still need their first snapshot
    result = cli(capsys, "prune", url, "--keep-last", "2", "--dry-run", "--json")
    assert result.code == 0, result.err
    assert snapshot(location) == before
    plan = result.json()
    assert plan["mode"] == "keep-last" and plan["dry_run"] is True
    assert (plan["keep_last"], plan["older_than_seconds"]) == (2, None)
    assert plan["threads_examined"] == len(populated)
    assert (plan["threads_affected"], plan["threads_skipped"]) == (1, 0)
    assert plan["checkpoints_deleted"] == len(expected["long-1"][0])
    (entry,) = plan["threads"]
    assert set(entry) == PRUNED_FIELDS
    assert (entry["thread_id"], entry["status"], entry["action"]) == ("long-1", "completed", "trim")
    assert [int(s) for s in entry["deleted"]] == expected["long-1"][0]
    assert int(entry["keep_from"]) == expected["long-1"][1]
    assert entry["head"] == str(populated["long-1"].head) and entry["reason"] is None

    saver = open_saver(url)
    states = {t: saver.latest(t) for t in populated}
    result = cli(capsys, "prune", url, "--keep-last", "2", "--json")
    assert result.code == 0
    assert result.json()["threads"] == plan["threads"]
    assert result.json()["dry_run"] is False
    cut = expected["long-1"][1]
    assert [i.seq for i in saver.history("long-1")] == list(range(populated["long-1"].head, cut - 1, -1))
    for thread_id in populated:  # every kept checkpoint is readable, the latest state unchanged
        for info in saver.history(thread_id):
            saver.get(thread_id, info.seq)
        latest, earlier = saver.latest(thread_id), states[thread_id]
        assert latest is not None and earlier is not None and latest.records == earlier.records
    assert cli(capsys, "verify", url).code == 0
    again = cli(capsys, "prune", url, "--keep-last", "2", "--json").json()
    assert again["threads"] == [] and again["checkpoints_deleted"] == 0
    human = cli(capsys, "prune", url, "--keep-last", "1", "--dry-run")
    assert human.out.splitlines()[-1].startswith("would delete ")


def test_prune_keep_last_then_resume(
    location: StoreLocation, populated: dict[str, Expected], capsys: pytest.CaptureFixture[str]
) -> None:
    """An interrupted thread pruned to its last checkpoint still resumes, re-running nothing."""
    url = location.url
    run = review.run(20, thread_id="review-1", saver=small_snapshot_saver(url))
    assert run.status == "interrupted"
    expected = expected_trim(url, ["review-1"], 1)
    assert expected  # the head is a delta on a late snapshot: there is something to trim
    result = cli(capsys, "prune", url, "--keep-last", "1", "--status", "interrupted", "--json")
    doc = result.json()
    assert [t["thread_id"] for t in doc["threads"]] == ["review-1"]  # the status filter held
    assert [int(s) for s in doc["threads"][0]["deleted"]] == expected["review-1"][0]
    calls = CALLS.copy()
    done = review.resume("go", thread_id="review-1", saver=open_saver(url))
    assert (done.status, done.result) == ("completed", {"total": sum(range(20)), "answer": "go"})
    assert calls == CALLS
    assert cli(capsys, "verify", url, "review-1").code == 0


def test_prune_older_than(
    location: StoreLocation,
    populated: dict[str, Expected],
    capsys: pytest.CaptureFixture[str],
    snapshot: Snapshot,
) -> None:
    url = location.url
    before = snapshot(location)
    result = cli(capsys, "prune", url, "--older-than", "1d", "--json")
    assert result.code == 0 and result.json()["threads"] == []
    assert snapshot(location) == before

    result = cli(capsys, "prune", url, "--older-than", "0s", "--dry-run", "--json")
    assert snapshot(location) == before
    plan = result.json()
    assert plan["statuses"] == ["completed"]  # the default with --older-than
    assert plan["older_than_seconds"] == 0
    done_head, long_head = populated["done-1"].head, populated["long-1"].head
    assert {t["thread_id"]: (t["action"], t["deleted"]) for t in plan["threads"]} == {
        "done-1": ("delete", [str(s) for s in range(done_head + 1)]),
        "long-1": ("delete", [str(s) for s in range(long_head + 1)]),
    }
    result = cli(capsys, "prune", url, "--older-than", "0s", "--json")
    assert result.json()["threads"] == plan["threads"]
    saver = open_saver(url)
    assert [i.kind for i in saver.history("done-1")] == ["tombstone"]
    after = snapshot(location)
    for other in ("wait-1", "fail-1", "run-1", "susp-1"):
        assert thread_keys(after, other) == thread_keys(before, other)
    assert thread_ids(capsys, url) == ["fail-1", "run-1", "susp-1", "wait-1"]

    # Tombstones of deleted threads go with --status deleted.
    result = cli(capsys, "prune", url, "--older-than", "0s", "--status", "deleted", "--json")
    assert {t["thread_id"]: (t["action"], t["deleted"]) for t in result.json()["threads"]} == {
        "done-1": ("purge", [str(done_head + 1)]),
        "long-1": ("purge", [str(long_head + 1)]),
    }
    assert thread_keys(snapshot(location), "done-1") == {}
    # Everything else, tombstones included.
    result = cli(capsys, "prune", url, "--older-than", "0s", "--status", "all", "--purge")
    assert result.code == 0
    rest = sum(populated[t].head + 1 for t in ("wait-1", "fail-1", "run-1", "susp-1"))
    assert (
        result.out.splitlines()[-1] == f"deleted {rest} checkpoint(s) from 4 thread(s); 4 thread(s) examined"
    )
    assert not [k for k in snapshot(location) if "/threads/" in f"/{k}"]


def test_prune_older_than_measures_from_the_last_update(local_location: StoreLocation) -> None:
    populate(local_location.url)
    saver = open_saver(local_location.url)
    updated = {s.thread_id: s.updated_at or 0.0 for s in ops.list_threads(saver)}
    done, last = updated["done-1"], updated["long-1"]
    assert done < last  # long-1 was written last
    day = 86400.0
    between = ops.prune(saver, older_than=day, now=(done + last) / 2 + day, dry_run=True)
    assert [t.thread_id for t in between.threads] == ["done-1"]
    due = ops.prune(saver, older_than=day, now=last + day + 1, dry_run=True)
    assert [t.thread_id for t in due.threads] == ["done-1", "long-1"]
    assert ops.prune(saver, older_than=day, now=done + day - 1, dry_run=True).threads == []
    with pytest.raises(ValueError, match="exactly one"):
        ops.prune(saver)
    with pytest.raises(ValueError, match="at least 1"):
        ops.prune(saver, keep_last=0)


def test_ops_not_found(local_location: StoreLocation) -> None:
    populate(local_location.url)
    saver = open_saver(local_location.url)
    for call in (
        lambda: ops.thread_history(saver, "nope"),
        lambda: ops.show_state(saver, "nope"),
        lambda: ops.show_state(saver, "done-1", 99),
        lambda: ops.delete_thread(saver, "nope"),
    ):
        with pytest.raises(ThreadNotFoundError):
            call()
