"""cairnflow.driver: what wakes runs that stopped before they finished.

- :class:`Driver` starts and continues runs, scheduling the wake-ups they need
  (a lease while running, a follow-up when suspended or waiting).
- :class:`DueIndex` is the embedded schedule, kept in the store itself and
  served by :class:`Worker` (``cairnflow worker URL --import MODULE``).
- ``cairnflow.driver.aws``, ``.gcp`` and ``.azure`` schedule through each
  cloud's own scheduler or queue instead, so the function is invoked again
  with no worker of ours running.
"""

from __future__ import annotations

from cairnflow.core.wake import WakeScheduler, Wakeup
from cairnflow.driver.driver import Driver
from cairnflow.driver.due import DueEntry, DueIndex
from cairnflow.driver.worker import PollResult, Worker, workflows_in

__all__ = [
    "Driver",
    "DueEntry",
    "DueIndex",
    "PollResult",
    "WakeScheduler",
    "Wakeup",
    "Worker",
    "workflows_in",
]
