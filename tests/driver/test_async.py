"""``async def`` workflows continued by the driver and workers alone, as plain ones are.

The driver runs them with ``asyncio.run`` and an async saver derived from its own (the
same store, prefix and serializer); leases, follow-up wake-ups and fencing are the sync
runs'. Time is under the test's control where a timer is involved (``time.time`` is
patched and the worker is given the same clock).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cairnflow.core import complete_callback
from cairnflow.core.errors import MisuseError
from cairnflow.core.log import CheckpointLog
from cairnflow.core.wake import Wakeup
from cairnflow.driver import Driver, DueIndex, Worker
from cairnflow.savers import open_async_saver, open_saver
from tests.driver import aflows, flows
from tests.emulators import StoreLocation

REPO = Path(__file__).resolve().parents[2]


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


@pytest.fixture(params=["memory", "file"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return (
        f"memory://adriver-{time.monotonic_ns()}" if request.param == "memory" else f"file://{tmp_path}/store"
    )


def ops(saver: CheckpointLog, thread_id: str, op: str) -> list[dict[str, Any]]:
    head = saver.latest(thread_id)
    assert head is not None
    return [r for r in head.records if isinstance(r, dict) and r.get("op") == op]


def flavour(saver: CheckpointLog, thread_id: str) -> object:
    (start,) = ops(saver, thread_id, "start")
    return start.get("flavour")


def suspend_at_start(driver: Driver, thread_id: str) -> None:
    # Less than `reserve` remains before the deadline: no task may start, the run suspends.
    run = driver.start(
        aflows.afive_steps, thread_id, thread_id=thread_id, deadline=time.time() + 5, reserve=60
    )
    assert run.status == "suspended"


def test_a_suspended_async_run_is_finished_by_a_worker_alone(url: str) -> None:
    saver = open_saver(url)
    worker = Worker(saver, [aflows.afive_steps])
    suspend_at_start(worker.driver, "as-1")
    assert flavour(saver, "as-1") == "async"
    before = aflows.EXECUTIONS.copy()
    result = worker.poll()
    assert (result.due, result.handled) == (1, 1)
    run = aflows.afive_steps.get_run(thread_id="as-1", saver=saver)
    assert run is not None and (run.status, run.result) == ("completed", 30)
    assert [r["pos"] for r in ops(saver, "as-1", "task")] == [0, 1, 2, 3, 4]
    assert all(aflows.EXECUTIONS[f"as-1:{n}"] - before[f"as-1:{n}"] == 1 for n in range(5))
    assert list(worker.index.due()) == [] and worker.poll().due == 0  # the lease was cancelled


def test_an_async_run_that_sleeps_then_waits_for_a_callback_from_another_process_completes_with_polls_only(
    url: str, tmp_path: Path, clock: Clock
) -> None:
    saver = open_saver(url)
    worker = Worker(saver, [aflows.asleeps_then_waits], clock=clock.time)
    token_file = tmp_path / "token"
    run = worker.driver.start(aflows.asleeps_then_waits, str(token_file), thread_id="aw1")
    assert (run.status, run.wake_at) == ("waiting", clock.now + 600)
    assert worker.poll().due == 0  # the lease was cancelled; the timer is not due yet

    clock.now += 601
    assert worker.poll().handled == 1  # past the timer: now waiting for the callback
    standing = aflows.asleeps_then_waits.get_run(thread_id="aw1", saver=saver)
    assert standing is not None and (standing.status, standing.wake_at) == ("waiting", clock.now + 3600)
    assert worker.poll().due == 0

    if url.startswith("file://"):  # a memory store lives in this process only
        child = (
            "import sys; from cairnflow.savers import open_saver; from cairnflow.driver import DueIndex; "
            "from cairnflow.core import complete_callback; s = open_saver(sys.argv[1]); "
            "complete_callback(open(sys.argv[2]).read(), 'approved', saver=s, scheduler=DueIndex(s))"
        )
        proc = subprocess.run(
            [sys.executable, "-c", child, url, str(token_file)], capture_output=True, text=True, timeout=120
        )
        assert proc.returncode == 0, proc.stderr
    else:
        complete_callback(token_file.read_text(), "approved", saver=saver, scheduler=worker.index)

    assert worker.poll().handled == 1  # the callback's wake-up
    done = aflows.asleeps_then_waits.get_run(thread_id="aw1", saver=saver)
    assert done is not None and (done.status, done.result) == ("completed", "approved")
    clock.now += 3600  # the timeout's wake-up still fires: it leaves the finished run alone
    assert worker.poll().handled == 1
    assert list(worker.index.due()) == []
    assert [len(ops(saver, "aw1", op)) for op in ("timer", "callback", "task", "callback_done")] == [
        1,
        1,
        1,
        1,
    ]


def test_async_children_completed_by_callbacks_from_another_process_wake_their_parent(
    tmp_path: Path, clock: Clock
) -> None:
    url = f"file://{tmp_path}/store"
    saver = open_saver(url)
    worker = Worker(saver, [aflows.afans_out_to_waiting_children, aflows.achild_waits], clock=clock.time)
    run = worker.driver.start(aflows.afans_out_to_waiting_children, str(tmp_path), thread_id="af1")
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
    done = aflows.afans_out_to_waiting_children.get_run(thread_id="af1", saver=saver)
    assert done is not None and (done.status, done.result) == ("completed", ["yes-0", "yes-1", "yes-2"])
    assert [len(ops(saver, "af1", op)) for op in ("child", "child_done")] == [3, 3]
    for n in range(3):
        assert flavour(saver, f"af1~child-{n}") == "async"
        assert len(ops(saver, f"af1~child-{n}", "task")) == 1
    for _ in range(3):  # duplicate parent wake-ups (at least once) find it completed
        worker.poll()
    assert list(worker.index.due()) == []


def test_an_async_journey_sleeps_waits_for_another_process_then_fans_out_20_children_with_polls_only(
    tmp_path: Path, clock: Clock
) -> None:
    url = f"file://{tmp_path}/store"
    saver = open_saver(url)
    worker = Worker(saver, [aflows.ajourney, aflows.aleaf], clock=clock.time)
    token_file = tmp_path / "token"
    assert worker.driver.start(aflows.ajourney, str(token_file), thread_id="j1").status == "waiting"
    clock.now += 601
    assert worker.poll().handled == 1  # past the timer: now waiting for the callback
    child = (
        "import sys; from cairnflow.savers import open_saver; from cairnflow.driver import DueIndex; "
        "from cairnflow.core import complete_callback; s = open_saver(sys.argv[1]); "
        "complete_callback(open(sys.argv[2]).read(), 'go', saver=s, scheduler=DueIndex(s))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", child, url, str(token_file)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    clock.now += 1
    assert worker.poll().handled == 1  # the callback's wake-up: the children run inline, concurrently
    done = aflows.ajourney.get_run(thread_id="j1", saver=saver)
    expected = sum((n * n + 7) * 3 for n in range(20))
    assert done is not None and (done.status, done.result) == (
        "completed",
        {"approval": "go", "total": expected},
    )
    assert [
        len(ops(saver, "j1", op)) for op in ("timer", "callback", "callback_done", "child", "child_done")
    ] == [
        1,
        1,
        1,
        20,
        20,
    ]
    children = [str(r["thread"]) for r in ops(saver, "j1", "child")]
    assert len(set(children)) == 20
    for thread_id in children:
        assert [r["pos"] for r in ops(saver, thread_id, "task")] == [0, 1], thread_id  # each step once
    clock.now += 3600  # the callback's timeout wake-up leaves the finished run alone
    assert worker.poll().handled >= 1
    assert list(worker.index.due()) == []
    assert aflows.ajourney.get_run(thread_id="j1", saver=saver) == done


def test_an_async_run_sigkilled_mid_task_is_continued_after_its_lease(tmp_path: Path) -> None:
    url = f"file://{tmp_path}/store"
    marker = tmp_path / "died"
    child = (
        f"import sys; sys.path.insert(0, {str(REPO)!r})\n"
        "from cairnflow.savers import open_saver\n"
        "from cairnflow.driver import Driver, DueIndex\n"
        "from tests.driver import aflows\n"
        f"saver = open_saver({url!r})\n"
        "Driver(saver, DueIndex(saver), [aflows.adies_once], lease=30).start("
        f"aflows.adies_once, {str(marker)!r}, thread_id='acrash-1')\n"
    )
    proc = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 9, proc.stderr
    saver = open_saver(url)
    assert [r["pos"] for r in ops(saver, "acrash-1", "task")] == [0, 1]  # recorded before the kill

    on_time = Worker(saver, [aflows.adies_once], lease=30)
    assert on_time.poll().due == 0  # the lease has not expired: the run may still be alive
    later = Worker(saver, [aflows.adies_once], lease=30, clock=lambda: time.time() + 31)
    assert later.poll().handled == 1
    run = aflows.adies_once.get_run(thread_id="acrash-1", saver=saver)
    assert run is not None and (run.status, run.result) == ("completed", 6)
    assert [r["pos"] for r in ops(saver, "acrash-1", "task")] == [0, 1, 2, 3]


def test_a_worker_process_sigkilled_mid_task_of_an_async_run_is_recovered_after_its_lease(
    tmp_path: Path,
) -> None:
    url = f"file://{tmp_path}/store"
    saver = open_saver(url)
    marker = tmp_path / "hung"
    run = Driver(saver, DueIndex(saver), [aflows.ahangs_once], lease=30).start(
        aflows.ahangs_once, str(marker), thread_id="ak-1", deadline=time.time() + 5, reserve=60
    )
    assert run.status == "suspended"
    command = [str(Path(sys.executable).parent / "cairnflow"), "worker", url, "--once", "--lease", "30"]
    proc = subprocess.Popen(
        [*command, "--import", "tests.driver.aflows"], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "IN-TASK"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert [r["pos"] for r in ops(saver, "ak-1", "task")] == [0, 1]  # recorded before the kill

    assert Worker(saver, [aflows.ahangs_once], lease=30).poll().handled == 0  # lease and claim still held
    later = Worker(saver, [aflows.ahangs_once], lease=30, clock=lambda: time.time() + 31)
    # The claim expired: the suspended wake-up continues the run, the lease then finds it done.
    polls = [later.poll() for _ in range(3)]
    assert sum(p.handled for p in polls) == 2 and polls[-1].due == 0
    done = aflows.ahangs_once.get_run(thread_id="ak-1", saver=saver)
    assert done is not None and (done.status, done.result) == ("completed", 6)
    assert [r["pos"] for r in ops(saver, "ak-1", "task")] == [0, 1, 2, 3]
    assert list(later.index.due()) == []


def worker_process(url: str, env: dict[str, str] | None = None) -> dict[str, int]:
    command = [str(Path(sys.executable).parent / "cairnflow"), "worker", url, "--once", "--json"]
    proc = subprocess.run(
        [*command, "--import", "tests.driver.aflows"],
        cwd=REPO,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    found: dict[str, int] = json.loads(proc.stdout)
    return found


def test_cairnflow_worker_command_finishes_suspended_async_runs(tmp_path: Path) -> None:
    url = f"file://{tmp_path}/store"
    saver = open_saver(url)
    starter = Driver(saver, DueIndex(saver), [aflows.afive_steps])
    for n in range(3):
        suspend_at_start(starter, f"acli-{n}")
    assert worker_process(url) == {"due": 3, "handled": 3, "skipped": 0}
    for n in range(3):
        run = aflows.afive_steps.get_run(thread_id=f"acli-{n}", saver=saver)
        assert run is not None and (run.status, run.result) == ("completed", 30)
        assert [r["pos"] for r in ops(saver, f"acli-{n}", "task")] == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("backend", ["s3"])
def test_a_worker_process_finishes_a_suspended_async_run_on_s3(
    backend: str, request: pytest.FixtureRequest, use_env: Callable[[StoreLocation], StoreLocation]
) -> None:
    location = use_env(request.getfixturevalue(f"{backend}_location"))
    saver = open_saver(location.url)
    suspend_at_start(Driver(saver, DueIndex(saver), [aflows.afive_steps]), "as3-1")
    assert worker_process(location.url, location.env) == {"due": 1, "handled": 1, "skipped": 0}
    run = aflows.afive_steps.get_run(thread_id="as3-1", saver=saver)
    assert run is not None and (run.status, run.result) == ("completed", 30)
    assert [r["pos"] for r in ops(saver, "as3-1", "task")] == [0, 1, 2, 3, 4]


def test_a_driver_given_an_async_saver_url_uses_it(tmp_path: Path) -> None:
    url = f"file://{tmp_path}/store"
    saver = open_saver(url)
    opened: list[str] = []

    def factory() -> Any:
        opened.append(url)
        return open_async_saver(url)

    driver = Driver(saver, DueIndex(saver), [aflows.afive_steps], async_saver=factory)
    suspend_at_start(driver, "af-1")
    (entry,) = [e for e in driver.scheduler.due() if e.wakeup.reason == "suspended"]  # type: ignore[attr-defined]
    run = driver.handle(entry.wakeup)
    assert run is not None and (run.status, run.result) == ("completed", 30)
    assert opened == [url, url]  # one async saver per event loop: the start's, the wake-up's


def test_handle_inside_a_running_event_loop_says_how_to_call_it(tmp_path: Path) -> None:
    saver = open_saver(f"file://{tmp_path}/store")
    driver = Driver(saver, DueIndex(saver), [aflows.afive_steps])
    suspend_at_start(driver, "al-1")

    async def inside() -> None:
        with pytest.raises(MisuseError, match="to_thread"):
            driver.handle(Wakeup("al-1", aflows.afive_steps.name, time.time(), "suspended"))

    before = list(driver.scheduler.due())  # type: ignore[attr-defined]
    asyncio.run(inside())
    run = aflows.afive_steps.get_run(thread_id="al-1", saver=saver)
    assert run is not None and run.status == "suspended"  # nothing was recorded
    assert list(driver.scheduler.due()) == before  # type: ignore[attr-defined] # nor scheduled


def test_an_asyncio_entry_point_continues_runs_on_its_own_loop(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    saver = open_saver(url)
    index = DueIndex(saver)
    new_loop = asyncio.run

    def refused(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("astart/ahandle must run an async workflow on the running loop")

    async def main() -> None:
        async with open_async_saver(url) as asaver:
            driver = Driver(saver, index, [aflows.afive_steps, flows.five_steps], async_saver=asaver)
            monkeypatch.setattr(asyncio, "run", refused)
            for wf, thread_id in ((aflows.afive_steps, "ae-1"), (flows.five_steps, "ae-2")):
                started = await driver.astart(
                    wf, thread_id, thread_id=thread_id, deadline=time.time() + 5, reserve=60
                )
                assert started.status == "suspended", thread_id
            entries = list(index.due())
            assert sorted((e.wakeup.thread_id, e.wakeup.reason) for e in entries) == [
                ("ae-1", "suspended"),
                ("ae-2", "suspended"),
            ]
            for entry in entries:
                run = await driver.ahandle(entry.wakeup)
                assert run is not None and (run.status, run.result) == ("completed", 30), entry.wakeup
                index.done(entry)
            monkeypatch.setattr(asyncio, "run", new_loop)
            assert await asaver.latest("ae-1") is not None  # the caller's saver is still open

    new_loop(main())
    assert list(index.due()) == []  # the leases were cancelled
    for thread_id in ("ae-1", "ae-2"):
        assert [r["pos"] for r in ops(saver, thread_id, "task")] == [0, 1, 2, 3, 4]


class LambdaContext:
    def get_remaining_time_in_millis(self) -> int:
        return 60_000


def test_sqs_wakeups_continue_a_suspended_async_run_on_s3_through_the_lambda_handler(
    s3_location: StoreLocation, s3_server_url: str, use_env: Callable[[StoreLocation], StoreLocation]
) -> None:
    pytest.importorskip("boto3")
    import boto3.session

    from cairnflow.driver.aws import SqsWakeScheduler, lambda_handler
    from tests.emulators.s3 import ACCESS_KEY, REGION, SECRET_KEY

    location = use_env(s3_location)
    session = boto3.session.Session(
        aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY, region_name=REGION
    )
    sqs = session.client("sqs", endpoint_url=s3_server_url)  # type: ignore[call-overload]
    queue = sqs.create_queue(QueueName=f"awake-{time.monotonic_ns()}")["QueueUrl"]
    saver = open_saver(location.url)
    driver = Driver(saver, SqsWakeScheduler(queue, client=sqs), [aflows.afive_steps], lease=600)
    suspend_at_start(driver, "aq-1")
    got = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=10)["Messages"]
    assert [Wakeup.from_json(m["Body"]).reason for m in got] == ["suspended"]  # the lease is 600 s away
    event = {"Records": [{"messageId": m["MessageId"], "body": m["Body"]} for m in got]}
    assert lambda_handler(driver)(event, LambdaContext()) == {"batchItemFailures": []}
    run = aflows.afive_steps.get_run(thread_id="aq-1", saver=saver)
    assert run is not None and (run.status, run.result) == ("completed", 30)
    assert [r["pos"] for r in ops(saver, "aq-1", "task")] == [0, 1, 2, 3, 4]


def test_continuing_an_async_run_costs_the_requests_a_plain_one_does() -> None:
    from collections import Counter

    from cairnflow.core.counting import AsyncCountingStore, CountingStore
    from cairnflow.core.log import AsyncCheckpointLog
    from cairnflow.savers import open_async_store, open_store

    def handle_one(wf: Any, url: str) -> Counter[str]:
        counting = CountingStore(open_store(url)[0])
        async_stores: list[AsyncCountingStore] = []

        def factory() -> AsyncCheckpointLog:
            async_stores.append(AsyncCountingStore(open_async_store(url)[0]))
            return AsyncCheckpointLog(async_stores[-1])

        saver = CheckpointLog(counting)
        driver = Driver(saver, DueIndex(saver), [wf], async_saver=factory)
        assert (
            driver.start(wf, "c", thread_id="c", deadline=time.time() + 5, reserve=60).status == "suspended"
        )
        (entry,) = driver.scheduler.due()  # type: ignore[attr-defined]
        counting.reset()
        for store in async_stores:
            store.reset()
        run = driver.handle(entry.wakeup)
        assert run is not None and run.status == "completed"
        total = Counter(counting.counts)
        for store in async_stores:
            total.update(store.counts)
        return total

    plain = handle_one(flows.five_steps, f"memory://plain-{time.monotonic_ns()}")
    flavoured = handle_one(aflows.afive_steps, f"memory://async-{time.monotonic_ns()}")
    assert flavoured == plain and sum(plain.values()) > 0, (flavoured, plain)
