"""Crash points: SIGKILL the worker at every store request boundary of a 10-task workflow, resume.

``tests.workloads.crashpoints`` numbers the requests its saver makes at the
store seam (PUT, GET, LIST, DELETE) and kills itself with SIGKILL just before
request K is sent or just after it returned. For every boundary K of a clean
run and both sides, a fresh thread is run in a child that dies there; the
test then reads what the kill left, resumes the thread in a fresh child
(``run()`` if nothing was stored, else ``resume()``), and checks:

* the child really died by SIGKILL, and the number of checkpoints it left is
  exactly the number of PUTs issued before the kill (plus the one at K when
  killed after a PUT): the kill landed where intended;
* the final result equals the clean run's;
* exactly 10 ``task`` records, at positions 0-9, and one ``end`` record;
* every task recorded at kill time wrote its ledger line before the kill, and
  none of them ran again; each task not recorded at kill time ran exactly
  once more (the ledger, split at the kill, as in
  ``tests/core/test_crash_recovery.py``);
* ``verify()`` finds no problem in the thread.

Phases: ``fresh`` (the crash hits a run started from scratch: LIST + 12 PUTs, the first the
start record, + the stop's status-index entry),
``resume`` (the crash hits the resume of a thread that stopped at task 5:
LIST + 2 GETs + 6 PUTs + the index entry + the DELETE of the superseded one, so read
boundaries are covered too), and ``exit`` durability (LIST + the one PUT + the index
entry). Index entries are traced as ``PUT-INDEX``: they are not checkpoints. The local
store and the S3 emulator run every phase; fake-gcs-server and Azurite run the ``fresh``
phase in CI (about 25 s each) and the rest with ``CAIRNFLOW_CRASHPOINTS=all``.
"""

from __future__ import annotations

import os
import signal
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cairnflow.core.log import CheckpointLog
from cairnflow.core.verify import verify
from cairnflow.savers import open_saver
from tests.core.support import child_env, outcome_of, run_child, start_child, workload
from tests.emulators import StoreLocation
from tests.workloads.crashpoints import TASKS, expected_result, ledger_line_of, prepare_crashed
from tests.workloads.pipeline import read_ledger

SEED = 11
STOP_AT = 5  # the resume phase starts from a thread that stopped when task 5 began
PHASES = {
    # phase: (durability, expected boundary trace of a clean run)
    # The start, the tasks, the end, then the stop's status-index entry (and, on a thread
    # that had stopped before, the DELETE of its superseded entry).
    "fresh": ("sync", ["LIST"] + ["PUT"] * (1 + TASKS + 1) + ["PUT-INDEX"]),
    "resume": ("sync", ["LIST", "GET", "GET"] + ["PUT"] * (TASKS - STOP_AT + 1) + ["PUT-INDEX", "DELETE"]),
    "exit": ("exit", ["LIST", "PUT", "PUT-INDEX"]),
}
CI_PHASES = {"local": list(PHASES), "s3": list(PHASES), "gcs": ["fresh"], "azure": ["fresh"]}


def _cases() -> list[Any]:
    everything = os.environ.get("CAIRNFLOW_CRASHPOINTS") == "all"
    cases = []
    for backend, ci in CI_PHASES.items():
        for phase in PHASES:
            marks = (
                []
                if everything or phase in ci
                else [
                    pytest.mark.skip(
                        reason="set CAIRNFLOW_CRASHPOINTS=all (benchmarks/soak.py --crashpoints)"
                    )
                ]
            )
            cases.append(
                pytest.param(backend, phase, marks=[pytest.mark.slow, *marks], id=f"{backend}-{phase}")
            )
    return cases


def _args(location: StoreLocation, thread: str, ledger: Path, durability: str, *extra: str) -> list[str]:
    return workload(
        "crashpoints",
        [
            "--url",
            location.url,
            "--thread",
            thread,
            "--ledger",
            str(ledger),
            "--seed",
            str(SEED),
            "--durability",
            durability,
            *extra,
        ],
    )


def _task_records(saver: CheckpointLog, thread: str) -> list[dict[str, Any]]:
    head = saver.latest(thread)
    return [r for r in (head.records if head else ()) if r.get("op") == "task"]


