"""The saver's a* methods run on an async store: same requests, no threads, loop never blocked."""

from __future__ import annotations

import asyncio
import collections
import operator
import threading
import warnings
from collections.abc import AsyncIterator
from typing import Annotated, Any, TypedDict

import pytest
from langchain_core.runnables import RunnableLambda
from langgraph.checkpoint.base import create_checkpoint
from langgraph.graph import END, START, StateGraph

from cairnflow.core.errors import ConflictError, MisuseError, TransientStoreError
from cairnflow.core.store import CREATE, AsyncObjectStore, ObjectInfo, ObjectStore, PutMode, StoredObject
from cairnflow.langgraph import LangGraphSaver
from cairnflow.langgraph._bridge import BridgedStore
from cairnflow.savers.memory import AsyncMemoryStore, MemoryStore
from tests.support.forwarding import ForwardingStore


class CountingAsyncStore(AsyncObjectStore):
    """Counts requests by kind; ``gate`` (if set) holds checkpoint-log PUTs until it is set."""

    def __init__(self, inner: AsyncObjectStore) -> None:
        self.inner = inner
        self.url = inner.url
        self.counts: collections.Counter[str] = collections.Counter()
        self.gate: asyncio.Event | None = None
        self.failures: list[BaseException] = []

    async def put(self, key: str, data: bytes, mode: PutMode = CREATE) -> str:
        self.counts["put"] += 1
        if self.failures:
            raise self.failures.pop(0)
        if self.gate is not None and "/c/" in f"/{key}":
            await self.gate.wait()
        return await self.inner.put(key, data, mode)

    async def get(self, key: str) -> StoredObject:
        self.counts["get"] += 1
        return await self.inner.get(key)

    async def list(
        self, prefix: str, *, start_after: str | None = None, limit: int | None = None
    ) -> AsyncIterator[ObjectInfo]:
        self.counts["list"] += 1
        async for info in self.inner.list(prefix, start_after=start_after, limit=limit):
            yield info

    async def delete(self, key: str) -> None:
        self.counts["delete"] += 1
        await self.inner.delete(key)


class CountingStore(ForwardingStore):
    def __init__(self, inner: ObjectStore) -> None:
        super().__init__(inner)
        self.counts: collections.Counter[str] = collections.Counter()

    def put(self, key: str, data: bytes, mode: PutMode = CREATE) -> str:
        self.counts["put"] += 1
        return super().put(key, data, mode)

    def get(self, key: str) -> StoredObject:
        self.counts["get"] += 1
        return super().get(key)

    def list(self, prefix: str, *, start_after: str | None = None, limit: int | None = None) -> Any:
        self.counts["list"] += 1
        return super().list(prefix, start_after=start_after, limit=limit)

    def delete(self, key: str) -> None:
        self.counts["delete"] += 1
        super().delete(key)


class State(TypedDict):
    items: Annotated[list[str], operator.add]


def _node(item: str) -> RunnableLambda[State, dict[str, list[str]]]:
    """A node with a sync and an async body, so one graph runs on either API (async: no thread)."""

    def sync_body(state: State) -> dict[str, list[str]]:
        return {"items": [item]}

    async def async_body(state: State) -> dict[str, list[str]]:
        return {"items": [item]}

    return RunnableLambda(sync_body, afunc=async_body)


def _graph() -> StateGraph[State]:
    builder = StateGraph(State)
    builder.add_node("a", _node("a"))
    builder.add_node("b", _node("b"))
    builder.add_edge(START, "a")
    builder.add_edge("a", "b")
    builder.add_edge("b", END)
    return builder


def _savers() -> tuple[LangGraphSaver, CountingStore, CountingAsyncStore]:
    shared = MemoryStore("async-lg")
    sync_store = CountingStore(shared)
    async_store = CountingAsyncStore(AsyncMemoryStore(shared=shared))
    return LangGraphSaver(sync_store, async_store=async_store, prefix="lg"), sync_store, async_store


