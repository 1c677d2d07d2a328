"""Feeding a generator of steps: the bookkeeping every driver of sans-IO logic repeats.

Logic written once as a generator (a task's attempts and records,
:func:`cairnflow.core.tasks.task_steps`; a callback's completion,
:func:`cairnflow.core.callbacks._end_steps`) yields what it needs done and
receives the result, or has the exception thrown in where a direct call would
have raised it. A sync driver and an async driver then differ only in how
they perform each effect::

    feed = Stepper(steps)
    while (effect := feed.next()) is not None:
        try:
            feed.reply = perform(effect)          # or: await perform(effect)
        except BaseException as exc:
            feed.error = exc
    return feed.result
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, Generic, TypeVar

__all__ = ["Stepper"]

E = TypeVar("E")
R = TypeVar("R")


class Stepper(Generic[E, R]):
    """Drives ``steps``: :meth:`next` gives the next effect (None once they returned ``result``)."""

    def __init__(self, steps: Generator[E, Any, R]) -> None:
        self._steps = steps
        #: What the last effect produced (sent in by :meth:`next`).
        self.reply: Any = None
        #: What the last effect raised (thrown in by :meth:`next`, where the step yielded).
        self.error: BaseException | None = None
        self.result: R | None = None

    def next(self) -> E | None:
        """Hand in the last reply (or error); return the next effect, or None when done."""
        try:
            effect = self._steps.send(self.reply) if self.error is None else self._steps.throw(self.error)
        except StopIteration as done:
            self.result = done.value
            return None
        self.reply, self.error = None, None
        return effect
