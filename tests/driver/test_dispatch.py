"""Dispatched children (``child.start(input, dispatch=True)``) run by workers, not by their parent.

Local and memory stores in the fast loop; S3 (moto) once. Workers run in threads of this
process, each with its own saver on the same store; a crashed parent is a subprocess that
SIGKILLs itself at a chosen store request.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from cairnflow.core.errors import ConflictError
from cairnflow.core.log import CheckpointLog
from cairnflow.driver import Driver, DueIndex, Worker
from cairnflow.savers import open_saver
from tests.driver import flows
from tests.emulators import StoreLocation

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = [
    flows.dispatches,
    flows.squares,
    flows.always_fails,
    flows.survives_a_failed_child,
    flows.fails_with_its_child,
    flows.fire_and_forget,
    flows.dispatches_twice,
]


@pytest.fixture(params=["memory", "file"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "memory":
        return f"memory://dispatch-{time.monotonic_ns()}"
    return f"file://{tmp_path}/store"


def ops(saver: CheckpointLog, thread_id: str, op: str) -> list[dict[str, Any]]:
    head = saver.latest(thread_id)
    assert head is not None, thread_id
    return [r for r in head.records if isinstance(r, dict) and r.get("op") == op]


def serve_until(
    url: str,
    done: Callable[[], bool],
    *,
    workers: int = 3,
    clock: Callable[[], float] = time.time,
    workflows: Sequence[Any] = WORKFLOWS,
) -> list[int]:
    """Run ``workers`` workers (threads, one saver each) until ``done()``; wake-ups each handled."""
    pool = [Worker(open_saver(url), workflows, worker_id=f"w{n}", clock=clock) for n in range(workers)]
    barrier = threading.Barrier(workers)
    stop = threading.Event()
    handled = [0] * workers
    failures: list[BaseException] = []

    give_up = time.monotonic() + 90

    def serve(n: int) -> None:
        barrier.wait()
        try:
            while not stop.is_set() and time.monotonic() < give_up:
                result = pool[n].poll()
                handled[n] += result.handled
                if done():
                    stop.set()
                elif result.due == 0:
                    stop.wait(0.02)  # a wake-up may be a few ms ahead (a retried parent)
        except BaseException as exc:
            failures.append(exc)
            stop.set()

    threads = [threading.Thread(target=serve, args=(n,)) for n in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    assert not failures, failures
    assert done(), "the workers did not finish the run"
    return handled


def completed(saver: CheckpointLog, workflow: Any, thread_id: str) -> Callable[[], bool]:
    def check() -> bool:
        run = workflow.get_run(thread_id=thread_id, saver=saver)
        return run is not None and run.status in ("completed", "failed")

    return check


def check_fan_out(saver: CheckpointLog, thread_id: str, count: int) -> None:
    run = flows.dispatches.get_run(thread_id=thread_id, saver=saver)
    assert run is not None and (run.status, run.result) == ("completed", sum(n * n for n in range(count)))
    assert sorted(r["pos"] for r in ops(saver, thread_id, "child")) == list(range(count))
    assert all(r.get("dispatch") is True for r in ops(saver, thread_id, "child"))
    done = ops(saver, thread_id, "child_done")
    assert sorted(r["pos"] for r in done) == list(range(count))  # each child's result recorded once
    assert sorted(r["value"] for r in done) == sorted(n * n for n in range(count))
    for n in range(count):
        child = f"{thread_id}~child-{n}"
        assert [r["pos"] for r in ops(saver, child, "task")] == [0], child  # its step recorded once
        (start,) = ops(saver, child, "start")
        assert start["parent"] == {"thread_id": thread_id, "workflow": "dispatches", "pos": n}


def test_a_fan_out_of_50_dispatched_children_is_completed_by_three_workers(url: str) -> None:
    saver = open_saver(url)
    assert isinstance(saver, CheckpointLog)
    starter = Driver(saver, DueIndex(saver), WORKFLOWS)
    run = starter.start(flows.dispatches, 50, thread_id="fan")
    assert (run.status, run.wake_at) == ("waiting", None)  # only its children's ends wake it
    for n in range(50):  # dispatched, not run: each child waits for a worker
        child = flows.squares.get_run(thread_id=f"fan~child-{n}", saver=saver)
        assert child is not None and child.status == "suspended"
    assert not ops(saver, "fan", "child_done")
    # The start and the 50 child records in one write, then the stop: two checkpoints.
    assert [info.status for info in saver.history("fan")] == ["waiting", "running"]

    handled = serve_until(url, completed(saver, flows.dispatches, "fan"))
    assert sum(handled) >= 51  # every child, then the parent at least once
    check_fan_out(saver, "fan", 50)
    later = Worker(saver, WORKFLOWS, clock=lambda: time.time() + 5)
    while later.poll().due:  # duplicate wake-ups (at least once) find everything finished
        pass
    assert list(later.index.due()) == []
    check_fan_out(saver, "fan", 50)


def test_a_failing_dispatched_child_wakes_its_parent_with_its_error(url: str) -> None:
    saver = open_saver(url)
    assert isinstance(saver, CheckpointLog)
    worker = Worker(saver, WORKFLOWS)
    tag = f"bad-{time.monotonic_ns()}"  # EXECUTIONS counts across the tests of this process
    run = worker.driver.start(flows.survives_a_failed_child, tag, thread_id="p-fail")
    assert run.status == "waiting"
    assert worker.poll().handled == 1  # the child runs and fails, and schedules its parent
    child = flows.always_fails.get_run(thread_id="p-fail~child-0", saver=saver)
    assert child is not None and child.status == "failed"
    assert worker.poll().handled == 1  # the parent, woken by its child's failure
    done = flows.survives_a_failed_child.get_run(thread_id="p-fail", saver=saver)
    assert done is not None and (done.status, done.result) == ("completed", "caught card declined")
    (record,) = ops(saver, "p-fail", "child_done")
    assert record["error"]["type"] == "builtins.ValueError"
    assert flows.EXECUTIONS[f"{tag}:declined"] == 1


def test_a_parent_that_does_not_catch_fails_with_its_childs_exception_on_every_replay(url: str) -> None:
    saver = open_saver(url)
    assert isinstance(saver, CheckpointLog)
    worker = Worker(saver, WORKFLOWS)
    tag = f"bad-{time.monotonic_ns()}"
    assert worker.driver.start(flows.fails_with_its_child, tag, thread_id="p-f2").status == "waiting"
    while worker.poll().due:
        pass
    failed = flows.fails_with_its_child.get_run(thread_id="p-f2", saver=saver)
    assert failed is not None and (failed.status, failed.error_type) == ("failed", "builtins.ValueError")
    for _ in range(2):  # replayed from the parent's record: the same type and message, the child not read
        with pytest.raises(ValueError, match=r"^card declined$"):
            flows.fails_with_its_child.resume(thread_id="p-f2", saver=saver)
    assert len(ops(saver, "p-f2", "child_done")) == 1
    assert flows.EXECUTIONS[f"{tag}:declined"] == 1


def test_children_dispatched_by_a_parent_that_does_not_wait_still_run(url: str) -> None:
    saver = open_saver(url)
    assert isinstance(saver, CheckpointLog)
    worker = Worker(saver, WORKFLOWS)
    run = worker.driver.start(flows.fire_and_forget, 3, thread_id="ff")
    assert (run.status, run.result) == ("completed", "sent")
    assert len(ops(saver, "ff", "child")) == 3 and not ops(saver, "ff", "child_done")
    while worker.poll().due:
        pass
    for n in range(3):
        child = flows.squares.get_run(thread_id=f"ff~child-{n}", saver=saver)
        assert child is not None and (child.status, child.result) == ("completed", n * n)


def test_grandchildren_dispatched_by_a_dispatched_child_wake_it_and_it_wakes_its_parent(url: str) -> None:
    saver = open_saver(url)
    assert isinstance(saver, CheckpointLog)
    worker = Worker(saver, WORKFLOWS)
    assert worker.driver.start(flows.dispatches_twice, 3, thread_id="tree").status == "waiting"
    serve_until(url, completed(saver, flows.dispatches_twice, "tree"), workers=2)
    done = flows.dispatches_twice.get_run(thread_id="tree", saver=saver)
    assert done is not None and (done.status, done.result) == ("completed", 2 * (0 + 1 + 4))
    assert [r["pos"] for r in ops(saver, "tree", "child_done")] == [0, 1]
    for n in range(2):
        check_fan_out(saver, f"tree~child-{n}", 3)  # each grandchild's step and result once


def test_a_dispatched_child_without_a_driver_runs_inline(url: str) -> None:
    saver = open_saver(url)
    run = flows.dispatches.run(3, thread_id="plain", saver=saver)
    assert (run.status, run.result) == ("completed", 0 + 1 + 4)
    assert isinstance(saver, CheckpointLog)
    assert not any(r.get("dispatch") for r in ops(saver, "plain", "child"))


def test_a_parent_resumed_by_hand_continues_its_dispatched_children_inline(url: str) -> None:
    saver = open_saver(url)
    assert isinstance(saver, CheckpointLog)
    assert Driver(saver, DueIndex(saver), WORKFLOWS).start(flows.dispatches, 2, thread_id="hand").status == (
        "waiting"
    )
    done = flows.dispatches.resume(thread_id="hand", saver=saver)  # no driver: no scheduler
    assert (done.status, done.result) == ("completed", 1)
    check_fan_out(saver, "hand", 2)


CRASH = (
    "import os, signal, sys\n"
    "from cairnflow.core import keys\n"
    "from cairnflow.core.log import CheckpointLog\n"
    "from cairnflow.core.wake import Wakeup\n"
    "from cairnflow.driver import Driver, DueIndex\n"
    "from cairnflow.savers import open_saver\n"
    "from tests.driver import flows\n"
    "from tests.support.forwarding import ForwardingStore\n"
    "url, where = sys.argv[1], sys.argv[2]\n"
    "inner = open_saver(url)\n"
    "child = keys.thread_prefix(inner.prefix, 'crash~child-1')\n"
    "# child 1's wake-up: its key ends with a digest of the workflow and thread\n"
    "wakes_child = DueIndex(inner).key_for(Wakeup('crash~child-1', 'squares', 0)).rsplit('-', 1)[1]\n"
    "class Dies(ForwardingStore):\n"
    "    def put(self, key, data, mode='create'):\n"
    "        if (where == 'before-create' and key.startswith(child)) or (\n"
    "                where == 'before-schedule' and '/due/at/' in key and key.endswith(wakes_child)):\n"
    "            sys.stdout.flush(); os.kill(os.getpid(), signal.SIGKILL)\n"
    "        return self.inner.put(key, data, mode)\n"
    "saver = CheckpointLog(Dies(inner.store), prefix=inner.prefix)\n"
    "driver = Driver(saver, DueIndex(saver), [flows.dispatches], lease=60)\n"
    "driver.start(flows.dispatches, 3, thread_id='crash')\n"
)


@pytest.mark.parametrize("where", ["before-create", "before-schedule"])
def test_a_parent_killed_between_recording_a_child_and_dispatching_it_still_completes(
    tmp_path: Path, where: str
) -> None:
    url = f"file://{tmp_path}/store"
    proc = subprocess.run(
        [sys.executable, "-c", CRASH, url, where], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == -9, proc.stderr  # SIGKILL
    saver = open_saver(url)
    assert isinstance(saver, CheckpointLog)
    assert [r["pos"] for r in ops(saver, "crash", "child")] == [0, 1, 2]  # recorded in one write...
    child = flows.squares.get_run(thread_id="crash~child-1", saver=saver)
    assert (child is None) == (where == "before-create")  # ...and not (fully) dispatched

    # Only the workers: the dead parent's lease expires, its replay dispatches child 1 again.
    handled = serve_until(url, completed(saver, flows.dispatches, "crash"), clock=lambda: time.time() + 61)
    assert sum(handled) >= 3
    check_fan_out(saver, "crash", 3)


@pytest.mark.emulator
def test_a_dispatched_fan_out_on_s3(
    s3_location: StoreLocation, use_env: Callable[[StoreLocation], StoreLocation]
) -> None:
    url = use_env(s3_location).url
    saver = open_saver(url)
    assert isinstance(saver, CheckpointLog)
    run = Driver(saver, DueIndex(saver), WORKFLOWS).start(flows.dispatches, 10, thread_id="s3-fan")
    assert run.status == "waiting"
    serve_until(url, completed(saver, flows.dispatches, "s3-fan"))
    check_fan_out(saver, "s3-fan", 10)


def test_a_foreign_thread_where_a_child_would_go_is_refused_not_taken_over(url: str) -> None:
    saver = open_saver(url)
    assert isinstance(saver, CheckpointLog)
    squatter = flows.five_steps.run("x", thread_id="own~child-1", saver=saver)  # not this parent's
    starter = Driver(saver, DueIndex(saver), WORKFLOWS)
    with pytest.raises(ConflictError, match=r"own~child-1.*is not child 1 \(squares\)"):
        starter.start(flows.dispatches, 2, thread_id="own")
    foreign = flows.five_steps.get_run(thread_id="own~child-1", saver=saver)
    assert foreign == squatter  # untouched
    assert len(ops(saver, "own~child-1", "start")) == 1


EVERY_BOUNDARY = (
    "import json, sys\n"
    "from cairnflow.core.log import CheckpointLog\n"
    "from cairnflow.driver import Driver, DueIndex\n"
    "from cairnflow.savers import open_saver\n"
    "from tests.driver import flows\n"
    "from tests.workloads.crashpoints import CrashStore\n"
    "url, at, side = sys.argv[1], sys.argv[2], sys.argv[3]\n"
    "inner = open_saver(url)\n"
    "store = CrashStore(inner.store, None if at == 'none' else int(at), side)\n"
    "saver = CheckpointLog(store, prefix=inner.prefix)\n"
    "driver = Driver(saver, DueIndex(saver), [flows.dispatches], lease=60)\n"
    "driver.start(flows.dispatches, 3, thread_id='crash')\n"
    "print('OPS', json.dumps(store.ops), flush=True)\n"
)


def _start_crashing(url: str, at: int | None, side: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", EVERY_BOUNDARY, url, "none" if at is None else str(at), side],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow
def test_a_parent_killed_at_every_request_boundary_of_its_fan_out_still_completes(tmp_path: Path) -> None:
    clean = _start_crashing(f"file://{tmp_path}/clean", None, "before")
    assert clean.returncode == 0, clean.stderr
    trace = json.loads(clean.stdout.split("OPS ", 1)[1])
    assert trace.count("PUT") >= 3 + 3 + 3  # the children's threads and wake-ups at least
    for at in range(len(trace)):
        for side in ("before", "after"):
            url = f"file://{tmp_path}/k{at}-{side}"
            killed = _start_crashing(url, at, side)
            assert killed.returncode == -9, (at, side, killed.stderr)
            saver = open_saver(url)
            assert isinstance(saver, CheckpointLog)
            if saver.latest("crash") is None:  # nothing of the run was stored: the client retries
                Driver(saver, DueIndex(saver), WORKFLOWS).start(flows.dispatches, 3, thread_id="crash")
            serve_until(
                url, completed(saver, flows.dispatches, "crash"), workers=2, clock=lambda: time.time() + 61
            )
            check_fan_out(saver, "crash", 3)


def test_a_parent_that_loses_the_write_race_to_itself_tries_again_then_reschedules(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another execution of the parent (woken by another child) writes first: ConflictError.
    from cairnflow.core.wake import Wakeup
    from cairnflow.driver.driver import CHILD_RETRIES

    saver = open_saver(url)
    assert isinstance(saver, CheckpointLog)
    worker = Worker(saver, WORKFLOWS)
    real = flows.dispatches.continue_from
    losses = {"left": 0}

    def loses(*args: Any, **kwargs: Any) -> Any:
        if losses["left"]:
            losses["left"] -= 1
            raise ConflictError("another execution of the parent wrote first", thread_id=str(kwargs))
        return real(*args, **kwargs)

    monkeypatch.setattr(flows.dispatches, "continue_from", loses)
    for thread_id, lost in (("race-1", 1), ("race-2", CHILD_RETRIES)):
        assert worker.driver.start(flows.dispatches, 2, thread_id=thread_id).status == "waiting"
        for n in range(2):  # the children end; their wake-ups of the parent are left pending
            child = worker.driver.handle(Wakeup(f"{thread_id}~child-{n}", "squares", time.time(), "child"))
            assert child is not None and child.status == "completed"
        losses["left"] = lost
        asked = time.time()
        woken = worker.driver.handle(Wakeup(thread_id, "dispatches", asked, "child"))
        if thread_id == "race-1":  # lost once: the retry, from the new head, completes it
            assert woken is not None and (woken.status, woken.result) == ("completed", 0 + 1)
        else:  # lost every time: a wake-up shortly after, so that the children are read
            assert woken is None
            assert flows.dispatches.get_run(thread_id=thread_id, saver=saver).status == "waiting"  # type: ignore[union-attr]
            later = DueIndex(saver, clock=lambda: time.time() + 1)
            again = [e.wakeup for e in later.due(limit=1000) if e.wakeup.thread_id == thread_id]
            assert [w.reason for w in again if w.at > asked] == ["child"]  # besides the children's
        assert losses["left"] == 0


@pytest.mark.parametrize("durability", ["async", "exit"])
def test_dispatching_works_in_every_durability_mode(url: str, durability: str) -> None:
    saver = open_saver(url)
    assert isinstance(saver, CheckpointLog)
    worker = Worker(saver, WORKFLOWS)
    run = worker.driver.start(flows.dispatches, 5, thread_id=durability, durability=durability)
    assert run.status == "waiting"
    if durability == "exit":  # nothing before the stop: the start and the 5 records in it
        assert [info.status for info in saver.history(durability)] == ["waiting"]
    while worker.poll().due:
        pass
    check_fan_out(saver, durability, 5)
