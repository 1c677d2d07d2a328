"""Kill the runner at random store requests (SIGKILL, seeded) and restart it: every execution completes.

Each round's runner process drives every unfinished execution and dies just
before or just after a request chosen by a seeded generator (a write that
landed but whose answer never arrived, or one never sent). A last runner with
no crash point finishes the work. Then every execution has SUCCEEDED with the
right value, each step is recorded exactly once in its history (step bodies
may run again after a kill: at least once; records: exactly once), and the
history is a line that ``cairnflow verify`` accepts.
"""

from __future__ import annotations

import json
import random
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from cairnflow import ops
from cairnflow.aws_durable import CairnflowDurableClient
from cairnflow.core.log import CheckpointLog
from cairnflow.savers import open_saver
from tests.aws_durable import flows

ROOT = Path(__file__).resolve().parents[2]
EXECUTIONS = 3
STEPS = 6


def runner_process(url: str, crash: tuple[int, str] | None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "tests.aws_durable.killable", url]
    if crash is not None:
        command += ["--crash-at", str(crash[0]), "--crash-side", crash[1]]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(6))
def test_killed_runners_restarted_complete_every_execution_once(seed: int, tmp_path: Path) -> None:
    url = f"file://{tmp_path}/store"
    saver = open_saver(url)
    assert isinstance(saver, CheckpointLog)
    client = CairnflowDurableClient(saver)
    ledgers = [tmp_path / f"ledger-{n}" for n in range(EXECUTIONS)]
    arns = [
        client.start_execution(json.dumps({"steps": STEPS, "ledger": str(ledger)}), function="chain")
        for ledger in ledgers
    ]
    # A clean run on a copy counts the requests: the crash points are drawn below that count.
    shutil.copytree(tmp_path / "store", tmp_path / "probe")
    clean = runner_process(f"file://{tmp_path}/probe", None)
    assert clean.returncode == 0, clean.stderr[-2000:]
    total = int(clean.stdout.split("requests=")[1].split()[0])

    rng = random.Random(seed)
    kills = 0
    for _ in range(4):  # up to four runners die at random requests
        crash = (rng.randrange(0, total // 2), rng.choice(["before", "after"]))
        proc = runner_process(url, crash)
        if proc.returncode == -signal.SIGKILL:
            kills += 1
            continue
        assert proc.returncode == 0, proc.stderr[-3000:]
        break
    final = runner_process(url, None)
    assert final.returncode == 0, final.stderr[-3000:]
    assert kills >= 1, "no runner was killed: choose crash points within the run"

    fresh = CairnflowDurableClient(CheckpointLog(saver.store, prefix=saver.prefix))
    for arn, ledger in zip(arns, ledgers, strict=True):
        view = fresh.describe(arn)
        assert view.status == "SUCCEEDED", (arn, view.status, view.error)
        assert json.loads(view.result or "null") == flows.expected_chain(STEPS)
        updates = [u for r in fresh.records(arn) for u in r["u"]]
        succeeded = [u["Id"] for u in updates if (u["Type"], u["Action"]) == ("STEP", "SUCCEED")]
        assert len(succeeded) == len(set(succeeded)) == STEPS  # each step recorded once
        ends = [u for u in updates if u["Type"] == "EXECUTION" and u["Action"] in ("SUCCEED", "FAIL")]
        assert len(ends) == 1
        ran = ledger.read_text().split() if ledger.exists() else []
        assert sorted(set(ran)) == [str(i) for i in range(STEPS)]  # every body ran (at least once)
    report = ops.verify(CheckpointLog(saver.store, prefix=saver.prefix))
    assert report.problems == () and report.threads_checked == EXECUTIONS
