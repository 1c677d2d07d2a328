"""Real graphs compiled with our saver give the same outputs and state history as InMemorySaver.

Each scenario runs a graph against a saver and returns a transcript: the outputs, how many
times each node or task ran, ``get_state`` and the whole ``get_state_history`` (checkpoint
ids and timestamps left out, they differ between runs). The transcript with
:class:`LangGraphSaver` must equal the one with LangGraph's ``InMemorySaver``.
"""

from __future__ import annotations

import asyncio
import operator
import re
import threading
from collections import Counter
from collections.abc import Callable
from typing import Annotated, Any

import pytest
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langgraph.channels import DeltaChannel
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.func import entrypoint, task
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import _messages_delta_reducer
from langgraph.types import Command, Durability, Send, StateSnapshot, interrupt
from typing_extensions import TypedDict

from cairnflow.langgraph import LangGraphSaver

Transcript = list[Any]


def snap(s: StateSnapshot) -> dict[str, Any]:
    metadata = dict(s.metadata or {})
    return {
        "values": s.values,
        "next": s.next,
        # the whole metadata and the configs' keys: nothing of ours may show (ids differ per run)
        "metadata": {k: sorted(v) if k == "parents" else v for k, v in metadata.items() if k != "run_id"},
        "has_run_id": "run_id" in metadata,
        "config": config_keys(s.config),
        "parent_config": config_keys(s.parent_config),
        "tasks": [
            (
                t.name,
                repr(t.error) if t.error else None,
                [i.value for i in t.interrupts],
                snap(t.state) if isinstance(t.state, StateSnapshot) else None,
                t.result,
            )
            for t in s.tasks
        ],
        "interrupts": [i.value for i in s.interrupts],
    }


def config_keys(config: Any) -> dict[str, list[str]] | None:
    return None if config is None else {k: sorted(v) for k, v in config.items()}


def history(app: Any, config: dict[str, Any]) -> list[dict[str, Any]]:
    return [snap(s) for s in app.get_state_history(config)]


def cfg(thread: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread}}


def out(value: Any) -> Any:
    """An invoke result without the Interrupt objects' ids (they are random)."""
    if isinstance(value, dict) and "__interrupt__" in value:
        value = {**value, "__interrupt__": [i.value for i in value["__interrupt__"]]}
    return value


# --------------------------------------------------------------------------- scenarios


class Acc(TypedDict, total=False):
    items: Annotated[list[str], operator.add]
    count: int


def reducer_graph(saver: BaseCheckpointSaver[Any], calls: Counter[str]) -> Any:
    def a(s: Acc) -> Acc:
        calls["a"] += 1
        return {"items": ["a"], "count": s.get("count", 0) + 1}

    def b(s: Acc) -> Acc:
        calls["b"] += 1
        return {"items": [f"b{s['count']}"]}

    g = StateGraph(Acc)
    g.add_node("a", a)
    g.add_node("b", b)
    g.add_edge(START, "a")
    g.add_edge("a", "b")
    g.add_edge("b", END)
    return g.compile(checkpointer=saver)


def scenario_reducer(saver: BaseCheckpointSaver[Any]) -> Transcript:
    calls: Counter[str] = Counter()
    app = reducer_graph(saver, calls)
    c = cfg("reducer")
    t: Transcript = [app.invoke({"items": ["x"], "count": 0}, c), app.invoke({"items": ["y"]}, c)]
    return [*t, dict(calls), snap(app.get_state(c)), history(app, c)]


def scenario_fork(saver: BaseCheckpointSaver[Any]) -> Transcript:
    """get_state_history, replay from an old checkpoint, and a fork via update_state."""
    calls: Counter[str] = Counter()
    app = reducer_graph(saver, calls)
    c = cfg("fork")
    t: Transcript = [app.invoke({"items": ["x"], "count": 0}, c), app.invoke({"items": ["y"]}, c)]
    hist = list(app.get_state_history(c))
    after_a = next(s for s in hist if s.next == ("b",) and s.values["count"] == 1)
    forked = app.update_state(after_a.config, {"items": ["patched"]}, as_node="a")
    t.append(out(app.invoke(None, forked)))
    replay_from = next(s for s in app.get_state_history(c) if s.metadata and s.metadata["step"] == 0)
    t.append(out(app.invoke(None, replay_from.config)))
    t.append(app.update_state(c, {"items": ["latest-patch"]}) is not None)
    return [*t, dict(calls), snap(app.get_state(c)), history(app, c)]


