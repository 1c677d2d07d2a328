"""The view's model on its own: query parsing, display of LangGraph values, timeline events."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from cairnflow.core.errors import InvalidArgumentError
from cairnflow.ui.model import Filters, ThreadRow, _record_event, plain


def test_filters_from_query() -> None:
    f = Filters.from_query(
        {
            "status": ["failed", "interrupted", "failed", ""],
            "workflow": [" order "],
            "age": ["1d"],
            "limit": ["7"],
        }
    )
    assert f.statuses == ("failed", "interrupted")
    assert f.workflow == "order"
    assert f.newer_than == 86400
    assert f.older_than is None
    assert f.limit == 7
    assert Filters.from_query({"workflow": [""], "age": [""]}) == Filters()


def test_filters_round_trip_through_their_query() -> None:
    f = Filters(("failed",), "order", 3600.0, 86400.0 * 2, "executor", 40)
    params = {k: v if isinstance(v, list) else [v] for k, v in f.to_params().items()}
    assert Filters.from_query(params) == f
    assert Filters().to_params() == {}


@pytest.mark.parametrize(
    ("query", "names"),
    [
        ({"status": ["zombie"]}, "status"),
        ({"age": ["yesterday"]}, "age"),
        ({"older": ["-1d"]}, "older"),
        ({"limit": ["many"]}, "limit"),
        ({"limit": ["0"]}, "limit"),
        ({"layout": ["sql"]}, "layout"),
    ],
)
def test_bad_filters_name_the_argument(query: dict[str, list[str]], names: str) -> None:
    with pytest.raises(InvalidArgumentError, match=f"^{names}: "):
        Filters.from_query(query)


def row(**kw: Any) -> ThreadRow:
    base: dict[str, Any] = {
        "thread_id": "t",
        "layout": "executor",
        "status": "completed",
        "workflow": "w",
        "updated_at": 1000.0,
        "checkpoint_id": "3",
    }
    return ThreadRow(**{**base, **kw})


def test_row_link_quotes_the_id() -> None:
    assert row(thread_id="a&b=c d/<x>").link == "/thread?id=a%26b%3Dc+d%2F%3Cx%3E&layout=executor"


@dataclasses.dataclass
class Interruption:
    value: Any
    id: str


class Model:
    def __init__(self, content: str) -> None:
        self.content = content

    def model_dump(self) -> dict[str, Any]:
        return {"content": self.content, "data": b"\x00\x01"}


class Broken:
    def model_dump(self) -> dict[str, Any]:
        raise RuntimeError("no")

    def __repr__(self) -> str:
        return "Broken()"


def test_plain_turns_values_into_json_without_constructing_anything() -> None:
    value = {
        1: (Interruption({"q": "ok?"}, "i1"), {"s"}),
        "msg": Model("hi"),
        "bad": Broken(),
        "raw": b"abc",
        "other": object,
    }
    assert plain(value) == {
        "1": [{"$type": "Interruption", "value": {"q": "ok?"}, "id": "i1"}, ["s"]],
        "msg": {"$type": "Model", "content": "hi", "data": {"$bytes": 2}},
        "bad": "Broken()",
        "raw": {"$bytes": 3},
        "other": "<class 'object'>",
    }
    deep: list[Any] = []
    cur = deep
    for _ in range(50):
        nxt: list[Any] = []
        cur.append(nxt)
        cur = nxt
    assert "[[" in str(plain(deep))  # cut off by repr past the depth limit, no recursion error


@pytest.mark.parametrize(
    ("record", "kind", "title", "value"),
    [
        ({"op": "start", "workflow": "order", "input": {"a": 1}}, "start", "start order", {"a": 1}),
        ({"op": "task", "pos": 0, "name": "add", "value": 3}, "task", "task #0 add", 3),
        (
            {"op": "task_error", "pos": 1, "name": "boom", "error": {"m": 1}},
            "error",
            "task #1 boom failed",
            {"m": 1},
        ),
        ({"op": "interrupt", "pos": 2, "value": "q"}, "interrupt", "interrupt #2", "q"),
        ({"op": "resume", "pos": 2, "value": "yes"}, "answer", "answer to #2", "yes"),
        ({"op": "end", "status": "completed", "value": 9}, "end", "completed", 9),
        ({"op": "end", "status": "failed", "error": {"m": 2}}, "error", "failed", {"m": 2}),
        (
            {"op": "attempt", "pos": 3, "name": "fetch", "attempt": 1, "retry_at": 0.0, "error": {"m": 3}},
            "retry",
            "task #3 fetch attempt 1 failed, retry at 1970-01-01 00:00:00 UTC",
            {"m": 3},
        ),
        ({"op": "value", "pos": 5, "name": "now", "value": 12.5}, "value", "now() #5", 12.5),
        # kinds this view does not know yet (child workflows) show with their whole record
        ({"op": "child", "pos": 4, "at": 5.0}, "child", "child", {"op": "child", "pos": 4, "at": 5.0}),
        (
            {"op": "callback_done", "pos": 6, "value": "ok"},
            "answer",
            "callback #6 ended",
            {"value": "ok"},
        ),
    ],
)
def test_record_events(record: dict[str, Any], kind: str, title: str, value: Any) -> None:
    event = _record_event("7", 1.0, record)
    assert (event.kind, event.title, event.value, event.has_value) == (kind, title, value, True)
    assert event.checkpoint_id == "7"


def test_timer_wait_and_callback_records_never_show_the_secret() -> None:
    timer = _record_event("1", 0.0, {"op": "timer", "pos": 4, "wake_at": 0.0})
    assert (timer.kind, timer.title) == ("wait", "sleep #4 until 1970-01-01 00:00:00 UTC")
    waiting = _record_event("1", 0.0, {"op": "wait", "wake_at": None})
    assert (waiting.kind, waiting.title) == ("wait", "waiting for a callback")
    opened = _record_event("1", 0.0, {"op": "callback", "pos": 5, "secret": "s3cr3t", "timeout_at": None})
    assert (opened.title, opened.has_value) == ("callback #5 opened", False)
    assert "s3cr3t" not in repr(opened)


def test_suspend_and_unknown_records() -> None:
    assert _record_event("1", 0.0, {"op": "suspend"}).has_value is False
    odd = _record_event("1", 0.0, ["not", "a", "dict"])
    assert (odd.kind, odd.value) == ("unknown", ["not", "a", "dict"])
