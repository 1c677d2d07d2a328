"""What the web view shows, read from a store through :mod:`cairnflow.ops` and LangGraph's saver.

:class:`Browser` is read-only by construction: it calls only the reading
functions of :mod:`cairnflow.ops` (``list_threads``, ``thread_history``,
``show_state``, ``thread_layout``, ``verify``) and, for LangGraph threads, the public reading
methods of :class:`~cairnflow.langgraph.LangGraphSaver` (``list``), so no
request it makes can write. It parses no stored object itself.
"""

from __future__ import annotations

import dataclasses
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cairnflow import ops
from cairnflow.core.errors import InvalidArgumentError, ThreadNotFoundError
from cairnflow.ui.html import time_text

if TYPE_CHECKING:
    from cairnflow.core.log import CheckpointLog
    from cairnflow.core.verify import VerifyReport
    from cairnflow.ops import HistoryEntry, ThreadState

__all__ = [
    "AGES",
    "LAYOUTS",
    "Browser",
    "Event",
    "ExecutorThread",
    "Filters",
    "LangGraphCheckpoint",
    "LangGraphThread",
    "ThreadRow",
    "plain",
]

LAYOUTS = ("executor", "langgraph")
#: The age choices the thread list offers (any duration :func:`cairnflow.ops.parse_duration` reads works).
AGES = ("15m", "1h", "1d", "7d", "30d")
DEFAULT_LIMIT = 500
HISTORY_LIMIT = 200
LANGGRAPH_LIMIT = 50


def _one(params: Mapping[str, Sequence[str]], name: str) -> str | None:
    values = [v for v in params.get(name, ()) if v.strip()]
    return values[-1].strip() if values else None


def _duration(params: Mapping[str, Sequence[str]], name: str) -> float | None:
    text = _one(params, name)
    if text is None:
        return None
    try:
        return ops.parse_duration(text)
    except ValueError as exc:
        raise InvalidArgumentError(f"{name}: {exc}") from None


@dataclass(frozen=True)
class Filters:
    """The thread list's filters, as given in the page's query string."""

    statuses: tuple[str, ...] = ()
    """Keep only these (empty: every status but ``deleted``)."""
    workflow: str | None = None
    newer_than: float | None = None
    """Seconds: keep threads updated at most this long ago."""
    older_than: float | None = None
    """Seconds: keep threads not updated for at least this long."""
    layout: str | None = None
    limit: int = DEFAULT_LIMIT

    @classmethod
    def from_query(cls, params: Mapping[str, Sequence[str]]) -> Filters:
        """Read ``status`` (repeatable), ``workflow``, ``age``, ``older``, ``layout`` and ``limit``."""
        statuses = tuple(dict.fromkeys(s for s in params.get("status", ()) if s))
        unknown = [s for s in statuses if s not in ops.STATUSES]
        if unknown:
            raise InvalidArgumentError(
                f"status: unknown status {unknown[0]!r}; known: {', '.join(ops.STATUSES)}"
            )
        layout = _one(params, "layout")
        if layout is not None and layout not in LAYOUTS:
            raise InvalidArgumentError(f"layout: must be one of {', '.join(LAYOUTS)}, not {layout!r}")
        limit_text = _one(params, "limit")
        try:
            limit = int(limit_text) if limit_text is not None else DEFAULT_LIMIT
        except ValueError:
            raise InvalidArgumentError(f"limit: not a number: {limit_text!r}") from None
        if not 1 <= limit <= 100_000:
            raise InvalidArgumentError("limit: must be between 1 and 100000")
        return cls(
            statuses=statuses,
            workflow=_one(params, "workflow"),
            newer_than=_duration(params, "age"),
            older_than=_duration(params, "older"),
            layout=layout,
            limit=limit,
        )

    def to_params(self) -> dict[str, Any]:
        """The query parameters that give these filters back (:meth:`from_query`)."""
        params: dict[str, Any] = {
            "status": list(self.statuses),
            "workflow": self.workflow,
            "age": None if self.newer_than is None else f"{self.newer_than:g}s",
            "older": None if self.older_than is None else f"{self.older_than:g}s",
            "layout": self.layout,
            "limit": None if self.limit == DEFAULT_LIMIT else str(self.limit),
        }
        return {k: v for k, v in params.items() if v not in (None, [])}


