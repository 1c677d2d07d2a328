"""Several processes resume the same thread at the same moment: exactly one may continue.

Each round prepares a thread (paused at an interrupt, or left "running" by a
hard crash), then starts the racing processes. Each racer creates its own
ready file and waits for a shared "go" file, which the test creates once every
racer is ready. To make the race land on the same checkpoint every time, each
racer also holds its first PUT until every racer has reached its first PUT
(``--put-barrier``): by then all of them have loaded the same head, so their
first writes all target the same checkpoint key and the store's create-only
write decides. The winner runs to completion; every loser must exit with
``ConflictError`` (exit code 3, ``OUTCOME {"status": "conflict"}``).

Every race runs in both executor flavours (``flavour``: the workload's plain
workflows with ``run``/``resume``, or their ``async def`` twins with
``arun``/``aresume``).

Afterwards the stored history must be linear (consecutive sequence numbers,
no gaps), the state must hold exactly one answer for the interrupt and each
task position at most once, and the result must be that of the winner's answer.

A variant without the PUT barrier (only the go file) checks the outcomes that
are legal when racers may load different heads.

The checkpoint bodies here are small (a few kB). That matters for S3: moto's
conditional writes are not atomic for large bodies (two creators of a 16 MB
object both "won" about 1 race in 10, see shared/EMULATORS.md); with small
bodies no double winner has been seen on the moto server.
"""

from __future__ import annotations

import signal
import subprocess
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cairnflow.core import CheckpointLog
from cairnflow.savers import open_saver
from tests.core.support import (
    LOCATION_BACKENDS,
    child_env,
    outcome_of,
    run_child,
    start_child,
    wait_all_ready,
    workload,
)
from tests.emulators import StoreLocation
from tests.workloads.pipeline import (
    EXIT_CONFLICT,
    EXIT_OK,
    EXIT_RESUME_ERROR,
    FAN,
    SEQ1,
    TASK_COUNT,
    read_ledger,
)

ROUNDS = {"local": 20, "s3": 5, "gcs": 5, "azure": 5}
UNSYNCED_ROUNDS = {"local": 10, "s3": 3, "gcs": 3, "azure": 3}
INTERRUPT_POS = SEQ1 + FAN  # the interrupt comes after the prepare and fan tasks
CRASH_AT = 5  # index (and position) of the task that kills the preparing process


Reap = Callable[[subprocess.Popen[str]], subprocess.Popen[str]]


def _args(location: StoreLocation, thread: str, ledger: Path, *extra: str) -> list[str]:
    return workload("pipeline", ["--url", location.url, "--thread", thread, "--ledger", str(ledger), *extra])


def _race(
    location: StoreLocation,
    env: dict[str, str],
    reap: Reap,
    race_dir: Path,
    commands: list[list[str]],
    put_barrier: bool,
) -> list[tuple[int, dict[str, Any] | None, str]]:
    """Start the racers, release them together; return (exit code, outcome, output) per racer."""
    race_dir.mkdir()
    go = race_dir / "go"
    ready = [race_dir / f"ready-{i}" for i in range(len(commands))]
    procs = []
    for i, cmd in enumerate(commands):
        extra = ["--ready", str(ready[i]), "--go", str(go)]
        if put_barrier:
            extra += ["--put-barrier", str(race_dir), "--peers", str(len(commands))]
        procs.append(reap(start_child(cmd + extra, env)))
    wait_all_ready(procs, ready)
    go.touch()
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        results.append((proc.returncode, outcome_of(out), f"{out}\n{err}"))
    return results


def _check_linear(saver: CheckpointLog, thread: str, ctx: str) -> tuple[Any, ...]:
    """History has consecutive seqs, no gaps; return the latest state's records."""
    seqs = [info.seq for info in saver.history(thread)]
    assert seqs == list(range(len(seqs) - 1, -1, -1)), f"{ctx}: history not linear: {seqs}"
    head = saver.latest(thread)
    assert head is not None and head.seq == seqs[0], ctx
    assert head.info.total_records == len(head.records), ctx
    positions = [r["pos"] for r in head.records if r.get("op") in ("task", "task_error")]
    duplicated = [pos for pos, n in Counter(positions).items() if n > 1]
    assert not duplicated, f"{ctx}: task positions recorded more than once: {duplicated}"
    return head.records


