"""Listing threads from the status index: request counts, filters, stale entries, old stores.

Counts come from :class:`CountingStore` over a memory store (whose delimiter
listing pages like S3's), so they are the requests S3, GCS or Azure would see.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import pytest

from cairnflow import ops
from cairnflow.core import CheckpointLog, status_index
from cairnflow.core.checkpoint import CheckpointInfo
from cairnflow.core.counting import CountingStore
from cairnflow.core.store import CREATE
from cairnflow.savers import open_saver, open_store
from cairnflow.savers.memory import MemoryStore
from tests.cli.flows import EXPECTED, Expected
from tests.cli.support import cli
from tests.emulators import StoreLocation

STOPS = ("interrupted", "completed", "failed", "suspended")
HOSTILE = ["../..", "a/b", "A", "%41", "x.y", "é ü", "~", "q?r#s&t=u", "\x00", "a" * 80]
T0 = 1_700_000_000.0


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every checkpoint one second after the previous one (age filters need distinct times)."""
    ticks = itertools.count()
    monkeypatch.setattr("time.time", lambda: T0 + next(ticks))


def _thread(saver: CheckpointLog, thread_id: str, status: str, workflow: str) -> None:
    """A thread that ran one step and stopped with ``status``, as the executor leaves it."""
    start = {"op": "start", "workflow": workflow, "input": None, "input_digest": "0" * 32}
    head = saver.append(thread_id, None, [start], status="running", workflow=workflow)
    stop = saver.append(thread_id, head, [{"op": "suspend"}], status=status, workflow=workflow)  # type: ignore[arg-type]
    saver.index_stop(stop, head)


def _store(n: int) -> tuple[CountingStore, CheckpointLog, dict[str, tuple[str, str]]]:
    counting = CountingStore(MemoryStore())
    saver = CheckpointLog(counting, prefix="app")
    made = {}
    for i in range(n):
        status, workflow = STOPS[i % len(STOPS)], "alpha" if i % 3 else "beta"
        _thread(saver, f"t-{i:05d}", status, workflow)
        made[f"t-{i:05d}"] = (status, workflow)
    counting.reset()
    return counting, saver, made


def _listed(found: list[ops.ThreadSummary]) -> dict[str, tuple[str, str | None]]:
    return {s.thread_id: (s.status, s.workflow) for s in found}


@pytest.mark.usefixtures("clock")
def test_listing_indexed_threads_costs_two_lists_per_thousand_and_no_get() -> None:
    n = 2500
    counting, saver, made = _store(n)
    pages = math.ceil(n / 1000)

    found = ops.list_threads(saver, details=False)
    assert _listed(found) == made
    # The index (3 pages), the thread folders (3 pages), the layout probe: nothing read.
    assert dict(counting.counts) == {"LIST": 2 * pages + 1}

    counting.reset()
    found = ops.list_threads(saver, statuses={"interrupted"}, details=False)
    assert _listed(found) == {t: v for t, v in made.items() if v[0] == "interrupted"}
    assert dict(counting.counts) == {"LIST": 2 * pages}  # the layout probe is remembered

    counting.reset()
    since = T0 + 2 * 1000  # threads 1000..: two checkpoints each, one second apart
    found = ops.list_threads(saver, workflow="beta", updated_after=since, details=False)
    expected = {t: v for i, (t, v) in enumerate(made.items()) if v[1] == "beta" and i >= 1000}
    assert _listed(found) == expected and expected
    assert counting.counts["GET"] == 0

    counting.reset()
    found = ops.list_threads(saver, statuses={"failed"}, sort="updated", limit=3)  # details: read 3
    assert [s.thread_id for s in found] == ["t-02498", "t-02494", "t-02490"]
    assert all(s.steps == 0 and s.records == 2 for s in found)
    assert counting.counts["LIST"] == 2 * pages + 3 and counting.counts["GET"] <= 2 * 3


def test_details_equal_a_full_read_and_a_store_without_index_is_read_thread_by_thread() -> None:
    counting, saver, made = _store(30)
    with_details = [s.to_dict() for s in ops.list_threads(saver)]
    assert counting.counts["GET"] >= 30
    # "corrupt" forces the old full scan: the same answer, from the heads alone.
    scanned = ops.list_threads(saver, statuses=set(ops.STATUSES) - {"deleted"})
    assert [s.to_dict() for s in scanned] == with_details

    for info in list(counting.list(status_index.index_prefix("app/"))):
        counting.delete(info.key)  # a store written before the index existed
    counting.reset()
    old = ops.list_threads(saver, details=False)
    assert [s.to_dict() for s in old] == with_details  # every thread read: full summaries
    assert counting.counts["GET"] >= 30

    assert ops.reindex(saver) == (30, 0)
    counting.reset()
    assert _listed(ops.list_threads(saver, details=False)) == made
    assert counting.counts["GET"] == 0
    assert ops.reindex(saver) == (30, 0)  # again: nothing new, nothing removed