@dataclass(frozen=True)
class ThreadRow:
    """One line of the thread list."""

    thread_id: str
    layout: str
    status: str
    workflow: str | None
    updated_at: float | None
    checkpoint_id: str | None
    steps: int | None = None
    error: str | None = None
    waiting_for: Any = None

    @property
    def link(self) -> str:
        """The thread's page (relative URL)."""
        return "/thread?" + urllib.parse.urlencode({"id": self.thread_id, "layout": self.layout})


@dataclass(frozen=True)
class Event:
    """One thing that happened in a thread, in the order it was recorded."""

    checkpoint_id: str
    at: float
    kind: str
    """``start``, ``task``, ``retry``, ``value``, ``error``, ``interrupt``, ``answer``, ``suspend``,
    ``end``, ``fork``, ``deleted``, ``unreadable`` or the record's own ``op`` for kinds this view
    does not know yet (timers, callbacks, ...), shown with their whole record."""
    title: str
    value: Any = None
    has_value: bool = False


@dataclass(frozen=True)
class ExecutorThread:
    """An executor thread: its state at one checkpoint and its timeline (oldest first)."""

    thread_id: str
    state: ThreadState | None
    """None when the thread is deleted (its head is a tombstone)."""
    note: str | None
    history: list[HistoryEntry]
    """Checkpoints, oldest first (the newest :data:`HISTORY_LIMIT` when ``truncated``)."""
    events: list[Event]
    truncated: bool


@dataclass(frozen=True)
class LangGraphCheckpoint:
    """One LangGraph checkpoint as the saver returns it, values made displayable by :func:`plain`."""

    namespace: str
    checkpoint_id: str
    parent_id: str | None
    ts: str | None
    metadata: Any
    channel_values: dict[str, Any]
    channel_versions: dict[str, Any]
    pending_writes: list[tuple[str, str, Any]]
    """(task id, channel, value)."""

    @property
    def interrupts(self) -> list[Any]:
        return [value for _, channel, value in self.pending_writes if channel == "__interrupt__"]

    @property
    def errors(self) -> list[Any]:
        return [value for _, channel, value in self.pending_writes if channel == "__error__"]


@dataclass(frozen=True)
class LangGraphThread:
    thread_id: str
    checkpoints: list[LangGraphCheckpoint]
    """Newest first per namespace (root namespace first)."""
    truncated: bool


