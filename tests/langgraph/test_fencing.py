"""Two processes resume the same thread from the same checkpoint: exactly one commits.

Each "process" is a saver with its own store client on the same bucket (or directory).
A barrier after ``get_tuple`` makes both load the same latest checkpoint before either
writes, so every round is a real race for the next log position. The loser must get
ConflictError and leave nothing visible; the history must stay a line; and explicit
time travel must still work afterwards.

The S3 rounds run against the moto *server* with small bodies, where create-only writes
are atomic (moto's in-process mock is not; see EMULATORS.md).
"""

from __future__ import annotations

import itertools
import multiprocessing
import operator
import threading
from collections.abc import Callable
from typing import Annotated, Any

import pytest
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import CheckpointTuple, get_checkpoint_id
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, Durability, StateUpdate, interrupt
from typing_extensions import TypedDict

from cairnflow.core.errors import ConflictError
from cairnflow.core.store import ObjectStore
from cairnflow.langgraph import LangGraphSaver

ROUNDS = {"memory": 20, "local": 20, "s3": 5, "gcs": 3, "azure": 3}
DURABILITIES: list[Durability] = ["sync", "async", "exit"]


class GatedSaver(LangGraphSaver):
    """Waits at a shared barrier after loading a root-namespace thread's latest checkpoint."""

    barrier: threading.Barrier | None = None

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        found = super().get_tuple(config)
        conf = config["configurable"]
        if self.barrier is not None and not get_checkpoint_id(config) and not conf.get("checkpoint_ns"):
            self.barrier.wait(timeout=60)
        return found


class State(TypedDict, total=False):
    items: Annotated[list[str], operator.add]


def graph(saver: LangGraphSaver) -> Any:
    def work(s: State) -> State:
        return {"items": [f"work{len(s['items'])}"]}

    def ask(s: State) -> State:
        if "ask" in s["items"] and not any(x.startswith("answer=") for x in s["items"]):
            return {"items": [f"answer={interrupt('go?')}"]}
        return {}

    g = StateGraph(State)
    g.add_node("work", work)
    g.add_node("ask", ask)
    g.add_edge(START, "work")
    g.add_edge("work", "ask")
    g.add_edge("ask", END)
    return g.compile(checkpointer=saver)


