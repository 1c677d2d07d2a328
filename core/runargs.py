"""Checking the arguments of ``Workflow.run()``/``resume()`` before anything is read or written.

A wrong deadline used to surface only once the body ran (a ``datetime``
failed the thread with a TypeError; milliseconds silently disabled the
deadline): every argument is now checked up front and refused with a typed
error that names it and says what to pass instead.
"""

from __future__ import annotations

import math
import time
from typing import Any

from cairnflow.core.committer import DURABILITIES
from cairnflow.core.errors import InvalidArgumentError, MisuseError

__all__ = ["DEFAULT_RESERVE", "MAX_AHEAD", "MAX_BEHIND", "check_run_args"]

#: The default ``reserve`` when a deadline is given: one second, but never more than a
#: tenth of the time left (a 2 s budget keeps 0.2 s back, not half of it).
DEFAULT_RESERVE = 1.0
#: How far ahead a deadline may be (a year): further means it is not epoch seconds.
MAX_AHEAD = 366 * 86400.0
#: How far behind now a deadline may be (a day; a deadline already passed suspends at once).
MAX_BEHIND = 86400.0


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_run_args(
    *,
    saver: Any,
    durability: Any,
    deadline: Any,
    reserve: Any,
    max_workers: Any,
) -> float:
    """Refuse bad arguments with a typed error; return the ``reserve`` to use."""
    if isinstance(saver, (str, bytes)) or not (hasattr(saver, "latest") and hasattr(saver, "append")):
        raise MisuseError(
            f"saver must be a CheckpointSaver, not {type(saver).__name__} {saver!r}: open one with "
            "cairnflow.savers.open_saver(url), e.g. open_saver('file://./.cairnflow')"
        )
    if durability not in DURABILITIES:
        raise InvalidArgumentError(f"durability must be one of {DURABILITIES}, not {durability!r}")
    if not _is_number(max_workers) or isinstance(max_workers, float) or max_workers < 1:
        raise InvalidArgumentError(f"max_workers must be an int >= 1, not {max_workers!r}")
    if reserve is not None and (not _is_number(reserve) or not math.isfinite(reserve) or reserve < 0):
        raise InvalidArgumentError(f"reserve must be a number of seconds >= 0, not {reserve!r}")
    if deadline is None:
        return float(reserve or 0.0)
    if not _is_number(deadline):
        hint = " (pass deadline.timestamp())" if hasattr(deadline, "timestamp") else ""
        raise InvalidArgumentError(
            f"deadline must be seconds since the epoch (a float, like time.time() + 60), "
            f"not {type(deadline).__name__} {deadline!r}{hint}"
        )
    now = time.time()
    if not math.isfinite(deadline) or deadline > now + MAX_AHEAD:
        raise InvalidArgumentError(
            f"deadline {deadline!r} is more than a year ahead: it must be seconds since the epoch "
            "(milliseconds? divide by 1000)"
        )
    if deadline < now - MAX_BEHIND:
        raise InvalidArgumentError(
            f"deadline {deadline!r} is more than a day in the past: it must be seconds since the epoch, "
            "like time.time() + 60 (a relative number of seconds?)"
        )
    if reserve is None:
        return min(DEFAULT_RESERVE, max(0.0, (float(deadline) - now) / 10))
    return float(reserve)
