"""The sync API of LangGraphSaver (the conformance suite calls only the async methods),
the fencing rule through the direct API, keys, serializers, and maintenance operations."""

from __future__ import annotations

import asyncio
import copy
import operator
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Annotated, Any

import pytest
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.channels import DeltaChannel
from langgraph.checkpoint.base import (
    BaseCheckpointSaver,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    create_checkpoint,
    empty_checkpoint,
)
from langgraph.checkpoint.serde.encrypted import EncryptedSerializer
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.checkpoint.serde.types import ERROR, INTERRUPT
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import _messages_delta_reducer, add_messages
from typing_extensions import TypedDict

from cairnflow.core.counting import CountingStore
from cairnflow.core.errors import ConflictError, CorruptCheckpointError, TransientStoreError
from cairnflow.core.store import CREATE, OVERWRITE, ObjectStore, PutMode
from cairnflow.langgraph import LangGraphSaver, PruneRefusedError
from cairnflow.savers.local import LocalStore
from cairnflow.savers.memory import MemoryStore
from tests.support.forwarding import ForwardingStore

PREFIX = "lg-test/"
pytestmark = pytest.mark.parametrize("backend", ["memory", "local"], indirect=True)


def conf(thread: str, ns: str = "", checkpoint_id: str | None = None, **extra: Any) -> RunnableConfig:
    configurable: dict[str, Any] = {"thread_id": thread, "checkpoint_ns": ns, **extra}
    if checkpoint_id is not None:
        configurable["checkpoint_id"] = checkpoint_id
    return {"configurable": configurable}


def checkpoint(values: dict[str, Any] | None = None, versions: dict[str, Any] | None = None) -> Checkpoint:
    cp = empty_checkpoint()
    cp["channel_values"] = dict(values or {})
    cp["channel_versions"] = dict(versions if versions is not None else dict.fromkeys(values or {}, 1))
    return cp


def meta(step: int = 0, **extra: Any) -> CheckpointMetadata:
    return {"source": "loop", "step": step, "parents": {}, **extra}  # type: ignore[typeddict-item]


def put(
    saver: LangGraphSaver,
    parent: RunnableConfig,
    values: dict[str, Any] | None = None,
    *,
    versions: dict[str, Any] | None = None,
    new: dict[str, Any] | None = None,
    step: int = 0,
    **metadata: Any,
) -> RunnableConfig:
    cp = checkpoint(values, versions)
    new_versions = cp["channel_versions"] if new is None else new
    return saver.put(parent, cp, meta(step, **metadata), new_versions)


def ids(tuples: Iterator[CheckpointTuple] | list[CheckpointTuple]) -> list[str]:
    return [t.checkpoint["id"] for t in tuples]


def cid(config: RunnableConfig) -> str:
    return str(config["configurable"]["checkpoint_id"])


# --------------------------------------------------------------------------- round trips


def test_put_get_list_round_trip_with_namespaces_and_empty_channels(saver: LangGraphSaver) -> None:
    c1 = put(saver, conf("t"), {"a": "v1", "b": [1, 2]}, step=-1)
    c2 = put(
        saver,
        conf("t", checkpoint_id=cid(c1)),
        {"a": "v2", "b": [1, 2]},
        versions={"a": 2, "b": 1, "gone": 2},
        new={"a": 2, "gone": 2},  # "gone" is new but has no value: an empty channel
        step=0,
    )
    child = put(saver, conf("t", "child:1"), {"x": 1}, step=-1)
    got = saver.get_tuple(conf("t"))
    assert got is not None
    assert got.checkpoint["id"] == cid(c2)
    assert got.checkpoint["channel_values"] == {"a": "v2", "b": [1, 2]}
    assert got.checkpoint["channel_versions"] == {"a": 2, "b": 1, "gone": 2}
    assert got.parent_config is not None and cid(got.parent_config) == cid(c1)
    assert got.metadata["step"] == 0
    old = saver.get_tuple(c1)
    assert old is not None and old.checkpoint["channel_values"] == {"a": "v1", "b": [1, 2]}
    assert old.parent_config is None
    assert ids(saver.list(conf("t"))) == [cid(c2), cid(c1)]
    assert ids(saver.list(conf("t", "child:1"))) == [cid(child)]
    every_ns = saver.list({"configurable": {"thread_id": "t"}})
    assert sorted(ids(every_ns)) == sorted([cid(c1), cid(c2), cid(child)])
    assert saver.get_tuple(conf("t", checkpoint_id=str(uuid.uuid4()))) is None
    assert saver.get_tuple(conf("nobody")) is None
    # the async methods see the same
    assert asyncio.run(saver.aget_tuple(conf("t"))) == got


