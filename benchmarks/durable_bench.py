"""Requests per durable step: an AWS Durable Execution SDK handler on cairnflow vs cairnflow's executor.

The same work, N sequential steps that each return about 150 bytes, run two ways on one
counted store (``CountingStore``: every PUT, GET, LIST and DELETE and the bytes):

* ``aws-sdk``: ``@durable_execution`` with N ``context.step`` calls, run by
  ``cairnflow.aws_durable.LocalRunner`` (default at-least-once steps: START and
  SUCCEED of a step go in one checkpoint call);
* ``cairnflow``: ``@workflow`` with N ``@task`` calls (``benchmarks.flows.seq``),
  durability ``sync``.

Both on a memory store and a local directory; no emulator needed.

    .venv/bin/python -m benchmarks.durable_bench            # prints the table, writes results/durable.json
"""

from __future__ import annotations

import json
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

from cairnflow.core.counting import CountingStore
from cairnflow.core.log import CheckpointLog
from cairnflow.core.store import ObjectStore
from cairnflow.savers.local import LocalStore
from cairnflow.savers.memory import MemoryStore

SIZES = (10, 100)
RESULTS = Path(__file__).parent / "results" / "durable.json"


def _aws_sdk(store: CountingStore, n: int) -> None:
    from aws_durable_execution_sdk_python import DurableContext, durable_execution

    from benchmarks.flows import PAYLOAD
    from cairnflow.aws_durable import CairnflowDurableClient, LocalRunner

    @durable_execution
    def handler(event: Any, context: DurableContext) -> Any:
        total = 0
        for i in range(event["n"]):
            total += context.step(lambda _, i=i: {"i": i, "text": PAYLOAD}, name=f"step-{i}")["i"]
        return {"total": total}

    client = CairnflowDurableClient(CheckpointLog(store, prefix="bench"))
    result = LocalRunner(handler, client).run({"n": n})
    assert result.status == "SUCCEEDED", result


def _cairnflow(store: CountingStore, n: int) -> None:
    from benchmarks.flows import seq

    saver = CheckpointLog(store, prefix="bench")
    seq.run({"n": n}, thread_id=f"bench-{uuid.uuid4().hex[:8]}", saver=saver, durability="sync")


def measure(kind: str, backend: str, n: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="cairnflow-durable-bench-") as tmp:
        inner: ObjectStore = MemoryStore() if backend == "memory" else LocalStore(tmp)
        store = CountingStore(inner)
        (_aws_sdk if kind == "aws-sdk" else _cairnflow)(store, n)
        counts = dict(store.counts)
        requests = sum(counts.values())
        return {
            "kind": kind,
            "backend": backend,
            "n": n,
            "counts": counts,
            "requests": requests,
            "requests_per_step": requests / n,
            "puts_per_step": counts.get("PUT", 0) / n,
            "bytes_written_per_step": store.bytes_written / n,
            "bytes_read_per_step": store.bytes_read / n,
        }


def main() -> int:
    rows = [measure(k, b, n) for b in ("memory", "local") for n in SIZES for k in ("aws-sdk", "cairnflow")]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(rows, indent=2) + "\n")
    print(
        f"{'backend':8s} {'n':>4s} {'runs as':10s} {'PUT':>5s} {'GET':>4s} {'LIST':>5s} "
        f"{'req/step':>9s} {'PUT/step':>9s} {'KB written/step':>16s}"
    )
    for r in rows:
        c = r["counts"]
        print(
            f"{r['backend']:8s} {r['n']:4d} {r['kind']:10s} {c.get('PUT', 0):5d} {c.get('GET', 0):4d} "
            f"{c.get('LIST', 0):5d} {r['requests_per_step']:9.2f} {r['puts_per_step']:9.2f} "
            f"{r['bytes_written_per_step'] / 1024:16.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
