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

It also measures one large value (2 MB) as its own object against the same value kept
inside the records (``results/durable_large.json``).
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


LARGE_RESULTS = Path(__file__).parent / "results" / "durable_large.json"


def large_value(inline_limit: int, *, mb: int = 2, small_steps: int = 20) -> dict[str, Any]:
    """One step returning ``mb`` MB, then ``small_steps`` small ones: what a large value costs.

    ``inline_limit`` 64 KiB is the default (the value is an object of its own); a huge one
    keeps it inside the record, as a log without payload objects would.
    """
    import base64
    import random

    from aws_durable_execution_sdk_python import DurableContext, durable_execution
    from aws_durable_execution_sdk_python.config import StepConfig, StepSemantics

    from cairnflow.aws_durable import CairnflowDurableClient, LocalRunner

    blob = base64.b64encode(random.Random(7).randbytes(mb * 1024 * 1024 * 3 // 4)).decode()
    once = StepConfig(step_semantics=StepSemantics.AT_MOST_ONCE_PER_RETRY)  # see docs/aws_durable.md

    @durable_execution
    def handler(event: Any, context: DurableContext) -> Any:
        size = len(context.step(lambda _: blob, name="large", config=once))
        for i in range(small_steps):
            context.step(lambda _, i=i: i, name=f"small-{i}")
        return size

    store = CountingStore(MemoryStore())
    client = CairnflowDurableClient(CheckpointLog(store, prefix="bench"), inline_limit=inline_limit)
    result = LocalRunner(handler, client).run()
    assert result.status == "SUCCEEDED" and result.value == len(blob), result
    sizes = [info.size for info in store.inner.list("bench/durable/v1/")]
    return {
        "inline_limit": inline_limit,
        "value_bytes": len(blob),
        "small_steps": small_steps,
        "counts": dict(store.counts),
        "bytes_written": store.bytes_written,
        "largest_checkpoint_object": max(sizes),
        "payload_objects": len(list(store.inner.list("bench/durable/payloads/"))),
    }


def main() -> int:
    large = [large_value(64 * 1024), large_value(1 << 40)]
    LARGE_RESULTS.parent.mkdir(parents=True, exist_ok=True)
    LARGE_RESULTS.write_text(json.dumps(large, indent=2) + "\n")
    for r in large:
        where = "own object" if r["payload_objects"] else "in the records"
        print(
            f"{r['value_bytes'] / 1e6:.1f} MB value + {r['small_steps']} steps, {where}: "
            f"{r['bytes_written'] / 1e6:.1f} MB written, {sum(r['counts'].values())} requests, "
            f"largest checkpoint object {r['largest_checkpoint_object'] / 1024:.0f} KiB"
        )
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
