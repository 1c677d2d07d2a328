"""What the operations return for LangGraph threads (frozen, keyword-only, with ``to_dict()``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cairnflow.ops.display import iso_time

__all__ = ["GraphCheckpoint", "GraphState"]


@dataclass(frozen=True, kw_only=True)
class GraphCheckpoint:
    """One checkpoint of a LangGraph thread (``cairnflow history`` of a ``langgraph`` thread)."""

    thread_id: str
    checkpoint_id: str
    ns: str
    """The checkpoint namespace (``""`` for the root graph, else a subgraph's)."""
    parent: str | None
    created_at: float | None
    step: int | None
    source: str | None
    """What wrote it: ``input``, ``loop``, ``update`` or ``fork``."""
    channels: list[str]
    next: list[str]
    """Nodes scheduled to run from this checkpoint."""
    writes: list[dict[str, Any]]
    """Pending writes: ``{"task", "channel", "value"}``."""

    @property
    def summary(self) -> str:
        where = f" [{self.ns}]" if self.ns else ""
        writes = ", ".join(sorted({w["channel"] for w in self.writes}))
        nxt = f" next: {', '.join(self.next)}" if self.next else ""
        return f"{self.source or '?'} step {self.step}{where}{nxt}" + (
            f"; writes: {writes}" if writes else ""
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "checkpoint_id": self.checkpoint_id,
            "ns": self.ns,
            "parent": self.parent,
            "created_at": iso_time(self.created_at),
            "step": self.step,
            "source": self.source,
            "channels": self.channels,
            "next": self.next,
            "writes": self.writes,
            "summary": self.summary,
        }


@dataclass(frozen=True, kw_only=True)
class GraphState:
    """The state of a LangGraph thread at one checkpoint (``cairnflow show`` of a ``langgraph`` thread)."""

    thread_id: str
    status: str
    checkpoint: GraphCheckpoint
    latest_checkpoint_id: str
    values: dict[str, Any]
    """Channel values, as plain JSON."""
    namespaces: list[str]
    error: str | None = None
    interrupts: list[Any] | None = None

    @property
    def is_latest(self) -> bool:
        return self.checkpoint.checkpoint_id == self.latest_checkpoint_id

    def to_dict(self) -> dict[str, Any]:
        return {
            "thread_id": self.thread_id,
            "layout": "langgraph",
            "status": self.status,
            "checkpoint_id": self.checkpoint.checkpoint_id,
            "latest_checkpoint_id": self.latest_checkpoint_id,
            "is_latest": self.is_latest,
            "namespaces": self.namespaces,
            "error": self.error,
            "interrupts": self.interrupts,
            "values": self.values,
            "checkpoint": self.checkpoint.to_dict(),
        }