def race(
    savers: list[GatedSaver],
    make_input: Callable[[int], Any],
    durability: Durability,
    config: RunnableConfig | None = None,
) -> list[Any]:
    barrier = threading.Barrier(len(savers))
    results: list[Any] = [None] * len(savers)

    def run(i: int) -> None:
        savers[i].barrier = barrier
        try:
            results[i] = graph(savers[i]).invoke(make_input(i), config or CONFIG, durability=durability)
        except Exception as exc:
            results[i] = exc
        finally:
            savers[i].barrier = None

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(savers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return results


CONFIG: RunnableConfig = {"configurable": {"thread_id": "contested"}}


def assert_linear(saver: LangGraphSaver) -> list[Any]:
    history = list(graph(saver).get_state_history(CONFIG))
    for newer, older in itertools.pairwise(history):
        assert newer.parent_config is not None
        assert get_checkpoint_id(newer.parent_config) == get_checkpoint_id(older.config), "history forked"
    return history


def test_concurrent_resumes_exactly_one_commits(
    backend: str, store_factory: Callable[[], ObjectStore]
) -> None:
    savers = [GatedSaver(store_factory(), prefix="fence/") for _ in range(2)]
    app = graph(savers[0])
    app.invoke({"items": ["seed"]}, CONFIG)
    for round_no in range(ROUNDS[backend]):
        durability = DURABILITIES[round_no % len(DURABILITIES)]
        before = len(list(app.get_state_history(CONFIG)))
        results = race(savers, lambda i, r=round_no: {"items": [f"r{r}-p{i}"]}, durability)
        winners = [r for r in results if isinstance(r, dict)]
        losers = [r for r in results if isinstance(r, ConflictError)]
        assert len(winners) == 1 and len(losers) == 1, f"round {round_no} ({durability}): {results!r}"
        state = app.get_state(CONFIG)
        assert state.values == winners[0], "the thread does not show the winner's state"
        history = assert_linear(savers[1])
        assert len(history) == before + (1 if durability == "exit" else 4), "loser left checkpoints"

    # Racing resumes of one interrupt: one answer is recorded, the other run gets ConflictError.
    app.invoke({"items": ["ask"]}, CONFIG)
    assert app.get_state(CONFIG).next == ("ask",)
    results = race(savers, lambda i: Command(resume=f"p{i}"), "sync")
    winners = [r for r in results if isinstance(r, dict)]
    assert len(winners) == 1 and sum(isinstance(r, ConflictError) for r in results) == 1, results
    assert app.get_state(CONFIG).values["items"][-1] == winners[0]["items"][-1]
    assert_linear(savers[0])

    # Explicit time travel still works: replay from an old checkpoint, then fork with update_state.
    old = next(
        s for s in app.get_state_history(CONFIG) if s.values["items"] == ["seed", "work1"] and not s.next
    )
    replayed = graph(savers[1]).invoke(None, old.config)
    assert replayed == {"items": ["seed", "work1"]}
    assert app.get_state(CONFIG).values == {"items": ["seed", "work1"]}
    forked = graph(savers[0]).update_state(old.config, {"items": ["patched"]}, as_node="work")
    assert graph(savers[1]).invoke(None, forked) == {"items": ["seed", "work1", "patched"]}
    assert app.get_state(CONFIG).values == {"items": ["seed", "work1", "patched"]}
    # ... and fencing still holds after the forks.
    results = race(savers, lambda i: {"items": [f"after-p{i}"]}, "sync")
    assert sorted(type(r).__name__ for r in results) == ["ConflictError", "dict"], results
    for s in savers:
        s.close()


@pytest.mark.parametrize("backend", ["memory", "local"], indirect=True)
def test_two_runs_starting_a_new_thread_do_not_both_win(
    backend: str, store_factory: Callable[[], ObjectStore]
) -> None:
    savers = [GatedSaver(store_factory(), prefix="fence/") for _ in range(2)]
    for round_no in range(5):
        config: RunnableConfig = {"configurable": {"thread_id": f"fresh-{round_no}"}}
        results = race(savers, lambda i: {"items": [f"p{i}"]}, "sync", config)
        assert sorted(type(r).__name__ for r in results) == ["ConflictError", "dict"], results
        winner = next(r for r in results if isinstance(r, dict))
        assert graph(savers[0]).get_state(config).values == winner


@pytest.mark.parametrize("durability", DURABILITIES)
@pytest.mark.parametrize("backend", ["memory", "local"], indirect=True)
def test_a_new_thread_is_fenced_in_every_durability_mode(
    backend: str, store_factory: Callable[[], ObjectStore], durability: Durability
) -> None:
    savers = [GatedSaver(store_factory(), prefix="fence/") for _ in range(2)]
    for round_no in range(3):
        config: RunnableConfig = {"configurable": {"thread_id": f"new-{durability}-{round_no}"}}
        results = race(savers, lambda i: {"items": [f"p{i}"]}, durability, config)
        assert sorted(type(r).__name__ for r in results) == ["ConflictError", "dict"], results
        winner = next(r for r in results if isinstance(r, dict))
        assert graph(savers[1]).get_state(config).values == winner


class InterleavingSaver(LangGraphSaver):
    """Runs ``between`` once, right after its ``after``-th put (another writer steps in)."""

    after = 1
    between: Callable[[], None] | None = None
    puts = 0

    def put(self, *args: Any, **kwargs: Any) -> RunnableConfig:
        stored = super().put(*args, **kwargs)
        self.puts += 1
        if self.between is not None and self.puts == self.after:
            between, self.between = self.between, None
            between()
        return stored


@pytest.mark.parametrize("backend", ["memory", "local"], indirect=True)
def test_update_state_bulk_update_state_and_their_continuations_are_fenced(
    backend: str, store_factory: Callable[[], ObjectStore]
) -> None:
    mine = InterleavingSaver(store_factory(), prefix="fence/")
    other = LangGraphSaver(store_factory(), prefix="fence/")
    app, rival = graph(mine), graph(other)
    config: RunnableConfig = {"configurable": {"thread_id": "updates"}}
    app.invoke({"items": ["seed"]}, config)

    # Two update_state calls from the same loaded state: the second one is stale.
    first = app.get_state(config)
    second = rival.get_state(config)
    app.update_state(first.config, {"items": ["mine"]}, as_node="work")
    with pytest.raises(ConflictError):
        rival.update_state(second.config, {"items": ["theirs"]}, as_node="work")

    # bulk_update_state: another writer commits after its first superstep; the second is refused.
    mine.puts, mine.after = 0, 1
    mine.between = lambda: rival.invoke({"items": ["rival"]}, config)
    with pytest.raises(ConflictError):
        app.bulk_update_state(
            config,
            [
                [StateUpdate({"items": ["bulk1"]}, as_node="work")],
                [StateUpdate({"items": ["bulk2"]}, as_node="work")],
            ],
        )
    assert "bulk2" not in app.get_state(config).values["items"]

    # invoke(None, config returned by update_state) after another writer moved on: refused.
    updated = app.update_state(app.get_state(config).config, {"items": ["u"]}, as_node="work")
    rival.invoke({"items": ["rival2"]}, config)
    with pytest.raises(ConflictError):
        app.invoke(None, updated)
    history = [s.config["configurable"]["checkpoint_id"] for s in app.get_state_history(config)]
    states = {s.config["configurable"]["checkpoint_id"]: s for s in app.get_state_history(config)}
    for newer, older in itertools.pairwise(history):  # one line, no implicit fork
        assert get_checkpoint_id(states[newer].parent_config) == older  # type: ignore[arg-type]


def _resume_in_a_process(root: str, barrier: Any, answer: str, results: Any) -> None:
    from cairnflow.savers.local import LocalStore

    saver = GatedSaver(LocalStore(root), prefix="procs/")
    saver.barrier = barrier
    try:
        out = graph(saver).invoke(Command(resume=answer), CONFIG)
        results.put(("ok", out["items"][-1]))
    except ConflictError:
        results.put(("conflict", answer))


@pytest.mark.slow  # a race between two child processes
def test_two_processes_resuming_one_interrupt_exactly_one_commits(tmp_path: Any) -> None:
    from cairnflow.savers.local import LocalStore

    app = graph(LangGraphSaver(LocalStore(tmp_path), prefix="procs/"))
    app.invoke({"items": ["ask"]}, CONFIG)
    assert app.get_state(CONFIG).next == ("ask",)
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    procs = [
        ctx.Process(target=_resume_in_a_process, args=(str(tmp_path), barrier, f"p{i}", results))
        for i in range(2)
    ]
    for p in procs:
        p.start()
    outcomes = sorted(results.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=60)
    assert [kind for kind, _ in outcomes] == ["conflict", "ok"], outcomes
    winner = next(value for kind, value in outcomes if kind == "ok")
    assert app.get_state(CONFIG).values["items"][-1] == winner
    assert_linear(LangGraphSaver(LocalStore(tmp_path), prefix="procs/"))