def _reference_results(
    location: StoreLocation, env: dict[str, str], tmp: Path, answers: list[int]
) -> dict[int, Any]:
    expected = {}
    for answer in answers:
        thread = f"ref-{answer}-{uuid.uuid4().hex[:8]}"
        ledger = tmp / f"ref-ledger-{answer}"
        first = run_child(_args(location, thread, ledger, "--workflow", "approval_pipeline"), env)
        assert first.returncode == 0, first.stderr
        done = run_child(
            _args(
                location,
                thread,
                ledger,
                "--workflow",
                "approval_pipeline",
                "--op",
                "resume",
                "--answer",
                str(answer),
            ),
            env,
        )
        assert done.returncode == 0, done.stderr
        outcome = outcome_of(done.stdout)
        assert outcome is not None and outcome["status"] == "completed"
        expected[answer] = outcome["result"]
    assert len({repr(v) for v in expected.values()}) == len(answers), "answers must give distinct results"
    return expected


def _prepare_interrupted(
    location: StoreLocation, env: dict[str, str], saver: CheckpointLog, thread: str, ledger: Path
) -> None:
    first = run_child(_args(location, thread, ledger, "--workflow", "approval_pipeline"), env)
    assert first.returncode == 0, first.stderr
    outcome = outcome_of(first.stdout)
    assert outcome is not None and outcome["status"] == "interrupted", outcome
    head = saver.latest(thread)
    assert head is not None and head.status == "interrupted"
    assert len(read_ledger(ledger)) == INTERRUPT_POS


@pytest.mark.slow
@pytest.mark.parametrize("backend", LOCATION_BACKENDS)
@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_racing_resumes_of_one_interrupt(
    flavour: str,
    backend: str,
    request: pytest.FixtureRequest,
    use_env: Callable[[StoreLocation], StoreLocation],
    reap: Reap,
    tmp_path: Path,
) -> None:
    location: StoreLocation = request.getfixturevalue(f"{backend}_location")
    use_env(location)
    saver = open_saver(location.url)
    env = child_env(location, flavour)
    answers = [2, 3, 5]
    expected = _reference_results(location, env, tmp_path, answers)

    for round_no in range(ROUNDS[backend]):
        thread = f"race-{round_no}-{uuid.uuid4().hex[:8]}"
        ctx = f"round {round_no} thread {thread}"
        ledger = tmp_path / f"ledger-{round_no}"
        _prepare_interrupted(location, env, saver, thread, ledger)
        before = read_ledger(ledger)

        commands = [
            _args(
                location,
                thread,
                ledger,
                "--workflow",
                "approval_pipeline",
                "--op",
                "resume",
                "--answer",
                str(answer),
            )
            for answer in answers
        ]
        results = _race(location, env, reap, tmp_path / f"race-{round_no}", commands, put_barrier=True)

        winners = [i for i, (code, _, _) in enumerate(results) if code == EXIT_OK]
        assert len(winners) == 1, f"{ctx}: exactly one racer must continue: {results}"
        (winner,) = winners
        for i, (code, outcome, output) in enumerate(results):
            if i == winner:
                assert outcome is not None and outcome["status"] == "completed", f"{ctx}: {output}"
                assert outcome["result"] == expected[answers[i]], f"{ctx}: wrong result {outcome}"
            else:
                assert code == EXIT_CONFLICT, f"{ctx}: loser {i} did not get ConflictError:\n{output}"
                assert outcome is not None and outcome["status"] == "conflict", f"{ctx}: {output}"

        records = _check_linear(saver, thread, ctx)
        interrupts = [r for r in records if r.get("op") == "interrupt"]
        resumes = [r for r in records if r.get("op") == "resume"]
        assert [r["pos"] for r in interrupts] == [INTERRUPT_POS], f"{ctx}: {interrupts}"
        assert [(r["pos"], r["value"]) for r in resumes] == [(INTERRUPT_POS, answers[winner])], (
            f"{ctx}: expected one answer, the winner's: {resumes}"
        )
        task_positions = sorted(r["pos"] for r in records if r.get("op") == "task")
        assert task_positions == [p for p in range(TASK_COUNT + 1) if p != INTERRUPT_POS], ctx
        assert records[-1].get("op") == "end" and records[-1].get("value") == expected[answers[winner]]

        # The answer is the fence: in sync mode a loser fails before running any task.
        after = read_ledger(ledger)[len(before) :]
        assert sorted(after) == sorted(set(after)) and len(after) == TASK_COUNT - INTERRUPT_POS, (
            f"{ctx}: each task after the interrupt must run exactly once (losers run none): {after}"
        )


