"""Waking runs on Azure: Storage Queue messages made visible at the wake time.

:class:`StorageQueueWakeScheduler` sends the :class:`Wakeup` with a
visibility timeout, so the message appears in the queue when it is due and
the queue-triggered function (or :func:`drain` in a plain process) continues
the run. A message may be hidden for at most 7 days: longer waits are chained
(the message arrives early and is sent again for the rest). Messages never
expire (``time_to_live=-1``), so a wake-up cannot silently vanish.

In an Azure Functions queue trigger, call :func:`handle_message` with the
message body; raising lets the Functions host retry it (and move it to the
poison queue after ``maxDequeueCount``).

Requires ``pip install "cairnflow[azure-queue]"`` (azure-storage-queue), imported when used.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from cairnflow.core.errors import TransientStoreError
from cairnflow.core.wake import Wakeup
from cairnflow.driver.driver import WakeHandler

__all__ = ["MAX_VISIBILITY", "StorageQueueWakeScheduler", "drain", "handle_message"]

#: Azure Storage Queue's largest visibility timeout (7 days), less a second.
MAX_VISIBILITY = 7 * 86400 - 1


class StorageQueueWakeScheduler:
    """Wake-ups as messages on an Azure Storage Queue (an ``azure.storage.queue.QueueClient``)."""

    def __init__(self, queue_client: Any, *, clock: Callable[[], float] = time.time) -> None:
        self.queue = queue_client
        self.clock = clock

    def schedule(self, wakeup: Wakeup) -> None:
        hidden = min(MAX_VISIBILITY, max(0, math.ceil(wakeup.at - self.clock())))
        self.queue.send_message(wakeup.to_json(), visibility_timeout=hidden, time_to_live=-1)


def handle_message(driver: WakeHandler, body: str | bytes, **options: Any) -> None:
    """Continue the run a queue message names (for an Azure Functions queue trigger).

    Raises when the store failed, so that the host delivers the message again.
    """
    if not driver.deliver(Wakeup.from_json(body), **options):
        raise TransientStoreError(
            f"store unavailable while continuing {body!r:.80}; the message will be retried"
        )


def drain(driver: WakeHandler, queue_client: Any, *, max_messages: int = 32, visibility: int = 300) -> int:
    """Handle every message visible now (a worker loop's step outside Azure Functions); return how many.

    A message is deleted once handled; one whose store call failed stays and
    reappears after ``visibility`` seconds.
    """
    handled = 0
    for message in queue_client.receive_messages(max_messages=max_messages, visibility_timeout=visibility):
        if driver.deliver(Wakeup.from_json(message.content)):
            queue_client.delete_message(message)
            handled += 1
    return handled
