"""The embedded wake-up schedule: a due index kept in the same store as the threads.

Layout, under the store's prefix::

    v1/due/at/{at in ms, 16 digits}-{thread digest}      one pending wake-up (JSON)
    v1/due/claims/{entry name}/{generation, 6 digits}    who is handling it, until when

Keys sort by wake time, so "what is due?" is one LIST from the start of
``v1/due/at/`` that stops at the first entry still in the future: an idle
poll costs one request however many threads the store holds, and finished
threads leave nothing here (their entries are deleted once handled).

Claims keep several workers from continuing the same run at once. A claim is
a create-only object that expires; a worker that finds an expired claim
creates the next generation (also create-only), so two workers can never
hold the same entry's claim together. Claims are an economy, not the safety
net: continuing a run is fenced by the thread's log, so a run continued
twice (a claim that expired while its worker was merely slow) still records
each step once.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from cairnflow.core.errors import AlreadyExistsError, NotFoundError, SerializationError
from cairnflow.core.log import CheckpointLog
from cairnflow.core.store import CREATE, ObjectStore
from cairnflow.core.wake import Wakeup

__all__ = ["DueEntry", "DueIndex"]

_AT_DIGITS = 16

#: How many milliseconds a wake-up moves past claimed twins before it gives up looking.
_BUMPS = 1000


@dataclass(frozen=True)
class DueEntry:
    """A wake-up found in the index, with the key it is stored under."""

    key: str
    wakeup: Wakeup

    @property
    def name(self) -> str:
        return self.key.rsplit("/", 1)[1]


class DueIndex:
    """A :class:`~cairnflow.core.wake.WakeScheduler` that keeps wake-ups in the store itself.

    ``cairnflow worker`` (:class:`cairnflow.driver.Worker`) polls it. Costs:
    ``schedule`` 1 PUT; an idle ``due()`` 1 LIST; handling an entry 1 LIST +
    1 PUT to claim it (+1 GET when another worker's claim is found), 2+
    DELETEs when done.
    """

    def __init__(
        self,
        saver: CheckpointLog,
        *,
        claim_seconds: float = 300.0,
        worker_id: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store: ObjectStore = saver.store
        self.root = f"{saver.prefix}v1/due/"
        self.claim_seconds = claim_seconds
        self.worker_id = worker_id or f"{os.uname().nodename}:{os.getpid()}:{os.urandom(4).hex()}"
        self.clock = clock

    # ---------------------------------------------------------------- schedule

    def key_for(self, wakeup: Wakeup) -> str:
        # Thread ids may hold any character: the key names a digest, the body the id.
        digest = hashlib.sha256(f"{wakeup.workflow}\0{wakeup.thread_id}".encode()).hexdigest()[:24]
        at_ms = round(wakeup.at * 1000)
        return f"{self.root}at/{at_ms:0{_AT_DIGITS}d}-{digest}"

    def schedule(self, wakeup: Wakeup) -> None:
        """Record ``wakeup`` (create-only; a wake-up for the same run at the same time is one).

        A twin that a worker has already claimed is being handled, and may have read the
        run's state before what this wake-up announces (a child's end): it would be
        deleted once handled, so this one is recorded a millisecond later instead.
        """
        for _ in range(_BUMPS):
            key = self.key_for(wakeup)
            try:
                self.store.put(key, wakeup.to_json().encode(), CREATE)
                return
            except AlreadyExistsError:
                # Our own earlier (ambiguous) attempt, or a twin for the same run and time.
                name = key.rsplit("/", 1)[1]
                if next(iter(self.store.list(f"{self.root}claims/{name}/", limit=1)), None) is None:
                    return  # not claimed yet: the worker that claims it reads the run after us
                wakeup = dataclasses.replace(wakeup, at=wakeup.at + 0.001)

    def cancel(self, wakeup: Wakeup) -> None:
        """Forget ``wakeup`` if it is still pending (used for leases that ended cleanly)."""
        self.store.delete(self.key_for(wakeup))

    # ---------------------------------------------------------------- serve

    def due(self, *, limit: int = 100) -> Iterator[DueEntry]:
        """Yield pending wake-ups whose time has come, earliest first (one LIST when idle)."""
        now_ms = round(self.clock() * 1000)
        for info in self.store.list(f"{self.root}at/", limit=limit):
            name = info.key.rsplit("/", 1)[1]
            at_text = name.split("-", 1)[0]
            if not at_text.isdigit():
                continue  # not ours; verify reports foreign objects
            if int(at_text) > now_ms:
                return  # keys sort by time: everything after this is later still
            try:
                wakeup = Wakeup.from_json(self.store.get(info.key).data)
            except NotFoundError:
                continue  # handled by another worker since the listing
            except SerializationError as exc:
                raise SerializationError(f"{info.key}: {exc}") from None
            yield DueEntry(info.key, wakeup)

    def claim(self, entry: DueEntry) -> bool:
        """Take ``entry`` for ``claim_seconds``; False when another worker holds it."""
        folder = f"{self.root}claims/{entry.name}/"
        latest = None
        for info in self.store.list(folder):
            latest = info.key
        generation = 0
        if latest is not None:
            try:
                held = json.loads(self.store.get(latest).data)
                if float(held["until"]) > self.clock():
                    return False
            except NotFoundError:
                pass  # released meanwhile: claim afresh below
            except (ValueError, KeyError, TypeError):
                pass  # an unreadable claim protects nothing
            generation = int(latest.rsplit("/", 1)[1]) + 1
        body = json.dumps({"worker": self.worker_id, "until": self.clock() + self.claim_seconds})
        try:
            self.store.put(f"{folder}{generation:06d}", body.encode(), CREATE)
        except AlreadyExistsError:
            return False  # another worker claimed the same generation first
        return True

    def done(self, entry: DueEntry) -> None:
        """Remove a handled entry and its claims."""
        self.store.delete(entry.key)
        folder = f"{self.root}claims/{entry.name}/"
        for info in list(self.store.list(folder)):
            self.store.delete(info.key)