def test_list_filter_before_limit_and_all_threads(saver: LangGraphSaver) -> None:
    configs: list[RunnableConfig] = []
    for step in range(6):
        parent = conf("t1", checkpoint_id=cid(configs[-1])) if configs else conf("t1")
        kind = "even" if step % 2 == 0 else "odd"
        configs.append(
            put(saver, parent, {"n": step}, versions={"n": step + 1}, step=step, kind=kind, score=step)
        )
    put(saver, conf("t2"), {"n": 0}, step=0, kind="even")
    newest_first = [cid(c) for c in reversed(configs)]
    assert ids(saver.list(conf("t1"))) == newest_first
    assert ids(saver.list(conf("t1"), limit=2)) == newest_first[:2]
    assert ids(saver.list(conf("t1"), before=configs[3])) == newest_first[3:]
    assert ids(saver.list(conf("t1"), before=configs[3], limit=1)) == newest_first[3:4]
    assert ids(saver.list(conf("t1"), filter={"kind": "odd"})) == newest_first[0::2]
    assert ids(saver.list(conf("t1"), filter={"kind": "even", "score": 2})) == [cid(configs[2])]
    assert ids(saver.list(conf("t1"), filter={"score": True})) == []  # True is not 1
    assert ids(saver.list(conf("t1"), filter={"missing": None})) == []
    assert ids(saver.list(conf("t1", checkpoint_id=cid(configs[1])))) == [cid(configs[1])]
    assert len(list(saver.list(None))) == 7
    assert len(list(saver.list(None, filter={"kind": "even"}, limit=10))) == 4
    assert list(saver.list(conf("t1"), limit=0)) == []


def test_list_with_a_limit_reads_only_what_it_returns(backend: str, store: ObjectStore) -> None:
    counting = CountingStore(store)
    saver = LangGraphSaver(counting, prefix=PREFIX)
    parent = put(saver, conf("t"), {"n": 0}, step=-1)
    for step in range(30):
        parent = put(saver, conf("t", checkpoint_id=cid(parent)), {"n": step + 1}, new={"n": 1}, step=step)
    counting.reset()
    assert len(list(saver.list(conf("t"), limit=3))) == 3
    # the log, and the pending writes of the last entry (the page ended there); the
    # entries are immutable and this saver wrote them: no GET
    assert counting.counts == {"LIST": 2}
    counting.reset()
    cold = LangGraphSaver(counting, prefix=PREFIX)
    assert len(list(cold.list(conf("t"), limit=3))) == 3
    # 1 LIST of the log (showing the pending writes of all but the last entry), 3 log
    # entries, the entry holding the value all three share, 1 LIST of the last one's writes
    assert counting.counts == {"LIST": 2, "GET": 4}


def test_put_writes_first_wins_special_overwrites_and_may_precede_the_checkpoint(
    saver: LangGraphSaver,
) -> None:
    future = checkpoint({"a": 1})
    target = conf("t", checkpoint_id=future["id"])
    saver.put_writes(target, [("ch", "first"), ("other", 1)], "task-1", "~b")
    saver.put_writes(target, [("ch", "second"), ("other", 2)], "task-1", "~b")  # regular: ignored
    saver.put_writes(target, [("ch", "from-task-0")], "task-0", "~a")
    saver.put_writes(target, [(ERROR, "boom-1"), (INTERRUPT, {"q": 1})], "task-2")
    saver.put_writes(target, [(ERROR, "boom-2")], "task-2")  # special: last wins
    stored = saver.put(conf("t"), future, meta(-1), {"a": 1})
    got = saver.get_tuple(stored)
    assert got is not None
    assert got.pending_writes == [  # writes_sort_key order: (task_path, task_id, idx)
        ("task-2", INTERRUPT, {"q": 1}),
        ("task-2", ERROR, "boom-2"),
        ("task-0", "ch", "from-task-0"),
        ("task-1", "ch", "first"),
        ("task-1", "other", 1),
    ]


# --------------------------------------------------------------------------- the fencing rule


def test_two_writers_from_the_same_latest_checkpoint_exactly_one_commits(saver: LangGraphSaver) -> None:
    base = put(saver, conf("t"), {"n": 0}, step=-1)
    first = saver.get_tuple(conf("t"))
    second = saver.get_tuple(conf("t"))
    assert first is not None and second is not None
    winner = put(saver, first.config, {"n": 1}, step=0)
    with pytest.raises(ConflictError) as info:
        put(saver, second.config, {"n": 2}, step=0)
    assert info.value.thread_id == "t"
    latest = saver.get_tuple(conf("t"))
    assert latest is not None and latest.checkpoint["id"] == cid(winner)
    assert ids(saver.list(conf("t"))) == [cid(winner), cid(base)]
    # the winner continues its own line (no token for its new parent): still fenced exactly
    nxt = put(saver, conf("t", checkpoint_id=cid(winner)), {"n": 3}, step=1)
    with pytest.raises(ConflictError):
        put(saver, conf("t", checkpoint_id=cid(winner)), {"n": 4}, step=1)
    assert saver.get_tuple(conf("t")).checkpoint["id"] == cid(nxt)  # type: ignore[union-attr]


