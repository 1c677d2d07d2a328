"""Durable timers: ``sleep`` and ``sleep_until`` inside a workflow body.

A timer takes a position like a task call. The first time the body reaches
it, its wake time is computed once and recorded (``timer`` record), so every
replay waits for the same moment. Then:

- the wake time has passed: the body goes on at once;
- it falls before the run's ``deadline`` less ``reserve``: the run waits in
  its own process (the timer record is stored first, so a process killed
  during the wait resumes towards the same moment);
- otherwise, and always for a run without a deadline (a serverless function
  must not sit idle for a week): the run stops with status ``"waiting"`` and
  ``Run.wake_at``, everything recorded. ``resume()`` (no value) before then
  returns ``"waiting"`` again without writing anything; after it, the body
  continues past the timer. :class:`cairnflow.driver.Driver` schedules that
  resume by itself.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Generator
from typing import TYPE_CHECKING, Any

from cairnflow.core.errors import InvalidArgumentError, MisuseError
from cairnflow.core.tasks import current_run

if TYPE_CHECKING:
    import datetime

    from cairnflow.core.replay import RunContext

__all__ = ["PAUSED", "Pause", "Waiting", "in_process_delay", "sleep", "sleep_until"]


class Waiting(BaseException):
    """Unwinds the workflow body at a timer or callback it must not wait for in process.

    ``wake_at`` is when the run should be continued (epoch seconds), or None
    when only a callback's completion can continue it.
    """

    def __init__(self, wake_at: float | None) -> None:
        super().__init__("workflow waiting")
        self.wake_at = wake_at


def current_context(what: str) -> RunContext:
    """The running workflow body's context, or :class:`MisuseError` naming ``what``."""
    ctx = current_run.get(None)
    if ctx is None:
        raise MisuseError(
            f"{what} was called outside a workflow body (e.g. inside a task, which runs on a pool "
            "thread): call it in the @workflow function itself"
        )
    return ctx


def _seconds(duration: float | datetime.timedelta) -> float:
    import datetime  # only a workflow that sleeps pays for it

    if isinstance(duration, datetime.timedelta):
        seconds = duration.total_seconds()
    elif isinstance(duration, (int, float)) and not isinstance(duration, bool):
        seconds = float(duration)
    else:
        raise InvalidArgumentError(
            f"sleep() takes seconds (a number) or a datetime.timedelta, not {type(duration).__name__}"
        )
    if not math.isfinite(seconds) or seconds < 0:
        raise InvalidArgumentError(f"sleep() needs a finite, non-negative duration, got {duration!r}")
    return seconds


def _epoch(moment: float | datetime.datetime) -> float:
    import datetime

    if isinstance(moment, datetime.datetime):
        if moment.tzinfo is None:
            raise InvalidArgumentError(
                f"sleep_until() needs a timezone-aware datetime, got the naive {moment!r}: "
                "e.g. datetime.now(timezone.utc) + timedelta(days=7)"
            )
        return moment.timestamp()
    if isinstance(moment, (int, float)) and not isinstance(moment, bool) and math.isfinite(moment):
        return float(moment)
    raise InvalidArgumentError(f"sleep_until() takes an aware datetime or epoch seconds, not {moment!r}")


def sleep(duration: float | datetime.timedelta) -> Pause:
    """Pause the workflow for ``duration`` (seconds or a ``timedelta``), durably.

    The wake time (now + ``duration``) is computed once and recorded: a replay,
    in any process, waits for the same moment. See the module documentation
    for when the run waits in process and when it stops as ``"waiting"``. In an
    async workflow: ``await sleep(...)`` (the wait is an ``asyncio.sleep``).
    """
    seconds = _seconds(duration)
    ctx = current_context("sleep()")
    return ctx.call_timer(lambda: time.time() + seconds)


def sleep_until(moment: float | datetime.datetime) -> Pause:
    """Pause the workflow until ``moment`` (an aware ``datetime`` or epoch seconds), durably.

    In an async workflow: ``await sleep_until(...)`` (as ``await sleep(...)``).
    """
    at = _epoch(moment)
    ctx = current_context("sleep_until()")
    return ctx.call_timer(lambda: at)


class Pause:
    """What ``sleep()``/``sleep_until()`` return: ``await`` it in an async workflow.

    In a sync workflow the wait is over when the call returns (awaiting is then a no-op).
    """

    def __init__(self, waiting: Awaitable[None] | None = None) -> None:
        self._waiting = waiting

    def __await__(self) -> Generator[Any, None, None]:
        if self._waiting is not None:
            yield from self._waiting.__await__()


#: A pause that is already over.
PAUSED = Pause()


def in_process_delay(ctx: RunContext, wake_at: float) -> float:
    """How long the run waits for ``wake_at`` in its own process (0: it has passed).

    Raises :class:`Waiting` when the run must stop instead (no deadline, or the
    wake time falls past it). Before an in-process wait the timer record is
    committed, so a killed process resumes towards the same moment.
    """
    delay = wake_at - time.time()
    if delay <= 0:
        return 0.0
    if ctx.deadline is not None and wake_at + ctx.reserve < ctx.deadline and not ctx.suspending:
        ctx.before_task()  # the start record and the pending answer, if any
        ctx.write_now([])  # the staged timer record: a killed process resumes towards it
        return delay
    raise Waiting(wake_at)
