"""Stores written by entry format 1 (cairnflow before format 2) are still read, continued and maintained.

``fixtures/format1_store`` was written by the format 1 saver (see
``fixtures/make_format1_store.py``); ``fixtures/format1_expected.json`` holds what
LangGraph saw then. Reading it back must give the same states and histories; a run
continues the old threads (format 2 entries on top of format 1 ones, sharing their
values), and copy/prune/delete work on such mixed threads.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from langgraph.types import Command

from cairnflow.langgraph import LangGraphSaver
from cairnflow.savers.local import LocalStore
from tests.langgraph.fixtures.format1_graph import build, say

FIXTURES = Path(__file__).parent / "fixtures"
EXPECTED = json.loads((FIXTURES / "format1_expected.json").read_text())


@pytest.fixture
def old_store(tmp_path: Path) -> LocalStore:
    shutil.copytree(FIXTURES / "format1_store", tmp_path / "store")
    return LocalStore(tmp_path / "store", fsync=False)


def state_of(graph: Any, thread: str) -> dict[str, Any]:
    config = {"configurable": {"thread_id": thread}}
    state = graph.get_state(config)
    return {
        "values": state.values,
        "next": list(state.next),
        "interrupts": [i.value for i in state.interrupts],
        "history": [s.config["configurable"]["checkpoint_id"] for s in graph.get_state_history(config)],
    }


def test_format1_threads_read_exactly_as_written(old_store: LocalStore) -> None:
    graph = build(LangGraphSaver(old_store, prefix="app/"))
    for thread, expected in EXPECTED.items():
        assert state_of(graph, thread) == expected


def test_format1_threads_continue_and_resume_on_top_of_their_values(old_store: LocalStore) -> None:
    def format1_keys() -> set[str]:
        return {i.key for i in old_store.list("app/") if any(f"/{d}/" in i.key for d in "ibr")}

    before = format1_keys()
    graph = build(LangGraphSaver(old_store, prefix="app/"))
    out = graph.invoke(Command(resume="yes"), {"configurable": {"thread_id": "ask"}})
    assert out["items"][-1] == "answer=yes"
    graph.invoke(say("chat", 2), {"configurable": {"thread_id": "chat"}})
    for thread in ("ask", "chat"):
        now = state_of(graph, thread)
        old = EXPECTED[thread]["history"]
        assert now["history"][-len(old) :] == old and len(now["history"]) > len(old)
        old_items = EXPECTED[thread]["values"]["items"]
        assert now["values"]["items"][: len(old_items)] == old_items
        cold = build(LangGraphSaver(old_store, prefix="app/"))
        assert state_of(cold, thread) == now
    # new entries are format 2 (no index, value or marker objects; only the writes on the
    # old head, a format 1 checkpoint, are format 1 objects)
    assert format1_keys() == before


def test_copy_prune_and_delete_work_on_mixed_threads(old_store: LocalStore) -> None:
    saver = LangGraphSaver(old_store, prefix="app/")
    graph = build(saver)
    graph.invoke(say("chat", 2), {"configurable": {"thread_id": "chat"}})
    before = state_of(graph, "chat")
    saver.copy_thread("chat", "copy")
    copied = state_of(build(LangGraphSaver(old_store, prefix="app/")), "copy")
    assert copied == before
    saver.prune(["chat"], strategy="keep_latest")
    cold = build(LangGraphSaver(old_store, prefix="app/"))
    assert state_of(cold, "chat")["values"] == before["values"]
    assert state_of(cold, "chat")["history"] == before["history"][:1]
    graph.invoke(say("chat", 3), {"configurable": {"thread_id": "chat"}})
    saver.delete_thread("chat")
    assert saver.get_tuple({"configurable": {"thread_id": "chat"}}) is None
    assert state_of(build(LangGraphSaver(old_store, prefix="app/")), "copy") == before