def test_a_checkpoint_addressed_by_id_forks_at_the_head(saver: LangGraphSaver) -> None:
    c0 = put(saver, conf("t"), {"n": 0}, step=-1)
    c1 = put(saver, conf("t", checkpoint_id=cid(c0)), {"n": 1}, step=0)
    old = saver.get_tuple(c0)  # by id, and no longer the head: a put on it is time travel
    assert old is not None
    fork = put(saver, old.config, {"n": 10}, step=1, source="fork")
    got = saver.get_tuple(conf("t"))
    assert got is not None and got.checkpoint["id"] == cid(fork)
    assert got.parent_config is not None and cid(got.parent_config) == cid(c0)
    assert ids(saver.list(conf("t"))) == [cid(fork), cid(c1), cid(c0)]
    # configs from list() and parent_config are handles too: another fork, no conflict
    listed = next(t for t in saver.list(conf("t")) if t.checkpoint["id"] == cid(c1))
    put(saver, listed.config, {"n": 11}, step=1)
    put(saver, got.parent_config, {"n": 12}, step=1)
    assert len(list(saver.list(conf("t")))) == 5


def test_two_runs_in_one_saver_from_the_same_checkpoint_exactly_one_commits(saver: LangGraphSaver) -> None:
    put(saver, conf("t"), {"n": 0}, step=-1)
    first, second = saver.get_tuple(conf("t")), saver.get_tuple(conf("t"))
    assert first is not None and second is not None
    c1 = put(saver, first.config, {"n": 1}, step=0)
    c2 = put(saver, c1, {"n": 2}, step=1)  # the winner's run goes on, exactly after its own put
    with pytest.raises(ConflictError):
        put(saver, second.config, {"n": 9}, step=0)
    with pytest.raises(ConflictError):  # a put on the run's own checkpoint the thread moved past
        put(saver, c1, {"n": 9}, step=1)
    assert ids(saver.list(conf("t")))[:2] == [cid(c2), cid(c1)]


def test_a_fresh_saver_continues_the_head_exactly_and_forks_from_an_older_checkpoint(
    saver: LangGraphSaver,
) -> None:
    c0 = put(saver, conf("t"), {"n": 0}, step=-1)
    c1 = put(saver, conf("t", checkpoint_id=cid(c0)), {"n": 1}, step=0)
    fresh = LangGraphSaver(saver.store, prefix=PREFIX)  # no memory: finds the parent through the index
    c2 = put(fresh, conf("t", checkpoint_id=cid(c1)), {"n": 2}, step=1)  # the head: continued
    other = LangGraphSaver(saver.store, prefix=PREFIX)
    fork = put(other, conf("t", checkpoint_id=cid(c0)), {"n": 3}, step=1)  # moved past: a fork
    latest = saver.get_tuple(conf("t"))
    assert latest is not None and latest.checkpoint["id"] == cid(fork)
    assert latest.parent_config is not None and cid(latest.parent_config) == cid(c0)
    assert ids(saver.list(conf("t"))) == [cid(fork), cid(c2), cid(c1), cid(c0)]


def test_two_savers_starting_a_new_thread_exactly_one_commits(saver: LangGraphSaver) -> None:
    other = LangGraphSaver(saver.store, prefix=PREFIX)
    assert saver.get_tuple(conf("t")) is None and other.get_tuple(conf("t")) is None
    put(saver, conf("t"), {"n": 0}, step=-1)
    with pytest.raises(ConflictError):
        put(other, conf("t"), {"n": 1}, versions={"n": 2}, step=-1)  # LangGraph's first checkpoint
    put(saver, conf("t"), {"n": 2}, versions={"n": 3}, step=3)  # parentless, nothing planned: appended
    assert saver.get_tuple(conf("t")).checkpoint["channel_values"] == {"n": 2}  # type: ignore[union-attr]
    saver.delete_thread("t")
    assert other.get_tuple(conf("t")) is None  # a deleted thread can start afresh, above its tombstone
    put(other, conf("t"), {"n": 3}, step=-1)
    assert ids(saver.list(conf("t"))) == [saver.get_tuple(conf("t")).checkpoint["id"]]  # type: ignore[union-attr]


def test_configs_carry_only_thread_namespace_and_checkpoint_id(saver: LangGraphSaver) -> None:
    c0 = put(saver, conf("t", "sub"), {"n": 0}, step=-1)
    c1 = put(saver, conf("t", "sub", checkpoint_id=cid(c0)), {"n": 1}, step=0)
    handed = [c0, c1]
    for got in [saver.get_tuple(conf("t", "sub")), saver.get_tuple(c0), *saver.list(conf("t"))]:
        assert got is not None
        handed.append(got.config)
        if got.parent_config is not None:
            handed.append(got.parent_config)
    for config in handed:
        assert set(config) == {"configurable"}
        assert set(config["configurable"]) == {"thread_id", "checkpoint_ns", "checkpoint_id"}


