"""How the commands show LangGraph threads (``history`` and ``show``); the rest is shared."""

from __future__ import annotations

import time

from cairnflow import ops
from cairnflow.cli.output import Output, ago, pretty, short, status_style

__all__ = ["history", "show"]

EXIT_OK = 0


def history(thread_id: str, out: Output, entries: list[ops.GraphCheckpoint]) -> int:
    """``cairnflow history`` of a LangGraph thread."""
    if out.as_json:
        checkpoints = [e.to_dict() for e in entries]
        out.json({"thread_id": thread_id, "layout": "langgraph", "checkpoints": checkpoints})
        return EXIT_OK
    now = time.time()
    rows = []
    for e in entries:
        step = "-" if e.step is None else str(e.step)
        written = ago(e.created_at, now)
        rows.append(
            [
                e.checkpoint_id,
                e.ns or "-",
                e.source or "-",
                step,
                written,
                ", ".join(e.next) or "-",
                str(len(e.writes)),
            ]
        )
    out.table(["CHECKPOINT", "NAMESPACE", "SOURCE", "STEP", "WRITTEN", "NEXT", "WRITES"], rows)
    return EXIT_OK


def show(out: Output, state: ops.GraphState) -> int:
    """``cairnflow show`` of a LangGraph thread: values, pending writes, next nodes."""
    if out.as_json:
        out.json(state.to_dict())
        return EXIT_OK
    pad = " " * 13
    cp = state.checkpoint

    def field(name: str, value: str) -> None:
        out.line(f"{name:<12} {value}")

    field("thread", f"{state.thread_id} (langgraph)")
    field("status", out.paint(state.status, status_style(state.status)))
    latest = "latest" if state.is_latest else f"latest is {state.latest_checkpoint_id}"
    field("checkpoint", f"{cp.checkpoint_id} ({cp.source or '?'} step {cp.step}, {latest})")
    field("written", f"{ago(cp.created_at)} ({ops.iso_time(cp.created_at)})")
    if len(state.namespaces) > 1:
        field("namespaces", ", ".join(ns or '""' for ns in state.namespaces))
    field("next", ", ".join(cp.next) or "-")
    if state.interrupts:
        waiting = state.interrupts[0] if len(state.interrupts) == 1 else state.interrupts
        field("waiting for", pretty(waiting, pad))
    if state.error is not None:
        field("error", out.paint(state.error, "red"))
    field("values", pretty(state.values, pad))
    if cp.writes:
        out.line("")
        rows = [[w["task"], w["channel"], short(w["value"])] for w in cp.writes]
        out.table(["TASK", "CHANNEL", "PENDING WRITE"], rows)
    return EXIT_OK
