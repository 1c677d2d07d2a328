"""Retry policies: validation, the backoff bound, jitter, and the retry loop."""

from __future__ import annotations

import random

import pytest

from cairnflow.core.errors import AlreadyExistsError, TransientStoreError
from cairnflow.core.retry import RetryPolicy, call_with_retry


@pytest.mark.parametrize(
    "kwargs",
    [{"max_attempts": 0}, {"initial_interval": -1}, {"max_interval": -1}, {"backoff_factor": 0.5}],
)
def test_invalid_policies_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


def test_backoff_is_exponential_and_capped_without_jitter() -> None:
    policy = RetryPolicy(initial_interval=0.5, backoff_factor=2, max_interval=3, jitter=False)
    assert [policy.delay(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3, 3]


def test_full_jitter_stays_within_the_bound_and_varies() -> None:
    random.seed(7)
    policy = RetryPolicy(initial_interval=1, backoff_factor=2, max_interval=30)
    delays = [policy.delay(3) for _ in range(200)]
    assert all(0 <= d <= 4 for d in delays)
    assert len(set(delays)) > 150 and max(delays) > 3 and min(delays) < 1


def test_should_retry_takes_types_or_a_predicate() -> None:
    by_type = RetryPolicy(retry_on=(TransientStoreError,))
    assert by_type.should_retry(TransientStoreError("x")) and not by_type.should_retry(ValueError())
    by_predicate = RetryPolicy(retry_on=lambda exc: "again" in str(exc))
    assert by_predicate.should_retry(ValueError("again")) and not by_predicate.should_retry(ValueError("no"))


class _Flaky:
    def __init__(self, failures: list[Exception]) -> None:
        self.failures = failures
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return "done"


def test_retries_until_success_sleeping_the_policy_delays() -> None:
    fn = _Flaky([TransientStoreError("1"), TransientStoreError("2")])
    slept: list[float] = []
    policy = RetryPolicy(max_attempts=5, initial_interval=1, jitter=False, retry_on=(TransientStoreError,))
    assert call_with_retry(fn, policy, sleep=slept.append) == "done"
    assert fn.calls == 3 and slept == [1, 2]


def test_gives_up_after_max_attempts_with_the_last_error() -> None:
    fn = _Flaky([TransientStoreError(str(i)) for i in range(5)])
    slept: list[float] = []
    with pytest.raises(TransientStoreError, match="2"):
        call_with_retry(fn, RetryPolicy(max_attempts=3, jitter=False), sleep=slept.append)
    assert fn.calls == 3 and len(slept) == 2


def test_an_error_the_policy_declines_is_raised_at_once() -> None:
    fn = _Flaky([AlreadyExistsError("taken")])
    slept: list[float] = []
    with pytest.raises(AlreadyExistsError):
        call_with_retry(fn, RetryPolicy(retry_on=(TransientStoreError,)), sleep=slept.append)
    assert fn.calls == 1 and slept == []
