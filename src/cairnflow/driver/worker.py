"""The embedded driver: ``cairnflow worker URL --import MODULE`` continues due runs.

A worker imports the modules that define the workflows, then polls the
store's due index (:class:`~cairnflow.driver.due.DueIndex`). Each due
wake-up is claimed, handed to :class:`~cairnflow.driver.driver.Driver`, and
removed once handled. Several workers on several machines may serve one
store: claims make a due run normally continued by one worker only, and the
checkpoint log's fencing makes sure no step is recorded twice even when two
do.
"""

from __future__ import annotations

import importlib
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from cairnflow.core.errors import InvalidArgumentError
from cairnflow.core.executor import Workflow
from cairnflow.core.log import CheckpointLog
from cairnflow.driver.aloop import AsyncSaverSource
from cairnflow.driver.driver import Driver
from cairnflow.driver.due import DueIndex

__all__ = ["PollResult", "Worker", "workflows_in"]


def workflows_in(modules: Iterable[str | ModuleType]) -> list[Workflow[Any]]:
    """Every :class:`Workflow` defined at the top level of ``modules`` (imported by name)."""
    found: list[Workflow[Any]] = []
    for module in modules:
        loaded = importlib.import_module(module) if isinstance(module, str) else module
        found.extend(value for value in vars(loaded).values() if isinstance(value, Workflow))
    if not found:
        raise InvalidArgumentError(
            "no @workflow found in the imported modules; pass the modules that define them (--import)"
        )
    return found


@dataclass
class PollResult:
    """What one poll did: wake-ups found due, handled by us, and left to other workers."""

    due: int = 0
    handled: int = 0
    skipped: int = 0


class Worker:
    """Continues the runs of ``workflows`` that come due in ``saver``'s store.

    ``async_saver`` is the :class:`~cairnflow.driver.Driver`'s: where ``async def``
    workflows get their asyncio saver (by default one opened from ``saver``'s URL).
    """

    def __init__(
        self,
        saver: CheckpointLog,
        workflows: Iterable[Workflow[Any]],
        *,
        lease: float = 900.0,
        batch: int = 100,
        clock: Callable[[], float] = time.time,
        worker_id: str | None = None,
        async_saver: AsyncSaverSource = None,
    ) -> None:
        self.index = DueIndex(saver, claim_seconds=lease, worker_id=worker_id, clock=clock)
        self.driver = Driver(saver, self.index, workflows, lease=lease, clock=clock, async_saver=async_saver)
        self.batch = batch

    def poll(self) -> PollResult:
        """Handle every wake-up that is due now; one LIST when nothing is."""
        result = PollResult()
        for entry in list(self.index.due(limit=self.batch)):
            result.due += 1
            if not self.index.claim(entry):
                result.skipped += 1
                continue
            if not self.driver.deliver(entry.wakeup):
                continue  # the store is unwell: keep the entry; its claim expires and we retry
            self.index.done(entry)
            result.handled += 1
        return result

    def run(self, *, interval: float = 1.0, stop: threading.Event | None = None) -> None:
        """Poll until ``stop`` is set; wait ``interval`` seconds after a poll that handled nothing."""
        stop = stop or threading.Event()
        while not stop.is_set():
            # Also after a poll whose entries all were claimed by other workers: polling again at
            # once would spin (a LIST and a GET per entry) until those claims expire.
            if self.poll().handled == 0:
                stop.wait(interval)


def main(url: str, modules: list[str], *, interval: float, lease: float, once: bool) -> PollResult:
    """``cairnflow worker``: serve ``url`` until SIGTERM/SIGINT (or, with ``once``, until idle)."""
    import signal
    import sys

    from cairnflow.savers import open_saver

    if "" not in sys.path:
        sys.path.insert(0, "")  # like `python -m`: modules in the working directory import
    workflows = workflows_in(modules)  # a usage error before any request to the store
    worker = Worker(open_saver(url, create=False), workflows, lease=lease)
    total = PollResult()
    if once:
        while (result := worker.poll()).due:
            total.due += result.due
            total.handled += result.handled
            total.skipped += result.skipped
        return total
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    worker.run(interval=interval, stop=stop)
    return total