def scenario_subgraph(saver: BaseCheckpointSaver[Any]) -> Transcript:
    calls: Counter[str] = Counter()

    def s1(s: Acc) -> Acc:
        calls["s1"] += 1
        return {"items": ["s1"]}

    def s2(s: Acc) -> Acc:
        calls["s2"] += 1
        answer = interrupt({"question": "approve?", "seen": list(s["items"])})
        return {"items": [f"s2:{answer}"]}

    sub = StateGraph(Acc)
    sub.add_node("s1", s1)
    sub.add_node("s2", s2)
    sub.add_edge(START, "s1")
    sub.add_edge("s1", "s2")
    sub.add_edge("s2", END)

    def pre(s: Acc) -> Acc:
        calls["pre"] += 1
        return {"items": ["pre"]}

    def post(s: Acc) -> Acc:
        calls["post"] += 1
        return {"items": ["post"]}

    g = StateGraph(Acc)
    g.add_node("pre", pre)
    g.add_node("child", sub.compile())
    g.add_node("post", post)
    g.add_edge(START, "pre")
    g.add_edge("pre", "child")
    g.add_edge("child", "post")
    g.add_edge("post", END)
    app = g.compile(checkpointer=saver)
    c = cfg("subgraph")
    t: Transcript = [out(app.invoke({"items": ["x"]}, c))]
    t.append(snap(app.get_state(c, subgraphs=True)))
    t.append(out(app.invoke(Command(resume="yes"), c)))
    return [*t, dict(calls), snap(app.get_state(c, subgraphs=True)), history(app, c)]


class Fan(TypedDict, total=False):
    topics: list[str]
    results: Annotated[list[str], operator.add]


def scenario_send(saver: BaseCheckpointSaver[Any]) -> Transcript:
    calls: Counter[str] = Counter()

    def route(s: Fan) -> list[Send]:
        return [Send("work", {"topic": topic}) for topic in s["topics"]]

    def work(s: dict[str, str]) -> Fan:
        calls[s["topic"]] += 1
        return {"results": [s["topic"].upper()]}

    def summary(s: Fan) -> Fan:
        calls["summary"] += 1
        return {"results": [f"n={len(s['results'])}"]}

    g = StateGraph(Fan)
    g.add_node("work", work)
    g.add_node("summary", summary)
    g.add_conditional_edges(START, route, ["work"])
    g.add_edge("work", "summary")
    g.add_edge("summary", END)
    app = g.compile(checkpointer=saver)
    c = cfg("send")
    t: Transcript = [app.invoke({"topics": ["a", "b", "c", "d"]}, c)]
    t.append(app.invoke({"topics": ["e"]}, c))
    return [*t, dict(calls), snap(app.get_state(c)), history(app, c)]


def interrupt_graph(saver: BaseCheckpointSaver[Any], calls: Counter[str]) -> Any:
    def ask_name(s: Acc) -> Acc:
        calls["ask_name"] += 1
        name = interrupt({"q": "name?"})
        return {"items": [f"name={name}"]}

    def ask_age(s: Acc) -> Acc:
        calls["ask_age"] += 1
        age = interrupt({"q": "age?", "so_far": list(s["items"])})
        return {"items": [f"age={age}"]}

    g = StateGraph(Acc)
    g.add_node("ask_name", ask_name)
    g.add_node("ask_age", ask_age)
    g.add_edge(START, "ask_name")
    g.add_edge("ask_name", "ask_age")
    g.add_edge("ask_age", END)
    return g.compile(checkpointer=saver)


def scenario_interrupt(saver: BaseCheckpointSaver[Any]) -> Transcript:
    calls: Counter[str] = Counter()
    app = interrupt_graph(saver, calls)
    c = cfg("interrupt")
    t: Transcript = [out(app.invoke({"items": ["start"]}, c)), snap(app.get_state(c))]
    t.append(out(app.invoke(Command(resume="ada"), c)))
    t.append(snap(app.get_state(c)))
    t.append(out(app.invoke(Command(resume=36), c)))
    return [*t, dict(calls), snap(app.get_state(c)), history(app, c)]


def scenario_interrupt_async(saver: BaseCheckpointSaver[Any]) -> Transcript:
    calls: Counter[str] = Counter()
    app = interrupt_graph(saver, calls)
    c = cfg("interrupt-async")

    async def run() -> Transcript:
        t: Transcript = [out(await app.ainvoke({"items": ["start"]}, c))]
        t.append(out(await app.ainvoke(Command(resume="ada"), c)))
        t.append(out(await app.ainvoke(Command(resume=36), c)))
        t.append(snap(await app.aget_state(c)))
        t.append([snap(s) async for s in app.aget_state_history(c)])
        return t

    return [*asyncio.run(run()), dict(calls)]


