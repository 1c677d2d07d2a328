"""What cairnflow tells the outside world about its work: spans, counters and debug logs.

The library reports four kinds of work through this module and nowhere else:
workflow runs, task attempts, interrupts/resumes, and store requests. Each is
reported as a *span* (something with a start, an end, attributes and an
outcome) or an *event* (a point in time with attributes).

Where the reports go is decided at the moment they happen, so configuring
telemetry late (after cairnflow was imported, after a saver was opened) works:

- **OpenTelemetry**: when the application has imported ``opentelemetry.trace``
  and installed a tracer provider (``pip install "cairnflow[otel]"``), spans
  and metrics go to it through :mod:`cairnflow.telemetry` (the one module
  that imports OpenTelemetry; the core itself stays standard library only).
- **logging**: when the application has imported :mod:`logging` and the
  ``cairnflow`` logger is enabled for ``DEBUG``, each span end and each event
  becomes one debug record.
- Otherwise nothing is imported, nothing is built, and a span costs two
  dictionary lookups. We never import :mod:`logging` or OpenTelemetry
  ourselves: if the application has not imported them, nobody can have
  configured them.

Attribute names follow OpenTelemetry's conventions where one exists; ours
are under ``cairnflow.`` (``cairnflow.thread_id``, ``cairnflow.workflow``,
``cairnflow.task``, ``cairnflow.attempt``, ``cairnflow.store.operation``,
``cairnflow.store.bytes``, ``cairnflow.outcome``).
"""

from __future__ import annotations

import contextvars
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:
    import logging

__all__ = ["Sink", "Span", "carry", "event", "set_sink", "span", "start"]

R = TypeVar("R")

#: The logger name of every debug record cairnflow writes.
LOGGER = "cairnflow"

AttributeValue = str | int | float | bool


class Span:
    """One piece of work in progress: code inside ``with span(...) as s`` adds attributes.

    ``s.set(name, value)`` adds or replaces an attribute (``None`` values are
    dropped); ``s.outcome`` is ``"ok"`` unless the block sets it or raises.
    """

    __slots__ = ("_ends", "attributes", "detached", "extras", "name", "outcome", "parent", "started")

    def __init__(self, name: str, attributes: dict[str, AttributeValue], parent: Span | None = None) -> None:
        self.name = name
        self.attributes = attributes
        self.outcome = "ok"
        self.started = time.monotonic()
        self.parent = parent  # the enclosing span, also across the run's pool threads (carry)
        self.extras: dict[str, Any] = {}  # where sinks keep their own handle (e.g. the OTel span)
        self.detached = False  # started with start(): never the current span of its thread
        self._ends: list[tuple[Sink, object]] = []

    def set(self, name: str, value: AttributeValue | None) -> None:
        if value is not None:
            self.attributes[name] = value

    def end(self, error: BaseException | None = None) -> None:
        """End a span made with :func:`start` (``error``: what ended it, if anything)."""
        if error is not None and self.outcome == "ok":
            self.outcome = "error"
        ends, self._ends = self._ends, []
        for sink, token in ends:
            sink.end(self, token, error)


class Sink(Protocol):
    """A destination for reports: OpenTelemetry, a test recorder, or your own."""

    def start(self, span: Span) -> object:
        """Called when ``span`` starts; the return value is handed back to :meth:`end`."""

    def end(self, span: Span, token: object, error: BaseException | None) -> None:
        """Called when ``span`` ends, with the exception that ended it (if any)."""

    def event(self, name: str, attributes: Mapping[str, AttributeValue]) -> None:
        """Called for a point event."""


_installed: Sink | None = None
_current: contextvars.ContextVar[Span | None] = contextvars.ContextVar("cairnflow_span", default=None)


def set_sink(sink: Sink | None) -> Sink | None:
    """Send every report to ``sink`` as well (``None`` removes it); return the previous one.

    OpenTelemetry and logging need no call: they are found automatically.
    A sink set here is for tests and custom destinations.
    """
    global _installed
    previous, _installed = _installed, sink
    return previous


def _sinks() -> list[Sink]:
    found: list[Sink] = []
    if _installed is not None:
        found.append(_installed)
    if "opentelemetry.trace" in sys.modules:  # the application uses OpenTelemetry
        from cairnflow import telemetry  # outside core: it imports OpenTelemetry

        otel = telemetry.sink()
        if otel is not None:
            found.append(otel)
    logger = _debug_logger()
    if logger is not None:
        found.append(_LogSink(logger))
    return found


