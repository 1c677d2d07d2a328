"""Storage draws no ids from ``uuid.uuid4()``: LangGraph's tests patch it for deterministic
message ids (``deterministic_uuids``), and so may users; a request must not consume them."""

from __future__ import annotations

import uuid

import pytest
from langgraph.checkpoint.base import empty_checkpoint

from cairnflow.core.store import ObjectStore
from cairnflow.langgraph import LangGraphSaver


@pytest.mark.parametrize("backend", ["s3"], indirect=True)
def test_s3_requests_draw_no_uuid4(store: ObjectStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """botocore names each request with uuid.uuid4(); the S3 store draws that id itself, so a
    graph's patched uuid4 (LangGraph's deterministic ids) is never consumed by storage."""
    drawn: list[int] = []
    real = uuid.uuid4
    monkeypatch.setattr(uuid, "uuid4", lambda: drawn.append(1) or real())
    saver = LangGraphSaver(store, prefix="no-uuid4/")
    cp = empty_checkpoint()
    cp["channel_values"], cp["channel_versions"] = {"n": 0}, {"n": 1}
    stored = saver.put({"configurable": {"thread_id": "t", "checkpoint_ns": ""}}, cp, {"step": -1}, {"n": 1})
    saver.put_writes(stored, [("n", 1)], "task")
    assert saver.get_tuple({"configurable": {"thread_id": "t"}}) is not None
    assert drawn == []