def scenario_crash(saver: BaseCheckpointSaver[Any]) -> Transcript:
    """A node fails; its sibling's finished write is kept; the resume runs only what is left."""
    calls: Counter[str] = Counter()
    broken = {"b": True}
    # b crashes only once a's result is stored: otherwise whether a's write survives is a
    # race inside LangGraph (a finishing after the run has stopped is dropped), not the saver.
    a_stored = threading.Event()
    inner = saver.put_writes

    def put_writes(config: Any, writes: Any, task_id: str, task_path: str = "") -> None:
        inner(config, writes, task_id, task_path)
        if any(value == ["a"] for _, value in writes):
            a_stored.set()

    saver.put_writes = put_writes  # type: ignore[method-assign]

    def a(s: Acc) -> Acc:
        calls["a"] += 1
        return {"items": ["a"]}

    def b(s: Acc) -> Acc:
        calls["b"] += 1
        if broken["b"]:
            assert a_stored.wait(timeout=60)
            raise RuntimeError("b crashed")
        return {"items": ["b"]}

    def c_node(s: Acc) -> Acc:
        calls["c"] += 1
        return {"items": ["c"]}

    g = StateGraph(Acc)
    g.add_node("a", a)
    g.add_node("b", b)
    g.add_node("c", c_node)
    g.add_edge(START, "a")
    g.add_edge(START, "b")
    g.add_edge(["a", "b"], "c")
    g.add_edge("c", END)
    app = g.compile(checkpointer=saver)
    c = cfg("crash")
    t: Transcript = []
    with pytest.raises(RuntimeError, match="b crashed"):
        app.invoke({"items": ["x"]}, c)
    t.append(snap(app.get_state(c)))
    broken["b"] = False
    t.append(app.invoke(None, c))
    return [*t, dict(calls), snap(app.get_state(c)), history(app, c)]


def functional_scenario(durability: Durability) -> Callable[[BaseCheckpointSaver[Any]], Transcript]:
    def run(saver: BaseCheckpointSaver[Any]) -> Transcript:
        calls: Counter[str] = Counter()
        flaky = {"fail": True}

        @task
        def double(x: int) -> int:
            calls["double"] += 1
            return 2 * x

        @task
        def shaky(x: int) -> int:
            calls["shaky"] += 1
            if flaky["fail"]:
                raise RuntimeError("shaky failed")
            return x + 100

        @entrypoint(checkpointer=saver)
        def workflow(n: int) -> dict[str, int]:
            a = double(n).result()
            answer = interrupt({"a": a})
            b = double(a + answer).result()
            c = shaky(b).result()
            return {"a": a, "b": b, "c": c}

        c = cfg(f"functional-{durability}")
        t: Transcript = [out(workflow.invoke(3, c, durability=durability))]
        with pytest.raises(RuntimeError, match="shaky failed"):
            workflow.invoke(Command(resume=1), c, durability=durability)
        flaky["fail"] = False
        t.append(out(workflow.invoke(None, c, durability=durability)))
        t.append(out(workflow.invoke(5, c, durability=durability)))
        t.append(out(workflow.invoke(Command(resume=0), c, durability=durability)))
        return [*t, dict(calls), snap(workflow.get_state(c)), history(workflow, c)]

    return run


class Chat(TypedDict):
    messages: Annotated[list[AnyMessage], DeltaChannel(_messages_delta_reducer, snapshot_frequency=4)]


def scenario_delta_channel(saver: BaseCheckpointSaver[Any]) -> Transcript:
    """LangGraph's DeltaChannel (beta): values rebuilt from ancestors' writes and snapshots."""

    def bot(s: Chat) -> dict[str, Any]:
        n = len(s["messages"])
        return {"messages": [AIMessage(content=f"answer {n}", id=f"ai-{n}")]}

    g = StateGraph(Chat)
    g.add_node("bot", bot)
    g.add_edge(START, "bot")
    g.add_edge("bot", END)
    app = g.compile(checkpointer=saver)
    c = cfg("delta")
    t: Transcript = []
    for turn in range(7):
        t.append(app.invoke({"messages": [HumanMessage(content=f"q{turn}", id=f"h-{turn}")]}, c))
    old = next(s for s in app.get_state_history(c) if len(s.values["messages"]) == 4 and not s.next)
    forked = app.update_state(old.config, {"messages": [HumanMessage(content="edit", id="edit")]})
    t.append(app.invoke(None, forked))
    t.append(app.invoke({"messages": [HumanMessage(content="last", id="last")]}, c))
    return [*t, snap(app.get_state(c)), history(app, c)]


