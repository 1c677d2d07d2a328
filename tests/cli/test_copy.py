"""copy: local -> S3 and S3 -> GCS, history preserved byte for byte; a workflow resumes there.

Also: running the copy again copies nothing; an interrupted copy resumes; a
destination thread with a history of its own is never overwritten.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from cairnflow import ops
from cairnflow.core import keys
from cairnflow.core.log import CheckpointLog
from cairnflow.core.store import CREATE, ObjectStore, PutMode
from cairnflow.savers import open_saver, open_store
from tests.cli.conftest import raw_objects
from tests.cli.flows import CALLS, fragile, order, populate
from tests.cli.support import cli, one_line_error
from tests.emulators import StoreLocation
from tests.support.forwarding import ForwardingStore

COPIED_FIELDS = {"thread_id", "layout", "result", "copied", "skipped", "head", "error"}
Use = Callable[[StoreLocation], StoreLocation]


def histories(url: str) -> dict[str, dict[int, bytes]]:
    """Every thread's checkpoint objects, by sequence number, read through the store seam."""
    store, prefix = open_store(url)
    out: dict[str, dict[int, bytes]] = {}
    for info in store.list(keys.threads_prefix(prefix)):
        thread_id, seq = keys.parse_checkpoint_key(prefix, info.key)
        out.setdefault(thread_id, {})[seq] = store.get(info.key).data
    return out


def test_copy_local_to_s3_then_resume_there(
    local_location: StoreLocation,
    s3_location: StoreLocation,
    use_env: Use,
    capsys: pytest.CaptureFixture[str],
) -> None:
    use_env(s3_location)
    expected = populate(local_location.url)
    source = histories(local_location.url)
    total = sum(len(h) for h in source.values())

    result = cli(capsys, "copy", local_location.url, s3_location.url, "--json")
    assert result.code == 0, result.err
    doc = result.json()
    assert doc["source"].startswith("file://") and doc["destination"].startswith("s3://")
    assert (
        doc["threads_copied"],
        doc["checkpoints_copied"],
        doc["checkpoints_skipped"],
        doc["problems"],
    ) == (
        6,
        total,
        0,
        0,
    )
    for entry in doc["threads"]:
        assert set(entry) == COPIED_FIELDS
        thread_id = entry["thread_id"]
        assert entry["result"] == "copied" and entry["error"] is None
        assert (entry["copied"], entry["skipped"]) == (len(source[thread_id]), 0)
        assert entry["head"] == str(expected[thread_id].head)
    assert histories(s3_location.url) == source  # the same history, byte for byte
    assert cli(capsys, "verify", s3_location.url).code == 0
    listed = cli(capsys, "threads", s3_location.url, "--json").json()["threads"]
    assert {t["thread_id"]: t["status"] for t in listed} == {t: e.status for t, e in expected.items()}

    # The interrupted workflow resumes on the destination; no recorded task runs again.
    calls = CALLS.copy()
    dst = open_saver(s3_location.url)
    done = order.resume("yes", thread_id="wait-1", saver=dst)
    assert (done.status, done.result) == (
        "completed",
        {"x": 7, "answer": "yes", "raw": b"ok", "pair": (7, "yes")},
    )
    assert calls == CALLS
    # The failed one retries only its failed task (and fails again, as the code still does).
    with pytest.raises(ValueError, match="boom 4"):
        fragile.resume(thread_id="fail-1", saver=dst)
    assert CALLS - calls == {("boom", (4,)): 1}
    # The source is untouched.
    assert histories(local_location.url) == source

    # Copying again: everything already there is skipped, nothing is written.
    before = raw_objects(s3_location)
    again = cli(capsys, "copy", local_location.url, s3_location.url, "--json")
    assert again.code == 0
    doc = again.json()
    assert (doc["checkpoints_copied"], doc["checkpoints_skipped"], doc["problems"]) == (0, total, 0)
    assert {t["result"] for t in doc["threads"]} == {"up_to_date"}
    assert raw_objects(s3_location) == before
    human = cli(capsys, "copy", local_location.url, s3_location.url)
    assert human.out.splitlines()[-1] == (
        f"copied 0 checkpoint(s), skipped {total} already there, 6 thread(s), 0 problem(s)"
    )


