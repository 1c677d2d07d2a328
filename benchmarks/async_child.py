"""One flavour of :mod:`benchmarks.async_bench`, in a fresh process: W workflows of T tasks at once.

    python -m benchmarks.async_child '{"flavour": "async", "url": "s3://bucket/prefix", ...}'

Spec keys: ``flavour`` (``sync`` or ``async``), ``url`` (the store; the S3
endpoint and credentials come from the environment), ``workflows`` (W),
``tasks`` (T), ``task_ms`` (what each task waits, standing in for an LLM or
HTTP call), ``shape`` (``seq``: the tasks one after another; ``gather``: all
started at once, then awaited), ``workers`` (sync only: the thread pool that
runs ``wf.run``), ``tracemalloc`` (trace Python allocations; slows the run),
``workload`` (``executor``, the default, or ``langgraph``: W chat threads of T
turns through :class:`~cairnflow.langgraph.LangGraphSaver`, ``graph.invoke`` on
the pool or ``await graph.ainvoke`` gathered on the loop, the saver's ``a*``
methods on its async store).

The sync flavour runs ``wf.run`` for every workflow on a ``ThreadPoolExecutor``
of ``workers`` threads over a :class:`~cairnflow.core.counting.CountingStore`;
the async flavour gathers ``await wf.arun`` for every workflow on one event
loop over an :class:`~cairnflow.core.counting.AsyncCountingStore`. Both first
run one warm-up workflow (the store's conditional-write probe, the client's
connection), then reset the counters, so the counts are those of the W
workflows. The last stdout line is a JSON object: requests by kind, bytes, the
peak thread count (``/proc/self/status`` ``Threads``, every thread of the
process, sampled every millisecond by one more thread that is not counted),
``ru_maxrss`` and the RSS before the workload, the ``tracemalloc`` peak, and
what the store was (``store``: the async backend, or the stand-in).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import resource
import sys
import threading
import time
import tracemalloc
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from cairnflow.core import task, workflow
from cairnflow.core.store import CREATE, ObjectInfo, PutMode, StoredObject
from tests.support.forwarding import AsyncForwardingStore, ForwardingStore

#: Each task returns about 150 bytes of JSON, as in benchmarks/flows.py.
PAYLOAD = "x" * 100


# ----------------------------------------------------------------- the workflows (same names, same records)


@task(name="abench_step")
def step(i: int, delay: float) -> dict[str, Any]:
    if delay:
        time.sleep(delay)
    return {"i": i, "text": PAYLOAD}


@workflow(name="abench_flow")
def flow(inp: dict[str, Any]) -> int:
    n, delay = inp["tasks"], inp["task_ms"] / 1000
    if inp["shape"] == "gather":
        futures = [step(i, delay) for i in range(n)]
        return sum(f.result()["i"] for f in futures)
    return sum(step(i, delay).result()["i"] for i in range(n))


@task(name="abench_step")
async def astep(i: int, delay: float) -> dict[str, Any]:
    if delay:
        await asyncio.sleep(delay)
    return {"i": i, "text": PAYLOAD}


@workflow(name="abench_flow")
async def aflow(inp: dict[str, Any]) -> int:
    n, delay = inp["tasks"], inp["task_ms"] / 1000
    if inp["shape"] == "gather":
        return sum(r["i"] for r in await asyncio.gather(*[astep(i, delay) for i in range(n)]))
    total = 0
    for i in range(n):
        total += (await astep(i, delay))["i"]
    return total


# ----------------------------------------------------------------- errors the store raised

#: Exceptions the store raised to the log, by type (the log retries transient ones: each
#: retry is one more request in the counts).
ERRORS: Counter[str] = Counter()
_errors_lock = threading.Lock()


def _seen(exc: BaseException) -> None:
    with _errors_lock:
        ERRORS[type(exc).__name__] += 1


class ErrorsSeen(ForwardingStore):
    """Forwards every call (to a counting store); notes what it raises."""

    def put(self, key: str, data: bytes, mode: PutMode = CREATE) -> str:
        try:
            return self.inner.put(key, data, mode)
        except Exception as exc:
            _seen(exc)
            raise

    def get(self, key: str) -> StoredObject:
        try:
            return self.inner.get(key)
        except Exception as exc:
            _seen(exc)
            raise

    def list(
        self, prefix: str, *, start_after: str | None = None, limit: int | None = None
    ) -> Iterator[ObjectInfo]:
        try:
            yield from self.inner.list(prefix, start_after=start_after, limit=limit)
        except Exception as exc:
            _seen(exc)
            raise

    def list_prefixes(self, prefix: str) -> Iterator[str]:
        try:
            yield from self.inner.list_prefixes(prefix)
        except Exception as exc:
            _seen(exc)
            raise

    def delete(self, key: str) -> None:
        try:
            self.inner.delete(key)
        except Exception as exc:
            _seen(exc)
            raise


class AsyncErrorsSeen(AsyncForwardingStore):
    """:class:`ErrorsSeen` for an async store."""

    async def put(self, key: str, data: bytes, mode: PutMode = CREATE) -> str:
        try:
            return await self.inner.put(key, data, mode)
        except Exception as exc:
            _seen(exc)
            raise

    async def get(self, key: str) -> StoredObject:
        try:
            return await self.inner.get(key)
        except Exception as exc:
            _seen(exc)
            raise

    async def list(  # type: ignore[override]
        self, prefix: str, *, start_after: str | None = None, limit: int | None = None
    ) -> AsyncIterator[ObjectInfo]:
        try:
            async for info in self.inner.list(prefix, start_after=start_after, limit=limit):
                yield info
        except Exception as exc:
            _seen(exc)
            raise

    async def list_prefixes(self, prefix: str) -> AsyncIterator[str]:
        try:
            async for folder in self.inner.list_prefixes(prefix):
                yield folder
        except Exception as exc:
            _seen(exc)
            raise

    async def delete(self, key: str) -> None:
        try:
            await self.inner.delete(key)
        except Exception as exc:
            _seen(exc)
            raise


# ----------------------------------------------------------------- measuring


def _proc_threads() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    return threading.active_count()


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class ThreadPeak:
    """The most threads the process had at once, sampled by one more (uncounted) thread."""

    def __init__(self, interval: float = 0.001) -> None:
        self.interval = interval
        self.peak_os = 0
        self.peak_python = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="thread-peak", daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak_os = max(self.peak_os, _proc_threads() - 1)
            self.peak_python = max(self.peak_python, threading.active_count() - 1)
            self._stop.wait(self.interval)

    def __enter__(self) -> ThreadPeak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _inputs(spec: dict[str, Any]) -> dict[str, Any]:
    return {"tasks": spec["tasks"], "task_ms": spec["task_ms"], "shape": spec["shape"]}


def _expected(spec: dict[str, Any]) -> int:
    return sum(range(spec["tasks"]))


def _check(runs: list[Any], spec: dict[str, Any]) -> None:
    bad = [r for r in runs if r.status != "completed" or r.result != _expected(spec)]
    if bad:
        raise RuntimeError(f"{len(bad)} of {len(runs)} runs did not complete right: {bad[0]!r}")


# ----------------------------------------------------------------- the flavours


def _sync(spec: dict[str, Any], measure: Any) -> tuple[Any, str]:
    from cairnflow.core.counting import CountingStore
    from cairnflow.core.log import CheckpointLog
    from cairnflow.savers import open_store

    store, prefix = open_store(spec["url"])
    counting = CountingStore(store)
    saver = CheckpointLog(ErrorsSeen(counting), prefix=prefix)
    inp = _inputs(spec)
    _check([flow.run(inp, thread_id="warmup", saver=saver)], spec)
    counting.reset()
    ERRORS.clear()

    def one(i: int) -> Any:
        return flow.run(inp, thread_id=f"wf-{i:05d}", saver=saver)

    with (
        measure(),
        concurrent.futures.ThreadPoolExecutor(spec["workers"], thread_name_prefix="bench") as pool,
    ):
        runs = list(pool.map(one, range(spec["workflows"])))
    _check(runs, spec)
    store.close()
    return counting, type(store).__name__


def _open_async(url: str) -> tuple[Any, str, str]:
    """The async store for ``url``; until the scheme has an asyncio backend, the sync store
    behind the test suite's thread bridge (``store`` says which, in the result)."""
    from cairnflow.core.errors import InvalidURLError
    from cairnflow.savers import open_async_store, open_store

    try:
        store, prefix = open_async_store(url)
        return store, prefix, type(store).__name__
    except InvalidURLError:
        from tests.support.async_bridge import AsyncStore

        sync_store, prefix = open_store(url)
        return AsyncStore(sync_store), prefix, f"AsyncStore({type(sync_store).__name__}) stand-in"


