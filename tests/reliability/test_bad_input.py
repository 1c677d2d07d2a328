"""Hostile and broken input, table-driven: each case gets a clear typed error and harms nothing else.

Four tables; :data:`CASE_COUNT` counts their rows (the figure in docs/guarantees.md).

* :data:`DAMAGE` -- damaged objects in the bucket, run on every backend through
  the ``store`` fixture. A victim thread (snapshot 0, deltas 1 and 2 on it) and a
  bystander thread are written; one object (or key) is damaged; reading the
  victim raises the case's typed error naming the damaged key; ``verify()``
  reports the case's problem codes and none about the bystander; the
  bystander's objects are byte-for-byte unchanged and it still reads back.
  ``tests/contract/test_saver_contract.py`` already covers half-truncated,
  bit-flipped header, empty and version-2 objects, foreign bytes, a checkpoint
  copied to another thread, a foreign key under a thread prefix, a missing
  delta base, pickles and unregistered types; the rows here are the other
  ways the envelope, header, body, key layout and history can be wrong.
* :data:`THREAD_IDS` -- ids with ``/``, ``..``, NUL, control characters,
  bidi/zero-width/combining unicode and maximal lengths are valid and must
  round-trip through a workflow (with an interrupt) without colliding, on
  every backend; empty, too long, non-string and lone-surrogate ids are
  refused with ``InvalidThreadIdError`` before any request.
* :data:`VALUES` -- values that cannot be serialised: a task result, a task
  argument, the workflow input, an interrupt value, the workflow's return
  value, a resume answer. Each raises ``SerializationError``; the thread is left
  readable and consistent (``verify()``), the bystander untouched.
* :data:`CLOUD` -- a missing bucket or container (each cloud), missing or wrong
  credentials (each cloud), and a store that ignores conditional headers.
"""

from __future__ import annotations

import hashlib
import struct
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from cairnflow.core import codec, interrupt, keys, status_index, task, workflow
from cairnflow.core.counting import CountingStore
from cairnflow.core.errors import (
    ConditionalWritesUnsupportedError,
    ConflictError,
    CorruptCheckpointError,
    DecryptionError,
    InvalidThreadIdError,
    SerializationError,
    StoreAccessError,
    ThreadNotFoundError,
    UnsupportedFormatError,
)
from cairnflow.core.log import CheckpointLog
from cairnflow.core.store import CREATE, OVERWRITE, ObjectStore
from cairnflow.core.verify import verify
from cairnflow.savers.memory import MemoryStore

PREFIX = "bad/"
VICTIM, BYSTANDER = "victim", "bystander"


def rec(n: int) -> dict[str, Any]:
    return {"op": "task", "pos": n, "name": "t", "args": "x", "value": f"v{n}"}


# =========================================================================== damaged objects


@dataclass
class Ctx:
    store: ObjectStore
    saver: CheckpointLog

    def key(self, seq: int, thread: str = VICTIM) -> str:
        return keys.checkpoint_key(PREFIX, thread, seq)

    def rewrite(self, seq: int, change: Callable[[bytes], bytes]) -> None:
        key = self.key(seq)
        self.store.put(key, change(self.store.get(key).data), OVERWRITE)

    def reheader(self, seq: int, **fields: Any) -> None:
        """Rewrite the header with a valid checksum: damage only the logic can see."""

        def change(data: bytes) -> bytes:
            env = codec.decode(data)
            return codec.encode({**env.header, **fields}, env.body, env.flags)

        self.rewrite(seq, change)

    def rebody(self, seq: int, body: bytes) -> None:
        self.rewrite(seq, lambda data: codec.encode(codec.decode(data).header_bytes, body))


def reseal(data: bytes) -> bytes:
    """Recompute the trailing SHA-256 of ``data`` (whose last 32 bytes are a digest)."""
    payload = data[:-32]
    return payload + hashlib.sha256(payload).digest()


def set_byte(offset: int, value: int) -> Callable[[bytes], bytes]:
    return lambda d: reseal(d[:offset] + bytes([value]) + d[offset + 1 :])


def flip(offset: int) -> Callable[[bytes], bytes]:
    return lambda d: d[:offset] + bytes([d[offset] ^ 0x40]) + d[offset + 1 :]


def header_length(delta: int) -> Callable[[bytes], bytes]:
    def change(d: bytes) -> bytes:
        (length,) = struct.unpack_from(">I", d, 5)
        return reseal(d[:5] + struct.pack(">I", length + delta) + d[9:])

    return change


