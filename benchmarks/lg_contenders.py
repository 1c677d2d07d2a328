"""The LangGraph checkpointers compared, and the graphs they run.

Every contender is built the same way in the benchmark process and in a child
process (for cold ``get_state``): ``build(name, stack, prefix)``. Object-store
contenders reach their emulator through the counting proxy; the S3 ones share
one moto server and one bucket (each under its own prefix).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Any

from benchmarks.common import BUCKET, REGION, Meter, StackInfo

#: name -> (store the contender writes to, whose package)
CONTENDERS: dict[str, tuple[str, str]] = {
    "cairnflow-local": ("local", "cairnflow LangGraphSaver, file://"),
    "cairnflow-s3": ("s3", "cairnflow LangGraphSaver, s3://"),
    "cairnflow-gcs": ("gcs", "cairnflow LangGraphSaver, gs://"),
    "cairnflow-azure": ("azure", "cairnflow LangGraphSaver, az://"),
    "InMemorySaver": ("memory", "langgraph-checkpoint (in-process)"),
    "SqliteSaver": ("sqlite", "langgraph-checkpoint-sqlite (local file)"),
    "lg-checkpoint-s3": ("s3", "langgraph-checkpoint-s3 S3CheckpointSaver"),
    "lg-checkpoint-objectstorage": ("s3", "langgraph-checkpoint-objectstorage ObjectStorageSaver (s3fs)"),
    "lg-checkpoint-tigris": ("s3", "langgraph-checkpoint-tigris TigrisSaver"),
    "lg-s3-checkpointer": ("s3", "langgraph-s3-checkpointer S3CheckpointSaver"),
    "DynamoDBSaver": ("dynamodb", "langgraph-checkpoint-aws DynamoDBSaver (DynamoDB, S3 offload)"),
}
PUBLIC_S3 = ("lg-checkpoint-s3", "lg-checkpoint-objectstorage", "lg-checkpoint-tigris", "lg-s3-checkpointer")
PERSISTENT = tuple(name for name, (store, _) in CONTENDERS.items() if store != "memory")


@dataclass
class Contender:
    name: str
    store: str
    saver: Any
    meter: Meter
    #: DynamoDB request units (lg_ddb.CapacityMeter), for the DynamoDB contender only.
    capacity: Any = None

    def close(self) -> None:
        if self.capacity is not None:
            self.capacity.close()
        fn = getattr(self.saver, "close", None)
        if callable(fn):
            with contextlib.suppress(Exception):
                fn()
        conn = getattr(self.saver, "conn", None)
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()


def _s3_client() -> Any:
    import boto3

    return boto3.client("s3", region_name=REGION)


def shim_serde() -> Any:
    """JsonPlusSerializer plus the untyped ``dumps``/``loads`` that langgraph-checkpoint 4 removed."""
    from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

    class ShimSerde(JsonPlusSerializer):
        def dumps(self, obj: Any) -> bytes:
            kind, data = self.dumps_typed(obj)
            return kind.encode() + b"\0" + data

        def loads(self, data: bytes) -> Any:
            kind, _, body = data.partition(b"\0")
            return self.loads_typed((kind.decode(), body))

    return ShimSerde()


def build(name: str, info: StackInfo, prefix: str) -> Contender:
    """The contender's checkpointer on ``prefix`` (a directory name for the local ones)."""
    store, _ = CONTENDERS[name]
    meter = Meter(proxy=info.proxy_client("s3")) if store == "s3" else Meter()
    if name.startswith("cairnflow-"):
        from cairnflow.langgraph import LangGraphSaver

        if store == "local":
            from cairnflow.core.counting import CountingStore
            from cairnflow.savers import open_store

            inner, key_prefix = open_store(info.url("local", prefix))
            counting = CountingStore(inner)
            return Contender(
                name, store, LangGraphSaver(counting, prefix=key_prefix), Meter(counting=counting)
            )
        saver = LangGraphSaver.from_url(info.url(store, prefix))
        return Contender(name, store, saver, Meter(proxy=info.proxy_client(store)))
    if name == "InMemorySaver":
        from langgraph.checkpoint.memory import InMemorySaver

        return Contender(name, store, InMemorySaver(), meter)
    if name == "SqliteSaver":
        import sqlite3

        from langgraph.checkpoint.sqlite import SqliteSaver

        path = os.path.join(info.local_root, f"{prefix}.sqlite")
        conn = sqlite3.connect(path, check_same_thread=False)
        saver = SqliteSaver(conn)
        saver.setup()
        return Contender(name, store, saver, meter)
    if name == "lg-checkpoint-s3":
        from langgraph_checkpoint_s3 import S3CheckpointSaver

        # As shipped it calls serde.dumps/serde.loads, which langgraph-checkpoint 4 no
        # longer has (AttributeError on the first put): measured with SHIM_SERDE.
        saver = S3CheckpointSaver(BUCKET, prefix=prefix, s3_client=_s3_client(), serde=shim_serde())
        return Contender(name, store, saver, meter)
    if name == "lg-checkpoint-objectstorage":
        from langgraph_checkpoint_objectstorage import ObjectStorageSaver

        saver = ObjectStorageSaver.from_conn_string(
            f"s3://{BUCKET}/{prefix}",
            endpoint_url=info.proxy["s3"],
            key=os.environ["AWS_ACCESS_KEY_ID"],
            secret=os.environ["AWS_SECRET_ACCESS_KEY"],
            client_kwargs={"region_name": REGION},
        )
        return Contender(name, store, saver, meter)
    if name == "lg-checkpoint-tigris":
        from langgraph.checkpoint.tigris import TigrisSaver

        saver = TigrisSaver(BUCKET, prefix=f"{prefix}/", endpoint_url=info.proxy["s3"], region_name=REGION)
        return Contender(name, store, saver, meter)
    if name == "lg-s3-checkpointer":
        from s3checkpointer.s3saver import S3CheckpointSaver as S3Saver

        # Takes no client or endpoint: boto3 reads AWS_ENDPOINT_URL_S3 (set to the proxy).
        return Contender(name, store, S3Saver(BUCKET, prefix=prefix, region_name=REGION), meter)
    if name == "DynamoDBSaver":
        from benchmarks import lg_ddb

        # moto serves DynamoDB and S3 on one port: both go through the S3 proxy.
        lg_ddb.create_table(info.upstream["s3"])
        capacity = lg_ddb.CapacityMeter(info.upstream["s3"])
        saver = lg_ddb.build_saver(info.proxy["s3"], prefix, capacity)
        return Contender(name, store, saver, Meter(proxy=info.proxy_client("s3")), capacity)
    raise KeyError(name)