@pytest.mark.slow
@pytest.mark.parametrize("backend", LOCATION_BACKENDS)
@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_racing_runs_of_a_crashed_thread(
    flavour: str,
    backend: str,
    request: pytest.FixtureRequest,
    use_env: Callable[[StoreLocation], StoreLocation],
    reap: Reap,
    tmp_path: Path,
) -> None:
    location: StoreLocation = request.getfixturevalue(f"{backend}_location")
    use_env(location)
    saver = open_saver(location.url)
    env = child_env(location, flavour)

    ref_ledger = tmp_path / "ref-ledger"
    ref = run_child(_args(location, f"ref-{uuid.uuid4().hex[:8]}", ref_ledger), env)
    assert ref.returncode == 0, ref.stderr
    ref_outcome = outcome_of(ref.stdout)
    assert ref_outcome is not None
    expected = ref_outcome["result"]
    plan = read_ledger(ref_ledger)

    for round_no in range(ROUNDS[backend]):
        thread = f"crashed-{round_no}-{uuid.uuid4().hex[:8]}"
        ctx = f"round {round_no} thread {thread}"
        ledger = tmp_path / f"ledger-{round_no}"
        crash = run_child(_args(location, thread, ledger, "--crash-at", str(CRASH_AT)), env)
        assert crash.returncode == -signal.SIGKILL, (
            f"{ctx}: the preparing process should have killed itself: {crash}"
        )
        head = saver.latest(thread)
        assert head is not None and head.status == "running", ctx
        assert sorted(r["pos"] for r in head.records if r.get("op") == "task") == list(range(CRASH_AT))
        before = read_ledger(ledger)
        assert before == plan[:CRASH_AT], ctx

        commands = [_args(location, thread, ledger, "--op", "run") for _ in range(2)]
        results = _race(location, env, reap, tmp_path / f"race-{round_no}", commands, put_barrier=True)

        winners = [i for i, (code, _, _) in enumerate(results) if code == EXIT_OK]
        assert len(winners) == 1, f"{ctx}: exactly one racer must continue: {results}"
        for i, (code, outcome, output) in enumerate(results):
            if i == winners[0]:
                assert outcome is not None and outcome["status"] == "completed", f"{ctx}: {output}"
                assert outcome["result"] == expected, f"{ctx}: wrong result {outcome}"
            else:
                assert code == EXIT_CONFLICT, f"{ctx}: loser did not get ConflictError:\n{output}"

        records = _check_linear(saver, thread, ctx)
        assert sorted(r["pos"] for r in records if r.get("op") == "task") == list(range(TASK_COUNT)), ctx
        assert records[-1].get("op") == "end" and records[-1].get("value") == expected, ctx
        after = read_ledger(ledger)[len(before) :]
        # Recorded tasks never run again. Both racers ran the first unrecorded task (its result is
        # their first write, which decides the race); the loser ran nothing after it.
        expected_after = Counter(plan[CRASH_AT:]) + Counter([plan[CRASH_AT]])
        assert Counter(after) == expected_after, f"{ctx}: ran {sorted(Counter(after).items())}"


