"""AsyncLocalStore runs its writes and deletes off the event loop (an fsync must not stop other tasks)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading
from pathlib import Path
from typing import Any

import pytest

from cairnflow.core.errors import AlreadyExistsError, NotFoundError
from cairnflow.core.store import CREATE
from cairnflow.savers import local
from cairnflow.savers.local import AsyncLocalStore


def test_a_write_blocked_in_fsync_lets_the_loop_run_other_tasks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fsync waits for an event only another task of the loop sets: inline, it would never be set."""
    released = threading.Event()
    real_fsync = os.fsync
    fsync_threads: list[int] = []

    entered: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []

    def gated_fsync(fd: int) -> None:
        fsync_threads.append(threading.get_ident())
        loop, in_fsync = entered[0]
        loop.call_soon_threadsafe(in_fsync.set)  # tell the loop; only a free loop can answer
        if not released.wait(timeout=10):  # a deadlock bound, not a pacing sleep
            raise AssertionError("the loop did not run while a write was in fsync")
        real_fsync(fd)

    monkeypatch.setattr(local.os, "fsync", gated_fsync)

    async def main() -> tuple[str, Any]:
        store = AsyncLocalStore(tmp_path)
        in_fsync = asyncio.Event()
        entered.append((asyncio.get_running_loop(), in_fsync))
        writing = asyncio.create_task(store.put("t/a", b"body", CREATE))
        await in_fsync.wait()  # the loop runs this task while the write sits in fsync
        released.set()
        version = await writing
        with pytest.raises(AlreadyExistsError):  # create-only still holds through the thread
            await store.put("t/a", b"other", CREATE)
        await store.delete("t/a")
        with pytest.raises(NotFoundError):
            await store.get("t/a")
        return version, threading.get_ident()

    version, loop_thread = asyncio.run(main())
    assert version
    assert fsync_threads and loop_thread not in fsync_threads


def test_writes_do_not_wait_behind_plain_tasks_in_the_default_executor(tmp_path: Path) -> None:
    """Plain ``def`` tasks run in the loop's default executor; a full one must not hold up writes."""
    released = threading.Event()

    def blocked() -> None:
        released.wait(timeout=10)  # a deadlock bound: set as soon as the write has finished

    async def main() -> str:
        loop = asyncio.get_running_loop()
        pool = concurrent.futures.ThreadPoolExecutor(2)
        loop.set_default_executor(pool)
        hogs = [asyncio.create_task(asyncio.to_thread(blocked)) for _ in range(4)]  # all of it, and queued
        try:
            store = AsyncLocalStore(tmp_path)
            return await asyncio.wait_for(store.put("t/a", b"body", CREATE), timeout=5)
        finally:
            released.set()
            await asyncio.gather(*hogs)

    assert asyncio.run(main())