def test_async_calls_make_the_sync_calls_requests_on_the_async_store_and_start_no_thread() -> None:
    saver, sync_store, async_store = _savers()
    graph = _graph().compile(checkpointer=saver)

    async def three_runs() -> tuple[list[dict[str, Any]], int]:
        threads_before = threading.active_count()
        outs = [
            await graph.ainvoke({"items": [str(i)]}, {"configurable": {"thread_id": "t"}}) for i in range(3)
        ]
        return outs, threading.active_count() - threads_before

    async_outs, new_threads = asyncio.run(three_runs())
    assert sync_store.counts == {}, "an a* call went to the sync store"
    assert new_threads == 0
    assert saver._pool is None  # no worker pool was started for parallel requests

    # The same three runs on the sync API, on a fresh thread of a fresh store: the
    # same requests of each kind.
    fresh = MemoryStore("async-lg-sync")
    sync_only = CountingStore(fresh)
    unused_async = CountingAsyncStore(AsyncMemoryStore(shared=fresh))
    sync_saver = LangGraphSaver(sync_only, async_store=unused_async, prefix="lg")
    sync_graph = _graph().compile(checkpointer=sync_saver)
    sync_outs = [
        sync_graph.invoke({"items": [str(i)]}, {"configurable": {"thread_id": "t"}}) for i in range(3)
    ]
    assert async_outs == sync_outs
    assert unused_async.counts == {}
    assert async_store.counts == sync_only.counts


def test_history_read_asynchronously_equals_the_sync_history() -> None:
    saver, _, _ = _savers()
    graph = _graph().compile(checkpointer=saver)
    config: Any = {"configurable": {"thread_id": "h"}}

    async def run() -> list[Any]:
        await graph.ainvoke({"items": ["x"]}, config)
        return [t async for t in saver.alist(config)]

    async_history = asyncio.run(run())
    sync_history = list(saver.list(config))
    assert [t.config for t in async_history] == [t.config for t in sync_history]
    assert [t.checkpoint["channel_values"] for t in async_history] == [
        t.checkpoint["channel_values"] for t in sync_history
    ]


def test_put_writes_waits_for_its_in_flight_put_without_blocking_the_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("cairnflow.langgraph._write._INFLIGHT_WAIT", 2.0)  # a blocking wait fails fast
    saver, _, async_store = _savers()
    graph = _graph().compile(checkpointer=saver)
    config: Any = {"configurable": {"thread_id": "f"}}

    async def run() -> Any:
        await graph.ainvoke({"items": ["x"]}, config)
        head = await saver.aget_tuple(config)
        assert head is not None
        checkpoint = create_checkpoint(head.checkpoint, None, 9)
        async_store.gate = asyncio.Event()
        put = asyncio.create_task(saver.aput(head.config, checkpoint, {"source": "loop", "step": 9}, {}))
        await asyncio.sleep(0)  # let the put reach the gate
        for _ in range(100):
            if saver._inflight:
                break
            await asyncio.sleep(0)
        assert saver._inflight, "the put never started"
        put_config = {"configurable": {**head.config["configurable"], "checkpoint_id": checkpoint["id"]}}
        writes = asyncio.create_task(saver.aput_writes(put_config, [("items", ["w"])], "task-1"))
        for _ in range(5):
            await asyncio.sleep(0)
        # put_writes must be waiting for the put, having given the loop back (a blocking
        # wait would only return here after _INFLIGHT_WAIT, with the put still gated)
        assert not writes.done()
        async_store.gate.set()  # only possible because the waiting put_writes yielded the loop
        new_config = await asyncio.wait_for(put, timeout=10)
        await asyncio.wait_for(writes, timeout=10)
        return await saver.aget_tuple(new_config)

    stored = asyncio.run(run())
    assert stored is not None
    assert [(w[0], w[1], w[2]) for w in stored.pending_writes or []] == [("task-1", "items", ["w"])]