def test_a_stale_entry_shows_the_last_stop_and_details_show_the_head() -> None:
    _, saver, _ = _store(0)
    _thread(saver, "resumed", "interrupted", "alpha")
    head = saver.latest("resumed")
    saver.append("resumed", head, [{"op": "resume", "pos": 1, "value": 1}], status="running")  # no stop yet
    saver.append("fresh", None, [{"op": "start"}], status="running", workflow="alpha")  # never stopped

    brief = {s.thread_id: (s.status, s.checkpoint_id) for s in ops.list_threads(saver, details=False)}
    assert brief == {"resumed": ("interrupted", "1"), "fresh": ("running", "0")}
    full = {s.thread_id: (s.status, s.checkpoint_id) for s in ops.list_threads(saver)}
    assert full == {"resumed": ("running", "2"), "fresh": ("running", "0")}
    # Filtered on the index, then the head says it no longer matches: left out.
    assert ops.list_threads(saver, statuses={"interrupted"}) == []


def test_hostile_thread_ids_list_exactly() -> None:
    _, saver, _ = _store(0)
    for i, thread_id in enumerate(HOSTILE):
        _thread(saver, thread_id, STOPS[i % 4], "w.ü/x")
    found = ops.list_threads(saver, statuses=set(STOPS), details=False)
    assert sorted(s.thread_id for s in found) == sorted(HOSTILE)
    assert {s.workflow for s in found} == {"w.ü/x"}


def test_long_workflow_names_are_read_from_the_head() -> None:
    counting, saver, _ = _store(0)
    name = "w" * 400
    _thread(saver, "long", "completed", name)
    counting.reset()
    [found] = ops.list_threads(saver, workflow=name, details=False)
    assert (found.thread_id, found.workflow) == ("long", name)
    assert counting.counts["GET"] >= 1  # the key could not hold the name


def test_delete_purge_and_orphans() -> None:
    _, saver, _ = _store(0)
    for thread_id in ("keep", "del", "purge"):
        _thread(saver, thread_id, "completed", "alpha")
    ops.delete_thread(saver, "del")
    ops.delete_thread(saver, "purge", purge=True)
    assert [s.thread_id for s in ops.list_threads(saver, details=False)] == ["keep"]
    deleted = ops.list_threads(saver, statuses={"deleted"}, details=False)
    assert [(s.thread_id, s.status) for s in deleted] == [("del", "deleted")]

    # An entry naming a thread that has no checkpoint (a purge cut short): never listed, a warning.
    ghost = status_index.entry_key("app/", CheckpointInfo("ghost", 3, "snapshot", "completed", T0, 0, 0))
    saver.store.put(ghost, b"", CREATE)
    saver.store.put("app/v1/index/keep/garbage", b"", CREATE)
    assert [s.thread_id for s in ops.list_threads(saver, details=False)] == ["keep"]
    report = ops.verify(saver)
    codes = {(p.code, p.severity, p.key) for p in report.problems}
    assert codes == {
        ("index_orphan", "warning", ghost),
        ("foreign_object", "error", "app/v1/index/keep/garbage"),
    }
    saver.store.delete("app/v1/index/keep/garbage")
    ops.reindex(saver)
    assert ops.verify(saver).problems == ()  # reindex dropped the orphan


def test_copy_carries_the_index() -> None:
    _, src, made = _store(12)
    dst_store = CountingStore(MemoryStore())
    dst = CheckpointLog(dst_store, prefix="copy")
    ops.copy_threads(src, dst)
    dst_store.reset()
    assert _listed(ops.list_threads(dst, details=False)) == made
    assert dst_store.counts["GET"] == 0


def _expected_row(e: Expected) -> dict[str, Any]:
    return {"thread_id": e.thread_id, "status": e.status, "checkpoint_id": str(e.head)}


def test_cli_brief_and_reindex(
    location: StoreLocation, populated: dict[str, Expected], capsys: pytest.CaptureFixture[str]
) -> None:
    doc = cli(capsys, "threads", location.url, "--brief", "--json").json()
    rows = [{k: t[k] for k in ("thread_id", "status", "checkpoint_id")} for t in doc["threads"]]
    assert rows == [_expected_row(EXPECTED[t]) for t in sorted(populated)]
    by_id = {t["thread_id"]: t for t in doc["threads"]}
    assert by_id["wait-1"]["steps"] is None  # from the index: not read
    assert by_id["run-1"]["steps"] == EXPECTED["run-1"].steps  # never stopped: read from its head

    saver = open_saver(location.url, create=False)
    for info in list(saver.store.list(status_index.index_prefix(saver.prefix))):
        saver.store.delete(info.key)
    result = cli(capsys, "reindex", location.url, "--json")
    assert result.code == 0 and result.json()["threads"] == len(populated)
    again = cli(capsys, "threads", location.url, "--brief", "--json").json()
    assert [t["status"] for t in again["threads"]] == [t["status"] for t in doc["threads"]]
    text = cli(capsys, "reindex", location.url)
    assert text.out == f"indexed {len(populated)} thread(s); removed 0 superseded entries\n"

    # Counted on the real backend (moto's S3 pages its delimiter listing natively): every
    # thread indexed, so the listing reads nothing.
    store, prefix = open_store(location.url)
    counting = CountingStore(store)
    found = ops.list_threads(CheckpointLog(counting, prefix=prefix), details=False)
    assert {s.thread_id: s.status for s in found} == {t: e.status for t, e in populated.items()}
    assert counting.counts["GET"] == 0 and counting.counts["LIST"] <= 3  # index, folders, layout probe
