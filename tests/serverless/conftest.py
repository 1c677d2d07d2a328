"""Fixtures for the serverless examples' tests.

``<backend>_location`` (``s3``, ``gcs``, ``azure``, ``local``) is a fresh, empty store
as a :class:`~tests.emulators.StoreLocation`, from ``tests/conftest.py`` and the
emulator plugin; ``run_driver`` runs ``tests/serverless/driver.py`` in a fresh child
process against a location.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.emulators import StoreLocation
from tests.emulators.plugin import mark_clouds

DRIVER = Path(__file__).with_name("driver.py")
ROOT = Path(__file__).resolve().parents[2]

#: example folder -> the store backend it is written for
EXAMPLES = {"aws_lambda": "s3", "cloud_run": "gcs", "azure_functions": "azure"}


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # ``example_location`` picks its emulator from the ``example`` parameter: say which.
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and "example_location" in getattr(item, "fixturenames", ()):
            mark_clouds(item, {EXAMPLES[callspec.params["example"]]})


RunExample = Callable[..., dict[str, Any]]


def run_driver(
    example: str,
    location: StoreLocation,
    calls: list[dict[str, Any]],
    *,
    region: str = "eu-west-1",
    env: dict[str, str] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    """Run ``calls`` against ``example`` in one fresh child process; return the driver's report."""
    child_env = {
        **os.environ,
        **location.env,
        "CAIRNFLOW_URL": location.url,
        "AWS_REGION": region,
        "PYTHONDONTWRITEBYTECODE": "1",
        **(env or {}),
    }
    proc = subprocess.run(
        [sys.executable, str(DRIVER)],
        input=json.dumps({"example": example, "calls": calls, **spec}),
        env=child_env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, f"driver failed ({proc.returncode}):\n{proc.stderr[-4000:]}"
    lines = [line for line in proc.stdout.splitlines() if line.startswith("DRIVER ")]
    assert len(lines) == 1, f"no report from the driver:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    report: dict[str, Any] = json.loads(lines[0][len("DRIVER ") :])
    return report


@pytest.fixture
def example_location(example: str, request: pytest.FixtureRequest) -> StoreLocation:
    """A fresh bucket on the backend ``example`` is written for."""
    location: StoreLocation = request.getfixturevalue(f"{EXAMPLES[example]}_location")
    return location
