"""cairnflow.core.observe: spans and events reach every destination, and cost nothing without one."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping

import pytest

from cairnflow.core import observe
from cairnflow.core.observe import AttributeValue, Span


class Recorder:
    """A sink that keeps what it is told."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.ended: list[tuple[str, str, dict[str, AttributeValue], str | None]] = []
        self.events: list[tuple[str, dict[str, AttributeValue]]] = []

    def start(self, span: Span) -> object:
        self.started.append(span.name)
        return len(self.started)

    def end(self, span: Span, token: object, error: BaseException | None) -> None:
        self.ended.append(
            (span.name, span.outcome, dict(span.attributes), type(error).__name__ if error else None)
        )

    def event(self, name: str, attributes: Mapping[str, AttributeValue]) -> None:
        self.events.append((name, dict(attributes)))


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    sink = Recorder()
    previous = observe.set_sink(sink)
    try:
        yield sink
    finally:
        observe.set_sink(previous)


def test_span_reports_attributes_and_outcome(recorder: Recorder) -> None:
    with observe.span("cairnflow.store", store_operation="put", thread_id="t-1", task=None) as current:
        current.set("store_bytes_ignored", None)
        current.set("cairnflow.store.bytes", 12)
    assert recorder.ended == [
        (
            "cairnflow.store",
            "ok",
            {"cairnflow.store.operation": "put", "cairnflow.thread_id": "t-1", "cairnflow.store.bytes": 12},
            None,
        )
    ]


def test_an_exception_ends_the_span_as_error_and_propagates_unchanged(recorder: Recorder) -> None:
    boom = KeyError("k")
    with pytest.raises(KeyError) as raised, observe.span("cairnflow.task", task="charge"):
        raise boom
    assert raised.value is boom
    assert recorder.ended[0][1:] == ("error", {"cairnflow.task": "charge"}, "KeyError")


def test_a_block_may_name_its_own_outcome(recorder: Recorder) -> None:
    def refused() -> None:
        with observe.span("cairnflow.store") as current:
            current.outcome = "conflict"
            raise RuntimeError("taken")

    with pytest.raises(RuntimeError):
        refused()
    assert recorder.ended[0][1] == "conflict"


def test_events(recorder: Recorder) -> None:
    observe.event("cairnflow.conflict", thread_id="t", error_type=None)
    assert recorder.events == [("cairnflow.conflict", {"cairnflow.thread_id": "t"})]


def test_debug_logging_when_the_cairnflow_logger_is_enabled(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="cairnflow"):
        with observe.span("cairnflow.run", workflow="checkout", thread_id="o-1"):
            pass
        observe.event("cairnflow.resume", thread_id="o-1")
    messages = [record.getMessage() for record in caplog.records if record.name == "cairnflow"]
    assert len(messages) == 2
    assert messages[0].startswith("cairnflow.run ok in ")
    assert "workflow='checkout'" in messages[0] and "thread_id='o-1'" in messages[0]
    assert messages[1] == "cairnflow.resume thread_id='o-1'"


def test_nothing_is_logged_when_debug_is_off(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="cairnflow"), observe.span("cairnflow.run"):
        pass
    assert [r for r in caplog.records if r.name == "cairnflow"] == []
