"""Fixtures for the serverless examples' tests.

``<backend>_location`` (``s3``, ``gcs``, ``azure``, ``local``) is a fresh, empty store
as a :class:`~tests.emulators.StoreLocation`, exactly as in ``tests/core/conftest.py``:
the emulator ones come from ``tests/emulators/<name>.py`` (a backend whose module is
missing skips locally and fails under CI); ``run_example`` runs
``tests/serverless/driver.py`` in a fresh child process against a location.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.emulators import StoreLocation, emulator_unavailable

DRIVER = Path(__file__).with_name("driver.py")
ROOT = Path(__file__).resolve().parents[2]

#: example folder -> the store backend it is written for
EXAMPLES = {"aws_lambda": "s3", "cloud_run": "gcs", "azure_functions": "azure"}


@pytest.fixture
def local_location(tmp_path: Path) -> StoreLocation:
    return StoreLocation(url=f"file://{tmp_path}/store")


def _missing_location(name: str) -> Callable[[], Any]:
    @pytest.fixture(name=f"{name}_location")
    def fixture() -> Any:
        emulator_unavailable(f"the {name} emulator's {name}_location fixture")

    return fixture


for _name in ("s3", "gcs", "azure"):
    try:
        _module = importlib.import_module(f"tests.emulators.{_name}")
        _fixture = getattr(_module, f"{_name}_location")
    except (ImportError, AttributeError):
        _fixture = _missing_location(_name)
    globals()[f"{_name}_location"] = _fixture


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