def raw_header(text: bytes) -> Callable[[bytes], bytes]:
    def change(d: bytes) -> bytes:
        body = codec.decode(d).body
        payload = b"CFW" + bytes([1, 0]) + struct.pack(">I", len(text)) + text + body
        return payload + hashlib.sha256(payload).digest()

    return change


def latest(s: CheckpointLog) -> object:
    return s.latest(VICTIM)


def get(seq: int) -> Callable[[CheckpointLog], object]:
    return lambda s: s.get(VICTIM, seq)


def thread_list(s: CheckpointLog) -> object:
    found = sorted(s.threads())
    assert found == sorted([VICTIM, BYSTANDER]), found
    return found


@dataclass(frozen=True)
class Damage:
    name: str
    damage: Callable[[Ctx], None]
    read: Callable[[CheckpointLog], object]
    error: type[Exception] | None  # None: reads still work; verify() is what reports it
    match: str | None
    codes: frozenset[str]
    names_seq: int | None = None  # the error must name this checkpoint's key
    xfail: str | None = None


def _d(
    name: str,
    damage: Callable[[Ctx], None],
    read: Callable[[CheckpointLog], object],
    error: type[Exception] | None,
    match: str | None,
    codes: set[str],
    names_seq: int | None = None,
    xfail: str | None = None,
) -> Damage:
    return Damage(name, damage, read, error, match, frozenset(codes), names_seq, xfail)


