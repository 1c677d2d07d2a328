"""The asyncio benchmark's workload and table (``benchmarks/async_bench.py``), small and on local files.

The benchmark itself runs 1,000 workflows on moto; here a handful on ``file://`` check
that both flavours complete every workflow, that the counts it compares are the
store's requests, and that the thread figure tells the flavours apart.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from benchmarks import async_bench, async_child


def _spec(flavour: str, tmp_path: Path, **over: Any) -> dict[str, Any]:
    return {
        "flavour": flavour,
        "url": f"file://{tmp_path / flavour}",
        "workflows": 6,
        "tasks": 3,
        "task_ms": 5,
        "shape": "seq",
        "workers": 6,
        **over,
    }


def test_both_flavours_send_the_same_requests_and_only_sync_needs_threads(tmp_path: Path) -> None:
    sync = async_child.main(_spec("sync", tmp_path))
    asy = async_child.main(_spec("async", tmp_path, tracemalloc=True))
    assert sync["counts"] == asy["counts"]
    assert sync["errors"] == asy["errors"] == {}
    # One start record, three task records and an end record per workflow, at least; one LIST
    # (the head) per workflow.
    assert sync["counts"]["PUT"] >= 6 * 5
    assert sync["counts"]["LIST"] == 6
    assert sync["store"] == "LocalStore" and asy["store"] == "AsyncLocalStore"
    # The sync flavour holds a pool thread per workflow in flight, plus each run's task thread.
    assert sync["peak_threads"] >= 6
    assert asy["peak_threads"] < sync["peak_threads"]
    assert asy["tracemalloc_peak_mib"] > 0 and "tracemalloc_peak_mib" not in sync


def test_gathered_tasks_complete_in_both_flavours(tmp_path: Path) -> None:
    # Tasks finishing together may share a write (group commit), so the PUTs depend on timing.
    for flavour in ("sync", "async"):
        result = async_child.main(_spec(flavour, tmp_path, shape="gather"))
        assert result["counts"]["LIST"] == 6
        assert 6 * 3 <= result["counts"]["PUT"] <= 6 * 6


def test_a_run_that_does_not_complete_fails_the_benchmark(tmp_path: Path) -> None:
    spec = _spec("async", tmp_path)
    with pytest.raises(RuntimeError, match="did not complete right"):
        async_child._check([type("Run", (), {"status": "failed", "result": None})()], spec)


def test_the_table_shows_every_column_and_flags_different_counts() -> None:
    column = {
        "store": "S3Store",
        "counts": {"PUT": 130, "LIST": 10},
        "peak_threads": 40,
        "threads_before": 1,
        "maxrss_mib": 60.0,
        "rss_before_mib": 20.0,
        "wall_s": 1.0,
        "workers": 8,
    }
    executor = {
        "params": {"workflows": 10, "tasks": 10, "task_ms": 10, "shape": "seq"},
        "columns": {
            "sync-8": column,
            "sync-1000": {**column, "workers": 1000, "peak_threads": 1001},
            "async": {**column, "workers": 0, "peak_threads": 1, "counts": {"PUT": 131, "LIST": 10}},
        },
        "same_counts": False,
        "same_counts_without_errors": False,
    }
    results = {
        "store": "s3",
        "durability": "sync",
        "command": "cmd",
        "machine": {"cores": 2, "python": "3.11"},
        "executor": executor,
        "langgraph": None,
    }
    text = async_bench.render(results)
    assert "| requests per step (task) | 1.40 | 1.40 | 1.41 |" in text
    assert "| **peak threads in the process** | **40** | **1,001** | **1** |" in text
    assert "sync: `wf.run` on 1,000 threads" in text
    assert "NOT the same" in text and "LangGraph" not in text
    assert text.startswith(async_bench.BEGIN) and text.endswith(async_bench.END)
    assert async_bench._ints("64,1000") == [64, 1000]
    # Extra requests of a run whose store raised errors are the log's retries, and said so.
    executor["columns"]["async"]["counts"] = {"PUT": 130, "LIST": 10}
    executor["columns"]["sync-1000"]["counts"] = {"PUT": 133, "LIST": 10}
    executor["columns"]["sync-1000"]["errors"] = {"TransientStoreError": 3}
    text = async_bench.render(results)
    assert "NOT the same" not in text
    assert (
        "The asyncio run sends the same requests by kind as sync on 8 threads; sync on 1,000 threads: "
        "+3 PUT in all, after 3 store errors the log retried (3 TransientStoreError)." in text
    )
    assert async_bench._async_matches_sync(executor)
    assert "| store errors the log retried | 0 | 3 | 0 |" in text