class FlakyStore(ForwardingStore):
    """The next ``fail`` create-only puts land, but their answers are lost (a timeout)."""

    def __init__(self, inner: ObjectStore) -> None:
        super().__init__(inner)
        self.fail = 0

    def put(self, key: str, data: bytes, mode: PutMode = CREATE) -> str:
        etag = self.inner.put(key, data, mode)
        if self.fail and "/c/" in key:
            self.fail -= 1
            raise TransientStoreError("timed out", key=key, ambiguous=True)
        return etag


def test_a_write_whose_answer_was_lost_is_recognised_as_our_own(store: ObjectStore) -> None:
    flaky = FlakyStore(store)
    saver = LangGraphSaver(flaky, prefix=PREFIX)
    c0 = put(saver, conf("t"), {"n": 0}, step=-1)
    loaded = saver.get_tuple(conf("t"))
    assert loaded is not None
    flaky.fail = 1
    c1 = put(saver, loaded.config, {"n": 1}, step=0)  # strict put, retried after the timeout
    flaky.fail = 1
    c2 = put(saver, conf("t"), {"n": 2}, step=5)  # appended put, likewise
    assert ids(saver.list(conf("t"))) == [cid(c2), cid(c1), cid(c0)]


# --------------------------------------------------------------------------- keys and objects


def test_thread_ids_cannot_collide_or_escape(saver: LangGraphSaver) -> None:
    tricky = ["a", "a/b", "A", "a%2Fb", "../x", "a b", "ü", "-", "="]
    for thread in tricky:
        put(saver, conf(thread), {"who": thread}, step=-1)
    keys = [info.key for info in saver.store.list("")]
    assert all(k.startswith(PREFIX + "v1/lg/") for k in keys)
    assert not any("/../" in k or "a/b/" in k for k in keys)
    saver.delete_thread("a", purge=True)
    assert saver.get_tuple(conf("a")) is None
    for thread in tricky[1:]:
        got = saver.get_tuple(conf(thread))
        assert got is not None and got.checkpoint["channel_values"] == {"who": thread}
    assert sorted(t.config["configurable"]["thread_id"] for t in saver.list(None)) == sorted(tricky[1:])


def test_long_namespaces_and_channel_names_are_hashed_and_round_trip(saver: LangGraphSaver) -> None:
    ns = "|".join(f"subgraph_node:{uuid.uuid4()}" for _ in range(8))
    channel = "branch:to:" + "n" * 300
    stored = put(saver, conf("t", ns), {channel: "v", "short": 1}, step=-1)
    got = saver.get_tuple(stored)
    assert got is not None and got.checkpoint["channel_values"] == {channel: "v", "short": 1}
    assert max(len(seg) for info in saver.store.list("") for seg in info.key.split("/")) <= 200
    listed = list(saver.list({"configurable": {"thread_id": "t"}}))
    assert [t.config["configurable"]["checkpoint_ns"] for t in listed] == [ns]


def test_corrupt_or_misplaced_objects_are_refused(saver: LangGraphSaver) -> None:
    stored = put(saver, conf("t"), {"a": "value"}, step=-1)
    put(saver, conf("u"), {"a": "other"}, step=-1)
    (entry_key,) = [i.key for i in saver.store.list(PREFIX) if "/t/t/" in i.key and "/c/" in i.key]
    data = bytearray(saver.store.get(entry_key).data)
    data[-40] ^= 1
    saver.store.put(entry_key, bytes(data), OVERWRITE)
    with pytest.raises(CorruptCheckpointError, match="checksum"):
        LangGraphSaver(saver.store, prefix=PREFIX).get_tuple(stored)
    (other_key,) = [i.key for i in saver.store.list(PREFIX) if "/t/u/" in i.key and "/c/" in i.key]
    saver.store.put(entry_key, saver.store.get(other_key).data, OVERWRITE)
    with pytest.raises(CorruptCheckpointError, match="does not belong"):
        LangGraphSaver(saver.store, prefix=PREFIX).get_tuple(conf("t"))


# --------------------------------------------------------------------------- serializers


class XorCipher:
    """A toy cipher for the test (EncryptedSerializer's plumbing, not its cryptography)."""

    def encrypt(self, plaintext: bytes) -> tuple[str, bytes]:
        return "xor", bytes(b ^ 0x5A for b in plaintext)

    def decrypt(self, ciphername: str, ciphertext: bytes) -> bytes:
        assert ciphername == "xor"
        return bytes(b ^ 0x5A for b in ciphertext)