def test_a_stale_async_writer_gets_a_conflict_and_writes_nothing() -> None:
    shared = MemoryStore("async-lg-race")
    first = LangGraphSaver(shared, async_store=AsyncMemoryStore(shared=shared), prefix="lg")
    second = LangGraphSaver(shared, async_store=AsyncMemoryStore(shared=shared), prefix="lg")
    graph_first = _graph().compile(checkpointer=first)
    config: Any = {"configurable": {"thread_id": "race"}}

    async def run() -> None:
        await graph_first.ainvoke({"items": ["x"]}, config)
        head = await second.aget_tuple(config)  # second loads the head ...
        assert head is not None
        await graph_first.ainvoke({"items": ["y"]}, config)  # ... first moves on
        before = sorted(info.key for info in shared.list(""))
        checkpoint = create_checkpoint(head.checkpoint, None, 99)
        with pytest.raises(ConflictError):
            await second.aput(head.config, checkpoint, {"source": "loop", "step": 99}, {})
        assert sorted(info.key for info in shared.list("")) == before

    asyncio.run(run())


def test_store_retries_in_an_async_call_sleep_on_the_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    saver, _, async_store = _savers()
    graph = _graph().compile(checkpointer=saver)

    def no_blocking_sleep(seconds: float) -> None:
        raise AssertionError("time.sleep in an async call blocks the event loop")

    monkeypatch.setattr("time.sleep", no_blocking_sleep)
    async_store.failures = [TransientStoreError("503 from the test", store="memory://")]
    out = asyncio.run(graph.ainvoke({"items": ["x"]}, {"configurable": {"thread_id": "r"}}))
    assert out == {"items": ["x", "a", "b"]}
    assert async_store.failures == []


def test_the_async_store_view_refuses_synchronous_use() -> None:
    view = BridgedStore(AsyncMemoryStore())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "coroutine was never awaited" either
        with pytest.raises(MisuseError, match="a\\* methods"):
            view.get("anything")


def test_from_url_opens_the_async_store_on_the_first_async_call(tmp_path: Any) -> None:
    saver = LangGraphSaver.from_url(f"file://{tmp_path}/store")
    assert saver.bridged_store is None
    graph = _graph().compile(checkpointer=saver)
    config: Any = {"configurable": {"thread_id": "u"}}

    async def run() -> Any:
        try:  # not `async with saver`, which opens the async store on entering
            return await graph.ainvoke({"items": ["x"]}, config)
        finally:
            assert isinstance(saver.bridged_store, BridgedStore)  # opened by the call itself
            await saver.aclose()

    assert asyncio.run(run()) == {"items": ["x", "a", "b"]}
    assert isinstance(saver.bridged_store, BridgedStore)
    assert type(saver.bridged_store.inner).__name__ == "AsyncLocalStore"
    # the sync API reads what the async one wrote, from the same directory
    head = LangGraphSaver.from_url(f"file://{tmp_path}/store").get_tuple(config)
    assert head is not None and head.checkpoint["channel_values"]["items"] == ["x", "a", "b"]


def test_async_with_opens_the_s3_client_before_the_first_call(monkeypatch: pytest.MonkeyPatch) -> None:
    # the asyncio form of opening a saver pays the client's cost up front, as
    # AsyncSqliteSaver.from_conn_string does; nothing listens on the endpoint, so a
    # request would fail: entering makes none
    from tests.emulators import free_port

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    saver = LangGraphSaver.from_url(
        "s3://b/lg", endpoint_url=f"http://127.0.0.1:{free_port()}", region_name="us-east-1"
    )

    async def enter() -> Any:
        async with saver:
            assert saver.bridged_store is not None
            return saver.bridged_store.inner._client  # type: ignore[attr-defined]

    assert saver.bridged_store is None and asyncio.run(enter()) is not None
