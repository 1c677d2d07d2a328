"""Workflows for the driver tests (importable by name, as ``cairnflow worker --import`` needs)."""

from __future__ import annotations

import os
import threading
from collections import Counter
from pathlib import Path

from cairnflow.core import task, workflow

#: How often each (thread, step) task body ran in this process.
EXECUTIONS: Counter[str] = Counter()
_lock = threading.Lock()


@task
def step(thread: str, n: int) -> int:
    with _lock:
        EXECUTIONS[f"{thread}:{n}"] += 1
    return n * n


@workflow
def five_steps(thread: str) -> int:
    return sum(step(thread, n).result() for n in range(5))


@task
def fragile(marker: str, n: int) -> int:
    # Dies (like a Lambda timeout or an OOM kill) the first time it runs step 2.
    path = Path(marker)
    if n == 2 and not path.exists():
        path.write_text("died once")
        os._exit(9)
    return n


@workflow
def dies_once(marker: str) -> int:
    return sum(fragile(marker, n).result() for n in range(4))


@task
def declined(thread: str) -> int:
    with _lock:
        EXECUTIONS[f"{thread}:declined"] += 1
    raise ValueError("card declined")


@workflow
def always_fails(thread: str) -> int:
    return declined(thread).result()
