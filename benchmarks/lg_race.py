"""Two writers resume one LangGraph thread from the same checkpoint at once.

A thread is grown to 3 turns. Two checkpointer instances on the same store (for
``InMemorySaver``, which has no shared store, one instance used by both) each
run one ``invoke`` on it, in two threads. Each instance's first ``get_tuple``
(LangGraph's load of the latest checkpoint at the start of the run) waits at a
barrier until both have loaded, so both runs start from the same checkpoint:
exactly what two workers picking up the same conversation do. Then both go on
as fast as they can.

Outcomes, read back through a third instance:

* ``conflict`` -- one run fails (its error type is recorded) and the history is
  a line: the thread holds the winner's turn only;
* ``fork`` -- both runs succeed and two checkpoints share a parent: the
  thread's history is no longer a line and one of the two turns is silently off
  the latest line (LangGraph shows only one as the state);
* ``lost`` -- both succeed, no fork is visible, but the latest state lacks one of
  the two replies;
* anything else is recorded as it happened.
"""

from __future__ import annotations

import threading
from typing import Any

from benchmarks import lg_contenders as lc
from benchmarks.common import StackInfo, unique

BARRIER_TIMEOUT_S = 60.0
HISTORY_TURNS = 3


def _gate(saver: Any, barrier: threading.Barrier, racers: set[int]) -> None:
    """Make the first ``get_tuple`` of each racing thread wait for the other's."""
    original = saver.get_tuple
    waited: set[int] = set()
    lock = threading.Lock()

    def get_tuple(config: Any) -> Any:
        got = original(config)
        me = threading.get_ident()
        with lock:
            first = me in racers and me not in waited
            waited.add(me)
        if first:
            barrier.wait()
        return got

    saver.get_tuple = get_tuple


def race(name: str, info: StackInfo, prefix: str) -> dict[str, Any]:
    thread_id = unique("race")
    config = {"configurable": {"thread_id": thread_id}}
    a = lc.build(name, info, prefix)
    shared = name == "InMemorySaver"
    b = a if shared else lc.build(name, info, prefix)
    built = [a] if shared else [a, b]
    try:
        graph_a = lc.chat_graph(a.saver)
        for turn in range(1, HISTORY_TURNS + 1):
            graph_a.invoke(lc.user_message(turn), config)
        head = a.saver.get_tuple(config)
        start_id = head.config["configurable"]["checkpoint_id"] if head else None
        graph_b = lc.chat_graph(b.saver)

        barrier = threading.Barrier(2, timeout=BARRIER_TIMEOUT_S)
        outcome: dict[str, Any] = {}
        racers: set[int] = set()
        threads = []
        for label, graph in (("A", graph_a), ("B", graph_b)):

            def run(label: str = label, graph: Any = graph) -> None:
                racers.add(threading.get_ident())  # before its first get_tuple
                msg = {"messages": [{"role": "user", "content": f"writer {label}"}]}
                try:
                    out = graph.invoke(msg, config)
                    outcome[label] = {"ok": True, "messages": len(out.get("messages", []))}
                except Exception as exc:
                    outcome[label] = {"ok": False, "error": type(exc).__name__, "detail": str(exc)[:300]}

            t = threading.Thread(target=run, name=f"racer-{label}")
            threads.append(t)
        for saver in {id(x.saver): x.saver for x in built}.values():
            _gate(saver, barrier, racers)
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=BARRIER_TIMEOUT_S * 3)
        return _verdict(name, info, prefix, config, start_id, outcome, a if shared else None)
    finally:
        for c in built:
            c.close()


def _verdict(
    name: str,
    info: StackInfo,
    prefix: str,
    config: dict[str, Any],
    start_id: str | None,
    outcome: dict[str, Any],
    shared: lc.Contender | None,
) -> dict[str, Any]:
    reader = shared or lc.build(name, info, prefix)
    try:
        history = list(reader.saver.list(config))
        graph = lc.chat_graph(reader.saver)
        latest = graph.get_state(config).values.get("messages", [])
    finally:
        if shared is None:
            reader.close()
    children: dict[str | None, int] = {}
    for t in history:
        parent = (t.parent_config or {}).get("configurable", {}).get("checkpoint_id")
        children[parent] = children.get(parent, 0) + 1
    forks = sum(1 for v in children.values() if v > 1)
    texts = [m.get("content", "") for m in latest if isinstance(m, dict)]
    replies = {w: any(t == f"writer {w}" for t in texts) for w in ("A", "B")}
    oks = [w for w in ("A", "B") if outcome.get(w, {}).get("ok")]
    failed = {w: outcome[w]["error"] for w in ("A", "B") if w in outcome and not outcome[w]["ok"]}
    if len(oks) == 1 and forks == 0:
        verdict = "conflict"
    elif len(oks) == 2 and forks:
        verdict = "fork"
    elif len(oks) == 2 and not all(replies.values()):
        verdict = "lost"
    elif len(oks) == 2:
        verdict = "both-in-line"
    else:
        verdict = "other"
    return {
        "outcome": verdict,
        "writers": outcome,
        "errors": failed,
        "forks": forks,
        "checkpoints": len(history),
        "start_checkpoint": start_id,
        "latest_has": replies,
        "latest_messages": len(latest),
    }