def plain(value: Any, depth: int = 0) -> Any:
    """A value LangGraph's serializer returned, as plain JSON for display (constructs nothing)."""
    if depth > 30:
        return repr(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (bytes, bytearray)):
        return {"$bytes": len(value)}
    if isinstance(value, Mapping):
        return {str(k): plain(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [plain(v, depth + 1) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: plain(getattr(value, f.name, None), depth + 1) for f in dataclasses.fields(value)}
        return {"$type": type(value).__name__, **fields}
    dump = getattr(value, "model_dump", None)  # pydantic models (LangChain messages)
    if callable(dump):
        try:
            dumped = dump()
        except Exception:  # noqa: BLE001 - a model that cannot dump itself is shown by repr
            return repr(value)
        return {"$type": type(value).__name__, **plain(dumped, depth + 1)}
    return repr(value)


def _record_event(checkpoint_id: str, at: float, record: Any) -> Event:
    if not isinstance(record, dict):
        return Event(checkpoint_id, at, "unknown", "unknown record", record, True)
    op = str(record.get("op"))
    pos = record.get("pos")
    if op == "start":
        return Event(checkpoint_id, at, "start", f"start {record.get('workflow')}", record.get("input"), True)
    if op == "task":
        return Event(
            checkpoint_id, at, "task", f"task #{pos} {record.get('name')}", record.get("value"), True
        )
    if op == "task_error":
        title = f"task #{pos} {record.get('name')} failed"
        return Event(checkpoint_id, at, "error", title, record.get("error"), True)
    if op == "attempt":  # a failed attempt that will be retried
        retry_at = record.get("retry_at")
        when = f", retry at {time_text(float(retry_at))}" if isinstance(retry_at, (int, float)) else ""
        title = f"task #{pos} {record.get('name')} attempt {record.get('attempt')} failed{when}"
        return Event(checkpoint_id, at, "retry", title, record.get("error"), True)
    if op == "value":  # a replay-safe value (time, random, uuid) recorded on the first run
        return Event(checkpoint_id, at, "value", f"{record.get('name')}() #{pos}", record.get("value"), True)
    if op == "interrupt":
        return Event(checkpoint_id, at, "interrupt", f"interrupt #{pos}", record.get("value"), True)
    if op == "resume":
        return Event(checkpoint_id, at, "answer", f"answer to #{pos}", record.get("value"), True)
    if op == "suspend":
        return Event(checkpoint_id, at, "suspend", "suspended (deadline)")
    if op in ("timer", "wait"):
        wake_at = record.get("wake_at")
        until = "for a callback"
        if isinstance(wake_at, (int, float)):
            until = f"until {time_text(float(wake_at))}"
        title = f"sleep #{pos} {until}" if op == "timer" else f"waiting {until}"
        return Event(checkpoint_id, at, "wait", title)
    if op == "callback":  # never the secret: the page must not hand out the token
        return Event(checkpoint_id, at, "wait", f"callback #{pos} opened")
    if op == "callback_done":
        shown = {k: v for k, v in record.items() if k in ("value", "error", "timeout")}
        return Event(checkpoint_id, at, "answer", f"callback #{pos} ended", shown, True)
    if op == "end":
        if record.get("status") == "completed":
            return Event(checkpoint_id, at, "end", "completed", record.get("value"), True)
        return Event(checkpoint_id, at, "error", "failed", record.get("error"), True)
    return Event(checkpoint_id, at, op, op, record, True)


def _events(history: Sequence[HistoryEntry]) -> list[Event]:
    out: list[Event] = []
    for entry in history:
        cid, at = entry.checkpoint_id, entry.created_at
        if entry.kind == "fork":
            out.append(Event(cid, at, "fork", f"fork: state of checkpoint {entry.parent}"))
        elif entry.kind == "tombstone":
            out.append(Event(cid, at, "deleted", "deleted (tombstone)"))
        records = entry.to_dict()["records"]  # plain JSON (ops untags it)
        if records is None:
            if entry.kind not in ("fork", "tombstone"):
                out.append(
                    Event(cid, at, "unreadable", f"{entry.new_records} record(s), values not readable")
                )
            continue
        out.extend(_record_event(cid, at, r) for r in records)
    return out


class Browser:
    """Read-only access to one store for the web view.

    ``saver`` is an opened :class:`~cairnflow.core.log.CheckpointLog`
    (``cairnflow.savers.open_saver(url, create=False)``); LangGraph threads are read through a
    :class:`~cairnflow.langgraph.LangGraphSaver` on the same store and prefix,
    when ``langgraph-checkpoint`` is installed.
    """

    def __init__(self, saver: CheckpointLog, *, clock: Callable[[], float] = time.time) -> None:
        self.saver = saver
        self.clock = clock
        self._langgraph: Any = None
        self._langgraph_missing = False
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        """The store and prefix being shown."""
        return self.saver.store.url + ("/" + self.saver.prefix if self.saver.prefix else "")

    # ------------------------------------------------------------------ LangGraph

    def langgraph(self) -> Any:
        """The LangGraph saver on this store, or None when ``langgraph-checkpoint`` is not installed."""
        with self._lock:  # requests are served on several threads: build it once
            if self._langgraph is None and not self._langgraph_missing:
                try:
                    from cairnflow.langgraph import LangGraphSaver
                except ImportError:
                    self._langgraph_missing = True
                    return None
                from cairnflow.ops.lgraph import graph_serde  # LANGGRAPH_AES_KEY, as the commands

                self._langgraph = LangGraphSaver(
                    self.saver.store,
                    prefix=self.saver.prefix,
                    serde=graph_serde(),
                    max_workers=4,
                    store_retry=self.saver.store_retry,
                )
            return self._langgraph

    # ------------------------------------------------------------------ reading

    def threads(self, filters: Filters) -> list[ThreadRow]:
        """Threads of both layouts passing ``filters``, newest update first.

        The filtering is :func:`cairnflow.ops.list_threads`' own.
        """
        now = self.clock()
        summaries = ops.list_threads(
            self.saver,
            statuses=filters.statuses or None,
            workflow=filters.workflow,
            updated_after=None if filters.newer_than is None else now - filters.newer_than,
            updated_before=None if filters.older_than is None else now - filters.older_than,
            limit=filters.limit,
            sort="updated",
            layouts=None if filters.layout is None else [filters.layout],
        )
        rows = [
            ThreadRow(
                thread_id=s.thread_id,
                layout=s.layout,
                status=s.status,
                workflow=s.workflow,
                updated_at=s.updated_at,
                checkpoint_id=s.checkpoint_id,
                steps=s.steps,
                error=s.error,
                waiting_for=ops.untag(s.waiting_for),
            )
            for s in summaries
        ]
        rows.sort(key=lambda r: (-(r.updated_at or 0.0), r.thread_id, r.layout))
        return rows

    def layout_of(self, thread_id: str, layout: str | None = None) -> str:
        """Which layout holds ``thread_id`` (:func:`cairnflow.ops.thread_layout`)."""
        return ops.thread_layout(self.saver, thread_id, layout)

    def workflows(self, rows: Sequence[ThreadRow]) -> list[str]:
        """The workflow names among ``rows`` (for the filter's choices)."""
        return sorted({r.workflow for r in rows if r.workflow})

    def executor_thread(self, thread_id: str, checkpoint_id: str | None = None) -> ExecutorThread:
        """An executor thread's state (at ``checkpoint_id``, default the latest) and timeline."""
        listed = ops.thread_history(self.saver, thread_id, limit=HISTORY_LIMIT + 1)
        truncated = len(listed) > HISTORY_LIMIT
        history = sorted(listed[:HISTORY_LIMIT], key=lambda e: int(e.checkpoint_id))
        note = None
        try:
            state: ThreadState | None = ops.show_state(self.saver, thread_id, checkpoint_id)
        except ThreadNotFoundError as exc:
            if checkpoint_id is not None:
                raise
            state, note = None, str(exc)
        return ExecutorThread(thread_id, state, note, history, _events(history), truncated)

    def langgraph_thread(self, thread_id: str, limit: int = LANGGRAPH_LIMIT) -> LangGraphThread:
        """A LangGraph thread's checkpoints (every namespace), newest first, with values."""
        lg = self.langgraph()
        if lg is None:
            raise ThreadNotFoundError(
                f"no thread {thread_id!r}: LangGraph threads need langgraph-checkpoint "
                "(pip install 'cairnflow[langgraph]')"
            )
        found: list[LangGraphCheckpoint] = []
        truncated = False
        for item in lg.list({"configurable": {"thread_id": thread_id}}):
            if len(found) >= limit:
                truncated = True
                break
            conf = item.config["configurable"]
            parent = (item.parent_config or {}).get("configurable", {}).get("checkpoint_id")
            found.append(
                LangGraphCheckpoint(
                    namespace=str(conf.get("checkpoint_ns", "")),
                    checkpoint_id=str(conf.get("checkpoint_id")),
                    parent_id=None if parent is None else str(parent),
                    ts=item.checkpoint.get("ts"),
                    metadata=plain(item.metadata),
                    channel_values={str(k): plain(v) for k, v in item.checkpoint["channel_values"].items()},
                    channel_versions=plain(item.checkpoint.get("channel_versions", {})),
                    pending_writes=[(str(t), str(c), plain(v)) for t, c, v in item.pending_writes or ()],
                )
            )
        if not found:
            raise ThreadNotFoundError(f"no LangGraph thread {thread_id!r}")
        found.sort(key=lambda c: c.namespace != "")  # stable: root namespace first, newest first within
        return LangGraphThread(thread_id, found, truncated)

    def verify(self, thread_id: str | None = None, layout: str | None = None) -> VerifyReport:
        """Check the store (or one thread): :func:`cairnflow.ops.verify`, which only reads."""
        return ops.verify(self.saver, thread_id, layout=layout)
