"""The long reliability soak: 200 workflows per backend under 10 % injected faults, and more.

    .venv/bin/python benchmarks/soak.py [--workflows 200] [--seed N] [--concurrency 4]
                                        [--backends memory,local,s3,gcs,azure]
                                        [--crashpoints] [--contend] [--json out.json]

It runs the CI tests of ``tests/reliability`` with larger counts (the CI runs
them with small ones), through pytest, so the emulators (moto server,
fake-gcs-server, Azurite) are started and stopped exactly as in CI:

* ``test_fault_soak.py`` with ``CAIRNFLOW_SOAK_WORKFLOWS=--workflows`` per backend:
  every workflow has 7 tasks (3 in parallel) and an interrupt, is resumed to
  completion through 10 % faults (HTTP faults through a proxy for the clouds,
  store-seam faults for memory and local), and is then checked (result, one
  record per task position, side effects, ``verify()``);
* with ``--crashpoints``: ``test_crash_points.py`` with ``CAIRNFLOW_CRASHPOINTS=all``
  (every request boundary, both sides, every phase, every backend);
* with ``--contend``: ``test_contended_faults.py`` (processes contending for every
  step under faults).

At the end it prints one line per backend (faults injected by kind, workflows
completed, escaped errors, duplicates, corruptions, time) and the totals, and
exits non-zero if any test failed. ``--seed`` replays a soak (every run prints
its seed). Measured figures are in docs/guarantees.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BACKENDS = ["memory", "local", "s3", "gcs", "azure"]
SOAK_TEST = "tests/reliability/test_fault_soak.py"


def _pytest(args: list[str], env: dict[str, str]) -> int:
    cmd = [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", *args]
    print("$", " ".join(cmd), flush=True)
    return subprocess.run(cmd, cwd=ROOT, env=env, check=False).returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks/soak.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--workflows", type=int, default=200, help="workflows per backend (default 200)")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--crashpoints", action="store_true", help="also every crash point on every backend")
    parser.add_argument("--contend", action="store_true", help="also the contended-workers soak")
    parser.add_argument("--json", type=Path, default=None, help="write the per-backend figures here")
    args = parser.parse_args(argv)

    backends = [b for b in args.backends.split(",") if b]
    unknown = set(backends) - set(BACKENDS)
    if unknown:
        parser.error(f"unknown backends: {sorted(unknown)}")
    with tempfile.TemporaryDirectory(prefix="cairnflow-soak-") as tmp:
        report = Path(tmp) / "soak.jsonl"
        env = {
            **os.environ,
            "CAIRNFLOW_SOAK_WORKFLOWS": str(args.workflows),
            "CAIRNFLOW_SOAK_CONCURRENCY": str(args.concurrency),
            "CAIRNFLOW_SOAK_REPORT": str(report),
            "CAIRNFLOW_CRASHPOINTS": "all",
        }
        if args.seed is not None:
            env["CAIRNFLOW_SOAK_SEED"] = str(args.seed)
            env["CAIRNFLOW_CONTEND_SEED"] = str(args.seed)
        t0 = time.monotonic()
        test = f"{SOAK_TEST}::test_workflows_complete_exactly_once_under_ten_percent_faults"
        codes = [_pytest([f"{test}[{b}]" for b in backends], env)]
        if args.crashpoints:
            codes.append(_pytest(["tests/reliability/test_crash_points.py", "-rs"], env))
        if args.contend:
            codes.append(_pytest(["tests/reliability/test_contended_faults.py"], env))
        elapsed = time.monotonic() - t0
        rows: list[dict[str, Any]] = (
            [json.loads(line) for line in report.read_text().splitlines()] if report.exists() else []
        )

    print()
    print(
        f"{'backend':8} {'workflows':>9} {'done':>5} {'requests':>8} {'faults':>6} {'escaped':>7} "
        f"{'dups':>4} {'corrupt':>7} {'seconds':>7}  faults by kind"
    )
    for row in rows:
        kinds = ", ".join(f"{k}={v}" for k, v in sorted(row["fault_kinds"].items()))
        print(
            f"{row['backend']:8} {row['workflows']:>9} {row['completed']:>5} {row['requests']:>8} "
            f"{row['faults']:>6} {row['escaped']:>7} {row['duplicates']:>4} {row['corruptions']:>7} "
            f"{row['seconds']:>7}  {kinds} (seed {row['seed']})"
        )
    totals = {
        k: sum(r[k] for r in rows) for k in ("workflows", "completed", "faults", "duplicates", "corruptions")
    }
    print(f"total: {totals} in {elapsed:.0f} s; pytest exit codes {codes}")
    if args.json is not None:
        args.json.write_text(json.dumps({"backends": rows, "totals": totals, "exit_codes": codes}, indent=2))
    return 0 if all(code == 0 for code in codes) and len(rows) == len(backends) else 1


if __name__ == "__main__":
    sys.exit(main())
