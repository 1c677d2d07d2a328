"""Measurements that run in a NEW process: cold loads and resumes, peak memory.

    python -m benchmarks.child '<spec as JSON>'

The spec names the ``job`` and carries the stack description (``stack``, see
:class:`benchmarks.common.StackInfo`). The last line printed is the JSON result.
Timings cover only the operation measured, not the interpreter start or the imports
(those are reported separately: ``import_s``, ``process_s``).
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

_T0 = time.perf_counter()


def _window(meter: Any, fn: Any) -> tuple[Any, dict[str, Any]]:
    meter.reset()
    t0 = time.perf_counter()
    value = fn()
    wall = time.perf_counter() - t0
    stats = meter.stats()
    stats["wall_s"] = wall
    return value, stats


def exec_cold(spec: dict[str, Any], info: Any) -> dict[str, Any]:
    """A new process loads the latest state of a thread (``get_run``) and/or resumes it."""
    from benchmarks.common import open_bench_saver
    from benchmarks.flows import WORKFLOWS

    wf = WORKFLOWS[spec["shape"]]
    saver, meter = open_bench_saver(info, spec["backend"], spec["prefix"])
    imported = time.perf_counter() - _T0
    meter.set_rtt(spec.get("rtt_ms", 0))
    out: dict[str, Any] = {"import_s": imported}
    if spec.get("load", True):
        run, out["load"] = _window(meter, lambda: wf.get_run(thread_id=spec["thread"], saver=saver))
        out["load"]["status"] = run.status if run else None
    if spec.get("resume"):
        run, out["resume"] = _window(
            meter,
            lambda: wf.resume("yes", thread_id=spec["thread"], saver=saver, durability="sync"),
        )
        out["resume"]["status"] = run.status
    meter.set_rtt(0)
    out["process_s"] = time.perf_counter() - _T0
    return out


def exec_memory(spec: dict[str, Any], info: Any) -> dict[str, Any]:
    """Peak memory of one run of N sequential tasks (tracemalloc peak and the process's max RSS)."""
    import tracemalloc

    from benchmarks.common import maxrss_mib, open_bench_saver, unique
    from benchmarks.flows import WORKFLOWS

    wf = WORKFLOWS[spec["shape"]]
    saver, meter = open_bench_saver(info, spec["backend"], spec["prefix"])
    meter.set_rtt(0)
    base_rss = maxrss_mib()
    tracemalloc.start()
    t0 = time.perf_counter()
    wf.run({"n": spec["n"]}, thread_id=unique("mem"), saver=saver, durability=spec["mode"])
    wall = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {
        "traced_peak_mib": peak / 2**20,
        "maxrss_before_mib": base_rss,
        "maxrss_after_mib": maxrss_mib(),
        "wall_s_traced": wall,
    }


JOBS = {"exec_cold": exec_cold, "exec_memory": exec_memory}


def main() -> int:
    spec = json.loads(sys.argv[1])
    from benchmarks.common import StackInfo

    info = StackInfo.from_json(json.dumps(spec["stack"]))
    info.apply_env()
    result = JOBS[spec["job"]](spec, info)
    sys.stdout.write("\n" + json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
