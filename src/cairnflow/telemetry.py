"""OpenTelemetry for cairnflow: spans and metrics for runs, task attempts and store requests.

Install with ``pip install "cairnflow[otel]"`` and configure a tracer provider
(and, for metrics, a meter provider) the way you do for the rest of your
application. cairnflow finds them by itself: :mod:`cairnflow.core.observe`
loads this module only once the application has imported
``opentelemetry.trace``, and this module reports only when a real (SDK)
provider is installed. With no provider nothing is imported and nothing costs.

What is reported (attribute names in :mod:`cairnflow.core.observe`):

======================  ==========================================================
span                    when
======================  ==========================================================
``cairnflow.run``       one ``run()``/``resume()`` of a workflow (status, thread)
``cairnflow.task``      one attempt of a task (task name, attempt number, outcome)
``cairnflow.store``     one request to the object store (operation, bytes, outcome)
======================  ==========================================================

Events (``cairnflow.interrupt``, ``cairnflow.resume``, ``cairnflow.store.retry``,
``cairnflow.conflict``) are added to the current span and counted.

Metrics: ``cairnflow.<span>.count`` and ``cairnflow.<span>.duration`` (seconds)
per span name, by outcome and operation; ``cairnflow.store.bytes``;
``cairnflow.<event>.count`` per event.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.trace import Status, StatusCode

from cairnflow.core.observe import AttributeValue, Span

__all__ = ["OpenTelemetrySink", "sink"]

_SCOPE = "cairnflow"

# The metric attributes: low-cardinality only (never thread ids or keys).
_METRIC_ATTRIBUTES = (
    "cairnflow.outcome",
    "cairnflow.store.operation",
    "cairnflow.workflow",
    "cairnflow.task",
)


class OpenTelemetrySink:
    """Turns cairnflow's spans and events into OpenTelemetry spans and metrics."""

    def __init__(self, tracer_provider: Any, meter_provider: Any) -> None:
        self.tracer = tracer_provider.get_tracer(_SCOPE) if tracer_provider is not None else None
        self.meter: Any = meter_provider.get_meter(_SCOPE) if meter_provider is not None else None
        self._counters: dict[str, Any] = {}
        self._histograms: dict[str, Any] = {}

    def start(self, span: Span) -> object:
        if self.tracer is None:
            return None
        # The parent: the enclosing cairnflow span (also when it is open on another thread,
        # e.g. the run around a task attempt on the pool), else whatever span is current.
        parent = span.parent.extras.get("otel") if span.parent is not None else None
        context = trace.set_span_in_context(parent) if parent is not None else None
        otel_span = self.tracer.start_span(span.name, context=context, attributes=span.attributes)
        span.extras["otel"] = otel_span
        if span.detached:
            return (otel_span, None)
        token = otel_context.attach(trace.set_span_in_context(otel_span))
        return (otel_span, token)

    def end(self, span: Span, token: object, error: BaseException | None) -> None:
        if isinstance(token, tuple):
            otel_span, context_token = token
            otel_span.set_attributes({**span.attributes, "cairnflow.outcome": span.outcome})
            if error is not None:
                otel_span.record_exception(error)
                otel_span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
            otel_span.end()
            if context_token is not None:
                otel_context.detach(context_token)
        if self.meter is not None:
            from time import monotonic

            attributes = _metric_attributes({**span.attributes, "cairnflow.outcome": span.outcome})
            self._counter(f"{span.name}.count", "1").add(1, attributes)
            self._histogram(f"{span.name}.duration").record(monotonic() - span.started, attributes)
            size = span.attributes.get("cairnflow.store.bytes")
            if isinstance(size, int) and size:
                self._counter("cairnflow.store.bytes", "By").add(size, attributes)

    def event(self, name: str, attributes: Mapping[str, AttributeValue]) -> None:
        current = trace.get_current_span()
        if current.is_recording():
            current.add_event(name, dict(attributes))
        if self.meter is not None:
            self._counter(f"{name}.count", "1").add(1, _metric_attributes(attributes))

    def _counter(self, name: str, unit: str) -> Any:
        if name not in self._counters:
            self._counters[name] = self.meter.create_counter(name, unit=unit)
        return self._counters[name]

    def _histogram(self, name: str) -> Any:
        if name not in self._histograms:
            self._histograms[name] = self.meter.create_histogram(name, unit="s")
        return self._histograms[name]


def _metric_attributes(attributes: Mapping[str, AttributeValue]) -> dict[str, AttributeValue]:
    return {name: attributes[name] for name in _METRIC_ATTRIBUTES if name in attributes}


_cache: tuple[object, object, OpenTelemetrySink | None] | None = None


def sink() -> OpenTelemetrySink | None:
    """The sink for the providers installed now, or ``None`` when none is (the API's no-op default)."""
    global _cache
    tracer_provider: Any = trace.get_tracer_provider()
    meter_provider: Any = metrics.get_meter_provider()
    if _cache is not None and _cache[0] is tracer_provider and _cache[1] is meter_provider:
        return _cache[2]
    tracing = _is_real(tracer_provider)
    metering = _is_real(meter_provider)
    found = (
        OpenTelemetrySink(tracer_provider if tracing else None, meter_provider if metering else None)
        if tracing or metering
        else None
    )
    _cache = (tracer_provider, meter_provider, found)
    return found


def _is_real(provider: object) -> bool:
    # The API's defaults before any configuration are proxies and no-ops; anything
    # else (the SDK's providers, a vendor's) is a provider somebody installed.
    name = type(provider).__name__
    return not (name.startswith("Proxy") or name.startswith("NoOp") or name.startswith("_Proxy"))