def test_copy_s3_to_gcs_one_thread_then_resume(
    s3_location: StoreLocation,
    gcs_location: StoreLocation,
    use_env: Use,
    capsys: pytest.CaptureFixture[str],
) -> None:
    use_env(s3_location)
    use_env(gcs_location)
    populate(s3_location.url)
    result = cli(capsys, "copy", s3_location.url, gcs_location.url, "--thread", "wait-1", "--json")
    assert result.code == 0, result.err
    assert [(t["thread_id"], t["copied"]) for t in result.json()["threads"]] == [("wait-1", 3)]
    assert histories(gcs_location.url) == {"wait-1": histories(s3_location.url)["wait-1"]}
    calls = CALLS.copy()
    done = order.resume("ship", thread_id="wait-1", saver=open_saver(gcs_location.url))
    assert (done.status, done.result["x"], done.result["answer"]) == ("completed", 7, "ship")
    assert calls == CALLS
    assert cli(capsys, "verify", gcs_location.url).code == 0
    missing = cli(capsys, "copy", s3_location.url, gcs_location.url, "--thread", "nope")
    assert "no thread 'nope'" in one_line_error(missing, 4)


def test_copy_never_overwrites_a_different_history(
    local_location: StoreLocation,
    s3_location: StoreLocation,
    use_env: Use,
    capsys: pytest.CaptureFixture[str],
) -> None:
    use_env(s3_location)
    populate(local_location.url)
    # The destination already has its own thread "wait-1" (another run, another input).
    order.run({"a": 40, "b": 2}, thread_id="wait-1", saver=open_saver(s3_location.url))
    theirs = histories(s3_location.url)["wait-1"]
    result = cli(capsys, "copy", local_location.url, s3_location.url, "--json")
    assert result.code == 1
    doc = result.json()
    assert doc["problems"] == 1
    by_id = {t["thread_id"]: t for t in doc["threads"]}
    conflict = by_id.pop("wait-1")
    assert (conflict["result"], conflict["copied"], conflict["skipped"]) == ("conflict", 0, 0)
    assert "different checkpoint 0" in conflict["error"]
    assert {t["result"] for t in by_id.values()} == {"copied"}
    assert histories(s3_location.url)["wait-1"] == theirs
    human = cli(capsys, "copy", local_location.url, s3_location.url)
    assert human.code == 1
    assert "conflict" in human.out and human.out.splitlines()[-1].endswith("1 problem(s)")


class _Stop(Exception):
    """The copy 'process' dies here."""


class StopAfter(ForwardingStore):
    """A store that fails every write after the first ``n``, like a copy killed midway."""

    def __init__(self, inner: ObjectStore, n: int) -> None:
        super().__init__(inner)
        self.left = n

    def put(self, key: str, data: bytes, mode: PutMode = CREATE) -> str:
        if "/v1/index/" in key:  # a copied thread's status index entry: not a checkpoint
            return self.inner.put(key, data, mode)
        if self.left <= 0:
            raise _Stop(key)
        self.left -= 1
        return self.inner.put(key, data, mode)


def test_copy_resumes_after_an_interruption(
    local_location: StoreLocation, s3_location: StoreLocation, use_env: Use
) -> None:
    use_env(s3_location)
    populate(local_location.url)
    source = histories(local_location.url)
    total = sum(len(h) for h in source.values())
    store, prefix = open_store(s3_location.url)
    dying = CheckpointLog(StopAfter(store, 20), prefix=prefix)
    with pytest.raises(_Stop):
        ops.copy_threads(open_saver(local_location.url), dying, workers=1)
    partial = histories(s3_location.url)
    assert sum(len(h) for h in partial.values()) == 20
    for thread_id, objects in partial.items():  # oldest first: each thread holds an older, sound state
        seqs = sorted(objects)
        assert seqs == list(range(len(seqs)))
        assert all(objects[s] == source[thread_id][s] for s in seqs)
    assert ops.verify(open_saver(s3_location.url)).ok

    result = ops.copy_threads(open_saver(local_location.url), open_saver(s3_location.url))
    summary = result.to_dict()
    assert (summary["checkpoints_copied"], summary["checkpoints_skipped"], summary["problems"]) == (
        total - 20,
        20,
        0,
    )
    assert histories(s3_location.url) == source


def test_copy_refuses_a_store_onto_itself(
    local_location: StoreLocation, capsys: pytest.CaptureFixture[str]
) -> None:
    populate(local_location.url)
    line = one_line_error(cli(capsys, "copy", local_location.url, local_location.url), 2)
    assert "same store" in line