# --------------------------------------------------------------------------- graphs

#: Each message carries about 200 characters of text.
FILLER = "lorem ipsum dolor sit amet " * 7


def chat_graph(checkpointer: Any) -> Any:
    """A chat-style StateGraph: each turn appends the user's message and one reply.

    Messages are plain ``{"role", "content"}`` dicts appended with ``operator.add``,
    not LangChain message objects with ``add_messages``: the latter's merge-by-id and
    object (de)serialisation cost LangGraph itself about 85 ms per turn at 1000 turns
    (measured with InMemorySaver), which would drown the checkpointers' differences.
    """
    import operator
    from typing import Annotated

    from langgraph.graph import END, START, StateGraph
    from typing_extensions import TypedDict

    # Functional syntax: this module's annotations are strings (PEP 563).
    Chat = TypedDict("Chat", {"messages": Annotated[list[dict[str, str]], operator.add]})  # noqa: UP013

    def bot(state: Any) -> dict[str, Any]:
        n = len(state["messages"])
        return {"messages": [{"role": "assistant", "content": f"reply {n}: {FILLER}"}]}

    builder = StateGraph(Chat)
    builder.add_node("bot", bot)
    builder.add_edge(START, "bot")
    builder.add_edge("bot", END)
    return builder.compile(checkpointer=checkpointer)


def user_message(turn: int) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": f"turn {turn}: {FILLER}"}]}


def functional_flow(checkpointer: Any) -> Any:
    """A functional @entrypoint running N tasks one after another (each returns ~150 bytes)."""
    from langgraph.func import entrypoint, task

    @task
    def work(i: int) -> dict[str, Any]:
        return {"i": i, "text": "x" * 100}

    @entrypoint(checkpointer=checkpointer)
    def flow(n: int) -> int:
        total = 0
        for i in range(n):
            total += work(i).result()["i"]
        return total

    return flow