@pytest.mark.slow
@pytest.mark.parametrize("backend", LOCATION_BACKENDS)
@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_racing_resumes_without_put_barrier(
    flavour: str,
    backend: str,
    request: pytest.FixtureRequest,
    use_env: Callable[[StoreLocation], StoreLocation],
    reap: Reap,
    tmp_path: Path,
) -> None:
    """Released together but not held at the first write, racers may load different heads.

    Legal outcomes for a racer: it continued to completion (exactly one does),
    it lost the write race (ConflictError), it saw the thread already running
    (ResumeError: not waiting for an answer), or it saw the thread already
    completed (returns the stored result without running anything).
    """
    location: StoreLocation = request.getfixturevalue(f"{backend}_location")
    use_env(location)
    saver = open_saver(location.url)
    env = child_env(location, flavour)
    answers = [2, 3]
    expected = _reference_results(location, env, tmp_path, answers)

    for round_no in range(UNSYNCED_ROUNDS[backend]):
        thread = f"unsynced-{round_no}-{uuid.uuid4().hex[:8]}"
        ctx = f"round {round_no} thread {thread}"
        ledger = tmp_path / f"ledger-{round_no}"
        _prepare_interrupted(location, env, saver, thread, ledger)
        before = read_ledger(ledger)
        commands = [
            _args(
                location,
                thread,
                ledger,
                "--workflow",
                "approval_pipeline",
                "--op",
                "resume",
                "--answer",
                str(answer),
            )
            for answer in answers
        ]
        results = _race(location, env, reap, tmp_path / f"race-{round_no}", commands, put_barrier=False)

        records = _check_linear(saver, thread, ctx)
        resumes = [r for r in records if r.get("op") == "resume"]
        assert len(resumes) == 1 and resumes[0]["pos"] == INTERRUPT_POS, f"{ctx}: {resumes}"
        answered = resumes[0]["value"]
        final = records[-1]
        assert final.get("op") == "end" and final.get("value") == expected[answered], ctx
        for code, outcome, output in results:
            assert code in (EXIT_OK, EXIT_CONFLICT, EXIT_RESUME_ERROR), f"{ctx}: {output}"
            if code == EXIT_OK:
                assert outcome is not None and outcome["result"] == expected[answered], f"{ctx}: {output}"
        assert any(code == EXIT_OK for code, _, _ in results), f"{ctx}: nobody completed: {results}"
        after = read_ledger(ledger)[len(before) :]
        assert sorted(after) == sorted(set(after)) and len(after) == TASK_COUNT - INTERRUPT_POS, (
            f"{ctx}: each task after the interrupt must run exactly once: {after}"
        )


@pytest.mark.slow
@pytest.mark.parametrize("durability", ["sync", "async"])
@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_losing_resume_runs_no_task_with_its_rejected_answer(
    flavour: str,
    durability: str,
    local_location: StoreLocation,
    reap: Reap,
    tmp_path: Path,
) -> None:
    """The answer record is the fence: a losing resume must fail before running any task.

    core/executor.py says so where it commits the answer ("The answer is written
    first: it is the fence that makes a second, concurrent resume of the same
    interrupt fail before doing any work"). Each racer's first write (its
    answer) is held until both racers stand at it and then until the ledger
    grew by two lines or 1 s passed: a racer that waits for its fence runs
    nothing meanwhile; one that does not, runs a task on an answer that is
    about to be rejected, and the ledger shows it.

    ``exit`` mode is left out: it stores nothing, the answer included, until
    the run ends, so a loser there always runs the whole rest of the body.
    """
    location = local_location
    saver = open_saver(location.url)
    env = child_env(location, flavour)
    answers = [2, 3]
    for round_no in range(3):
        thread = f"fence-{durability}-{round_no}-{uuid.uuid4().hex[:8]}"
        ctx = f"{durability} round {round_no} thread {thread}"
        ledger = tmp_path / f"ledger-{round_no}"
        _prepare_interrupted(location, env, saver, thread, ledger)
        before = read_ledger(ledger)
        commands = [
            _args(
                location,
                thread,
                ledger,
                "--workflow",
                "approval_pipeline",
                "--op",
                "resume",
                "--answer",
                str(answer),
                "--durability",
                durability,
                "--hold-first-put",
                "2",
                "1.0",
            )
            for answer in answers
        ]
        results = _race(location, env, reap, tmp_path / f"race-{round_no}", commands, put_barrier=True)
        codes = sorted(code for code, _, _ in results)
        assert codes == [EXIT_OK, EXIT_CONFLICT], f"{ctx}: {results}"
        records = _check_linear(saver, thread, ctx)
        assert len([r for r in records if r.get("op") == "resume"]) == 1, ctx
        after = read_ledger(ledger)[len(before) :]
        assert len(after) == TASK_COUNT - INTERRUPT_POS and len(set(after)) == len(after), (
            f"{ctx}: the losing resume ran tasks before its answer was stored; ledger after the "
            f"interrupt: {after}"
        )
