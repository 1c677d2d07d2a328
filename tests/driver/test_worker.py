"""Workers continue due runs by themselves: suspended runs, dead processes, several workers."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from cairnflow.core.counting import CountingStore
from cairnflow.core.log import CheckpointLog
from cairnflow.driver import Driver, DueIndex, Worker, workflows_in
from cairnflow.savers import open_saver
from tests.driver import flows


def task_records(saver: CheckpointLog, thread_id: str) -> list[object]:
    head = saver.latest(thread_id)
    assert head is not None
    return [r for r in head.records if isinstance(r, dict) and r.get("op") == "task"]


def suspend_at_start(driver: Driver, thread_id: str) -> None:
    # Less than `reserve` remains before the deadline: no task may start, the run suspends.
    run = driver.start(flows.five_steps, thread_id, thread_id=thread_id, deadline=time.time() + 5, reserve=60)
    assert run.status == "suspended"


@pytest.fixture(params=["memory", "file"])
def saver(request: pytest.FixtureRequest, tmp_path: Path) -> CheckpointLog:
    url = (
        f"memory://driver-{time.monotonic_ns()}" if request.param == "memory" else f"file://{tmp_path}/store"
    )
    return open_saver(url)


def test_a_suspended_run_is_finished_by_a_worker_alone(saver: CheckpointLog) -> None:
    worker = Worker(saver, [flows.five_steps])
    suspend_at_start(worker.driver, "s-1")
    result = worker.poll()
    assert (result.due, result.handled) == (1, 1)
    run = flows.five_steps.get_run(thread_id="s-1", saver=saver)
    assert run is not None and (run.status, run.result) == ("completed", 30)
    assert list(worker.index.due()) == []
    assert worker.poll().due == 0


def test_an_idle_poll_costs_one_request_with_many_finished_threads(tmp_path: Path) -> None:
    counting = CountingStore(open_saver(f"file://{tmp_path}/store").store)
    saver = CheckpointLog(counting)
    worker = Worker(saver, [flows.five_steps])
    for n in range(40):
        worker.driver.start(flows.five_steps, f"done-{n}", thread_id=f"done-{n}")
    counting.reset()
    assert worker.poll().due == 0
    assert dict(counting.counts) == {"LIST": 1}


def test_a_run_whose_process_died_is_continued_after_its_lease(tmp_path: Path) -> None:
    url = f"file://{tmp_path}/store"
    marker = tmp_path / "died"
    child = (
        f"import sys, time; sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})\n"
        "from cairnflow.savers import open_saver\n"
        "from cairnflow.driver import Driver, DueIndex\n"
        "from tests.driver import flows\n"
        f"saver = open_saver({url!r})\n"
        "Driver(saver, DueIndex(saver), [flows.dies_once], lease=30).start("
        f"flows.dies_once, {str(marker)!r}, thread_id='crash-1')\n"
    )
    proc = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 9, proc.stderr
    saver = open_saver(url)
    assert len(task_records(saver, "crash-1")) == 2  # steps 0 and 1 recorded before the kill

    on_time = Worker(saver, [flows.dies_once], lease=30)
    assert on_time.poll().due == 0  # the lease has not expired: the run may still be alive
    later = Worker(saver, [flows.dies_once], lease=30, clock=lambda: time.time() + 31)
    assert later.poll().handled == 1
    run = flows.dies_once.get_run(thread_id="crash-1", saver=saver)
    assert run is not None and (run.status, run.result) == ("completed", 6)
    assert [r["pos"] for r in task_records(saver, "crash-1")] == [0, 1, 2, 3]


def test_three_workers_never_record_a_step_twice(tmp_path: Path) -> None:
    saver = open_saver(f"file://{tmp_path}/store")
    starter = Driver(saver, DueIndex(saver), [flows.five_steps])
    threads = [f"w-{n}" for n in range(12)]
    for thread_id in threads:
        suspend_at_start(starter, thread_id)
    workers = [
        Worker(open_saver(f"file://{tmp_path}/store"), [flows.five_steps], worker_id=f"w{n}")
        for n in range(3)
    ]
    barrier = threading.Barrier(3)
    handled: list[int] = []

    def serve(worker: Worker) -> None:
        barrier.wait()
        total = 0
        while (result := worker.poll()).due:
            total += result.handled
        handled.append(total)

    pool = [threading.Thread(target=serve, args=(w,)) for w in workers]
    for t in pool:
        t.start()
    for t in pool:
        t.join(timeout=120)
    assert sum(handled) >= len(threads)
    for thread_id in threads:
        run = flows.five_steps.get_run(thread_id=thread_id, saver=saver)
        assert run is not None and run.status == "completed", thread_id
        positions = [r["pos"] for r in task_records(saver, thread_id)]
        assert positions == sorted(set(positions)) and len(positions) == 5, (thread_id, positions)


def test_workflows_are_found_in_modules_by_name() -> None:
    names = sorted(wf.name for wf in workflows_in(["tests.driver.flows"]))
    assert names == [
        "always_fails",
        "child_waits",
        "dies_once",
        "dispatches",
        "dispatches_twice",
        "fails_with_its_child",
        "fans_out_to_waiting_children",
        "fire_and_forget",
        "five_steps",
        "naps",
        "sleeps_then_waits",
        "squares",
        "survives_a_failed_child",
    ]


def test_stray_wakeups_leave_finished_and_failed_runs_alone(saver: CheckpointLog) -> None:
    from cairnflow.core.wake import Wakeup

    worker = Worker(saver, [flows.five_steps, flows.always_fails])
    worker.driver.start(flows.five_steps, "fin", thread_id="fin")
    with pytest.raises(Exception, match="card declined"):
        worker.driver.start(flows.always_fails, "bad", thread_id="bad")
    ran = flows.EXECUTIONS["bad:declined"]
    for thread_id, name in (("fin", "five_steps"), ("bad", "always_fails")):
        for reason in ("lease", "suspended", "timer"):
            standing = worker.driver.handle(Wakeup(thread_id, name, time.time(), reason))
            assert standing is not None and standing.status in ("completed", "failed")
    assert flows.EXECUTIONS["bad:declined"] == ran  # the failed task was not tried again


def test_cairnflow_worker_command_finishes_suspended_runs(tmp_path: Path) -> None:
    url = f"file://{tmp_path}/store"
    saver = open_saver(url)
    starter = Driver(saver, DueIndex(saver), [flows.five_steps])
    for n in range(3):
        suspend_at_start(starter, f"cli-{n}")
    script = Path(sys.executable).parent / "cairnflow"
    repo = Path(__file__).resolve().parents[2]
    proc = subprocess.run(
        [str(script), "worker", url, "--import", "tests.driver.flows", "--once", "--json"],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"due": 3, "handled": 3, "skipped": 0}
    for n in range(3):
        run = flows.five_steps.get_run(thread_id=f"cli-{n}", saver=saver)
        assert run is not None and run.status == "completed"


def test_cairnflow_worker_without_workflows_is_a_usage_error(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "cairnflow"
    proc = subprocess.run(
        [str(script), "worker", f"file://{tmp_path}/s", "--import", "json", "--once"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "no @workflow found" in proc.stderr


def test_a_worker_waits_after_a_poll_whose_due_entries_other_workers_hold(saver: CheckpointLog) -> None:
    worker = Worker(saver, [flows.five_steps])
    other = Worker(saver, [flows.five_steps], worker_id="other")
    suspend_at_start(worker.driver, "held")
    (entry,) = other.index.due()
    assert other.index.claim(entry)  # another worker is continuing it (for 900 s)
    polls: list[int] = []
    poll = worker.poll

    def counted() -> object:
        polls.append(1)
        assert len(polls) < 3, "the worker polled again at once: it spins until the claim expires"
        return poll()

    class Stop(threading.Event):
        waited: list[float | None] = []

        def wait(self, timeout: float | None = None) -> bool:
            self.waited.append(timeout)
            self.set()
            return True

    worker.poll = counted  # type: ignore[method-assign]
    stop = Stop()
    worker.run(interval=0.5, stop=stop)
    assert (len(polls), stop.waited) == (1, [0.5])