async def _async_main(spec: dict[str, Any], measure: Any) -> tuple[Any, str]:
    from cairnflow.core.counting import AsyncCountingStore
    from cairnflow.core.log import AsyncCheckpointLog

    store, prefix, name = _open_async(spec["url"])
    counting = AsyncCountingStore(store)
    saver = AsyncCheckpointLog(AsyncErrorsSeen(counting), prefix=prefix)
    inp = _inputs(spec)
    _check([await aflow.arun(inp, thread_id="warmup", saver=saver)], spec)
    counting.reset()
    ERRORS.clear()
    with measure():
        runs = await asyncio.gather(
            *[aflow.arun(inp, thread_id=f"wf-{i:05d}", saver=saver) for i in range(spec["workflows"])]
        )
    _check(list(runs), spec)
    await store.aclose()
    return counting, name


# ----------------------------------------------------------------- LangGraph: chat threads

FILLER = "lorem ipsum dolor sit amet " * 7


def _chat_graph(checkpointer: Any, *, is_async: bool = False) -> Any:
    """benchmarks/lg_contenders.py's chat graph: each turn appends the user's message and a reply.

    ``is_async``: the node is an ``async def`` (as in an asyncio application; LangGraph runs a
    plain node of an ``ainvoke`` in the loop's default thread pool)."""
    import operator
    from typing import Annotated

    from langgraph.graph import END, START, StateGraph
    from typing_extensions import TypedDict

    Chat = TypedDict("Chat", {"messages": Annotated[list[dict[str, str]], operator.add]})  # noqa: UP013

    def bot(state: Any) -> dict[str, Any]:
        return {"messages": [{"role": "assistant", "content": f"reply {len(state['messages'])}: {FILLER}"}]}

    async def abot(state: Any) -> dict[str, Any]:
        return bot(state)

    builder = StateGraph(Chat)
    builder.add_node("bot", abot if is_async else bot)
    builder.add_edge(START, "bot")
    builder.add_edge("bot", END)
    return builder.compile(checkpointer=checkpointer)


