"""A mixed store for the web view's tests and screenshots.

:func:`populate_demo` leaves executor threads in every state (the CLI tests'
flows), LangGraph threads (one waiting at an interrupt, one finished) and,
with ``hostile``, a thread whose id, workflow name and values are HTML and
script payloads.
"""

from __future__ import annotations

import operator
from typing import Annotated, Any, TypedDict

from cairnflow.core import RetryPolicy, task, workflow
from cairnflow.savers import open_saver
from tests.cli.flows import Expected, populate

#: A payload that would run script or break out of an attribute if rendered unescaped.
HOSTILE = "<script>alert('x')</script>\"'><img src=x onerror=alert(1)>&amp;"
HOSTILE_ID = f"evil{HOSTILE}"
HOSTILE_WORKFLOW = "wf<b onmouseover=alert(2)>"
LANGGRAPH_THREADS = {"agent-wait": "interrupted", "agent-done": "completed"}
RETRY_ID = "retry-1"
_flaky_calls: list[int] = []


@task(retry=RetryPolicy(max_attempts=3, initial_interval=0.0, jitter=False))
def flaky(x: int) -> int:
    """Fails on its first call in the process, then succeeds (a retried attempt in the timeline)."""
    _flaky_calls.append(x)
    if len(_flaky_calls) == 1:
        raise ConnectionError("upstream reset")
    return x * 2


@workflow(name="sync")
def sync(x: int) -> int:
    return flaky(x).result()


@task
def echo(value: Any) -> Any:
    return value


@workflow(name=HOSTILE_WORKFLOW)
def hostile(value: str) -> dict[str, Any]:
    got = echo(value).result()
    return {HOSTILE: got, "list": [HOSTILE]}


class Chat(TypedDict, total=False):
    items: Annotated[list[str], operator.add]


def _graph(saver: Any) -> Any:
    from langgraph.graph import END, START, StateGraph
    from langgraph.types import interrupt as lg_interrupt

    def draft(state: Chat) -> Chat:
        return {"items": ["draft: refund order 1182"]}

    def review(state: Chat) -> Chat:
        answer = lg_interrupt({"question": "send the refund?", "seen": list(state["items"])})
        return {"items": [f"review: {answer}"]}

    g = StateGraph(Chat)
    g.add_node("draft", draft)
    g.add_node("review", review)
    g.add_edge(START, "draft")
    g.add_edge("draft", "review")
    g.add_edge("review", END)
    return g.compile(checkpointer=saver)


def populate_langgraph(url: str) -> None:
    """Two LangGraph threads: ``agent-wait`` at an interrupt, ``agent-done`` resumed to the end."""
    from langgraph.types import Command

    from cairnflow.langgraph import LangGraphSaver

    with LangGraphSaver.from_url(url) as saver:
        app = _graph(saver)
        app.invoke({"items": ["ticket 1182"]}, {"configurable": {"thread_id": "agent-wait"}})
        done = {"configurable": {"thread_id": "agent-done"}}
        app.invoke({"items": ["ticket 1183"]}, done)
        app.invoke(Command(resume="approved"), done)


def all_ids(*, hostile_thread: bool = True) -> set[str]:
    """Every thread :func:`populate_demo` leaves."""
    from tests.cli.flows import EXPECTED

    return {*EXPECTED, *LANGGRAPH_THREADS, RETRY_ID} | ({HOSTILE_ID} if hostile_thread else set())


def populate_demo(url: str, *, hostile_thread: bool = True) -> dict[str, Expected]:
    """Executor threads in every state, a retried task, two LangGraph threads, and the hostile thread."""
    expected = populate(url)
    _flaky_calls.clear()
    sync.run(21, thread_id=RETRY_ID, saver=open_saver(url))
    populate_langgraph(url)
    if hostile_thread:
        hostile.run(HOSTILE, thread_id=HOSTILE_ID, saver=open_saver(url))
    return expected
