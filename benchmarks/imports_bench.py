"""Import time: ``python -X importtime -c "import X"`` in fresh interpreters, median of several.

Reports the cumulative import time of module X as Python itself measures it (the
``-X importtime`` line for X), and the wall time of the whole interpreter run minus
that of ``python -c pass``. ``.pyc`` files are warm (this is not a Lambda cold start
from a read-only package: see ``benchmarks/coldstart.py`` for that).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from typing import Any

from benchmarks.common import ROOT

MODULES = (
    "cairnflow.core",
    "cairnflow.savers.s3",
    "cairnflow.savers.gcs",
    "cairnflow.savers.azure",
    "cairnflow.langgraph",
)
REFERENCE = (
    "boto3",
    "langgraph.checkpoint.base",
    "langgraph.checkpoint.sqlite",
    "langgraph_checkpoint_s3",
    "langgraph_checkpoint_objectstorage",
    "langgraph.checkpoint.tigris",
    "s3checkpointer.s3saver",
)


def _one(module: str) -> tuple[float, float]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    code = f"import {module}" if module else "pass"
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        check=True,
    )
    wall = time.perf_counter() - t0
    cumulative = 0.0
    for line in proc.stderr.splitlines():
        # "import time: self [us] | cumulative | imported package"
        if not line.startswith("import time:") or "|" not in line:
            continue
        parts = [p.strip() for p in line[len("import time:") :].split("|")]
        if len(parts) == 3 and parts[2] == module:
            cumulative = float(parts[1]) / 1e6
    return cumulative, wall


def run(*, quick: bool, log: Any = print) -> dict[str, Any]:
    repeat = 3 if quick else 5
    base = statistics.median(_one("")[1] for _ in range(repeat))
    rows = []
    for group, modules in (("cairnflow", MODULES), ("reference", REFERENCE)):
        for module in modules:
            try:
                samples = [
                    _one(module) for _ in range(repeat if group == "cairnflow" else max(3, repeat - 2))
                ]
            except subprocess.CalledProcessError as exc:
                rows.append({"module": module, "group": group, "error": exc.stderr.strip().splitlines()[-1]})
                continue
            rows.append(
                {
                    "module": module,
                    "group": group,
                    "importtime_ms": statistics.median(s[0] for s in samples) * 1000,
                    "wall_minus_empty_ms": (statistics.median(s[1] for s in samples) - base) * 1000,
                }
            )
    log("imports: done")
    return {"empty_interpreter_ms": base * 1000, "rows": rows, "repeat": repeat}
