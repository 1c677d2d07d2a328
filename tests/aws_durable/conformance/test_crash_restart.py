"""Killing the service at random store request boundaries and restarting it leaves histories that validate.

Runs :mod:`tests.aws_durable.conformance.crashes` as its own process (it forks, so it
must not share a process with pytest's threads) over every requirement but the four it
leaves to the pipeline (``crashes.LEFT_OUT``), two seeded kill points each, and asserts
that every restarted execution's result and history pass the package's own checks.
About 2 min.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


def _tagged(stdout: str, tag: str) -> list[dict[str, object]]:
    return [json.loads(line.split(" ", 1)[1]) for line in stdout.splitlines() if line.startswith(tag + " ")]


@pytest.mark.slow
def test_killed_and_restarted_service_leaves_histories_that_validate() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "tests.aws_durable.conformance.crashes", "--per", "2", "--seed", "11"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    summaries = _tagged(proc.stdout, "SUMMARY")
    assert summaries, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = summaries[-1]
    failed = [v for v in _tagged(proc.stdout, "VERDICT") if v["errors"]]
    assert not failed, json.dumps(failed, indent=1)[:6000]
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs, killed, requirements = (int(summary[k]) for k in ("runs", "killed", "requirements"))  # type: ignore[call-overload]
    assert requirements >= 151 and runs == 2 * requirements, summary
    assert killed >= runs * 3 // 4, summary  # the kills really happened
