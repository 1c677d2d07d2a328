"""Several processes drive one thread to completion at once, under injected store faults.

``tests/core/test_concurrent_resume.py`` races processes for one step (the
first write after an interrupt or a crash) without faults; this test adds
what it leaves out: every step contested, repeatedly, while 10 % of store
requests fail transiently -- including writes that land while their answer is
lost, so that a worker's retry meets either its own object or a rival's.

Each round starts three ``tests.workloads.contend`` workers on a fresh thread
of the 10-task ``ten`` workflow, released together through a go file. Each
worker loops (``run()``/``resume()``, starting over on ``ConflictError``) until
the thread is completed. Then:

* every worker returns the right result;
* the stored history is linear and sound (``verify()``), with exactly 10
  ``task`` records at positions 0-9 and one ``end``;
* each checkpoint of the history was appended successfully by exactly one
  worker (the ``wrote`` lists of all workers partition the sequence numbers):
  exactly one writer advanced each step, and no retried write was taken for
  someone else's or counted twice;
* every task ran at least once (the ledger), and contention really happened
  (conflicts were seen) and faults were really injected.

``CAIRNFLOW_CONTEND_SEED`` replays a round sequence (the seed is printed and in
every failure message).
"""

from __future__ import annotations

import os
import random
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cairnflow.core.verify import verify
from cairnflow.savers import open_saver
from tests.core.support import child_env, outcome_of, start_child, wait_all_ready, workload
from tests.emulators import StoreLocation
from tests.workloads.crashpoints import TASKS, expected_result
from tests.workloads.pipeline import read_ledger

WORKERS = 3
ROUNDS = {"local": 4, "s3": 2, "gcs": 2, "azure": 2}
SEED = 11


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["local", "s3", "gcs", "azure"])
def test_workers_contending_for_every_step_under_faults(
    backend: str,
    request: pytest.FixtureRequest,
    use_env: Callable[[StoreLocation], StoreLocation],
    reap: Callable[[Any], Any],
    tmp_path: Path,
) -> None:
    location: StoreLocation = request.getfixturevalue(f"{backend}_location")
    use_env(location)
    saver = open_saver(location.url)
    env = child_env(location)
    seed = int(os.environ.get("CAIRNFLOW_CONTEND_SEED") or random.SystemRandom().randrange(2**32))
    rng = random.Random(seed)
    print(f"contended soak backend={backend} seed={seed}")
    want = expected_result(SEED)
    total_conflicts = total_faults = 0

    for round_no in range(ROUNDS[backend]):
        thread = f"contend-{round_no}-{uuid.uuid4().hex[:6]}"
        ledger = tmp_path / f"ledger-{round_no}"
        ctx = f"backend={backend} seed={seed} round={round_no} thread={thread}"
        race = tmp_path / f"race-{round_no}"
        race.mkdir()
        go, ready = race / "go", [race / f"ready-{i}" for i in range(WORKERS)]
        procs = [
            reap(
                start_child(
                    workload(
                        "contend",
                        [
                            "--url",
                            location.url,
                            "--thread",
                            thread,
                            "--ledger",
                            str(ledger),
                            "--seed",
                            str(SEED),
                            "--faults",
                            str(rng.randrange(2**32)),
                            "--task-ms",
                            "3",
                            "--ready",
                            str(ready[i]),
                            "--go",
                            str(go),
                        ],
                    ),
                    env,
                )
            )
            for i in range(WORKERS)
        ]
        wait_all_ready(procs, ready)
        go.touch()
        outcomes = []
        for proc in procs:
            out, err = proc.communicate(timeout=300)
            outcome = outcome_of(out)
            assert proc.returncode == 0 and outcome is not None, f"{ctx}: worker failed:\n{out}\n{err}"
            assert outcome["result"] == want, f"{ctx}: wrong result {outcome}"
            outcomes.append(outcome)

        history = [info.seq for info in saver.history(thread)]
        assert history == list(range(len(history) - 1, -1, -1)), f"{ctx}: history not linear: {history}"
        report = verify(saver, thread)
        assert report.ok and not report.problems, f"{ctx}: verify: {report.problems}"
        head = saver.latest(thread)
        assert head is not None and head.status == "completed", ctx
        positions = Counter(r["pos"] for r in head.records if r.get("op") == "task")
        assert sorted(positions) == list(range(TASKS)) and set(positions.values()) == {1}, (
            f"{ctx}: task positions {positions}"
        )
        assert [r.get("op") for r in head.records].count("end") == 1, ctx
        wrote = [seq for o in outcomes for seq in o["wrote"]]
        doubles = sorted(seq for seq, n in Counter(wrote).items() if n > 1)
        assert not doubles, f"{ctx}: checkpoints claimed by more than one worker: {doubles}"
        assert sorted(wrote) == sorted(history), f"{ctx}: workers wrote {sorted(wrote)}, history {history}"
        ran = Counter(read_ledger(ledger))
        assert len(ran) == TASKS, f"{ctx}: tasks in the ledger: {sorted(ran)}"
        total_conflicts += sum(o["conflicts"] for o in outcomes)
        total_faults += sum(o["faults"] for o in outcomes)
        print(
            f"{ctx}: checkpoints={len(history)} conflicts={[o['conflicts'] for o in outcomes]} "
            f"escaped={[o['escaped'] for o in outcomes]} faults={[o['faults'] for o in outcomes]} "
            f"writes per worker={[len(o['wrote']) for o in outcomes]} task runs={sum(ran.values())}"
        )
    assert total_conflicts > 0, f"seed={seed}: the workers never contended"
    assert total_faults > 0, f"seed={seed}: no fault was injected"
