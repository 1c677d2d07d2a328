"""``async def`` workflows for the driver tests (importable by name for ``cairnflow worker --import``)."""

from __future__ import annotations

import asyncio
import os
import threading
from collections import Counter
from pathlib import Path

from cairnflow.core import callback, sleep, task, workflow

#: How often each (thread, step) task body ran in this process.
EXECUTIONS: Counter[str] = Counter()
_lock = threading.Lock()


@task
async def astep(thread: str, n: int) -> int:
    with _lock:
        EXECUTIONS[f"{thread}:{n}"] += 1
    return n * n


@workflow
async def afive_steps(thread: str) -> int:
    total = 0
    for n in range(5):
        total += await astep(thread, n)
    return total


@task
async def afragile(marker: str, n: int) -> int:
    # Dies (like a Lambda timeout or an OOM kill) the first time it runs step 2.
    path = Path(marker)
    if n == 2 and not path.exists():
        path.write_text("died once")
        os._exit(9)
    return n


@workflow
async def adies_once(marker: str) -> int:
    total = 0
    for n in range(4):
        total += await afragile(marker, n)
    return total


@task
def publish(path: str, token: str) -> None:
    # A plain task in an async workflow: hands the callback token to another process via a file.
    Path(path).write_text(token)


@workflow
async def asleeps_then_waits(path: str) -> object:
    """Sleeps ten minutes, then waits (an hour at most) for a callback completed elsewhere."""
    await sleep(600)
    cb = callback(timeout=3600)
    await publish(path, cb.token)
    return await cb.wait()


@workflow
async def achild_waits(path: str) -> object:
    """A child that waits for a callback completed elsewhere."""
    cb = callback()
    await publish(path, cb.token)
    return await cb.wait()


@workflow
async def afans_out_to_waiting_children(folder: str) -> list[object]:
    """Three children, each waiting for its own callback."""
    futures = [achild_waits.start(f"{folder}/token-{n}") for n in range(3)]
    return [await f for f in futures]


@task
async def ahangs(marker: str, n: int) -> int:
    # The first time it runs step 2, says so and hangs: the test SIGKILLs the process here.
    path = Path(marker)
    if n == 2 and not path.exists():
        path.write_text("hung once")
        print("IN-TASK", flush=True)
        threading.Event().wait()
    return n


@workflow
async def ahangs_once(marker: str) -> int:
    total = 0
    for n in range(4):
        total += await ahangs(marker, n)
    return total


@task
async def asquare(n: int) -> int:
    return n * n + 7


@task
def triple(v: int) -> int:
    return v * 3


@workflow
async def aleaf(n: int) -> int:
    """A child: an async task, then a plain one."""
    return await triple(await asquare(n))


@workflow
async def ajourney(path: str) -> dict[str, object]:
    """Issue 17's journey, async: sleep, wait for a callback, then fan out 20 children at once."""
    await sleep(600)
    cb = callback(timeout=3600)
    await publish(path, cb.token)
    approval = await cb.wait()
    results = await asyncio.gather(*[aleaf.start(n) for n in range(20)])
    return {"approval": approval, "total": sum(results)}


@workflow
async def asquares(tagged: list[object]) -> int:
    """A dispatched async child: one step, its square."""
    tag, n = str(tagged[0]), int(str(tagged[1]))
    return await astep(tag, n)


@workflow
async def adispatches(count: int) -> int:
    """Fans out ``count`` async children to other invocations, then adds up their results."""
    futures = [asquares.start([f"d{n}", n], dispatch=True) for n in range(count)]
    return sum(await asyncio.gather(*futures))


@task
async def adeclined(thread: str) -> int:
    with _lock:
        EXECUTIONS[f"{thread}:declined"] += 1
    raise ValueError("card declined")


@workflow
async def aalways_fails(thread: str) -> int:
    return await adeclined(thread)


@workflow
async def asurvives_a_failed_child(thread: str) -> str:
    """A dispatched child that fails; the parent sees its exception."""
    try:
        return str(await aalways_fails.start(thread, dispatch=True))
    except ValueError as exc:
        return f"caught {exc}"


@workflow
async def afire_and_forget(count: int) -> str:
    """Dispatches children and ends without waiting for them."""
    for n in range(count):
        asquares.start([f"aff{n}", n], dispatch=True)
    return "sent"


@workflow
async def adispatches_twice(count: int) -> int:
    """Two dispatched children that each dispatch ``count`` grandchildren."""
    return sum(await asyncio.gather(*[adispatches.start(count, dispatch=True) for _ in range(2)]))