DAMAGE: list[Damage] = [
    _d(
        "truncated-inside-fixed-header",
        lambda c: c.rewrite(2, lambda d: d[:6]),
        latest,
        CorruptCheckpointError,
        "too short",
        {"corrupt"},
        2,
    ),
    _d(
        "truncated-by-one-byte",
        lambda c: c.rewrite(2, lambda d: d[:-1]),
        latest,
        CorruptCheckpointError,
        "checksum mismatch",
        {"corrupt"},
        2,
    ),
    _d(
        "checksum-digest-altered",
        lambda c: c.rewrite(2, flip(-1)),
        latest,
        CorruptCheckpointError,
        "checksum mismatch",
        {"corrupt"},
        2,
    ),
    _d(
        "body-byte-altered",
        lambda c: c.rewrite(2, flip(-40)),
        latest,
        CorruptCheckpointError,
        "checksum mismatch",
        {"corrupt"},
        2,
    ),
    _d(
        "empty-base-snapshot",
        lambda c: c.rewrite(0, lambda d: b""),
        latest,
        CorruptCheckpointError,
        "too short",
        {"corrupt", "bad_base"},
        0,
    ),
    _d(
        "wrong-format-version-0",
        lambda c: c.rewrite(2, set_byte(3, 0)),
        latest,
        UnsupportedFormatError,
        "format version 0",
        {"unsupported_format"},
        2,
    ),
    _d(
        "newer-format-version-255",
        lambda c: c.rewrite(2, set_byte(3, 255)),
        latest,
        UnsupportedFormatError,
        "upgrade cairnflow",
        {"unsupported_format"},
        2,
    ),
    _d(
        "unknown-flag-bit",
        lambda c: c.rewrite(2, set_byte(4, 0x80)),
        latest,
        UnsupportedFormatError,
        "unknown flags",
        {"unsupported_format"},
        2,
    ),
    _d(
        "bad-magic",
        lambda c: c.rewrite(2, set_byte(0, ord("X"))),
        latest,
        CorruptCheckpointError,
        "bad magic",
        {"corrupt"},
        2,
    ),
    _d(
        "header-length-beyond-object",
        lambda c: c.rewrite(2, header_length(10_000)),
        latest,
        CorruptCheckpointError,
        "header length",
        {"corrupt"},
        2,
    ),
    _d(
        "header-not-json",
        lambda c: c.rewrite(2, raw_header(b"{not json")),
        latest,
        CorruptCheckpointError,
        "not JSON",
        {"corrupt"},
        2,
    ),
    _d(
        "header-not-an-object",
        lambda c: c.rewrite(2, raw_header(b"[1,2]")),
        latest,
        CorruptCheckpointError,
        "not a JSON object",
        {"corrupt"},
        2,
    ),
    _d(
        "unknown-kind",
        lambda c: c.reheader(2, kind="patch"),
        latest,
        CorruptCheckpointError,
        "unknown checkpoint kind",
        {"bad_header"},
        2,
    ),
    _d(
        "unknown-status",
        lambda c: c.reheader(2, status="paused"),
        latest,
        CorruptCheckpointError,
        "unknown checkpoint kind or status",
        {"bad_header"},
        2,
    ),
    _d(
        "body-not-a-list",
        lambda c: c.rebody(2, b'{"op":"task"}'),
        latest,
        CorruptCheckpointError,
        "not a list",
        {"bad_body"},
        2,
    ),
    _d(
        "body-not-json",
        lambda c: c.rebody(2, b"\x00\xff garbage"),
        latest,
        SerializationError,
        "cannot be loaded",
        {"bad_body"},
    ),
    _d(
        "moved-to-another-position",
        lambda c: c.store.put(c.key(3), c.store.get(c.key(2)).data, CREATE),
        latest,
        CorruptCheckpointError,
        "does not belong",
        {"key_mismatch"},
        3,
    ),
    _d(
        "gap-in-the-middle",
        lambda c: c.store.delete(c.key(1)),
        get(1),
        ThreadNotFoundError,
        "no checkpoint 1",
        {"gap"},
    ),
    _d(
        "delta-based-on-a-delta",
        lambda c: c.reheader(2, base=1),
        latest,
        CorruptCheckpointError,
        "not a snapshot",
        {"bad_base"},
        2,
    ),
    _d(
        "delta-base-not-older",
        lambda c: c.reheader(2, base=7),
        latest,
        CorruptCheckpointError,
        "no valid base",
        {"bad_base"},
        2,
    ),
    _d(
        "delta-record-count-wrong",
        lambda c: c.reheader(2, total=99),
        latest,
        CorruptCheckpointError,
        "record count",
        {"count_mismatch"},
        2,
    ),
    _d(
        "snapshot-record-count-wrong",
        lambda c: c.reheader(0, total=5),
        get(0),
        CorruptCheckpointError,
        "record count",
        {"count_mismatch"},
        0,
    ),
    _d(
        "unknown-serializer",
        lambda c: c.reheader(2, serde="msgpack"),
        latest,
        SerializationError,
        "refusing to load",
        {"unchecked_body"},
    ),
    _d(
        "encrypted-flag-without-cipher",
        lambda c: c.rewrite(2, set_byte(4, codec.FLAG_ENCRYPTED)),
        latest,
        DecryptionError,
        "no cipher",
        {"encrypted"},
        2,
    ),
    _d(
        "foreign-object-at-prefix-root",
        lambda c: c.store.put(f"{PREFIX}notes.txt", b"hello", CREATE),
        thread_list,
        None,
        None,
        {"foreign_object"},
    ),
    _d(
        "foreign-folder-under-threads",
        lambda c: c.store.put(f"{PREFIX}v1/threads/NOT%ZZ/000000000000", b"x", CREATE),
        thread_list,
        None,
        None,
        {"foreign_object"},
    ),
]


def _snapshot_of(store: ObjectStore, thread: str) -> dict[str, bytes]:
    return {i.key: store.get(i.key).data for i in store.list(keys.thread_prefix(PREFIX, thread))}


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(c, id=c.name, marks=[pytest.mark.xfail(strict=True, reason=c.xfail)] if c.xfail else [])
        for c in DAMAGE
    ],
)
def test_damaged_objects_give_typed_errors_and_spare_other_threads(store: ObjectStore, case: Damage) -> None:
    saver = CheckpointLog(store, prefix=PREFIX)
    head = None
    for n in range(3):
        head = saver.append(VICTIM, head, [rec(n), rec(10 + n)][: 1 + (n > 0)], status="running")
    assert [i.kind for i in saver.history(VICTIM)] == ["delta", "delta", "snapshot"]
    b0 = saver.append(BYSTANDER, None, [rec(100)], status="running")
    saver.append(BYSTANDER, b0, [rec(101)], status="interrupted")
    bystander_records = saver.latest(BYSTANDER).records  # type: ignore[union-attr]
    bystander_objects = _snapshot_of(store, BYSTANDER)
    assert verify(saver).ok

    case.damage(Ctx(store, saver))

    if case.error is None:
        case.read(saver)
        assert saver.latest(VICTIM) is not None
    else:
        with pytest.raises(case.error, match=case.match) as info:
            case.read(saver)
        if case.names_seq is not None:
            assert keys.checkpoint_key(PREFIX, VICTIM, case.names_seq) in str(info.value)
    report = verify(saver)
    codes = {p.code for p in report.problems}
    assert case.codes <= codes, f"verify() reported {sorted(codes)}, expected {sorted(case.codes)}"
    assert not [p for p in report.problems if p.thread_id == BYSTANDER], report.problems
    # Nothing else affected: the bystander's objects are unchanged and it reads back whole.
    assert _snapshot_of(store, BYSTANDER) == bystander_objects
    again = saver.latest(BYSTANDER)
    assert again is not None and again.records == bystander_records and again.status == "interrupted"
    assert verify(saver, BYSTANDER).ok


