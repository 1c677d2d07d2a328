"""Run every benchmark workload and render the report.

    .venv-bench/bin/python -m benchmarks.run [--quick] [--only imports,exec,lg] [--budget SECONDS]

Starts moto, fake-gcs-server and Azurite on 127.0.0.1 (the tests' launchers), each
behind ``benchmarks/meter.py``; runs the import-time, executor and LangGraph workloads;
writes ``benchmarks/results/*.json``; renders ``docs/benchmarks.md`` (between
its markers) and ``docs/img/*.png``. ``--quick`` runs smaller sizes and writes
to ``benchmarks/results/quick/`` instead (the docs stay untouched).

``--budget`` (default 840 s, counted from ``BENCH_T0`` when run.sh set it, so
that setting up the environment counts too) bounds the whole run: the LangGraph
workload grows its threads towards 1000 turns only with the time that is left.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time
import traceback
from typing import Any

from benchmarks.common import RESULTS, ROOT, machine, stack, versions


def _log(msg: str) -> None:
    sys.stderr.write(f"[bench {time.strftime('%H:%M:%S')}] {msg}\n")
    sys.stderr.flush()


def _install_failures() -> list[dict[str, str]]:
    path = ROOT / ".venv-bench" / "install-failures.txt"
    out = []
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip():
                name, _, reason = line.partition("\t")
                out.append({"package": name, "reason": reason})
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="cairnflow benchmarks")
    parser.add_argument("--quick", action="store_true", help="small sizes, results/quick/, docs untouched")
    parser.add_argument("--only", default="imports,exec,lg", help="comma-separated: imports,exec,lg")
    parser.add_argument("--budget", type=float, default=None, help="seconds for the whole run (default 840)")
    parser.add_argument("--no-report", action="store_true")
    args = parser.parse_args(argv)

    t0_wall = float(os.environ.get("BENCH_T0") or time.time())
    budget = args.budget if args.budget is not None else (480.0 if args.quick else 840.0)
    deadline = time.monotonic() + budget - (time.time() - t0_wall)
    only = {part.strip() for part in args.only.split(",") if part.strip()}
    out_dir = RESULTS / "quick" if args.quick else RESULTS
    out_dir.mkdir(parents=True, exist_ok=True)
    if args.quick:
        # Development output: keep it out of version control.
        (out_dir / ".gitignore").write_text("*\n")
    started = time.monotonic()
    status: dict[str, Any] = {}

    def save(name: str, payload: dict[str, Any]) -> None:
        path = out_dir / f"{name}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(payload, indent=None, separators=(",", ":"), default=str) + "\n")
        os.replace(tmp, path)

    if "imports" in only:
        from benchmarks import imports_bench

        _log("import times")
        save("imports", imports_bench.run(quick=args.quick, log=_log))

    if only & {"exec", "lg"}:
        _log("starting emulators and proxies")
        with stack() as info:
            if "exec" in only:
                from benchmarks import exec_bench

                try:
                    save("exec", exec_bench.run(info, quick=args.quick, log=_log))
                except Exception:
                    status["exec"] = traceback.format_exc()
                    _log(f"exec FAILED:\n{status['exec']}")
            if "lg" in only:
                from benchmarks import lg_bench

                try:
                    # Leave time for the report and for stopping everything.
                    save("langgraph", lg_bench.run(info, quick=args.quick, deadline=deadline - 30, log=_log))
                except Exception:
                    status["lg"] = traceback.format_exc()
                    _log(f"lg FAILED:\n{status['lg']}")

    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "quick": args.quick,
        "machine": machine(),
        "versions": versions(),
        "install_failures": _install_failures(),
        "run_s": time.monotonic() - started,
        "total_s_including_setup": time.time() - t0_wall,
        "budget_s": budget,
        "errors": status,
        "command": "bash benchmarks/run.sh" + (" --quick" if args.quick else ""),
    }
    save("meta", meta)
    _log(f"workloads done in {meta['run_s']:.0f}s ({meta['total_s_including_setup']:.0f}s with setup)")
    if not args.no_report:
        from benchmarks import report

        report.render(out_dir, quick=args.quick)
        _log("report rendered")
    return 1 if status else 0


if __name__ == "__main__":
    sys.exit(main())
