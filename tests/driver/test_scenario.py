"""Issue 17 end to end: runs that sleep, wait for a callback and fan out, finished by workers alone.

``journey`` (:mod:`tests.driver.scenario`) sleeps, then waits for a callback completed
from another process, then fans out 20 children. Every piece is its own OS process: the
client that starts the run, the workers (``Worker`` on the store's due index), the
process that completes the callback. The test only starts processes and watches the
store; it never resumes anything itself.

Crashes are SIGKILLs at store-write boundaries chosen from a seed (the process kills
itself just before or after its K-th PUT/DELETE), so a failure names its seed and its
kill plan and is rerun with the same ones. After the runs complete, the stored records
are checked: no step position recorded twice in any thread, exactly the expected steps,
and the recorded values equal to what the tasks compute.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from cairnflow.core.log import CheckpointLog
from cairnflow.core.records import STEP_OPS
from cairnflow.savers import open_saver
from tests.driver import scenario
from tests.emulators import StoreLocation

REPO = Path(__file__).resolve().parents[2]
#: How long one scenario may take before it is declared stuck (a 2-core machine, shared).
DEADLINE = 300.0
#: How often the test looks at the store and at its processes.
POLL = 0.2


@dataclass
class Plan:
    """Where processes kill themselves, from ``seed``: reproducible, printed on failure."""

    seed: int
    runs: int
    workers: int
    kills: int
    #: ``sync`` (``journey``) or ``async`` (``ajourney``: the same records, ``async def``).
    flavour: str = "sync"
    starter_kills: dict[str, tuple[int, str] | None] = field(default_factory=dict)
    worker_kills: list[tuple[int, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        rng = random.Random(self.seed)
        for thread in self.threads:
            # A starter makes a handful of writes (lease, start, stop, index, timer, cancel).
            dies = self.kills > 0 and rng.random() < 0.5
            self.starter_kills[thread] = (
                (rng.randint(1, 6), rng.choice(["before", "after"])) if dies else None
            )
        # A worker writes about 7 times per child it runs: its first incarnations die mid-way.
        self.worker_kills = [(rng.randint(1, 60), rng.choice(["before", "after"])) for _ in range(self.kills)]

    @property
    def threads(self) -> list[str]:
        return [f"journey-{n}" for n in range(self.runs)]

    def __str__(self) -> str:
        return (
            f"seed {self.seed} ({self.runs} {self.flavour} runs, {self.workers} workers); starters die at "
            f"{self.starter_kills}; worker incarnations die at {self.worker_kills} (K-th write, side)"
        )


@dataclass
class Fleet:
    """The scenario's processes, each started by pid and stopped by pid."""

    url: str
    env: dict[str, str]
    folder: Path
    lease: float
    plan: Plan
    via: str = "due"
    procs: list[subprocess.Popen[str]] = field(default_factory=list)
    killed: list[str] = field(default_factory=list)
    _spawned: int = 0

    def spawn(self, role: str, *args: str, kill: tuple[int, str] | None = None) -> subprocess.Popen[str]:
        self._spawned += 1
        log = self.folder / f"{self._spawned:03d}-{role}.log"
        command = [sys.executable, "-m", "tests.driver.scenario", role, self.url, *args]
        command += ["--lease", str(self.lease), "--via", self.via, "--flavour", self.plan.flavour]
        if kill is not None:
            command += ["--kill", str(kill[0]), "--side", kill[1]]
        with log.open("w") as out:
            proc = subprocess.Popen(
                command, cwd=REPO, env=self.env, stdout=out, stderr=subprocess.STDOUT, text=True
            )
        proc.args = [*command, f"log={log}"]
        self.procs.append(proc)
        return proc

    def ended(self, proc: subprocess.Popen[str], planned: tuple[int, str] | None, what: str) -> None:
        """``proc`` exited: by its planned SIGKILL (noted) or cleanly; anything else fails."""
        rc = proc.returncode
        if rc == -signal.SIGKILL and planned is not None:
            self.killed.append(f"{what} at write {planned[0]} ({planned[1]})")
            return
        if rc != 0:
            log = str(proc.args[-1]).removeprefix("log=")
            raise AssertionError(f"{what} exited with {rc}:\n{Path(log).read_text()[-3000:]}")

    def stop(self) -> list[int | None]:
        """SIGTERM every process still running (workers stop between polls); their exit codes."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        codes = []
        for proc in self.procs:
            try:
                codes.append(proc.wait(timeout=60))
            except subprocess.TimeoutExpired:
                proc.kill()
                codes.append(proc.wait())
        return codes


@contextmanager
def naming(plan: Plan, fleet: Fleet | None = None) -> Iterator[None]:
    """Prefix any failure with the seed and kill plan that reproduce it."""
    try:
        yield
    except AssertionError as exc:
        fired = fleet.killed if fleet is not None else []
        raise AssertionError(f"[{plan}; kills that fired: {fired}]\n{exc}") from None


def run_scenario(
    location: StoreLocation,
    tmp_path: Path,
    plan: Plan,
    *,
    lease: float = 6.0,
    nap: float = 1.0,
    pace: float = 0.0,
    via: str = "due",
    dispatch: bool = False,
) -> tuple[CheckpointLog, Fleet]:
    """Start ``plan.runs`` journeys with ``plan.workers`` workers; return once all completed."""
    folder = tmp_path / "scenario"
    folder.mkdir()
    env = {**os.environ, **location.env}
    fleet = Fleet(location.url, env, folder, lease, plan, via)
    saver = open_saver(location.url)
    worker_kills = iter(plan.worker_kills)
    with naming(plan, fleet):
        try:
            workers: list[tuple[subprocess.Popen[str], tuple[int, str] | None]] = []
            for n in range(plan.workers):
                kill = next(worker_kills, None)
                workers.append((fleet.spawn("worker", "--id", f"w{n}", kill=kill), kill))
            starters: dict[str, tuple[subprocess.Popen[str], tuple[int, str] | None] | None] = {}
            for thread in plan.threads:
                kill = plan.starter_kills[thread]
                starters[thread] = (
                    fleet.spawn(
                        "start", thread, str(folder), str(nap), str(pace), str(int(dispatch)), kill=kill
                    ),
                    kill,
                )
            completers: dict[str, subprocess.Popen[str] | None] = {}
            done: set[str] = set()
            deadline = time.monotonic() + DEADLINE
            while len(done) < plan.runs:
                assert time.monotonic() < deadline, (
                    f"not all runs completed in {DEADLINE:.0f} s: "
                    + ", ".join(f"{t}: {standing(saver, t, plan.flavour)}" for t in plan.threads)
                )
                for n, (proc, kill) in enumerate(workers):
                    if proc.poll() is not None:
                        fleet.ended(proc, kill, f"worker w{n}")
                        kill = next(worker_kills, None)
                        workers[n] = (fleet.spawn("worker", "--id", f"w{n}", kill=kill), kill)
                for thread, entry in starters.items():
                    if entry is not None and entry[0].poll() is not None:
                        fleet.ended(entry[0], entry[1], f"starter of {thread}")
                        # A client whose start request died sends it again (start is idempotent).
                        retry = entry[0].returncode != 0
                        starters[thread] = (
                            (
                                fleet.spawn(
                                    "start", thread, str(folder), str(nap), str(pace), str(int(dispatch))
                                ),
                                None,
                            )
                            if retry
                            else None
                        )
                for thread in plan.threads:
                    token = folder / f"{thread}.token"
                    if thread not in completers and token.exists():
                        completers[thread] = fleet.spawn("complete", str(token), f"approved-{thread}")
                    proc_c = completers.get(thread)
                    if proc_c is not None and proc_c.poll() is not None:
                        fleet.ended(proc_c, None, f"completer of {thread}")
                        completers[thread] = None
                for thread in plan.threads:
                    if thread not in done and standing(saver, thread, plan.flavour) == "completed":
                        done.add(thread)
                time.sleep(POLL)  # a poll interval; the loop waits on the store's state, with a deadline
        finally:
            codes = fleet.stop()
        assert all(code in (0, -signal.SIGKILL) for code in codes), codes
    return saver, fleet


def standing(saver: CheckpointLog, thread: str, flavour: str = "sync") -> str:
    run = scenario.FLAVOURS[flavour][0].get_run(thread_id=thread, saver=saver)
    return "absent" if run is None else run.status


def check_records(saver: CheckpointLog, thread: str, flavour: str = "sync") -> None:
    """Each step recorded once, exactly the expected steps, the recorded values right."""
    parent, leaf = scenario.FLAVOURS[flavour]
    run = parent.get_run(thread_id=thread, saver=saver)
    assert run is not None and run.status == "completed", (thread, run)
    assert run.result == scenario.expected_result(f"approved-{thread}"), run.result
    records = records_of(saver, thread)
    ops = Counter(r["op"] for r in records)
    wanted = {"timer": 1, "callback": 1, "task": 1, "callback_done": 1, "child": scenario.CHILDREN}
    assert {op: ops[op] for op in wanted} == wanted, (thread, ops)
    assert ops["child_done"] == scenario.CHILDREN and ops["end"] == 1, (thread, ops)
    children = sorted((r for r in records if r["op"] == "child"), key=lambda r: r["pos"])
    child_done = {r["pos"]: r["value"] for r in records if r["op"] == "child_done"}
    for n, record in enumerate(children):
        assert child_done[record["pos"]] == scenario.leaf_value(n), (thread, n, child_done)
        child_records = records_of(saver, record["thread"])
        tasks = [r for r in child_records if r["op"] == "task"]
        assert [(r["pos"], r["value"]) for r in tasks] == [(0, n * n + 7), (1, (n * n + 7) * 3)], (
            record["thread"],
            tasks,
        )
        child = leaf.get_run(thread_id=record["thread"], saver=saver)
        assert child is not None and (child.status, child.result) == ("completed", scenario.leaf_value(n))


def records_of(saver: CheckpointLog, thread: str) -> list[dict[str, Any]]:
    head = saver.latest(thread)
    assert head is not None, thread
    records = [r for r in head.records if isinstance(r, dict)]
    positions = Counter(r["pos"] for r in records if r.get("op") in STEP_OPS)
    twice = sorted(pos for pos, count in positions.items() if count > 1)
    assert not twice, f"{thread}: step positions recorded more than once: {twice}"
    ended = Counter(r["pos"] for r in records if r.get("op") in ("child_done", "callback_done"))
    assert all(count == 1 for count in ended.values()), f"{thread}: an ending recorded twice: {ended}"
    return records


def check_all(saver: CheckpointLog, plan: Plan, fleet: Fleet) -> None:
    with naming(plan, fleet):
        for thread in plan.threads:
            check_records(saver, thread, plan.flavour)
        if plan.kills:
            assert fleet.killed, "the plan's kills never fired: the scenario did not test recovery"


# --------------------------------------------------------------------------- the store's due index

#: Seeds of the crash variants (each a different set of kill points; the emulators take the first).
SEEDS = [1701, 42]


@pytest.fixture
def location(
    backend: str, request: pytest.FixtureRequest, use_env: Callable[[StoreLocation], StoreLocation]
) -> StoreLocation:
    found: StoreLocation = request.getfixturevalue(f"{backend}_location")
    return use_env(found)


@pytest.mark.parametrize("flavour", ["sync", "async"])
@pytest.mark.parametrize("dispatch", [False, True], ids=["inline", "dispatched"])
@pytest.mark.parametrize("backend", ["local"])
def test_a_journey_completes_with_only_a_worker_running(
    location: StoreLocation, tmp_path: Path, dispatch: bool, flavour: str
) -> None:
    plan = Plan(seed=0, runs=1, workers=1, kills=0, flavour=flavour)
    saver, fleet = run_scenario(location, tmp_path, plan, dispatch=dispatch)
    check_all(saver, plan, fleet)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("backend", "seed", "dispatch", "flavour"),
    [("local", seed, dispatch, "sync") for seed in SEEDS for dispatch in (False, True)]
    + [(cloud, SEEDS[0], True, "sync") for cloud in ("s3", "gcs", "azure")]
    + [("local", seed, True, "async") for seed in SEEDS]
    + [(cloud, SEEDS[1], True, "async") for cloud in ("s3", "gcs", "azure")],
)
def test_sigkilled_workers_and_runs_still_complete_every_journey_with_each_step_recorded_once(
    location: StoreLocation, tmp_path: Path, seed: int, dispatch: bool, flavour: str
) -> None:
    # Dispatched: the 20 children are runs of their own, spread over the workers, each
    # killed and recovered like its parent. Async: the kills count the writes of the
    # async saver too (the parent's and children's records, the children's creation).
    plan = Plan(seed=seed, runs=2, workers=2, kills=3, flavour=flavour)
    saver, fleet = run_scenario(location, tmp_path, plan, dispatch=dispatch)
    check_all(saver, plan, fleet)


@pytest.mark.slow
@pytest.mark.parametrize(("kills", "dispatch"), [(0, False), (2, True)], ids=["inline", "dispatched-kills"])
@pytest.mark.parametrize("backend", ["local", "s3", "gcs", "azure"])
def test_three_workers_on_one_store_never_record_a_step_twice(
    location: StoreLocation, tmp_path: Path, kills: int, dispatch: bool
) -> None:
    # A lease (and claim) of 1 s against children that work 0.1 s each: an inline fan-out
    # outlives its lease, so other workers continue the same run while its first worker is
    # alive, and the log's fencing alone keeps each step recorded once. Dispatched, the three
    # workers share the children, and continue each other's after the kills.
    plan = Plan(seed=7 + kills, runs=3, workers=3, kills=kills)
    saver, fleet = run_scenario(location, tmp_path, plan, lease=1.0, pace=0.1, dispatch=dispatch)
    check_all(saver, plan, fleet)


# --------------------------------------------------------------------------- the clouds' queues


def carrier(name: str, request: pytest.FixtureRequest) -> tuple[str, dict[str, str]]:
    """A fresh queue (or schedule group) on the emulator: the ``--via`` spec and the environment."""
    if name in ("sqs", "eventbridge"):
        from tests.driver.test_aws import FUNCTION, ROLE, client

        endpoint: str = request.getfixturevalue("s3_server_url")
        env = {"SQS_ENDPOINT": endpoint, "SCHEDULER_ROLE": ROLE}
        if name == "sqs":
            url = client("sqs", endpoint).create_queue(QueueName=f"wake-{uuid.uuid4().hex[:12]}")["QueueUrl"]
            return f"sqs:{url}", env
        group = f"wake-{uuid.uuid4().hex[:12]}"
        client("scheduler", endpoint).create_schedule_group(Name=group)
        return f"eventbridge:{FUNCTION}|{group}", env
    if name == "azure-queue":
        from tests.emulators.azure_queue import connection_string

        service = request.getfixturevalue("azure_queue_service")
        queue = f"wake-{uuid.uuid4().hex[:12]}"
        service.get_queue_client(queue).create_queue()
        return f"azq:{queue}", {"AZURE_QUEUE_CONNECTION_STRING": connection_string(service.url.rstrip("/"))}
    from tests.emulators import free_port

    emulator = request.getfixturevalue("cloud_tasks")
    tasks = emulator.client()
    queue = f"projects/test/locations/here/queues/wake-{uuid.uuid4().hex[:10]}"
    tasks.create_queue(parent="projects/test/locations/here", queue={"name": queue})
    # Stale leases would be POSTed to a service that is gone, and retried, for the session.
    request.addfinalizer(lambda: tasks.delete_queue(name=queue))
    return f"tasks:{queue}|http://127.0.0.1:{free_port()}/wake", {"CLOUD_TASKS_EMULATOR": emulator.address}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("via", "backend", "servers"),
    [("sqs", "s3", 2), ("eventbridge", "s3", 2), ("azure-queue", "azure", 2), ("cloud-tasks", "gcs", 1)],
)
def test_a_journey_woken_through_the_clouds_queue_completes_despite_sigkills(
    location: StoreLocation, request: pytest.FixtureRequest, tmp_path: Path, via: str, servers: int
) -> None:
    # The wake-ups go through the cloud's scheduler or queue; the processes serving them are
    # the cloud entry points (lambda_handler, handle_message, wsgi_app) fed by a pump that
    # does what the cloud does (tests.driver.scenario.serve). They die at seeded writes too:
    # a message in flight reappears after its visibility timeout, a task is retried.
    # The children are dispatched: the fan-out goes through the cloud's queue too.
    spec, env = carrier(via, request)
    plan = Plan(seed=31, runs=2, workers=servers, kills=2)
    where = StoreLocation(location.url, {**location.env, **env})
    saver, fleet = run_scenario(where, tmp_path, plan, via=spec, dispatch=True)
    check_all(saver, plan, fleet)


def test_the_record_check_catches_a_step_recorded_twice() -> None:
    # The check the scenarios end with must be able to fail: a thread whose history holds one
    # task position twice (what a fencing bug would leave) is named.
    saver = open_saver(f"memory://check-{uuid.uuid4().hex}")
    start = {"op": "start", "workflow": "leaf", "input": {"n": 1, "pace": 0}, "input_digest": "x"}
    task = {"op": "task", "pos": 0, "name": "square", "args": "a", "value": 8}
    head = saver.append("twice", None, [start, task], status="running", workflow="leaf")
    assert records_of(saver, "twice")[1] == task
    saver.append("twice", head, [task], status="running", workflow="leaf")
    with pytest.raises(AssertionError, match=r"twice: step positions recorded more than once: \[0\]"):
        records_of(saver, "twice")