def test_encrypted_serializer_stores_no_plaintext(store: ObjectStore) -> None:
    saver = LangGraphSaver(store, prefix=PREFIX, serde=EncryptedSerializer(XorCipher()))
    stored = put(saver, conf("t"), {"secret": "the-password-123"}, step=-1, note="private-note-456")
    saver.put_writes(stored, [("secret", "pending-secret-789")], "task")
    got = saver.get_tuple(stored)
    assert got is not None
    assert got.checkpoint["channel_values"] == {"secret": "the-password-123"}
    assert got.metadata["note"] == "private-note-456"  # type: ignore[typeddict-item]
    assert got.pending_writes == [("task", "secret", "pending-secret-789")]
    everything = b"".join(store.get(i.key).data for i in store.list(PREFIX))
    for plaintext in (b"the-password-123", b"private-note-456", b"pending-secret-789"):
        assert plaintext not in everything


@dataclass
class Point:
    x: int
    y: int


def test_strict_msgpack_allowlist_and_copies(store: ObjectStore) -> None:
    saver = LangGraphSaver(store, prefix=PREFIX, serde=JsonPlusSerializer(allowed_msgpack_modules=[]))
    stored = put(saver, conf("t"), {"p": Point(1, 2)}, step=-1)
    blocked = saver.get_tuple(stored)
    assert blocked is not None and blocked.checkpoint["channel_values"]["p"] == {"x": 1, "y": 2}
    allowed = saver.with_allowlist([(Point.__module__, "Point")])
    assert allowed is not saver and isinstance(allowed, LangGraphSaver) and allowed.store is saver.store
    got = allowed.get_tuple(stored)
    assert got is not None and got.checkpoint["channel_values"]["p"] == Point(1, 2)
    plain = copy.copy(saver)
    assert plain.get_tuple(conf("t")) is not None
    assert put(plain, conf("t2"), {"n": 1}, step=-1)


# --------------------------------------------------------------------------- maintenance


def test_delete_thread_fences_a_writer_holding_the_old_head(saver: LangGraphSaver) -> None:
    put(saver, conf("t"), {"n": 0}, step=-1)
    put(saver, conf("t", "child"), {"n": 0}, step=-1)
    saver.put_writes(saver.get_tuple(conf("t")).config, [("w", 1)], "task")  # type: ignore[union-attr]
    loaded = saver.get_tuple(conf("t"))
    assert loaded is not None
    saver.delete_thread("t")
    assert saver.get_tuple(conf("t")) is None and saver.get_tuple(conf("t", "child")) is None
    assert list(saver.list({"configurable": {"thread_id": "t"}})) == []
    with pytest.raises(ConflictError):
        put(saver, loaded.config, {"n": 1}, versions={"n": 2}, step=0)
    # what is left: the two tombstones (and the fenced writer's invisible value and index entry)
    left = [i.key for i in saver.store.list(PREFIX) if "/c/" in i.key]
    assert len(left) == 2
    saver.delete_thread("t", purge=True)
    assert list(saver.store.list(PREFIX)) == []


def test_delete_for_runs_points_the_head_back_and_fences_the_deleted_run(saver: LangGraphSaver) -> None:
    c0 = put(saver, conf("t"), {"n": 0}, step=-1, run_id="keep")
    c1 = put(saver, conf("t", checkpoint_id=cid(c0)), {"n": 1}, step=0, run_id="drop")
    loaded = saver.get_tuple(conf("t"))
    assert loaded is not None and loaded.checkpoint["id"] == cid(c1)
    saver.put_writes(c1, [("w", 1)], "task")
    saver.delete_for_runs(["drop", "unknown"])
    got = saver.get_tuple(conf("t"))
    assert got is not None and got.checkpoint["id"] == cid(c0)
    assert saver.get_tuple(c1) is None
    assert ids(saver.list(conf("t"))) == [cid(c0)]
    with pytest.raises(ConflictError):
        put(saver, loaded.config, {"n": 2}, step=1)  # the deleted run's writer is fenced
    c2 = put(saver, got.config, {"n": 3}, step=1, run_id="next")  # the survivor continues
    assert ids(saver.list(conf("t"))) == [cid(c2), cid(c0)]
    assert not [i.key for i in saver.store.list(PREFIX) if "/r/drop" in i.key]


