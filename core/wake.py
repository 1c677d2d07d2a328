"""The wake-up seam: how a run that stops asks to be continued later.

A run that stops before it is finished (suspended at a deadline, waiting for
a timer, backing off before a retry, a dispatched child) is continued by
*somebody else*: a worker polling the store, or the cloud's own scheduler or
queue invoking the function again. The executor does not know which; it
hands a :class:`Wakeup` to a :class:`WakeScheduler`, and whatever receives
the wake-up later calls ``resume()`` on the thread.

Delivery is **at least once**. A wake-up may arrive twice, late, or for a run
that another invocation already continued: that is safe, because continuing
a run is fenced by the checkpoint log (a stale continuation gets
``ConflictError`` before it records anything) and continuing a run that has
nothing to do returns its current standing. A wake-up never carries state:
everything needed to continue is in the thread's log.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from typing import Protocol

from cairnflow.core.errors import InvalidArgumentError, SerializationError

__all__ = ["REASONS", "WakeScheduler", "Wakeup"]

#: Why a run asked to be woken.
REASONS = frozenset({"timer", "suspended", "retry", "callback", "callback_timeout", "child", "lease"})


@dataclass(frozen=True)
class Wakeup:
    """A request to continue ``thread_id`` (a run of ``workflow``) at ``at`` (epoch seconds).

    ``store`` is the store URL the thread lives in, for handlers that serve
    several stores; ``None`` means "the handler's own store".
    """

    thread_id: str
    workflow: str
    at: float
    reason: str = "suspended"
    store: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.at, (int, float)) or not math.isfinite(self.at) or self.at < 0:
            raise InvalidArgumentError(f"Wakeup.at must be epoch seconds, got {self.at!r}")
        if self.reason not in REASONS:
            raise InvalidArgumentError(f"Wakeup.reason must be one of {sorted(REASONS)}, got {self.reason!r}")
        if not self.thread_id or not self.workflow:
            raise InvalidArgumentError("Wakeup needs a thread_id and a workflow name")

    def to_json(self) -> str:
        """The wake-up as a small JSON document (the body of a queue message or schedule)."""
        return json.dumps({"cairnflow_wakeup": 1, **asdict(self)}, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> Wakeup:
        """Parse :meth:`to_json` output; ``SerializationError`` for anything else."""
        try:
            raw = json.loads(text)
            if not isinstance(raw, dict) or raw.pop("cairnflow_wakeup", None) != 1:
                raise ValueError("not a cairnflow wake-up")
            return cls(
                thread_id=str(raw["thread_id"]),
                workflow=str(raw["workflow"]),
                at=float(raw["at"]),
                reason=str(raw.get("reason", "suspended")),
                store=None if raw.get("store") is None else str(raw["store"]),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise SerializationError(
                f"not a cairnflow wake-up message ({exc}): {str(text)[:120]!r}; "
                "was this queue or schedule shared with another application?"
            ) from None


class WakeScheduler(Protocol):
    """Something that will deliver a :class:`Wakeup` at (or soon after) its time.

    Implementations: the store's own due index (``cairnflow.driver.DueIndex``,
    served by ``cairnflow worker``), EventBridge Scheduler or SQS on AWS, Cloud
    Tasks on Google Cloud, a Storage Queue on Azure. ``schedule`` must be
    idempotent: scheduling the same wake-up twice delivers it at least once.
    """

    def schedule(self, wakeup: Wakeup) -> None:
        """Arrange for ``wakeup`` to be delivered at ``wakeup.at``."""
