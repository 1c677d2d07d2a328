"""copy of LangGraph threads: every scenario of tests/langgraph/test_graphs.py arrives whole.

Forks (update_state, replay), subgraphs, Send, interrupts, crashes, the functional API and
DeltaChannel: after ``copy_threads`` the destination lists the same checkpoints (ids,
metadata, channel values, parents) with the same pending writes, in the same order.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cairnflow import ops
from cairnflow.langgraph import LangGraphSaver
from cairnflow.savers import open_saver
from tests.langgraph.test_graphs import SCENARIOS


def everything(saver: LangGraphSaver, thread_id: str) -> list[Any]:
    return [
        (
            t.config["configurable"]["checkpoint_ns"],
            t.checkpoint["id"],
            t.metadata,
            t.parent_config,
            sorted(t.checkpoint["channel_values"].items(), key=repr),
            sorted(map(repr, t.pending_writes or [])),
        )
        for t in saver.list({"configurable": {"thread_id": thread_id}})
    ]


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_copied_langgraph_thread_is_identical(scenario: str, tmp_path: Path) -> None:
    src_url, dst_url = f"file://{tmp_path}/src", f"file://{tmp_path}/dst"
    source = LangGraphSaver.from_url(src_url)
    SCENARIOS[scenario](source)
    result = ops.copy_threads(open_saver(src_url), open_saver(dst_url))
    assert result.threads and not result.problems, [t.error for t in result.problems]
    assert {t.layout for t in result.threads} == {"langgraph"}
    target = LangGraphSaver.from_url(dst_url)
    for copied in result.threads:
        assert everything(target, copied.thread_id) == everything(source, copied.thread_id)
    again = ops.copy_threads(open_saver(src_url), open_saver(dst_url))
    assert {t.result for t in again.threads} == {"up_to_date"}
