"""Dispatched children of ``async def`` workflows: ``await child.start(input, dispatch=True)``.

The sync rules of ``test_dispatch.py`` (records, one write for the children started
together, each child's step once, failures typed, grandchildren, no driver = inline),
with the requests made on the parent's asyncio saver. Workers are threads of this
process, each with its own saver; a crashed parent is a subprocess that SIGKILLs itself.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cairnflow.core.errors import FlavourMismatchError
from cairnflow.core.log import CheckpointLog
from cairnflow.driver import Driver, DueIndex, Worker
from cairnflow.savers import open_async_saver, open_saver
from tests.driver import aflows
from tests.driver.test_dispatch import completed, ops, serve_until
from tests.emulators import StoreLocation

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = [
    aflows.adispatches,
    aflows.asquares,
    aflows.aalways_fails,
    aflows.asurvives_a_failed_child,
    aflows.afire_and_forget,
    aflows.adispatches_twice,
]


@pytest.fixture(params=["memory", "file"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "memory":
        return f"memory://adispatch-{time.monotonic_ns()}"
    return f"file://{tmp_path}/store"


def check_fan_out(saver: CheckpointLog, thread_id: str, count: int) -> None:
    run = aflows.adispatches.get_run(thread_id=thread_id, saver=saver)
    assert run is not None and (run.status, run.result) == ("completed", sum(n * n for n in range(count)))
    children = ops(saver, thread_id, "child")
    assert sorted(r["pos"] for r in children) == list(range(count))
    assert all(r.get("dispatch") is True for r in children)
    done = ops(saver, thread_id, "child_done")
    assert sorted(r["pos"] for r in done) == list(range(count))  # each child's result recorded once
    assert sorted(r["value"] for r in done) == sorted(n * n for n in range(count))
    for n in range(count):
        child = f"{thread_id}~child-{n}"
        assert [r["pos"] for r in ops(saver, child, "task")] == [0], child  # its step recorded once
        (start,) = ops(saver, child, "start")
        assert start["parent"] == {"thread_id": thread_id, "workflow": "adispatches", "pos": n}
        assert start["flavour"] == "async"  # continued by the async executor, refused by the sync one


def serve(url: str, check: Callable[[], bool], workers: int = 3, **kwargs: Any) -> list[int]:
    return serve_until(url, check, workers=workers, workflows=WORKFLOWS, **kwargs)


def test_a_fan_out_of_50_async_children_is_completed_by_three_workers(url: str) -> None:
    saver = open_saver(url)
    assert isinstance(saver, CheckpointLog)
    starter = Driver(saver, DueIndex(saver), WORKFLOWS)
    run = starter.start(aflows.adispatches, 50, thread_id="afan")
    assert (run.status, run.wake_at) == ("waiting", None)  # only its children's ends wake it
    for n in range(50):  # dispatched, not run: each child waits for a worker
        child = aflows.asquares.get_run(thread_id=f"afan~child-{n}", saver=saver)
        assert child is not None and child.status == "suspended"
    assert not ops(saver, "afan", "child_done")
    # The start and the 50 child records in one write, then the stop: two checkpoints.
    assert [info.status for info in saver.history("afan")] == ["waiting", "running"]

    handled = serve(url, completed(saver, aflows.adispatches, "afan"))
    assert sum(handled) >= 51  # every child, then the parent at least once
    check_fan_out(saver, "afan", 50)
    later = Worker(saver, WORKFLOWS, clock=lambda: time.time() + 5)
    while later.poll().due:  # duplicate wake-ups (at least once) find everything finished
        pass
    check_fan_out(saver, "afan", 50)


def test_a_failing_async_child_wakes_its_parent_with_its_error(url: str) -> None:
    saver = open_saver(url)
    assert isinstance(saver, CheckpointLog)
    worker = Worker(saver, WORKFLOWS)
    tag = f"abad-{time.monotonic_ns()}"
    run = worker.driver.start(aflows.asurvives_a_failed_child, tag, thread_id="ap-fail")
    assert run.status == "waiting"
    assert worker.poll().handled == 1  # the child runs and fails, and schedules its parent
    child = aflows.aalways_fails.get_run(thread_id="ap-fail~child-0", saver=saver)
    assert child is not None and child.status == "failed"
    assert worker.poll().handled == 1  # the parent, woken by its child's failure
    done = aflows.asurvives_a_failed_child.get_run(thread_id="ap-fail", saver=saver)
    assert done is not None and (done.status, done.result) == ("completed", "caught card declined")
    (record,) = ops(saver, "ap-fail", "child_done")
    assert record["error"]["type"] == "builtins.ValueError"
    assert aflows.EXECUTIONS[f"{tag}:declined"] == 1


def test_async_children_dispatched_by_a_parent_that_does_not_wait_still_run(url: str) -> None:
    saver = open_saver(url)
    assert isinstance(saver, CheckpointLog)
    worker = Worker(saver, WORKFLOWS)
    run = worker.driver.start(aflows.afire_and_forget, 3, thread_id="aff")
    assert (run.status, run.result) == ("completed", "sent")
    assert len(ops(saver, "aff", "child")) == 3 and not ops(saver, "aff", "child_done")
    while worker.poll().due:
        pass
    for n in range(3):
        child = aflows.asquares.get_run(thread_id=f"aff~child-{n}", saver=saver)
        assert child is not None and (child.status, child.result) == ("completed", n * n)


def test_async_grandchildren_wake_their_parent_and_it_wakes_its_own(url: str) -> None:
    saver = open_saver(url)
    assert isinstance(saver, CheckpointLog)
    worker = Worker(saver, WORKFLOWS)
    assert worker.driver.start(aflows.adispatches_twice, 3, thread_id="atree").status == "waiting"
    serve(url, completed(saver, aflows.adispatches_twice, "atree"), workers=2)
    done = aflows.adispatches_twice.get_run(thread_id="atree", saver=saver)
    assert done is not None and (done.status, done.result) == ("completed", 2 * (0 + 1 + 4))
    assert sorted(r["pos"] for r in ops(saver, "atree", "child_done")) == [0, 1]
    for n in range(2):
        check_fan_out(saver, f"atree~child-{n}", 3)


def test_an_async_dispatched_child_without_a_driver_runs_inline(url: str) -> None:
    import asyncio

    async def run() -> Any:
        async with open_async_saver(url) as asaver:
            return await aflows.adispatches.arun(3, thread_id="aplain", saver=asaver)

    done = asyncio.run(run())
    assert (done.status, done.result) == ("completed", 0 + 1 + 4)
    saver = open_saver(url)
    assert isinstance(saver, CheckpointLog)
    assert len(ops(saver, "aplain", "child")) == 3
    assert not any(r.get("dispatch") for r in ops(saver, "aplain", "child"))


def test_an_async_parent_resumed_by_hand_continues_its_dispatched_children_inline(url: str) -> None:
    import asyncio

    saver = open_saver(url)
    assert isinstance(saver, CheckpointLog)
    run = Driver(saver, DueIndex(saver), WORKFLOWS).start(aflows.adispatches, 2, thread_id="ahand")
    assert run.status == "waiting"

    async def resume() -> Any:
        async with open_async_saver(url) as asaver:  # no driver: no scheduler
            return await aflows.adispatches.aresume(thread_id="ahand", saver=asaver)

    done = asyncio.run(resume())
    assert (done.status, done.result) == ("completed", 1)
    check_fan_out(saver, "ahand", 2)


def test_a_dispatched_async_child_records_its_flavour_and_a_sync_twin_is_refused(url: str) -> None:
    from cairnflow.core import workflow

    @workflow(name="asquares")
    def sync_twin(tagged: list[object]) -> int:  # same name, plain `def`
        return 0

    saver = open_saver(url)
    assert isinstance(saver, CheckpointLog)
    Driver(saver, DueIndex(saver), WORKFLOWS).start(aflows.adispatches, 1, thread_id="aflav")
    # the child's thread says "async": the sync executor refuses to replay it
    with pytest.raises(FlavourMismatchError, match="aflav~child-0"):
        sync_twin.resume(thread_id="aflav~child-0", saver=saver)


CRASH = (
    "import os, signal, sys\n"
    "from cairnflow.core import keys\n"
    "from cairnflow.core.log import AsyncCheckpointLog, CheckpointLog\n"
    "from cairnflow.core.wake import Wakeup\n"
    "from cairnflow.driver import Driver, DueIndex\n"
    "from cairnflow.savers import open_async_store, open_saver\n"
    "from tests.driver import aflows\n"
    "from tests.support.forwarding import AsyncForwardingStore, ForwardingStore\n"
    "url, where = sys.argv[1], sys.argv[2]\n"
    "inner = open_saver(url)\n"
    "child = keys.thread_prefix(inner.prefix, 'acrash~child-1')\n"
    "wakes_child = DueIndex(inner).key_for(Wakeup('acrash~child-1', 'asquares', 0)).rsplit('-', 1)[1]\n"
    "def die():\n"
    "    sys.stdout.flush(); os.kill(os.getpid(), signal.SIGKILL)\n"
    "class Dies(ForwardingStore):\n"  # the driver's due index: the child's wake-up
    "    def put(self, key, data, mode='create'):\n"
    "        if where == 'before-schedule' and '/due/at/' in key and key.endswith(wakes_child):\n"
    "            die()\n"
    "        return self.inner.put(key, data, mode)\n"
    "class ADies(AsyncForwardingStore):\n"  # the parent's async saver: the child's creation
    "    async def put(self, key, data, mode='create'):\n"
    "        if where == 'before-create' and key.startswith(child):\n"
    "            die()\n"
    "        return await self.inner.put(key, data, mode)\n"
    "saver = CheckpointLog(Dies(inner.store), prefix=inner.prefix)\n"
    "asaver = lambda: AsyncCheckpointLog(ADies(open_async_store(url)[0]), prefix=inner.prefix)\n"
    "driver = Driver(saver, DueIndex(saver), [aflows.adispatches], lease=60, async_saver=asaver)\n"
    "driver.start(aflows.adispatches, 3, thread_id='acrash')\n"
)


@pytest.mark.parametrize("where", ["before-create", "before-schedule"])
def test_an_async_parent_killed_between_recording_a_child_and_dispatching_it_still_completes(
    tmp_path: Path, where: str
) -> None:
    url = f"file://{tmp_path}/store"
    proc = subprocess.run(
        [sys.executable, "-c", CRASH, url, where], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == -9, proc.stderr  # SIGKILL
    saver = open_saver(url)
    assert isinstance(saver, CheckpointLog)
    assert [r["pos"] for r in ops(saver, "acrash", "child")] == [0, 1, 2]  # recorded in one write...
    child = aflows.asquares.get_run(thread_id="acrash~child-1", saver=saver)
    assert (child is None) == (where == "before-create")  # ...and not (fully) dispatched

    # Only the workers: the dead parent's lease expires, its replay dispatches child 1 again.
    handled = serve(url, completed(saver, aflows.adispatches, "acrash"), clock=lambda: time.time() + 61)
    assert sum(handled) >= 3
    check_fan_out(saver, "acrash", 3)


@pytest.mark.emulator
def test_an_async_dispatched_fan_out_on_s3(
    s3_location: StoreLocation, use_env: Callable[[StoreLocation], StoreLocation]
) -> None:
    url = use_env(s3_location).url
    saver = open_saver(url)
    assert isinstance(saver, CheckpointLog)
    run = Driver(saver, DueIndex(saver), WORKFLOWS).start(aflows.adispatches, 10, thread_id="as3-fan")
    assert run.status == "waiting"
    serve(url, completed(saver, aflows.adispatches, "as3-fan"))
    check_fan_out(saver, "as3-fan", 10)