# =========================================================================== thread ids


@task(name="bad.echo")
def echo(value: Any) -> Any:
    return value


@workflow(name="bad.flow")
def flow(inp: Any) -> Any:
    first = echo(inp).result()
    answer = interrupt({"asked": inp})
    return [first, answer]


def run_to_end(saver: CheckpointLog, thread: str, inp: Any) -> Any:
    paused = flow.run(inp, thread_id=thread, saver=saver)
    assert paused.status == "interrupted" and paused.interrupt == {"asked": inp}
    done = flow.resume("yes", thread_id=thread, saver=saver)
    assert done.status == "completed"
    return done.result


VALID_IDS: list[tuple[str, list[str]]] = [
    ("slash-dotdot-path", ["a/b/../../c", "a/b", "c"]),
    ("path-traversal", ["../../etc/passwd", "/etc/passwd", "etc/passwd"]),
    ("dots-only", [".", "..", "..."]),
    ("nul-bytes", ["\x00", "\x00\x00", "a\x00b"]),
    ("control-characters", ["ctl\x01\x1f\x7f", "line\r\nfeed", "\t"]),
    ("percent-escapes-vs-raw", ["%2F", "/", "%252F", "%"]),
    ("case-pairs", ["Thread", "thread", "THREAD"]),
    ("unicode-normalisation-pair", ["caf\u00e9", "cafe\u0301"]),
    ("bidi-and-zero-width", ["\u202eevil", "\u200b", "a\u200db", "\ufeff"]),
    ("emoji-sequences", ["\U0001f468\u200d\U0001f469\u200d\U0001f467", "\U0001f642", "\U0001f3f3\ufe0f"]),
    ("longest-ascii-240", ["x" * 240, "x" * 239]),
    ("longest-multibyte-240", ["\u00e9" * 40, "\u20ac" * 26 + "ab"]),
]

REFUSED_IDS: list[tuple[str, Any]] = [
    ("empty", ""),
    ("ascii-241", "y" * 241),
    ("multibyte-too-long", "\u00e9" * 41),
    ("lone-surrogate-inside", "a\udfffb"),
    ("bytes", b"thread"),
    ("none", None),
    ("int", 7),
]
THREAD_IDS = len(VALID_IDS) + len(REFUSED_IDS)


@pytest.mark.parametrize(("name", "ids"), VALID_IDS, ids=[n for n, _ in VALID_IDS])
def test_valid_thread_ids_round_trip_without_collision(store: ObjectStore, name: str, ids: list[str]) -> None:
    saver = CheckpointLog(store, prefix=PREFIX)
    bystander = run_to_end(saver, BYSTANDER, "b")
    for n, thread in enumerate(ids):
        assert run_to_end(saver, thread, [name, n]) == [[name, n], "yes"], repr(thread)
    for n, thread in enumerate(ids):  # each id reads back its own run, nobody else's
        run = flow.get_run(thread_id=thread, saver=saver)
        assert run is not None and run.result == [[name, n], "yes"], repr(thread)
    assert sorted(saver.threads()) == sorted([*ids, BYSTANDER])
    report = verify(saver)
    assert report.ok and report.threads_checked == len(ids) + 1, report.problems
    assert all(k.key.startswith((PREFIX + "v1/threads/", PREFIX + "v1/index/")) for k in store.list(""))
    # One status index entry per thread, naming exactly that thread (core/status_index.py).
    indexed = [
        status_index.parse_entry_key(PREFIX, k.key).thread_id for k in store.list(PREFIX + "v1/index/")
    ]
    assert sorted(indexed) == sorted([*ids, BYSTANDER])
    assert flow.get_run(thread_id=BYSTANDER, saver=saver).result == bystander  # type: ignore[union-attr]


