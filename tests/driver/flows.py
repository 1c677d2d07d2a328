"""Workflows for the driver tests (importable by name, as ``cairnflow worker --import`` needs)."""

from __future__ import annotations

import os
import threading
from collections import Counter
from pathlib import Path

from cairnflow.core import callback, sleep, task, workflow

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


@task
def publish(path: str, token: str) -> None:
    # Hands the callback token to "the outside world": a file another process reads.
    Path(path).write_text(token)


@workflow
def sleeps_then_waits(path: str) -> object:
    """Sleeps ten minutes, then waits (an hour at most) for a callback completed elsewhere."""
    sleep(600)
    cb = callback(timeout=3600)
    publish(path, cb.token).result()
    return cb.wait()


@workflow
def naps(thread: str) -> int:
    """A step, an hour's sleep, a step."""
    first = step(thread, 1).result()
    sleep(3600)
    return first + step(thread, 2).result()


@workflow
def child_waits(path: str) -> object:
    """A child that waits for a callback completed elsewhere."""
    cb = callback()
    publish(path, cb.token).result()
    return cb.wait()


@workflow
def fans_out_to_waiting_children(folder: str) -> list[object]:
    """Three children, each waiting for its own callback."""
    futures = [child_waits.start(f"{folder}/token-{n}") for n in range(3)]
    return [f.result() for f in futures]


@workflow
def squares(tagged: list[object]) -> int:
    """A dispatched child: one step, its square."""
    tag, n = str(tagged[0]), int(str(tagged[1]))
    return step(tag, n).result()


@workflow
def dispatches(count: int) -> int:
    """Fans out ``count`` children to other invocations, then adds up their results."""
    futures = [squares.start([f"d{n}", n], dispatch=True) for n in range(count)]
    return sum(f.result() for f in futures)


@workflow
def survives_a_failed_child(thread: str) -> str:
    """A dispatched child that fails; the parent sees its exception."""
    try:
        return str(always_fails.start(thread, dispatch=True).result())
    except ValueError as exc:
        return f"caught {exc}"


@workflow
def fails_with_its_child(thread: str) -> int:
    """A dispatched child that fails; the parent does not catch it, so it fails the same way."""
    return always_fails.start(thread, dispatch=True).result()


@workflow
def fire_and_forget(count: int) -> str:
    """Dispatches children and ends without waiting for them."""
    for n in range(count):
        squares.start([f"ff{n}", n], dispatch=True)
    return "sent"


@workflow
def dispatches_twice(count: int) -> int:
    """Two dispatched children that each dispatch ``count`` grandchildren."""
    return sum(f.result() for f in [dispatches.start(count, dispatch=True) for _ in range(2)])
