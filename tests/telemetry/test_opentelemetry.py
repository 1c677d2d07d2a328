"""OpenTelemetry: with an SDK provider installed, cairnflow's reports become spans and metrics."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from cairnflow.core import observe


@dataclass
class Telemetry:
    spans: InMemorySpanExporter
    metrics: InMemoryMetricReader

    def finished(self) -> list[Any]:
        return list(self.spans.get_finished_spans())

    def metric_points(self) -> dict[str, list[tuple[dict[str, Any], Any]]]:
        data = self.metrics.get_metrics_data()
        found: dict[str, list[tuple[dict[str, Any], Any]]] = {}
        for resource in data.resource_metrics if data else []:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    for point in metric.data.data_points:
                        value = getattr(point, "value", None)
                        if value is None:
                            value = point.count  # a histogram: how many were recorded
                        found.setdefault(metric.name, []).append((dict(point.attributes), value))
        return found


@pytest.fixture
def telemetry(monkeypatch: pytest.MonkeyPatch) -> Iterator[Telemetry]:
    # OpenTelemetry lets a process install a global provider only once, so each test
    # gets its own SDK providers through the API's accessors instead.
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: tracer_provider)
    monkeypatch.setattr(metrics, "get_meter_provider", lambda: meter_provider)
    yield Telemetry(exporter, reader)
    tracer_provider.shutdown()
    meter_provider.shutdown()


def test_spans_nest_and_carry_attributes(telemetry: Telemetry) -> None:
    with observe.span("cairnflow.run", workflow="checkout", thread_id="o-1"):
        with observe.span("cairnflow.store", store_operation="put", thread_id="o-1") as request:
            request.set("cairnflow.store.bytes", 120)
        observe.event("cairnflow.interrupt", thread_id="o-1")
    store, run = telemetry.finished()
    assert (run.name, store.name) == ("cairnflow.run", "cairnflow.store")
    assert store.parent is not None and store.parent.span_id == run.context.span_id
    assert store.attributes["cairnflow.store.operation"] == "put"
    assert store.attributes["cairnflow.store.bytes"] == 120
    assert store.attributes["cairnflow.outcome"] == "ok"
    assert run.attributes["cairnflow.workflow"] == "checkout"
    assert [event.name for event in run.events] == ["cairnflow.interrupt"]


def test_errors_set_the_span_status(telemetry: Telemetry) -> None:
    with pytest.raises(ValueError), observe.span("cairnflow.task", task="charge"):
        raise ValueError("declined")
    (span,) = telemetry.finished()
    assert span.status.status_code == trace.StatusCode.ERROR
    assert "ValueError: declined" in (span.status.description or "")
    assert span.attributes["cairnflow.outcome"] == "error"
    assert [event.name for event in span.events] == ["exception"]


def test_metrics_count_by_outcome_and_operation_without_thread_ids(telemetry: Telemetry) -> None:
    for size in (10, 20):
        with observe.span("cairnflow.store", store_operation="put", thread_id="t") as request:
            request.set("cairnflow.store.bytes", size)
    with pytest.raises(KeyError), observe.span("cairnflow.store", store_operation="get", thread_id="t"):
        raise KeyError("gone")
    observe.event("cairnflow.conflict", thread_id="t")
    points = telemetry.metric_points()
    counts = {
        (a["cairnflow.store.operation"], a["cairnflow.outcome"]): v
        for a, v in points["cairnflow.store.count"]
    }
    assert counts == {("put", "ok"): 2, ("get", "error"): 1}
    assert points["cairnflow.store.bytes"] == [
        ({"cairnflow.store.operation": "put", "cairnflow.outcome": "ok"}, 30)
    ]
    assert points["cairnflow.conflict.count"] == [({}, 1)]
    assert all("cairnflow.thread_id" not in a for series in points.values() for a, _ in series)


def test_the_api_default_provider_reports_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    from cairnflow import telemetry as bridge

    monkeypatch.setattr(trace, "get_tracer_provider", lambda: trace.NoOpTracerProvider())
    monkeypatch.setattr(metrics, "get_meter_provider", lambda: metrics.NoOpMeterProvider())
    assert bridge.sink() is None


def test_a_stale_writer_is_reported_as_a_conflict(telemetry: Telemetry) -> None:
    from cairnflow.core.errors import ConflictError
    from cairnflow.core.log import CheckpointLog
    from cairnflow.savers.memory import MemoryStore

    log = CheckpointLog(MemoryStore())
    first = log.append("t-1", None, ["a"], status="running")
    log.append("t-1", first, ["b"], status="running")
    with observe.span("cairnflow.run", thread_id="t-1"), pytest.raises(ConflictError):
        log.append("t-1", first, ["c"], status="running")  # stale: its head is not the latest
    (run,) = [span for span in telemetry.finished() if span.name == "cairnflow.run"]
    assert [(e.name, e.attributes["cairnflow.thread_id"]) for e in run.events] == [
        ("cairnflow.conflict", "t-1")
    ]
    # Under the run: the refused create-only PUT, then the GET that tells theirs from ours.
    requests = [
        (span.attributes["cairnflow.store.operation"], span.attributes["cairnflow.outcome"])
        for span in telemetry.finished()
        if span.name == "cairnflow.store"
        and span.parent is not None
        and span.parent.span_id == run.context.span_id
    ]
    assert requests[-2:] == [("create", "exists"), ("get", "ok")]
    assert telemetry.metric_points()["cairnflow.conflict.count"] == [({}, 1)]


def test_a_workflow_run_becomes_a_run_span_with_task_attempt_children(telemetry: Telemetry) -> None:
    from cairnflow.core import RetryPolicy, interrupt, task, workflow
    from cairnflow.savers import open_saver

    calls = {"n": 0}

    @task(retry=RetryPolicy(max_attempts=2, initial_interval=0, jitter=False))
    def flaky(order: str) -> str:
        calls["n"] += 1
        if calls["n"] == 1:
            raise ConnectionError("first attempt fails")
        return f"charged {order}"

    @workflow(name="checkout")
    def checkout(order: str) -> str:
        receipt = flaky(order).result()
        return f"{receipt}, {interrupt('ship?')}"

    saver = open_saver("memory://telemetry-run")
    assert checkout.run("o-1", thread_id="o-1", saver=saver).status == "interrupted"
    assert checkout.resume("yes", thread_id="o-1", saver=saver).status == "completed"

    spans = telemetry.finished()
    runs = [s for s in spans if s.name == "cairnflow.run"]
    attempts = [s for s in spans if s.name == "cairnflow.task"]
    assert [r.attributes["cairnflow.status"] for r in runs] == ["interrupted", "completed"]
    assert [r.attributes["cairnflow.resumed"] for r in runs] == [False, True]
    assert all(r.attributes["cairnflow.workflow"] == "checkout" for r in runs)
    assert [(a.attributes["cairnflow.attempt"], a.attributes["cairnflow.outcome"]) for a in attempts] == [
        (1, "error"),
        (2, "ok"),
    ]
    # Attempts run on the pool's threads, yet nest under their run.
    assert {a.parent.span_id for a in attempts if a.parent} == {runs[0].context.span_id}
    assert [e.name for e in runs[0].events] == ["cairnflow.interrupt"]
    assert [e.name for e in runs[1].events] == ["cairnflow.resume"]
    counts = {a["cairnflow.outcome"]: v for a, v in telemetry.metric_points()["cairnflow.task.count"]}
    assert counts == {"error": 1, "ok": 1}


def test_store_requests_carry_operation_bytes_and_outcome(telemetry: Telemetry) -> None:
    from cairnflow.core.errors import NotFoundError
    from cairnflow.savers.memory import MemoryStore

    store = MemoryStore()
    store.put("a/1", b"12345")
    assert store.get("a/1").data == b"12345"
    with pytest.raises(NotFoundError):
        store.get("a/2")
    assert [info.key for info in store.list("a/")] == ["a/1"]
    store.delete("a/1")
    seen = [
        (
            span.attributes["cairnflow.store.operation"],
            span.attributes["cairnflow.outcome"],
            span.attributes.get("cairnflow.store.bytes"),
        )
        for span in telemetry.finished()
    ]
    assert seen == [
        ("create", "ok", 5),
        ("get", "ok", 5),
        ("get", "not_found", None),
        ("list", "ok", None),
        ("delete", "ok", None),
    ]
    points = telemetry.metric_points()
    written = {a["cairnflow.store.operation"]: v for a, v in points["cairnflow.store.bytes"]}
    assert written == {"create": 5, "get": 5}
