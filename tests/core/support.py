"""Helpers for the core tests: child processes running tests.workloads modules."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tests.emulators import StoreLocation

REPO = Path(__file__).resolve().parents[2]
#: Backends the process-level tests run on (each has a ``<name>_location`` fixture).
LOCATION_BACKENDS = ["local", "s3", "gcs", "azure"]


def child_env(location: StoreLocation, flavour: str = "sync") -> dict[str, str]:
    """The environment of a workload process: the store's, and which executor flavour to run
    (``async``: the workflows' ``async def`` twins, see tests/workloads/pipeline.py)."""
    return {**os.environ, **location.env, "CAIRNFLOW_TEST_FLAVOUR": flavour}


def workload(name: str, args: Sequence[str]) -> list[str]:
    return [sys.executable, "-m", f"tests.workloads.{name}", *args]


def run_child(
    cmd: Sequence[str], env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(cmd), cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def start_child(cmd: Sequence[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        list(cmd), cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def outcome_of(stdout: str) -> dict[str, Any] | None:
    """The child's ``OUTCOME {json}`` line, parsed (None if it printed none)."""
    for line in stdout.splitlines():
        if line.startswith("OUTCOME "):
            parsed: dict[str, Any] = json.loads(line[len("OUTCOME ") :])
            return parsed
    return None


def wait_all_ready(
    procs: Sequence[subprocess.Popen[str]], ready: Sequence[Path], timeout: float = 60
) -> None:
    """Poll until every child created its ``ready`` file; fail if one exits first or time runs out."""
    deadline = time.monotonic() + timeout
    while not all(p.exists() for p in ready):
        for proc in procs:
            if proc.poll() is not None:
                out, err = proc.communicate()
                raise AssertionError(f"a child exited before the start signal:\n{out}\n{err}")
        assert time.monotonic() < deadline, f"children did not get ready within {timeout}s"
        time.sleep(0.002)  # polling the ready files
