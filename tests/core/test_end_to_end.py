"""The quickstart's two-step interaction across processes, on every backend.

Invocation 1 starts the workflow in one child process and pauses at the approval;
invocation 2, a fresh child process, answers and completes it: the state crosses
only through the store.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.core.asavers import CLOUD_SCHEMES
from tests.emulators import StoreLocation

ROOT = Path(__file__).resolve().parents[2]
#: The quickstart in each executor flavour (the same workflow, plain and ``async def``).
QUICKSTART = {"sync": ROOT / "examples" / "quickstart.py", "async": ROOT / "examples" / "quickstart_async.py"}


def run_quickstart(location: StoreLocation, *args: str, region: str, flavour: str = "sync") -> str:
    env = {**os.environ, **location.env, "CAIRNFLOW_STORE": location.url, "AWS_REGION": region}
    proc = subprocess.run(
        [sys.executable, str(QUICKSTART[flavour]), *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _cases() -> list[tuple[str, str]]:
    """Every backend in the sync flavour; in the async one, local and each cloud with an async backend."""
    from cairnflow.savers import _ASYNC_SCHEMES

    clouds = ["s3", "gcs", "azure"]
    sync = [(backend, "sync") for backend in ["local", *clouds]]
    return sync + [("local", "async")] + [(c, "async") for c in clouds if CLOUD_SCHEMES[c] in _ASYNC_SCHEMES]


@pytest.mark.parametrize(("backend", "flavour"), _cases())
def test_start_in_one_process_finish_in_another(
    backend: str, flavour: str, request: pytest.FixtureRequest
) -> None:
    location: StoreLocation = request.getfixturevalue(f"{backend}_location")
    first = run_quickstart(location, "start", "order-e2e", region="eu-west-1", flavour=flavour)
    assert "status=interrupted" in first
    assert "[task] charging 25.00" in first
    second = run_quickstart(location, "answer", "order-e2e", "yes", region="us-east-1", flavour=flavour)
    assert "status=completed" in second
    assert "'status': 'shipped'" in second
    # Recorded tasks were replayed, not run again; only the task after the approval ran.
    assert "[task] charging" not in second
    assert "[task] reserving" not in second
    assert second.count("[task]") == 1
    third = run_quickstart(location, "answer", "order-e2e", "yes", region="ap-south-1", flavour=flavour)
    assert "status=completed" in third and "[task]" not in third  # a duplicate answer changes nothing
