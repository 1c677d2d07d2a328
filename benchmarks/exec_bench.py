"""Workload (a): cairnflow's own executor on every backend and durability mode.

* **matrix** -- a workflow of N sequential tasks (``seq``) and one of N parallel
  tasks (``par``, 8 worker threads), N = 10, 100, 1000, each followed by an
  ``interrupt()``; per backend (local, s3, gcs, azure), durability mode (sync,
  async, exit) and injected round-trip time. One saver per backend, warmed up
  (its S3 conditional-write probe is done) before the first run. Tasks return
  about 150 bytes and take no time: the figures are the executor's and the
  store's overhead.
* **cold** -- for each sync ``seq`` thread of the matrix: a NEW process loads the
  thread's latest state (``get_run``) at 0 ms and at the injected RTT, then
  resumes it (answers the interrupt; the run completes).
* **latency** -- S3, ``seq`` N=100, tasks of 0 and 5 ms, each mode at 0 and 20 ms
  RTT: what durability adds per step in round trips.
* **memory** -- peak memory of a run of 1000 sequential tasks, in a new process
  (local and S3).
"""

from __future__ import annotations

import time
from typing import Any

from benchmarks.common import (
    BACKENDS,
    StackInfo,
    Timer,
    open_bench_saver,
    run_child,
    total,
    unique,
    writes,
)
from benchmarks.flows import WORKFLOWS

MODES = ("sync", "async", "exit")
SHAPES = ("seq", "par")


def _row(stats: dict[str, Any], n: int, wall: float, **labels: Any) -> dict[str, Any]:
    counts = stats["counts"]
    w = writes(counts)
    written = sum(stats["bytes_in"].values())
    read = sum(stats["bytes_out"].values())
    return {
        **labels,
        "n": n,
        "wall_s": wall,
        "ms_per_step": wall * 1000 / n,
        "counts": counts,
        "requests": total(counts),
        "writes": w,
        "requests_per_step": total(counts) / n,
        "writes_per_step": w / n,
        "bytes_written": written,
        "bytes_read": read,
        "bytes_written_per_step": written / n,
        "chain": stats.get("chain"),
        "chain_per_step": (stats["chain"] / n) if stats.get("chain") is not None else None,
        "max_in_flight": stats.get("max_in_flight"),
    }


def _run_once(
    saver: Any, meter: Any, shape: str, mode: str, n: int, *, delay: float = 0.0
) -> tuple[str, float, dict[str, Any]]:
    wf = WORKFLOWS[shape]
    thread = unique(f"{shape}-{mode}-{n}")
    meter.reset()
    t0 = time.perf_counter()
    run = wf.run({"n": n, "wait": True, "delay": delay}, thread_id=thread, saver=saver, durability=mode)
    wall = time.perf_counter() - t0
    stats = meter.stats()
    if run.status != "interrupted":
        raise RuntimeError(f"{shape}/{mode}/{n}: unexpected status {run.status}")
    return thread, wall, stats


def _warm_up(saver: Any) -> None:
    """The first write of a process costs the S3 conditional-write probe: keep it out of the figures."""
    WORKFLOWS["seq"].run({"n": 1}, thread_id=unique("warmup"), saver=saver)