@pytest.mark.parametrize(("backend", "phase"), _cases())
def test_sigkill_at_every_request_boundary_then_resume(
    backend: str,
    phase: str,
    request: pytest.FixtureRequest,
    use_env: Callable[[StoreLocation], StoreLocation],
    reap: Callable[[Any], Any],
    tmp_path: Path,
) -> None:
    location: StoreLocation = request.getfixturevalue(f"{backend}_location")
    use_env(location)
    saver = open_saver(location.url)
    env = child_env(location)
    durability, expected_ops = PHASES[phase]
    op = "resume" if phase == "resume" else "run"
    want = expected_result(SEED)

    def prepare(thread: str, ledger: Path) -> None:
        if phase == "resume":
            prepare_crashed(saver, thread, str(ledger), STOP_AT, SEED)

    # A clean run: the boundaries, the plan of ledger lines, the result.
    ref_thread, ref_ledger = f"ref-{uuid.uuid4().hex[:8]}", tmp_path / "ledger-ref"
    prepare(ref_thread, ref_ledger)
    clean = run_child(_args(location, ref_thread, ref_ledger, durability, "--op", op, "--trace"), env)
    assert clean.returncode == 0, clean.stderr
    outcome = outcome_of(clean.stdout)
    assert outcome is not None and outcome["status"] == "completed" and outcome["result"] == want, outcome
    ops: list[str] = outcome["ops"]
    assert ops == expected_ops, f"{backend}/{phase}: clean run made {ops}"
    plan = read_ledger(ref_ledger)
    assert len(plan) == TASKS == len(set(plan)), plan

    exercised = 0
    for k, what in enumerate(ops):
        for side in ("before", "after"):
            thread = f"cp-{phase}-{k}-{side}-{uuid.uuid4().hex[:6]}"
            ledger = tmp_path / f"ledger-{k}-{side}"
            ctx = f"{backend}/{phase}: kill {side} request {k} ({what}) of {ops}, thread {thread}"
            prepare(thread, ledger)
            checkpoints_before = len(list(saver.history(thread)))

            proc = reap(
                start_child(
                    _args(
                        location,
                        thread,
                        ledger,
                        durability,
                        "--op",
                        op,
                        "--crash-at",
                        str(k),
                        "--crash-side",
                        side,
                    ),
                    env,
                )
            )
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == -signal.SIGKILL, f"{ctx}: the child did not kill itself:\n{out}\n{err}"
            exercised += 1

            # The kill landed exactly where intended: PUTs issued before it are stored, no others.
            puts = ops[:k].count("PUT") + (1 if side == "after" and what == "PUT" else 0)
            stored = len(list(saver.history(thread)))
            assert stored == checkpoints_before + puts, (
                f"{ctx}: {stored} checkpoints, expected {checkpoints_before + puts}"
            )
            ledger_bytes = ledger.read_bytes() if ledger.exists() else b""
            assert ledger_bytes == b"" or ledger_bytes.endswith(b"\n"), f"{ctx}: torn ledger line"
            pre = read_ledger(ledger)
            recorded = [ledger_line_of(r) for r in _task_records(saver, thread)]
            assert len(set(recorded)) == len(recorded), f"{ctx}: a task recorded twice: {recorded}"
            missing_pre = sorted(set(recorded) - set(pre))
            assert not missing_pre, f"{ctx}: recorded but never ran before the kill: {missing_pre}"

            done = run_child(_args(location, thread, ledger, durability, "--op", "auto"), env)
            assert done.returncode == 0, f"{ctx}: resume failed:\n{done.stdout}\n{done.stderr}"
            final_outcome = outcome_of(done.stdout)
            assert final_outcome is not None and final_outcome["status"] == "completed", (
                f"{ctx}: {final_outcome}"
            )
            assert final_outcome["result"] == want, f"{ctx}: wrong result {final_outcome['result']}"

            everything = read_ledger(ledger)
            assert everything[: len(pre)] == pre, f"{ctx}: ledger rewritten"
            post = everything[len(pre) :]
            assert set(everything) == set(plan), f"{ctx}: ledger differs from the plan: {everything}"
            again = sorted(set(post) & set(recorded))
            assert not again, f"{ctx}: tasks recorded before the kill ran again: {again}"
            unrecorded = Counter(line for line in plan if line not in set(recorded))
            assert Counter(post) == unrecorded, (
                f"{ctx}: each unrecorded task must run exactly once after the kill; ran {sorted(post)}, "
                f"unrecorded {sorted(unrecorded)}"
            )

            head = saver.latest(thread)
            assert head is not None and head.status == "completed", ctx
            tasks = sorted(r["pos"] for r in head.records if r.get("op") == "task")
            assert tasks == list(range(TASKS)), f"{ctx}: recorded task positions {tasks}"
            assert [r.get("op") for r in head.records].count("end") == 1, ctx
            report = verify(saver, thread)
            assert report.ok and not report.problems, f"{ctx}: verify: {report.problems}"
    print(
        f"crash points {backend}/{phase}: {len(ops)} boundaries x 2 sides = {exercised} kills, all recovered"
    )
