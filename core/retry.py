"""Retry policies: exponential backoff with full jitter.

One :class:`RetryPolicy` type serves both tasks (``@task(retry=...)``) and
the checkpoint protocol's own store requests (transient store errors only).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from cairnflow.core import observe

__all__ = ["RetryPolicy", "call_with_retry", "retry_delay"]

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How often, how patiently and on what to try again.

    ``max_attempts`` counts the first try. The wait before retry ``n``
    (1-based) is drawn uniformly from ``[0, min(max_interval,
    initial_interval * backoff_factor ** (n - 1))]`` ("full jitter"), or is
    exactly that bound when ``jitter`` is false. ``retry_on`` is a tuple of
    exception types, or a predicate on the exception.
    """

    max_attempts: int = 3
    initial_interval: float = 0.5
    backoff_factor: float = 2.0
    max_interval: float = 30.0
    jitter: bool = True
    retry_on: tuple[type[BaseException], ...] | Callable[[BaseException], bool] = field(default=(Exception,))

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.initial_interval < 0 or self.max_interval < 0 or self.backoff_factor < 1:
            raise ValueError("intervals must be >= 0 and backoff_factor >= 1")

    def should_retry(self, exc: BaseException) -> bool:
        if isinstance(self.retry_on, tuple):
            return isinstance(exc, self.retry_on)
        return bool(self.retry_on(exc))

    def delay(self, retry_number: int) -> float:
        bound = min(self.max_interval, self.initial_interval * self.backoff_factor ** (retry_number - 1))
        if not self.jitter:
            return bound
        import random  # only a retry needs it: keep it out of the import of the core

        return random.uniform(0, bound)


def retry_delay(policy: RetryPolicy, attempt: int, exc: BaseException) -> float | None:
    """After attempt ``attempt`` (1-based) failed with ``exc``: seconds to wait, or None to give up.

    THE retry decision, shared by :func:`call_with_retry`, the protocol's steps
    (:func:`cairnflow.core.steps.retried`) and asyncio callers; it reports each
    retry as a ``cairnflow.retry`` event.
    """
    if attempt >= policy.max_attempts or not policy.should_retry(exc):
        return None
    observe.event("cairnflow.retry", attempt=attempt, error_type=type(exc).__name__)
    return policy.delay(attempt)


def call_with_retry(
    fn: Callable[[], T],
    policy: RetryPolicy,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call ``fn`` until it succeeds, the policy declines the error, or attempts run out."""
    attempt = 1
    while True:
        try:
            return fn()
        except Exception as exc:
            delay = retry_delay(policy, attempt, exc)
            if delay is None:
                raise
            sleep(delay)
            attempt += 1
