"""Waiting runs finished by workers alone: a timer, then a callback completed by another process.

Time is under the test's control: ``time.time`` is patched (the executor reads it) and
the worker is given the same clock; processes are synchronised on what they print.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from cairnflow.core.log import CheckpointLog
from cairnflow.driver import Worker
from cairnflow.savers import open_saver
from tests.driver import flows


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def time(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(time, "time", fake.time)
    return fake


def ops(saver: CheckpointLog, thread_id: str, op: str) -> list[dict[str, Any]]:
    head = saver.latest(thread_id)
    assert head is not None
    return [r for r in head.records if isinstance(r, dict) and r.get("op") == op]


def test_a_run_that_sleeps_then_waits_for_a_callback_from_another_process_completes_with_polls_only(
    tmp_path: Path, clock: Clock
) -> None:
    url = f"file://{tmp_path}/store"
    saver = open_saver(url)
    assert isinstance(saver, CheckpointLog)
    worker = Worker(saver, [flows.sleeps_then_waits], clock=clock.time)
    token_file = tmp_path / "token"
    run = worker.driver.start(flows.sleeps_then_waits, str(token_file), thread_id="w1")
    assert (run.status, run.wake_at) == ("waiting", clock.now + 600)
    assert worker.poll().due == 0  # the lease was cancelled; the timer is not due yet

    clock.now += 601
    assert worker.poll().handled == 1  # past the timer: now waiting for the callback
    standing = flows.sleeps_then_waits.get_run(thread_id="w1", saver=saver)
    assert standing is not None and (standing.status, standing.wake_at) == ("waiting", clock.now + 3600)
    assert worker.poll().due == 0

    child = (
        "import sys; from cairnflow.savers import open_saver; from cairnflow.driver import DueIndex; "
        "from cairnflow.core import complete_callback; s = open_saver(sys.argv[1]); "
        "complete_callback(open(sys.argv[2]).read(), 'approved', saver=s, scheduler=DueIndex(s))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", child, url, str(token_file)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr

    assert worker.poll().handled == 1  # the callback's wake-up (its time: the child's "now")
    done = flows.sleeps_then_waits.get_run(thread_id="w1", saver=saver)
    assert done is not None and (done.status, done.result) == ("completed", "approved")
    clock.now += 3600  # the timeout's wake-up still fires: it leaves the finished run alone
    assert worker.poll().handled == 1
    assert list(worker.index.due()) == []
    assert [len(ops(saver, "w1", op)) for op in ("timer", "callback", "task", "callback_done")] == [
        1,
        1,
        1,
        1,
    ]


def test_a_run_sigkilled_during_an_in_process_wait_still_completes_each_step_recorded_once(
    tmp_path: Path, clock: Clock
) -> None:
    url = f"file://{tmp_path}/store"
    child = (
        "import sys, time\n"
        "from cairnflow.savers import open_saver\n"
        "from cairnflow.driver import Driver, DueIndex\n"
        "from tests.driver import flows\n"
        "def announce(seconds):\n"
        "    print('SLEEPING', seconds, flush=True)\n"
        "    real_sleep(seconds)\n"
        "real_sleep, time.sleep = time.sleep, announce\n"
        "s = open_saver(sys.argv[1])\n"
        "Driver(s, DueIndex(s), [flows.naps], lease=60).start(\n"
        "    flows.naps, 'k1', thread_id='k1', deadline=time.time() + 7200)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", child, url],
        cwd=Path(__file__).resolve().parents[2],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("SLEEPING"), proc.stderr.read() if proc.stderr else line
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    saver = open_saver(url)
    assert isinstance(saver, CheckpointLog)
    assert len(ops(saver, "k1", "timer")) == 1  # stored before the wait
    wake_at = ops(saver, "k1", "timer")[0]["wake_at"]

    worker = Worker(saver, [flows.naps], clock=clock.time)
    clock.now += 61  # the dead run's lease expires: a worker continues it, which waits
    assert worker.poll().handled == 1
    standing = flows.naps.get_run(thread_id="k1", saver=saver)
    assert standing is not None and (standing.status, standing.wake_at) == ("waiting", wake_at)
    clock.now = wake_at + 1
    assert worker.poll().handled == 1
    done = flows.naps.get_run(thread_id="k1", saver=saver)
    assert done is not None and (done.status, done.result) == ("completed", 1 + 4)
    assert [r["pos"] for r in ops(saver, "k1", "task")] == [0, 2]
    assert len(ops(saver, "k1", "timer")) == 1


def test_children_waiting_for_callbacks_from_another_process_wake_their_parent_through_workers(
    tmp_path: Path, clock: Clock
) -> None:
    url = f"file://{tmp_path}/store"
    saver = open_saver(url)
    assert isinstance(saver, CheckpointLog)
    worker = Worker(saver, [flows.fans_out_to_waiting_children, flows.child_waits], clock=clock.time)
    run = worker.driver.start(flows.fans_out_to_waiting_children, str(tmp_path), thread_id="f1")
    assert (run.status, run.wake_at) == ("waiting", None)  # only the callbacks can continue it
    tokens = [str(tmp_path / f"token-{n}") for n in range(3)]
    child = (
        "import sys; from cairnflow.savers import open_saver; from cairnflow.driver import DueIndex; "
        "from cairnflow.core import complete_callback; s = open_saver(sys.argv[1]); "
        "[complete_callback(open(p).read(), f'yes-{n}', saver=s, scheduler=DueIndex(s)) "
        "for n, p in enumerate(sys.argv[2:])]"
    )
    proc = subprocess.run(
        [sys.executable, "-c", child, url, *tokens], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr

    clock.now += 60  # past the child process's "now"
    assert worker.poll().handled == 3  # each child completes and schedules its parent
    assert worker.poll().handled >= 1  # the parent, continued once its children have ended
    done = flows.fans_out_to_waiting_children.get_run(thread_id="f1", saver=saver)
    assert done is not None and (done.status, done.result) == ("completed", ["yes-0", "yes-1", "yes-2"])
    assert [len(ops(saver, "f1", op)) for op in ("child", "child_done")] == [3, 3]
    for n in range(3):
        assert len(ops(saver, f"f1~child-{n}", "task")) == 1
    for _ in range(3):  # duplicate parent wake-ups (at least once) find it completed
        worker.poll()
    assert list(worker.index.due()) == []