def _turn(i: int) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": f"turn {i}: {FILLER}"}]}


def _lg_check(states: list[Any], spec: dict[str, Any]) -> None:
    bad = [s for s in states if len(s["messages"]) != 2 * spec["tasks"]]
    if bad:
        raise RuntimeError(f"{len(bad)} of {len(states)} chat threads did not end with every turn")


def _lg_saver(spec: dict[str, Any], with_async: bool) -> tuple[Any, list[Any], str]:
    from cairnflow.core.counting import AsyncCountingStore, CountingStore
    from cairnflow.langgraph import LangGraphSaver
    from cairnflow.savers import open_store

    store, prefix = open_store(spec["url"])
    counting: list[Any] = [CountingStore(store)]
    name = type(store).__name__
    async_store = None
    if with_async:
        astore, _, name = _open_async(spec["url"])
        async_store = AsyncCountingStore(astore)
        counting.append(async_store)
    saver = LangGraphSaver(
        ErrorsSeen(counting[0]),
        async_store=None if async_store is None else AsyncErrorsSeen(async_store),
        prefix=prefix,
    )
    return saver, counting, name


def _lg_sync(spec: dict[str, Any], measure: Any) -> tuple[list[Any], str]:
    saver, counting, name = _lg_saver(spec, with_async=False)
    graph = _chat_graph(saver)

    def chat(thread: str) -> Any:
        config = {"configurable": {"thread_id": thread}}
        for i in range(spec["tasks"]):
            state = graph.invoke(_turn(i), config)
        return state

    _lg_check([chat("warmup")], spec)
    for c in counting:
        c.reset()
    ERRORS.clear()
    with (
        measure(),
        concurrent.futures.ThreadPoolExecutor(spec["workers"], thread_name_prefix="bench") as pool,
    ):
        states = list(pool.map(chat, [f"chat-{i:05d}" for i in range(spec["workflows"])]))
    _lg_check(states, spec)
    return counting, name