@pytest.mark.parametrize(("name", "bad"), REFUSED_IDS, ids=[n for n, _ in REFUSED_IDS])
def test_invalid_thread_ids_are_refused_before_any_request(name: str, bad: Any) -> None:
    inner = MemoryStore()
    saver = CheckpointLog(inner, prefix=PREFIX)
    run_to_end(saver, BYSTANDER, "b")
    before = _snapshot_of(inner, BYSTANDER)
    counting = CountingStore(inner)
    counted = CheckpointLog(counting, prefix=PREFIX)
    with pytest.raises(InvalidThreadIdError):
        flow.run("x", thread_id=bad, saver=counted)
    with pytest.raises(InvalidThreadIdError):
        flow.resume("x", thread_id=bad, saver=counted)
    if bad is not None:  # verify(saver, None) means "the whole prefix"
        with pytest.raises(InvalidThreadIdError):
            verify(counted, bad)
    assert sum(counting.counts.values()) == 0, counting.counts
    assert _snapshot_of(inner, BYSTANDER) == before


# =========================================================================== values


class Opaque:
    """A type nobody registered with the serializer."""


def _circular() -> list[Any]:
    loop: list[Any] = [1]
    loop.append(loop)
    return loop


@task(name="bad.give")
def give(kind: str) -> Any:
    return {"opaque": Opaque(), "circular": _circular(), "surrogate": "ok\udc80", "key": {Opaque(): 1}}[kind]


@task(name="bad.take")
def take(value: Any) -> str:
    return "took"


@workflow(name="bad.values")
def values(inp: dict[str, Any]) -> Any:
    where = inp["where"]
    if where == "result":
        give(inp["kind"]).result()
    if where == "argument":
        take(threading.Lock()).result()
    if where == "interrupt":
        interrupt({"ask": {Opaque()}})
    if where == "return":
        return (x for x in range(3))
    if where == "answer":
        return interrupt("q")
    return "fine"


@dataclass(frozen=True)
class BadValue:
    name: str
    inp: Any
    match: str
    answer: Any = None
    stored: str | None = "failed"  # the thread's status afterwards (None: nothing stored)
    extra: dict[str, Any] = field(default_factory=dict)


VALUES: list[BadValue] = [
    BadValue("task-result-unregistered-type", {"where": "result", "kind": "opaque"}, "bad.give"),
    BadValue("task-result-circular", {"where": "result", "kind": "circular"}, "bad.give"),
    BadValue("task-result-lone-surrogate", {"where": "result", "kind": "surrogate"}, "bad.give"),
    BadValue("task-result-unhashable-key-type", {"where": "result", "kind": "key"}, "bad.give"),
    BadValue("task-argument-lock", {"where": "argument"}, "arguments of task 'bad.take'"),
    BadValue("workflow-input", {"where": "input", "x": Opaque()}, "cannot", stored=None),
    BadValue("interrupt-value", {"where": "interrupt"}, "interrupt value"),
    BadValue("workflow-return-generator", {"where": "return"}, "returned a value"),
    BadValue("resume-answer", {"where": "answer"}, "cannot", answer=Opaque(), stored="interrupted"),
]


@pytest.mark.parametrize("case", VALUES, ids=[c.name for c in VALUES])
@pytest.mark.parametrize("backend", ["memory", "local"])
def test_values_that_cannot_be_serialised(
    backend: str, case: BadValue, request: pytest.FixtureRequest
) -> None:
    store: ObjectStore = request.getfixturevalue(f"{backend}_store")
    saver = CheckpointLog(store, prefix=PREFIX)
    run_to_end(saver, BYSTANDER, "b")
    before = _snapshot_of(store, BYSTANDER)
    thread = f"values-{case.name}"
    if case.answer is not None:
        assert values.run(case.inp, thread_id=thread, saver=saver).status == "interrupted"
        with pytest.raises(SerializationError, match=case.match):
            values.resume(case.answer, thread_id=thread, saver=saver)
    else:
        with pytest.raises(SerializationError, match=case.match):
            values.run(case.inp, thread_id=thread, saver=saver)
    head = saver.latest(thread)
    if case.stored is None:
        assert head is None, "nothing may be stored for a run that could not start"
    else:
        assert head is not None and head.status == case.stored, head and head.status
        assert verify(saver, thread).ok
    assert _snapshot_of(store, BYSTANDER) == before
    assert verify(saver).ok