SCENARIOS: dict[str, Callable[[BaseCheckpointSaver[Any]], Transcript]] = {
    "delta_channel": scenario_delta_channel,
    "reducer": scenario_reducer,
    "fork": scenario_fork,
    "subgraph": scenario_subgraph,
    "send": scenario_send,
    "interrupt": scenario_interrupt,
    "interrupt_async": scenario_interrupt_async,
    "crash": scenario_crash,
    "functional_sync": functional_scenario("sync"),
    "functional_async": functional_scenario("async"),
    "functional_exit": functional_scenario("exit"),
}
ON_S3 = ["subgraph", "interrupt_async", "fork", "functional_sync", "functional_exit"]


def assert_same_as_in_memory(name: str, saver: LangGraphSaver) -> None:
    expected = SCENARIOS[name](InMemorySaver())
    actual = SCENARIOS[name](saver)
    assert actual == expected


@pytest.mark.parametrize("backend", ["memory", "local"], indirect=True)
@pytest.mark.parametrize("name", list(SCENARIOS))
def test_graph_matches_in_memory_saver(name: str, saver: LangGraphSaver) -> None:
    assert_same_as_in_memory(name, saver)


@pytest.mark.parametrize("backend", ["s3"], indirect=True)
@pytest.mark.parametrize("name", ON_S3)
def test_graph_matches_in_memory_saver_on_s3(name: str, saver: LangGraphSaver) -> None:
    assert_same_as_in_memory(name, saver)


#: Event fields that differ between any two runs (times are clocks); ids are blanked wherever they are.
_PER_RUN = {"timestamp", "run_id"}
#: Checkpoint and task ids (uuids) and interrupt ids (32 hex digits hashed from them).
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|\b[0-9a-f]{32}\b")


def _blank_ids(value: Any) -> Any:
    """``value`` with checkpoint, task and interrupt ids (also in namespaces and keys) and times blanked."""
    if isinstance(value, dict):
        return {_blank_ids(k): "*" if k in _PER_RUN else _blank_ids(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_blank_ids(v) for v in value]
    if isinstance(value, str):
        return _UUID.sub("<id>", value)
    return value if isinstance(value, (int, float, bool, type(None))) else repr(value)


def streamed_events(saver: Any) -> list[Any]:
    """Every debug event (checkpoints with their configs and metadata, tasks) of an
    interrupted subgraph run and its resumption, streamed with ``astream``."""
    sub = StateGraph(Acc)
    sub.add_node("s1", lambda s: {"items": ["s1"]})
    sub.add_node("s2", lambda s: {"items": [f"s2:{interrupt('approve?')}"]})
    sub.add_edge(START, "s1")
    sub.add_edge("s1", "s2")
    sub.add_edge("s2", END)
    g = StateGraph(Acc)
    g.add_node("pre", lambda s: {"items": ["pre"]})
    g.add_node("child", sub.compile())
    g.add_edge(START, "pre")
    g.add_edge("pre", "child")
    g.add_edge("child", END)
    app = g.compile(checkpointer=saver)
    c = cfg("events")

    async def run() -> list[Any]:
        events = []
        for value in ({"items": ["x"]}, Command(resume="yes")):
            async for event in app.astream(value, c, stream_mode="debug", subgraphs=True):
                events.append(event)
        return events

    return _blank_ids(asyncio.run(run()))  # type: ignore[no-any-return]


def test_streamed_events_configs_and_metadata_are_those_of_in_memory_saver(tmp_path: Any) -> None:
    # Through the async store (`async with` a from_url saver): the events LangGraph streams,
    # with their configs and metadata, carry nothing of ours.
    expected = streamed_events(InMemorySaver())

    async def opened() -> LangGraphSaver:
        return await LangGraphSaver.from_url(f"file://{tmp_path}/store").__aenter__()

    saver = asyncio.run(opened())
    assert saver.bridged_store is not None  # the a* methods go through the async store
    assert streamed_events(saver) == expected
    kinds = {e[1]["type"] for e in expected}
    assert {"checkpoint", "task", "task_result"} <= kinds, kinds  # configs, metadata and tasks compared
