"""Every command on a store holding executor and LangGraph threads under one prefix (issue 18).

Both layouts are listed, shown, verified, deleted, pruned and copied; neither is
reported as corruption of the other; a copied LangGraph thread resumes in the target.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.cli.conftest import raw_objects
from tests.cli.flows import populate
from tests.cli.graphs import NODE_CALLS, build, cfg, populate_graphs, resume
from tests.cli.support import cli, one_line_error
from tests.emulators import StoreLocation

EXECUTOR = {"done-1", "wait-1", "fail-1", "run-1", "susp-1", "long-1"}
GRAPHS = {"lg-wait": "interrupted", "lg-done": "completed"}


@pytest.fixture
def mixed(local_location: StoreLocation) -> str:
    populate(local_location.url)
    populate_graphs(local_location.url)
    return local_location.url


def layouts(capsys: pytest.CaptureFixture[str], url: str, *args: str) -> dict[str, tuple[str, str]]:
    result = cli(capsys, "threads", url, "--json", *args)
    assert result.code == 0, result.err
    return {t["thread_id"]: (t["layout"], t["status"]) for t in result.json()["threads"]}


def test_threads_lists_both_layouts_and_says_which(mixed: str, capsys: pytest.CaptureFixture[str]) -> None:
    found = layouts(capsys, mixed)
    assert {t for t, (layout, _) in found.items() if layout == "executor"} == EXECUTOR
    assert {t: s for t, (layout, s) in found.items() if layout == "langgraph"} == GRAPHS
    doc = cli(capsys, "threads", mixed, "--json", "--layout", "langgraph").json()
    (waiting,) = [t for t in doc["threads"] if t["status"] == "interrupted"]
    assert (waiting["thread_id"], waiting["waiting_for"]) == ("lg-wait", {"question": "ok?"})
    assert set(layouts(capsys, mixed, "--layout", "executor")) == EXECUTOR
    assert set(layouts(capsys, mixed, "--status", "interrupted")) == {"wait-1", "lg-wait"}
    table = cli(capsys, "threads", mixed).out
    assert any(line.split()[:3] == ["lg-wait", "langgraph", "interrupted"] for line in table.splitlines())


def test_verify_accepts_both_layouts(mixed: str, capsys: pytest.CaptureFixture[str]) -> None:
    result = cli(capsys, "verify", mixed, "--json")
    doc = result.json()
    assert (result.code, doc["ok"], doc["problems"]) == (0, True, [])
    assert doc["threads_checked"] == len(EXECUTOR) + len(GRAPHS)
    assert cli(capsys, "verify", mixed, "lg-done").code == 0
    assert cli(capsys, "verify", mixed, "done-1").code == 0


def test_verify_reports_a_damaged_langgraph_object(mixed: str, capsys: pytest.CaptureFixture[str]) -> None:
    root = Path(mixed.removeprefix("file://"))
    # Whatever the LangGraph saver's layout: its largest object of thread lg-done, one byte flipped.
    theirs = [p for p in root.rglob("*") if p.is_file() and "lg-done" in p.parts and "threads" not in p.parts]
    victim = max(theirs, key=lambda p: p.stat().st_size)
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    doc = cli(capsys, "verify", mixed, "--json").json()
    assert not doc["ok"]
    codes = {(p["code"], p["thread_id"]) for p in doc["problems"]}
    assert codes == {("langgraph_unreadable", "lg-done")}
    assert "foreign_object" not in {p["code"] for p in doc["problems"]}


def test_show_and_history_of_a_langgraph_thread(mixed: str, capsys: pytest.CaptureFixture[str]) -> None:
    shown = cli(capsys, "show", mixed, "lg-wait", "--json")
    doc = shown.json()
    assert (shown.code, doc["layout"], doc["status"]) == (0, "langgraph", "interrupted")
    assert doc["values"]["items"] == ["x", "a"]
    assert doc["checkpoint"]["next"] == ["ask"]
    assert doc["interrupts"] == [{"question": "ok?"}]
    assert [w["channel"] for w in doc["checkpoint"]["writes"]] == ["__interrupt__"]
    human = cli(capsys, "show", mixed, "lg-done").out
    assert "(langgraph)" in human and "completed" in human and '"answer": "yes"' in human
    hist = cli(capsys, "history", mixed, "lg-done", "--json").json()
    assert hist["layout"] == "langgraph"
    assert [c["step"] for c in hist["checkpoints"]] == [2, 1, 0, -1]
    assert [c["source"] for c in hist["checkpoints"]] == ["loop", "loop", "loop", "input"]
    # the executor threads are unaffected
    assert cli(capsys, "show", mixed, "done-1", "--json").json()["status"] == "completed"
    assert "'nope'" in one_line_error(cli(capsys, "show", mixed, "nope"), 4)


def test_delete_a_langgraph_thread(mixed: str, capsys: pytest.CaptureFixture[str]) -> None:
    dry = cli(capsys, "delete", mixed, "lg-done", "--dry-run", "--json").json()
    assert (dry["layout"], dry["dry_run"], dry["deleted_count"]) == ("langgraph", True, 4)
    assert "lg-done" in layouts(capsys, mixed)
    result = cli(capsys, "delete", mixed, "lg-done", "--yes")
    assert result.code == 0 and "LangGraph thread 'lg-done'" in result.out
    found = layouts(capsys, mixed)
    assert "lg-done" not in found and set(found) == EXECUTOR | {"lg-wait"}
    assert cli(capsys, "verify", mixed).code == 0


def test_prune_both_layouts_keeps_latest_and_resumable(
    mixed: str, capsys: pytest.CaptureFixture[str]
) -> None:
    result = cli(capsys, "prune", mixed, "--keep-last", "1", "--json")
    assert result.code == 0, result.err
    by_thread = {t["thread_id"]: t for t in result.json()["threads"]}
    assert by_thread["lg-done"]["layout"] == "langgraph" and by_thread["lg-done"]["action"] == "trim"
    assert by_thread["lg-done"]["deleted_count"] == 3
    assert cli(capsys, "history", mixed, "lg-done", "--json").json()["checkpoints"][0]["step"] == 2
    assert len(cli(capsys, "history", mixed, "lg-wait", "--json").json()["checkpoints"]) == 1
    assert cli(capsys, "verify", mixed).code == 0
    assert resume(mixed, "lg-wait", "later")["answer"] == "later"  # the kept head still resumes


def test_copy_mixed_store_then_resume_langgraph_thread_in_target(
    mixed: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = f"file://{tmp_path}/target"
    before = raw_objects(StoreLocation(url=mixed))
    dry = cli(capsys, "copy", mixed, target, "--dry-run", "--json")
    assert dry.code == 0 and dry.json()["dry_run"] is True
    assert dry.json()["checkpoints_copied"] > 0
    assert not (tmp_path / "target").exists() or not any((tmp_path / "target").rglob("*"))

    result = cli(capsys, "copy", mixed, target, "--json")
    assert result.code == 0, result.err
    doc = result.json()
    copied = {t["thread_id"]: (t["layout"], t["result"]) for t in doc["threads"]}
    assert copied == {
        **{t: ("executor", "copied") for t in EXECUTOR},
        **{t: ("langgraph", "copied") for t in GRAPHS},
    }
    assert raw_objects(StoreLocation(url=mixed)) == before  # the source is untouched
    assert layouts(capsys, target) == layouts(capsys, mixed)
    src_hist = cli(capsys, "history", mixed, "lg-done", "--json").json()["checkpoints"]
    dst_hist = cli(capsys, "history", target, "lg-done", "--json").json()["checkpoints"]
    assert dst_hist == src_hist  # ids, parents, steps, values' channels and pending writes
    assert cli(capsys, "verify", target).code == 0

    # the interrupted LangGraph thread resumes in the target; node "a" does not run again
    calls = NODE_CALLS.copy()
    final = resume(target, "lg-wait", "copied!")
    assert final == {"items": ["x", "a"], "answer": "copied!"}
    assert NODE_CALLS["a"] == calls["a"] and NODE_CALLS["ask"] == calls["ask"] + 1
    state = build(target).get_state(cfg("lg-wait"))
    assert state.values["answer"] == "copied!"

    again = cli(capsys, "copy", mixed, target, "--json").json()
    assert again["checkpoints_copied"] == 0
    assert {t["result"] for t in again["threads"] if t["thread_id"] != "lg-wait"} == {"up_to_date"}


def test_copy_exits_non_zero_when_nothing_matched_or_partial(
    mixed: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    line = one_line_error(cli(capsys, "copy", f"file://{empty}", f"file://{tmp_path}/dst"), 1)
    assert "nothing copied" in line
    # the destination already has a LangGraph thread of its own under one of the ids
    target = f"file://{tmp_path}/busy"
    build(target).invoke({"items": ["other"]}, cfg("lg-done"))
    result = cli(capsys, "copy", mixed, target, "--json")
    assert result.code == 1
    assert "partial" in result.err and "'lg-done'" in result.err
    doc = result.json()
    (conflict,) = [t for t in doc["threads"] if t["result"] == "conflict"]
    assert (conflict["thread_id"], conflict["layout"]) == ("lg-done", "langgraph")
    assert build(target).get_state(cfg("lg-done")).values["items"] == ["other", "a"]  # never overwritten


def test_mixed_store_on_s3_verifies_and_migrates_to_file(
    s3_location: StoreLocation,
    tmp_path: Path,
    use_env: Callable[[StoreLocation], StoreLocation],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The issue's recipe: a healthy S3 store of agents, copied to file://, loses nothing."""
    url = use_env(s3_location).url
    populate(url)
    populate_graphs(url)
    assert {t: s for t, (layout, s) in layouts(capsys, url).items() if layout == "langgraph"} == GRAPHS
    checked = cli(capsys, "verify", url, "--json")
    assert (checked.code, checked.json()["problems"]) == (0, [])
    target = f"file://{tmp_path}/migrated"
    result = cli(capsys, "copy", url, target, "--json")
    assert result.code == 0, result.err
    assert result.json()["threads_copied"] == len(EXECUTOR) + len(GRAPHS)
    assert layouts(capsys, target) == layouts(capsys, url)
    assert resume(target, "lg-wait", "from s3")["answer"] == "from s3"
