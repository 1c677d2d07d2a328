"""LangGraph threads for the CLI tests: a small graph with an interrupt, run on a store URL."""

from __future__ import annotations

import operator
from collections import Counter
from typing import Annotated, Any

from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, interrupt
from typing_extensions import TypedDict

from cairnflow.langgraph import LangGraphSaver

#: How many times each node ran, over every graph built here (a resumed thread must not rerun "a").
NODE_CALLS: Counter[str] = Counter()


class State(TypedDict, total=False):
    items: Annotated[list[str], operator.add]
    answer: str


def build(url: str) -> Any:
    """The graph START -> a -> ask (interrupts) -> END, checkpointed to ``url``."""

    def a(state: State) -> State:
        NODE_CALLS["a"] += 1
        return {"items": ["a"]}

    def ask(state: State) -> State:
        NODE_CALLS["ask"] += 1
        return {"answer": interrupt({"question": "ok?"})}

    g = StateGraph(State)
    g.add_node("a", a)
    g.add_node("ask", ask)
    g.add_edge(START, "a")
    g.add_edge("a", "ask")
    g.add_edge("ask", END)
    return g.compile(checkpointer=LangGraphSaver.from_url(url))


def cfg(thread_id: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread_id}}


def populate_graphs(url: str) -> dict[str, str]:
    """Leave LangGraph threads on ``url``: ``lg-wait`` interrupted, ``lg-done`` completed."""
    app = build(url)
    app.invoke({"items": ["x"]}, cfg("lg-wait"))
    app.invoke({"items": ["x"]}, cfg("lg-done"))
    app.invoke(Command(resume="yes"), cfg("lg-done"))
    return {"lg-wait": "interrupted", "lg-done": "completed"}


def resume(url: str, thread_id: str, answer: str) -> Any:
    return build(url).invoke(Command(resume=answer), cfg(thread_id))