# =========================================================================== cloud

Action = Callable[[], object]
Setup = Iterator[tuple[Action, CheckpointLog]]  # (the failing action, a saver on a good bucket)


@dataclass(frozen=True)
class Cloud:
    name: str
    backend: str
    make: Callable[[pytest.FixtureRequest], Setup]
    error: type[Exception]
    match: str
    xfail: str | None = None


def start_run(saver: CheckpointLog) -> Action:
    return lambda: flow.run("x", thread_id="t", saver=saver)


def _s3_session() -> Any:
    import boto3.session

    from tests.emulators.s3 import ACCESS_KEY, REGION, SECRET_KEY

    return boto3.session.Session(
        aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY, region_name=REGION
    )


def _s3_saver(url: str, bucket: str) -> CheckpointLog:
    from cairnflow.savers.s3 import S3Store

    store = S3Store(bucket, session=_s3_session(), endpoint_url=url, probe_prefix=PREFIX)
    return CheckpointLog(store, prefix=PREFIX)


def s3_missing_bucket(request: pytest.FixtureRequest) -> Setup:
    from tests.emulators.s3 import new_bucket

    url = request.getfixturevalue("s3_server_url")
    missing = _s3_saver(url, f"cf-missing-{uuid.uuid4().hex[:12]}")
    yield start_run(missing), _s3_saver(url, new_bucket(url))


def s3_no_credentials(request: pytest.FixtureRequest) -> Setup:
    import botocore.credentials
    import botocore.session

    from cairnflow.savers.s3 import S3Store
    from tests.emulators.s3 import REGION, new_bucket

    url = request.getfixturevalue("s3_server_url")
    bucket = new_bucket(url)
    session = botocore.session.Session()
    session.register_component("credential_provider", botocore.credentials.CredentialResolver([]))
    client = session.create_client("s3", region_name=REGION, endpoint_url=url)
    yield start_run(CheckpointLog(S3Store(bucket, client=client), prefix=PREFIX)), _s3_saver(url, bucket)


def s3_ignores_conditions(request: pytest.FixtureRequest) -> Setup:
    from cairnflow.savers.s3 import S3Store
    from tests.emulators.s3 import new_bucket
    from tests.support.faultproxy import FaultProxy, StripHeaders

    url = request.getfixturevalue("s3_server_url")
    bucket = new_bucket(url)
    with FaultProxy(url, log_bodies=False) as proxy:
        proxy.set_fault(lambda req: StripHeaders(("If-None-Match", "If-Match")))
        store = S3Store(bucket, session=_s3_session(), endpoint_url=proxy.url, probe_prefix=PREFIX)
        yield start_run(CheckpointLog(store, prefix=PREFIX)), _s3_saver(url, bucket)


def gcs_missing_bucket(request: pytest.FixtureRequest) -> Setup:
    from google.cloud.storage.retry import DEFAULT_RETRY  # type: ignore[import-untyped]

    from cairnflow.savers.gcs import GCSStore
    from tests.emulators.gcs import make_client

    factory = request.getfixturevalue("gcs_store_factory")
    fast = DEFAULT_RETRY.with_delay(initial=0.01, maximum=0.05).with_timeout(1.0)
    name = f"cf-missing-{uuid.uuid4().hex[:12]}"
    missing = GCSStore(name, client=make_client(factory.server_url), retry=fast)
    yield start_run(CheckpointLog(missing, prefix=PREFIX)), CheckpointLog(factory(), prefix=PREFIX)


