"""python -m tests.aws_durable.conformance [ids or suites] [--store local|s3]: the package's verdicts."""

from __future__ import annotations

import argparse
import sys
import tempfile

from cairnflow.core.log import CheckpointLog
from cairnflow.savers.local import LocalStore

from .harness import run
from .known_failures import KNOWN_FAILURES


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.aws_durable.conformance")
    parser.add_argument("selection", nargs="*", help="requirement ids (1-1) or suite names; default all")
    parser.add_argument("--store", choices=["local", "s3"], default="local")
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument(
        "--kill-rate", type=float, default=0.0, help="the runner dies at each call with this chance"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--show", action="store_true", help="print our history of each failing requirement")
    parser.add_argument("--history-dir", help="keep the histories the package saves here")
    args = parser.parse_args(argv)
    options = {
        "workers": args.workers,
        "history_dir": args.history_dir,
        "kill_rate": args.kill_rate,
        "seed": args.seed,
    }
    with tempfile.TemporaryDirectory(prefix="cairnflow-conformance-store-") as tmp:
        if args.store == "s3":
            from .s3 import moto_saver

            with moto_saver() as saver:
                outcome = run(saver, args.selection or None, **options)
        else:
            outcome = run(CheckpointLog(LocalStore(tmp)), args.selection or None, **options)
    for rid, result in outcome.results.items():
        mark = "PASS" if result.passed else ("KNOWN" if rid in KNOWN_FAILURES else "FAIL")
        print(f"{mark} {rid} ({outcome.suites[rid]})")
        if not result.passed:
            for error in result.errors[:8]:
                print(f"     {error}")
            if args.show and result.execution_history:
                print(result.execution_history)
    for suite, (passed, total) in outcome.per_suite().items():
        print(f"{suite:20s} {passed}/{total}")
    print(f"total {len(outcome.passed())}/{len(outcome.results)} on {args.store}")
    if outcome.kills:
        print(f"the runner died {len(outcome.kills)} times and was restarted")
    for error in outcome.background_errors:
        print(f"background error: {error}")
    return 0 if not outcome.failed() else 1


if __name__ == "__main__":
    sys.exit(main())