def run(info: StackInfo, *, quick: bool, log: Any = print) -> dict[str, Any]:
    ns = (10, 100) if quick else (10, 100, 1000)
    rtts = {"local": (0,), "s3": (10, 30), "gcs": (10,), "azure": (10,)}
    main_rtt = 10
    matrix: list[dict[str, Any]] = []
    cold_jobs: list[tuple[str, str, int, str]] = []  # backend, prefix, n, thread
    timer = Timer()
    for backend in BACKENDS:
        prefix = unique(f"exec-{backend}")
        saver, meter = open_bench_saver(info, backend, prefix)
        _warm_up(saver)
        for rtt in rtts[backend]:
            meter.set_rtt(rtt)
            for shape in SHAPES:
                for mode in MODES:
                    for n in ns:
                        thread, wall, stats = _run_once(saver, meter, shape, mode, n)
                        matrix.append(
                            _row(stats, n, wall, backend=backend, rtt_ms=rtt, shape=shape, mode=mode)
                        )
                        if (
                            shape == "seq"
                            and mode == "sync"
                            and rtt == (main_rtt if backend != "local" else 0)
                        ):
                            cold_jobs.append((backend, prefix, n, thread))
            meter.set_rtt(0)
            log(f"exec: {backend} rtt={rtt} done at {timer.elapsed():.0f}s")
        saver.store.close()

    cold: list[dict[str, Any]] = []
    stack = info.__dict__
    for backend, prefix, n, thread in cold_jobs:
        rtt = 0 if backend == "local" else main_rtt
        base = {
            "job": "exec_cold",
            "stack": stack,
            "backend": backend,
            "prefix": prefix,
            "shape": "seq",
            "thread": thread,
        }
        at0 = run_child("child", {**base, "rtt_ms": 0, "load": True})
        atr = run_child("child", {**base, "rtt_ms": rtt, "load": True, "resume": True}) if rtt else None
        if atr is None:
            atr = run_child("child", {**base, "rtt_ms": 0, "load": False, "resume": True})
            atr["load"] = at0["load"]
        load0, load, resume = at0["load"], atr["load"], atr["resume"]
        cold.append(
            {
                "backend": backend,
                "n": n,
                "rtt_ms": rtt,
                "load_counts": load["counts"],
                "load_requests": total(load["counts"]),
                "load_bytes_read": sum(load["bytes_out"].values()),
                "load_chain": load["chain"],
                "load_wall_s": load["wall_s"],
                "load_wall0_s": load0["wall_s"],
                "load_rt_by_division": ((load["wall_s"] - load0["wall_s"]) * 1000 / rtt) if rtt else None,
                "resume_counts": resume["counts"],
                "resume_requests": total(resume["counts"]),
                "resume_chain": resume["chain"],
                "resume_wall_s": resume["wall_s"],
                "resume_status": resume["status"],
                "child_import_s": atr["import_s"],
            }
        )
    log(f"exec: cold resumes done at {timer.elapsed():.0f}s")

    # What durability adds per step, in round trips, with 20 ms RTT (S3).
    latency: list[dict[str, Any]] = []
    saver, meter = open_bench_saver(info, "s3", unique("exec-latency"))
    _warm_up(saver)
    n = 100
    for delay in (0.0, 0.005):
        for mode in MODES:
            walls = {}
            for rtt in (0, 20):
                meter.set_rtt(rtt)
                _, wall, stats = _run_once(saver, meter, "seq", mode, n, delay=delay)
                walls[rtt] = wall
                latency.append(
                    _row(
                        stats, n, wall, backend="s3", rtt_ms=rtt, shape="seq", mode=mode, task_ms=delay * 1000
                    )
                )
            latency[-1]["added_rt_per_step"] = (walls[20] - walls[0]) / n / 0.020
    meter.set_rtt(0)
    saver.store.close()
    log(f"exec: latency runs done at {timer.elapsed():.0f}s")

    memory: list[dict[str, Any]] = []
    mem_n = 100 if quick else 1000
    for backend in ("local", "s3"):
        result = run_child(
            "child",
            {
                "job": "exec_memory",
                "stack": stack,
                "backend": backend,
                "prefix": unique("exec-mem"),
                "shape": "seq",
                "mode": "sync",
                "n": mem_n,
            },
        )
        memory.append({"backend": backend, "n": mem_n, **result})
    log(f"exec: memory done at {timer.elapsed():.0f}s")
    return {
        "matrix": matrix,
        "cold": cold,
        "latency": latency,
        "memory": memory,
        "elapsed_s": timer.elapsed(),
        "quick": quick,
    }