def test_prune_keep_latest_keeps_the_head_its_writes_and_values(saver: LangGraphSaver) -> None:
    c0 = put(saver, conf("t"), {"big": "x" * 1000, "n": 0}, step=-1)
    c1 = put(saver, conf("t", checkpoint_id=cid(c0)), {"big": "x" * 1000, "n": 1},
             versions={"big": 1, "n": 2}, new={"n": 2}, step=0)  # fmt: skip
    saver.put_writes(c0, [("w", "old")], "task")
    saver.put_writes(c1, [("w", "new")], "task")
    put(saver, conf("other"), {"n": 0}, step=-1)
    saver.prune(["t"], strategy="keep_latest")
    assert ids(saver.list(conf("t"))) == [cid(c1)]
    got = saver.get_tuple(conf("t"))
    assert got is not None and got.checkpoint["channel_values"] == {"big": "x" * 1000, "n": 1}
    assert got.pending_writes == [("task", "w", "new")]
    assert saver.get_tuple(conf("other")) is not None
    keys = [i.key.rpartition("/t/t/=/")[2] for i in saver.store.list(PREFIX) if "/t/t/" in i.key]
    # the head's entry and its writes; c0's entry kept as a holder of the value c1 shares
    assert sorted(k.split("/")[0] + ("+w" if ".w." in k else "") for k in keys) == ["c", "c+w", "h"]
    cold = LangGraphSaver(saver.store, prefix=PREFIX).get_tuple(conf("t"))
    assert cold is not None and cold.checkpoint["channel_values"] == {"big": "x" * 1000, "n": 1}
    saver.prune(["t"], strategy="delete")
    assert saver.get_tuple(conf("t")) is None
    with pytest.raises(ValueError, match="unknown prune strategy"):
        saver.prune(["t"], strategy="everything")


def test_prune_refuses_when_delta_channels_depend_on_older_checkpoints(saver: LangGraphSaver) -> None:
    c0 = put(saver, conf("t"), {"n": 0}, step=-1)
    put(saver, conf("t", checkpoint_id=cid(c0)), {"n": 1}, step=0,
        counters_since_delta_snapshot={"messages": (3, 3)})  # fmt: skip
    put(saver, conf("safe"), {"n": 0}, step=-1)
    put(saver, conf("safe", checkpoint_id=cid(put(saver, conf("safe"), {"n": 1}, step=2))), {"n": 2}, step=3)
    with pytest.raises(PruneRefusedError) as info:
        saver.prune(["safe", "t"])
    assert info.value.refused == [("t", "")]
    assert len(list(saver.list(conf("t")))) == 2 and len(list(saver.list(conf("safe")))) == 3


def test_copy_thread_then_continue_the_copy_with_a_graph(saver: LangGraphSaver) -> None:
    class State(TypedDict, total=False):
        items: Annotated[list[str], operator.add]

    g = StateGraph(State)
    g.add_node("step", lambda s: {"items": [f"s{len(s['items'])}"]})
    g.add_edge(START, "step")
    g.add_edge("step", END)
    app = g.compile(checkpointer=saver)
    app.invoke({"items": ["x"]}, conf("src"))
    saver.copy_thread("src", "dst")
    src_hist = [(s.values, s.next) for s in app.get_state_history(conf("src"))]
    assert [(s.values, s.next) for s in app.get_state_history(conf("dst"))] == src_hist
    assert app.invoke({"items": ["y"]}, conf("dst")) == {"items": ["x", "s1", "y", "s3"]}
    assert app.get_state(conf("src")).values == {"items": ["x", "s1"]}
    with pytest.raises(ValueError, match="already has checkpoints"):
        saver.copy_thread("src", "dst")


def test_get_next_version_is_increasing_and_accepts_ints(saver: LangGraphSaver) -> None:
    v1 = saver.get_next_version(None, None)
    v2 = saver.get_next_version(v1, None)
    v3 = saver.get_next_version(7, None)
    assert v1 < v2 < v3 and v3.startswith("0" * 31 + "8.")


def test_from_url(backend: str, tmp_path: Any) -> None:
    name = uuid.uuid4().hex
    a = LangGraphSaver.from_url(f"memory://{name}/apps/one")
    b = LangGraphSaver.from_url(f"memory://{name}/apps/one")
    assert a.prefix == "apps/one/" and isinstance(a.store, MemoryStore)
    put(a, conf("t"), {"n": 1}, step=-1)
    assert b.get_tuple(conf("t")) is not None
    local = LangGraphSaver.from_url(f"file://{tmp_path}/store")
    assert isinstance(local.store, LocalStore)
    put(local, conf("t"), {"n": 1}, step=-1)
    assert local.get_tuple(conf("t")) is not None


def test_async_maintenance_methods(saver: LangGraphSaver, store_factory: Callable[[], ObjectStore]) -> None:
    put(saver, conf("t"), {"n": 0}, step=-1, run_id="r")

    async def run() -> None:
        await saver.acopy_thread("t", "t2")
        assert [t async for t in saver.alist(conf("t2"))] != []
        await saver.adelete_for_runs(["r"])
        assert await saver.aget_tuple(conf("t")) is None and await saver.aget_tuple(conf("t2")) is None
        put(saver, conf("t3"), {"n": 0}, step=-1)
        await saver.aprune(["t3"])
        await saver.adelete_thread("t3")
        assert [t async for t in saver.alist(None)] == []

    asyncio.run(run())


def test_create_checkpoint_helper_round_trip(saver: LangGraphSaver) -> None:
    """A checkpoint built by LangGraph's own helper (as older integrations do) round-trips."""
    cp = create_checkpoint(checkpoint({"a": 1}), None, 1)
    stored = saver.put(conf("t"), cp, meta(-1), {"a": 1})
    got = saver.get_tuple(stored)
    assert got is not None and got.checkpoint["channel_values"] == {"a": 1}