def gcs_no_credentials(request: pytest.FixtureRequest) -> Setup:
    from cairnflow.savers import open_saver

    factory = request.getfixturevalue("gcs_store_factory")
    good = CheckpointLog(factory(), prefix=PREFIX)
    monkeypatch = request.getfixturevalue("monkeypatch")
    # google.auth reads these from the environment; there is no other way to hide ADC.
    for name in ("STORAGE_EMULATOR_HOST", "GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_CLOUD_PROJECT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(request.getfixturevalue("tmp_path")))
    monkeypatch.setenv("NO_GCE_CHECK", "True")  # do not probe the GCE metadata server
    # A worker opens its saver from the URL: that is where missing credentials surface.
    yield (lambda: start_run(open_saver(f"gs://{factory.bucket}/bad"))()), good


def _azure_saver(container: str, endpoint: str, **options: Any) -> CheckpointLog:
    from tests.emulators.azure import make_store

    return CheckpointLog(make_store(container, endpoint, **options), prefix=PREFIX)


def azure_missing_container(request: pytest.FixtureRequest) -> Setup:
    from tests.emulators.azure import fresh_container

    server = request.getfixturevalue("azure_server")
    with fresh_container(server) as container:
        missing = _azure_saver(f"cf-missing-{uuid.uuid4().hex[:12]}", server.url)
        yield start_run(missing), _azure_saver(container, server.url)


def azure_no_credentials(request: pytest.FixtureRequest) -> Setup:
    from cairnflow.savers.azure import AzureBlobStore
    from tests.emulators.azure import FAST_RETRY, fresh_container

    server = request.getfixturevalue("azure_server")
    with fresh_container(server) as container:
        anonymous = AzureBlobStore(container, account_url=server.url, client_options=FAST_RETRY)
        yield start_run(CheckpointLog(anonymous, prefix=PREFIX)), _azure_saver(container, server.url)


def azure_wrong_key(request: pytest.FixtureRequest) -> Setup:
    import base64

    from cairnflow.savers.azure import AzureBlobStore
    from tests.emulators.azure import FAST_RETRY, connection_string, fresh_container

    server = request.getfixturevalue("azure_server")
    wrong = base64.b64encode(b"not the account key".ljust(64, b".")).decode()
    with fresh_container(server) as container:
        store = AzureBlobStore(
            container, connection_string=connection_string(server.url, wrong), client_options=FAST_RETRY
        )
        yield start_run(CheckpointLog(store, prefix=PREFIX)), _azure_saver(container, server.url)


def _stale_writer_race(saver: CheckpointLog) -> Action:
    """Two writers append to the same head: the second must not succeed (it would replace the first)."""

    def race() -> None:
        h0 = saver.append("t", None, [rec(0)], status="running")
        saver.append("t", h0, [rec(1)], status="running")
        saver.append("t", h0, [rec(2)], status="running")

    return race


def azure_ignores_conditions(request: pytest.FixtureRequest) -> Setup:
    import datetime

    from azure.storage.blob import AccountSasPermissions, ResourceTypes, generate_account_sas

    from cairnflow.savers.azure import AzureBlobStore
    from tests.emulators.azure import ACCOUNT, ACCOUNT_KEY, FAST_RETRY, fresh_container
    from tests.support.faultproxy import FaultProxy, StripHeaders

    server = request.getfixturevalue("azure_server")
    # A SAS token, not a shared-key signature: the signature would cover If-None-Match, and a
    # gateway that drops it would then fail authentication instead of ignoring the condition.
    sas = generate_account_sas(
        ACCOUNT,
        ACCOUNT_KEY,
        resource_types=ResourceTypes(container=True, object=True),
        permission=AccountSasPermissions(read=True, write=True, list=True, delete=True, create=True),
        expiry=datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1),
    )
    with fresh_container(server) as container, FaultProxy(server.upstream, log_bodies=False) as proxy:
        proxy.set_fault(lambda req: StripHeaders(("If-None-Match", "If-Match")))
        via_sas = AzureBlobStore(
            container, account_url=f"{proxy.url}/{ACCOUNT}", credential=sas, client_options=FAST_RETRY
        )
        yield (
            _stale_writer_race(CheckpointLog(via_sas, prefix=PREFIX)),
            _azure_saver(container, server.url),
        )


def gcs_ignores_conditions(request: pytest.FixtureRequest) -> Setup:
    import urllib.parse

    from google.cloud.storage.retry import DEFAULT_RETRY  # type: ignore[import-untyped]

    from tests.support.faultproxy import FaultProxy, Request

    factory = request.getfixturevalue("gcs_store_factory")

    def drop_condition(req: Request) -> None:
        # GCS conditions are query parameters; a non-conforming store or gateway ignores them.
        params = urllib.parse.parse_qsl(req.query, keep_blank_values=True)
        req.query = urllib.parse.urlencode([(k, v) for k, v in params if not k.startswith("ifGeneration")])

    fast = DEFAULT_RETRY.with_delay(initial=0.01, maximum=0.05).with_timeout(1.0)
    with FaultProxy(factory.server_url, log_bodies=False) as proxy:
        proxy.set_fault(drop_condition)
        stripped = CheckpointLog(factory(endpoint=proxy.url, retry=fast), prefix=PREFIX)
        yield _stale_writer_race(stripped), CheckpointLog(factory(), prefix=PREFIX)