def _debug_logger() -> logging.Logger | None:
    logging_module = sys.modules.get("logging")
    if logging_module is None:
        return None
    logger: logging.Logger = logging_module.getLogger(LOGGER)
    return logger if logger.isEnabledFor(logging_module.DEBUG) else None


def _clean(attributes: Mapping[str, AttributeValue | None]) -> dict[str, AttributeValue]:
    return {name: value for name, value in attributes.items() if value is not None}


@contextmanager
def span(name: str, **attributes: AttributeValue | None) -> Iterator[Span]:
    """Report the work done inside the block as a span called ``name``.

    Attribute names use ``_`` where the reported name has ``.`` after the
    ``cairnflow.`` prefix: ``span("cairnflow.task", task="charge")`` reports
    ``cairnflow.task="charge"``. An exception leaving the block sets the
    outcome to ``"error"`` (or what the block set) and is re-raised unchanged.
    """
    sinks = _sinks()
    clean = _clean({_attribute(key): value for key, value in attributes.items()})
    current = Span(name, clean, _current.get())
    if not sinks:
        yield current
        return
    tokens = [sink.start(current) for sink in sinks]
    entered = _current.set(current)
    try:
        yield current
    except BaseException as error:
        if current.outcome == "ok":
            current.outcome = "error"
        _current.reset(entered)
        for sink, token in zip(sinks, tokens, strict=True):
            sink.end(current, token, error)
        raise
    _current.reset(entered)
    for sink, token in zip(sinks, tokens, strict=True):
        sink.end(current, token, None)


def start(name: str, **attributes: AttributeValue | None) -> Span:
    """Start a span that the caller ends with :meth:`Span.end`, for work that is not one block.

    A listing that the caller consumes lazily is one: its span covers the whole
    iteration, yet other work runs on the thread meanwhile, so it never becomes
    the thread's current span (nothing nests under it).
    """
    clean = _clean({_attribute(key): value for key, value in attributes.items()})
    current = Span(name, clean, _current.get())
    current.detached = True
    current._ends = [(sink, sink.start(current)) for sink in _sinks()]
    return current


def carry(fn: Callable[..., R]) -> Callable[..., R]:
    """``fn``, made to report under the span open here when it runs on another thread.

    The executor runs tasks on a thread pool; without this, a task attempt's
    span would have no parent. Costs nothing when no span is open.
    """
    parent = _current.get()
    if parent is None:
        return fn

    def under_parent(*args: Any, **kwargs: Any) -> R:
        entered = _current.set(parent)
        try:
            return fn(*args, **kwargs)
        finally:
            _current.reset(entered)

    return under_parent


def event(name: str, **attributes: AttributeValue | None) -> None:
    """Report a point event called ``name`` (see :func:`span` for attribute names)."""
    sinks = _sinks()
    if not sinks:
        return
    clean = _clean({_attribute(key): value for key, value in attributes.items()})
    for sink in sinks:
        sink.event(name, clean)


def _attribute(keyword: str) -> str:
    # thread_id -> cairnflow.thread_id, store_bytes -> cairnflow.store.bytes
    if keyword in _ATTRIBUTE_NAMES:
        return _ATTRIBUTE_NAMES[keyword]
    return f"cairnflow.{keyword}"


_ATTRIBUTE_NAMES = {
    "store_operation": "cairnflow.store.operation",
    "store_bytes": "cairnflow.store.bytes",
    "store_url": "cairnflow.store.url",
    "error_type": "error.type",
}


class _LogSink:
    """Standard-library logging at DEBUG: one record per span end and per event."""

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger

    def start(self, span: Span) -> object:
        return None

    def end(self, span: Span, token: object, error: BaseException | None) -> None:
        elapsed_ms = (time.monotonic() - span.started) * 1000
        self.logger.debug(
            "%s %s in %.1f ms %s",
            span.name,
            span.outcome,
            elapsed_ms,
            _format(span.attributes),
            extra={"cairnflow": {"name": span.name, "outcome": span.outcome, **span.attributes}},
        )

    def event(self, name: str, attributes: Mapping[str, AttributeValue]) -> None:
        self.logger.debug(
            "%s %s", name, _format(attributes), extra={"cairnflow": {"name": name, **attributes}}
        )


def _format(attributes: Mapping[str, AttributeValue]) -> str:
    return " ".join(f"{key.removeprefix('cairnflow.')}={value!r}" for key, value in attributes.items())