def _concat(state: list[str], batches: list[list[str]]) -> list[str]:
    return state + [x for batch in batches for x in batch]


class Chat(TypedDict):
    messages: Annotated[list[AnyMessage], DeltaChannel(_messages_delta_reducer, snapshot_frequency=5)]
    other: Annotated[list[str], DeltaChannel(_concat)]


def test_delta_channel_history_matches_langgraphs_default_walk(saver: LangGraphSaver) -> None:
    """The batched override returns what BaseCheckpointSaver's walk (get_tuple per ancestor) does."""

    def bot(s: Chat) -> dict[str, Any]:
        n = len(s["messages"])
        return {"messages": [AIMessage(content=f"a{n}", id=f"a{n}")], "other": [f"o{n}"]}

    g = StateGraph(Chat)
    g.add_node("bot", bot)
    g.add_edge(START, "bot")
    g.add_edge("bot", END)
    app = g.compile(checkpointer=saver)
    c = conf("t")
    for turn in range(6):
        app.invoke({"messages": [HumanMessage(content=f"q{turn}", id=f"q{turn}")]}, c)
    old = list(app.get_state_history(c))[7]
    app.invoke(None, app.update_state(old.config, {"other": ["patched"]}))
    configs = [t.config for t in saver.list(c)] + [c]
    for config in configs:
        for wanted in (["messages"], ["other"], ["messages", "other", "nothing"]):
            ours = saver.get_delta_channel_history(config=config, channels=wanted)
            reference = BaseCheckpointSaver.get_delta_channel_history(saver, config=config, channels=wanted)
            assert ours == reference
    assert asyncio.run(saver.aget_delta_channel_history(config=c, channels=["other"])) == (
        BaseCheckpointSaver.get_delta_channel_history(saver, config=c, channels=["other"])
    )
    assert saver.get_delta_channel_history(config=c, channels=[]) == {}
    assert saver.get_delta_channel_history(config=conf("none"), channels=["x"]) == {"x": {"writes": []}}


def test_the_saver_draws_no_uuid4(saver: LangGraphSaver, monkeypatch: pytest.MonkeyPatch) -> None:
    """LangGraph's tests patch uuid.uuid4 to make a graph's ids deterministic: the saver
    must not consume them (its writer tokens come from ``secrets``)."""
    first, second = checkpoint({"n": 0}), checkpoint({"n": 1})
    drawn: list[int] = []
    real = uuid.uuid4
    monkeypatch.setattr(uuid, "uuid4", lambda: drawn.append(1) or real())
    c0 = saver.put(conf("t"), first, meta(-1), {"n": 1})
    saver.put_writes(c0, [("n", 2), (ERROR, "boom")], "task")
    saver.put(c0, second, meta(0), {"n": 2})
    saver.copy_thread("t", "u")
    saver.prune(["u"], strategy="keep_latest")
    saver.delete_for_runs(["nobody"])
    saver.delete_thread("t")
    assert saver.get_tuple(conf("u")) is not None and list(saver.list(conf("u")))
    assert drawn == []


def test_inventory_lists_threads_namespaces_and_every_key_a_copy_needs(saver: LangGraphSaver) -> None:
    c0 = put(saver, conf("a"), {"n": 0}, step=-1)
    put(
        saver,
        conf("a", checkpoint_id=cid(c0)),
        {"n": 0, "m": 1},
        versions={"n": 1, "m": 1},
        new={"m": 1},
        step=0,
    )
    saver.put_writes(c0, [("n", 5)], "task")
    put(saver, conf("a", "sub"), {"n": 1}, step=-1)
    put(saver, conf("b/x"), {"n": 2}, step=-1)
    assert list(saver.thread_ids()) == ["a", "b/x"]
    assert sorted(saver.namespaces("a")) == ["", "sub"]
    keys = list(saver.thread_keys("a"))
    assert len(keys) == 4 and not list(saver.thread_keys("nobody"))
    other = MemoryStore()
    for key in keys:  # a raw copy to another store and prefix reads back the same
        other.put("elsewhere/" + key[len(PREFIX) :], saver.store.get(key).data)
    copied = LangGraphSaver(other, prefix="elsewhere/")
    assert copied.get_tuple(conf("a")).checkpoint["channel_values"] == {"n": 0, "m": 1}  # type: ignore[union-attr]
    assert copied.get_tuple(c0).pending_writes == [("task", "n", 5)]  # type: ignore[union-attr]


def chat_app(saver: LangGraphSaver) -> Any:
    def reply(state: Any) -> dict[str, Any]:
        n = len(state["messages"])
        return {"messages": [AIMessage(content=f"answer {n} " + "x" * 200, id=f"ai-{n}")]}

    g = StateGraph(PlainChat)
    g.add_node("reply", reply)
    g.add_edge(START, "reply")
    g.add_edge("reply", END)
    return g.compile(checkpointer=saver)