CLOUD: list[Cloud] = [
    Cloud("s3-missing-bucket", "s3", s3_missing_bucket, StoreAccessError, "bucket does not exist"),
    Cloud("gcs-missing-bucket", "gcs", gcs_missing_bucket, StoreAccessError, "does not exist"),
    Cloud("azure-missing-container", "azure", azure_missing_container, StoreAccessError, "does not exist"),
    Cloud("s3-no-credentials", "s3", s3_no_credentials, StoreAccessError, "credentials"),
    Cloud("gcs-no-credentials", "gcs", gcs_no_credentials, StoreAccessError, "no Google credentials"),
    Cloud("azure-no-credentials", "azure", azure_no_credentials, StoreAccessError, "container"),
    Cloud("azure-wrong-account-key", "azure", azure_wrong_key, StoreAccessError, "access denied"),
    Cloud(
        "s3-store-ignores-conditional-headers",
        "s3",
        s3_ignores_conditions,
        ConditionalWritesUnsupportedError,
        "does not honour conditional writes",
    ),
    Cloud(
        "azure-store-ignores-conditional-headers",
        "azure",
        azure_ignores_conditions,
        ConditionalWritesUnsupportedError,
        "ignores conditional writes",
    ),
    Cloud(
        "gcs-store-ignores-conditions",
        "gcs",
        gcs_ignores_conditions,
        ConditionalWritesUnsupportedError,
        "ignores conditional writes",
    ),
]
SDK_MODULES = {"s3": "boto3", "gcs": "google.cloud.storage", "azure": "azure.storage.blob"}


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(c, id=c.name, marks=[pytest.mark.xfail(strict=True, reason=c.xfail)] if c.xfail else [])
        for c in CLOUD
    ],
)
def test_cloud_misconfiguration_gives_typed_errors(case: Cloud, request: pytest.FixtureRequest) -> None:
    pytest.importorskip(SDK_MODULES[case.backend])
    setup = case.make(request)
    action, good = next(setup)
    try:
        run_to_end(good, BYSTANDER, "b")
        before = _snapshot_of(good.store, BYSTANDER)
        with pytest.raises(case.error, match=case.match):
            action()
        if case.error is not ConflictError:  # nothing reached the good bucket
            assert good.latest("t") is None
        assert _snapshot_of(good.store, BYSTANDER) == before
        assert flow.get_run(thread_id=BYSTANDER, saver=good).result == ["b", "yes"]  # type: ignore[union-attr]
        assert verify(good).ok
    finally:
        setup.close()


CASE_COUNT = len(DAMAGE) + THREAD_IDS + len(VALUES) + len(CLOUD)


def test_the_table_has_at_least_thirty_cases() -> None:
    assert CASE_COUNT >= 30, CASE_COUNT
    names = [c.name for c in DAMAGE] + [n for n, _ in VALID_IDS] + [n for n, _ in REFUSED_IDS]
    names += [c.name for c in VALUES] + [c.name for c in CLOUD]
    assert len(names) == len(set(names)) == CASE_COUNT


# =========================================================================== findings


@pytest.mark.s3  # reaches moto through request.getfixturevalue
def test_verify_ignores_the_s3_probe_object_of_another_client(request: pytest.FixtureRequest) -> None:
    """A store opened from ``s3://bucket/wf`` leaves ``wf/.cairnflow-probe``; a hand-built
    ``S3Store(bucket)`` (probe prefix "") on the same prefix lists it, and ``verify()`` calls it foreign."""
    pytest.importorskip("boto3")
    from cairnflow.savers.s3 import S3Store
    from tests.emulators.s3 import new_bucket

    url = request.getfixturevalue("s3_server_url")
    bucket = new_bucket(url)
    writer = _s3_saver(url, bucket)  # probe_prefix=PREFIX, as open_saver(f"s3://{bucket}/bad") does
    run_to_end(writer, BYSTANDER, "b")
    assert verify(writer).ok
    checker = CheckpointLog(S3Store(bucket, session=_s3_session(), endpoint_url=url), prefix=PREFIX)
    report = verify(checker)
    assert report.ok, [p.to_dict() for p in report.problems]