async def _lg_async(spec: dict[str, Any], measure: Any) -> tuple[list[Any], str]:
    saver, counting, name = _lg_saver(spec, with_async=True)
    graph = _chat_graph(saver, is_async=True)

    async def chat(thread: str) -> Any:
        config = {"configurable": {"thread_id": thread}}
        for i in range(spec["tasks"]):
            state = await graph.ainvoke(_turn(i), config)
        return state

    _lg_check([await chat("warmup")], spec)
    for c in counting:
        c.reset()
    ERRORS.clear()
    with measure():
        states = await asyncio.gather(*[chat(f"chat-{i:05d}") for i in range(spec["workflows"])])
    _lg_check(list(states), spec)
    await counting[-1].aclose()
    return counting, name


def _preload(spec: dict[str, Any]) -> None:
    """Import what the run will (the store's backends, LangGraph), so the RSS before is after imports."""
    import importlib

    from cairnflow.savers import _ASYNC_SCHEMES, _SCHEMES

    scheme = spec["url"].partition("://")[0]
    for table in (_SCHEMES, _ASYNC_SCHEMES):
        if scheme in table:
            importlib.import_module(table[scheme][0])
    if spec.get("workload") == "langgraph":
        importlib.import_module("cairnflow.langgraph")
        importlib.import_module("langgraph.graph")


def main(spec: dict[str, Any]) -> dict[str, Any]:
    _preload(spec)
    rss_before = _rss_mib()
    threads_before = _proc_threads()
    out: dict[str, Any] = {}
    peak = ThreadPeak()

    class _Measure:
        def __enter__(self) -> None:
            if spec.get("tracemalloc"):
                tracemalloc.start()
            peak.__enter__()
            self.t0 = time.perf_counter()

        def __exit__(self, *exc: object) -> None:
            out["wall_s"] = time.perf_counter() - self.t0
            peak.__exit__()
            if tracemalloc.is_tracing():
                out["tracemalloc_peak_mib"] = tracemalloc.get_traced_memory()[1] / 2**20
                tracemalloc.stop()

    counters: list[Any]
    if spec.get("workload", "executor") == "langgraph":
        if spec["flavour"] == "sync":
            counters, store = _lg_sync(spec, _Measure)
        else:
            counters, store = asyncio.run(_lg_async(spec, _Measure))
    elif spec["flavour"] == "sync":
        counting, store = _sync(spec, _Measure)
        counters = [counting]
    else:
        counting, store = asyncio.run(_async_main(spec, _Measure))
        counters = [counting]
    counts: Counter[str] = Counter()
    for c in counters:
        counts.update(c.counts)
    return {
        **out,
        "flavour": spec["flavour"],
        "workload": spec.get("workload", "executor"),
        "store": store,
        "counts": dict(counts),
        "errors": dict(ERRORS),
        "bytes_written": sum(c.bytes_written for c in counters),
        "bytes_read": sum(c.bytes_read for c in counters),
        "threads_before": threads_before,
        "peak_threads": peak.peak_os,
        "peak_python_threads": peak.peak_python,
        "rss_before_mib": rss_before,
        "maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))))
