"""The workflows the executor benchmark runs (imported by the parent and by child processes)."""

from __future__ import annotations

import time
from typing import Any

from cairnflow.core import interrupt, task, workflow

#: Each task returns about 150 bytes of JSON.
PAYLOAD = "x" * 100


@task(name="step")
def step(i: int, delay: float = 0.0) -> dict[str, Any]:
    if delay:
        time.sleep(delay)
    return {"i": i, "text": PAYLOAD}


@workflow(name="bench_seq")
def seq(inp: dict[str, Any]) -> dict[str, Any]:
    """N tasks one after another; with ``wait``, then an interrupt (for the cold-resume test)."""
    total = 0
    for i in range(inp["n"]):
        total += step(i, inp.get("delay", 0.0)).result()["i"]
    answer = interrupt({"question": "continue?"}) if inp.get("wait") else None
    return {"total": total, "answer": answer}


@workflow(name="bench_par")
def par(inp: dict[str, Any]) -> dict[str, Any]:
    """N tasks started at once (8 worker threads), then gathered."""
    futures = [step(i, inp.get("delay", 0.0)) for i in range(inp["n"])]
    total = sum(f.result()["i"] for f in futures)
    answer = interrupt({"question": "continue?"}) if inp.get("wait") else None
    return {"total": total, "answer": answer}


WORKFLOWS = {"seq": seq, "par": par}