class PlainChat(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]


def test_maintenance_keeps_the_snapshots_and_values_survivors_reference(saver: LangGraphSaver) -> None:
    """List values are stored as a suffix of a snapshot in an older entry; deleting the run
    that wrote the snapshot, pruning, and copying onto a deleted thread (other positions)
    must keep every survivor readable by a saver that holds nothing."""
    app = chat_app(saver)
    runs = [str(uuid.uuid4()) for _ in range(4)]
    for turn, run in enumerate(runs):
        config: RunnableConfig = {"configurable": {"thread_id": "chat"}, "run_id": run}  # type: ignore[typeddict-unknown-key]
        app.invoke({"messages": [HumanMessage(content=f"q{turn}", id=f"h{turn}")]}, config)
    entries = [e for e in saver._all_entries("chat", "") if e.fmt >= 2 and "messages" in e.vals]
    assert any(e.vals["messages"][0] == "s" for e in entries), "no suffix was stored"
    chat: RunnableConfig = {"configurable": {"thread_id": "chat"}}

    def cold_messages(thread: str) -> list[str]:
        got = chat_app(LangGraphSaver(saver.store, prefix=PREFIX)).get_state(
            {"configurable": {"thread_id": thread}}
        )
        return [m.id for m in got.values["messages"]]

    expected = [f"{kind}{i}" for i in range(4) for kind in ("h",)]
    full = cold_messages("chat")
    assert [m for m in full if m.startswith("h")] == expected and len(full) == 8
    saver.delete_for_runs([runs[0]])  # the run whose checkpoints hold the first snapshot
    assert cold_messages("chat") == full
    saver.delete_thread("copy")  # a tombstone: the copy lands at other positions
    put(saver, conf("copy"), {"n": 0}, step=-1)
    saver.delete_thread("copy")
    saver.copy_thread("chat", "copy")
    assert cold_messages("copy") == full
    saver.prune(["chat"], strategy="keep_latest")
    assert cold_messages("chat") == full
    assert len(list(saver.list(chat))) == 1
    saver.delete_thread("chat")
    assert cold_messages("copy") == full


@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "encrypted"])
def test_list_suffixes_follow_the_serialized_elements(store: ObjectStore, encrypted: bool) -> None:
    """A list that only grew is stored as a suffix; one whose element changed in place (the
    same objects, mutated) gets a new snapshot. Both read back exactly, with a plain or an
    encrypting serializer, by a saver that holds nothing."""
    serde = EncryptedSerializer(XorCipher()) if encrypted else None
    saver = LangGraphSaver(store, prefix=PREFIX, serde=serde)
    items: list[dict[str, Any]] = [{"text": "first-secret-item", "n": 0}]
    config = conf("t")
    kinds = []
    for version in range(1, 6):
        if version == 4:
            items[0]["n"] = 99  # mutated in place: the stored prefix no longer matches
        items.append({"text": f"item-{version}", "n": version})
        config = put(saver, config, {"items": items}, versions={"items": version}, step=version)
        entry = saver._lookup("t", "", cid(config))
        assert entry is not None
        kinds.append(entry.vals["items"][0])
        cold = LangGraphSaver(store, prefix=PREFIX, serde=serde).get_tuple(config)
        assert cold is not None and cold.checkpoint["channel_values"]["items"] == items
    assert kinds == ["i", "s", "s", "i", "s"]
    raw = b"".join(store.get(i.key).data for i in store.list(PREFIX))
    assert (b"first-secret-item" in raw) is not encrypted


def test_a_saver_that_holds_nothing_finds_any_checkpoint_by_id(store: ObjectStore) -> None:
    """Format 2 has no id index: a cold lookup reads the log newest first, in growing
    pages, past the pending-write objects listed between the entries."""
    saver = LangGraphSaver(store, prefix=PREFIX)
    configs = [put(saver, conf("t"), {"n": 0}, step=-1)]
    for step in range(60):
        saver.put_writes(configs[-1], [("n", step), (ERROR, "x")], f"task-{step}")
        saver.put_writes(configs[-1], [("m", step)], f"other-{step}")
        configs.append(put(saver, configs[-1], {"n": step + 1}, versions={"n": step + 2}, step=step))
    for index in (60, 59, 30, 1, 0):
        counting = CountingStore(store)
        got = LangGraphSaver(counting, prefix=PREFIX).get_tuple(configs[index])
        assert got is not None and got.checkpoint["channel_values"] == {"n": index}
        if index < 60:
            assert {w[0] for w in got.pending_writes} == {f"task-{index}", f"other-{index}"}
        if index == 60:
            assert sum(counting.counts.values()) <= 5  # index LIST, first page, its entry, writes
    assert LangGraphSaver(store, prefix=PREFIX).get_tuple(conf("t", checkpoint_id="nope")) is None
