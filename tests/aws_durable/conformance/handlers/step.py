"""Suite "step" (1-1 .. 1-20), written from the requirements' YAML."""

from __future__ import annotations

import sys
from typing import Any

from aws_durable_execution_sdk_python import DurableContext, StepContext, durable_execution
from aws_durable_execution_sdk_python.config import Duration, StepConfig, StepSemantics
from aws_durable_execution_sdk_python.retries import (
    JitterStrategy,
    RetryDecision,
    RetryPresets,
    RetryStrategyConfig,
    create_retry_strategy,
)
from aws_durable_execution_sdk_python.serdes import SerDes, SerDesContext

from ..registry import requirement

NO_RETRY = StepConfig(retry_strategy=RetryPresets.none())


class TransientError(Exception):
    """The error the retry strategies of 1-15 and 1-16 look for."""


def _attempt(step_context: StepContext) -> int:
    """The attempt number of this run of the step (1-based), as the SDK reports it."""
    return int(getattr(step_context, "attempt", None) or 1)


@requirement("1-1")
@durable_execution
def step_basic(event: Any, context: DurableContext) -> Any:
    return context.step(lambda _: f"Hello, {event}!")


@requirement("1-2")
@durable_execution
def step_named(event: Any, context: DurableContext) -> Any:
    return context.step(lambda _: f"Hello, {event}!", name="custom_step_name")


@requirement("1-3")
@durable_execution
def step_sequence(event: Any, context: DurableContext) -> Any:
    first = context.step(lambda _: "first", name="step_one")
    return context.step(lambda _: f"{first}_second", name="step_two")


@requirement("1-4")
@durable_execution
def step_complex(event: Any, context: DurableContext) -> Any:
    return context.step(
        lambda _: {"user": {"name": event["name"], "tags": list(event["tags"])}, "count": len(event["tags"])}
    )


@requirement("1-5")
@durable_execution
def step_none(event: Any, context: DurableContext) -> Any:
    return context.step(lambda _: None)


class _UpperSerDes(SerDes[Any]):
    """Upper-cases every string value when serialising."""

    def serialize(self, value: Any, serdes_context: SerDesContext) -> str:
        import json

        def up(v: Any) -> Any:
            if isinstance(v, str):
                return v.upper()
            if isinstance(v, dict):
                return {k: up(x) for k, x in v.items()}
            if isinstance(v, list):
                return [up(x) for x in v]
            return v

        return json.dumps(up(value))

    def deserialize(self, data: str, serdes_context: SerDesContext) -> Any:
        import json

        return json.loads(data)


@requirement("1-6")
@durable_execution
def step_serdes(event: Any, context: DurableContext) -> Any:
    return context.step(lambda _: event, config=StepConfig(serdes=_UpperSerDes()))


@requirement("1-7")
@durable_execution
def step_logger(event: Any, context: DurableContext) -> Any:
    def greet(step_context: StepContext) -> str:
        step_context.logger.info(f"Greeting step started for: {event}")
        result = f"Hello, {event}!"
        step_context.logger.info(f"Greeting step completed with: {result}")
        return result

    return context.step(greet)


@requirement("1-8")
@durable_execution
def step_then_wait(event: Any, context: DurableContext) -> Any:
    result = context.step(lambda _: "computed")
    context.wait(Duration.from_seconds(2))
    return result


@requirement("1-9")
@durable_execution
def step_replay_skips(event: Any, context: DurableContext) -> Any:
    def func(step_context: StepContext) -> str:
        step_context.logger.info("step executed")
        return "cached_value"

    result = context.step(func)
    context.wait(Duration.from_seconds(1))
    return result


@requirement("1-10")
@durable_execution
def step_replay_rethrows(event: Any, context: DurableContext) -> Any:
    def func(step_context: StepContext) -> str:
        step_context.logger.info("step executed")
        raise RuntimeError("permanent failure")

    caught = None
    try:
        context.step(func, config=NO_RETRY)
    except Exception as exc:
        caught = str(exc)
    context.wait(Duration.from_seconds(1))
    return {"caught": caught}


def _fails_first(times: int, message: str = "transient failure") -> Any:
    def func(step_context: StepContext) -> str:
        if _attempt(step_context) <= times:
            raise RuntimeError(message)
        return "Operation succeeded"

    return func


def _retry(max_attempts: int, initial: int, backoff: float = 2.0, jitter: Any = JitterStrategy.NONE) -> Any:
    return create_retry_strategy(
        RetryStrategyConfig(
            max_attempts=max_attempts,
            initial_delay=Duration.from_seconds(initial),
            backoff_rate=backoff,
            jitter_strategy=jitter,
        )
    )


@requirement("1-11")
@durable_execution
def step_retry_once(event: Any, context: DurableContext) -> Any:
    return context.step(_fails_first(1), config=StepConfig(retry_strategy=_retry(3, 1)))


@requirement("1-12")
@durable_execution
def step_retry_exhausted(event: Any, context: DurableContext) -> Any:
    def always_fail(_: StepContext) -> str:
        raise RuntimeError("always fails")

    return context.step(always_fail, config=StepConfig(retry_strategy=_retry(4, 1, backoff=1.0)))


@requirement("1-13")
@durable_execution
def step_default_retry(event: Any, context: DurableContext) -> Any:
    return context.step(_fails_first(2))


@requirement("1-14")
@durable_execution
def step_custom_retry(event: Any, context: DurableContext) -> Any:
    return context.step(_fails_first(2), config=StepConfig(retry_strategy=_retry(5, 2, backoff=3.0)))


def _retry_on_transient(error: Exception, attempts_made: int) -> RetryDecision:
    if isinstance(error, TransientError) or type(error).__name__ == "TransientError":
        return RetryDecision.retry(Duration.from_seconds(1))
    return RetryDecision.no_retry()


def _no_retry_on_transient(error: Exception, attempts_made: int) -> RetryDecision:
    if isinstance(error, TransientError) or type(error).__name__ == "TransientError":
        return RetryDecision.no_retry()
    return RetryDecision.retry(Duration.from_seconds(1))


@requirement("1-15")
@durable_execution
def step_retry_specific(event: Any, context: DurableContext) -> Any:
    def func(step_context: StepContext) -> str:
        if _attempt(step_context) == 1:
            raise TransientError("transient")
        return "recovered"

    return context.step(func, config=StepConfig(retry_strategy=_retry_on_transient))


@requirement("1-16")
@durable_execution
def step_retry_specific_refused(event: Any, context: DurableContext) -> Any:
    def func(_: StepContext) -> str:
        raise TransientError("transient")

    return context.step(func, config=StepConfig(retry_strategy=_no_retry_on_transient))


def _crash() -> None:
    """What a Lambda runtime crash (process.exit) is to the in-process runner."""
    sys.stdout.flush()
    raise SystemExit(1)


@requirement("1-17")
@durable_execution
def step_at_most_once_no_retry(event: Any, context: DurableContext) -> Any:
    def flaky(step_context: StepContext) -> str:
        step_context.logger.info(f"at most once step running with {event}")
        _crash()
        return "unreachable"

    config = StepConfig(
        retry_strategy=RetryPresets.none(), step_semantics=StepSemantics.AT_MOST_ONCE_PER_RETRY
    )
    return context.step(flaky, name="at_most_once_flaky_step", config=config)


@requirement("1-18")
@durable_execution
def step_at_most_once_retry(event: Any, context: DurableContext) -> Any:
    def flaky(step_context: StepContext) -> str:
        step_context.logger.info(f"at most once step running with {event}")
        if _attempt(step_context) == 1:
            _crash()
        return "succeeded on second attempt"

    config = StepConfig(retry_strategy=_retry(3, 1), step_semantics=StepSemantics.AT_MOST_ONCE_PER_RETRY)
    return context.step(flaky, name="at_most_once_flaky_step", config=config)


@requirement("1-19")
@durable_execution
def step_fails(event: Any, context: DurableContext) -> Any:
    def failing(_: StepContext) -> str:
        raise RuntimeError("step failed")

    return context.step(failing, config=NO_RETRY)


@requirement("1-20")
@durable_execution
def step_error_caught(event: Any, context: DurableContext) -> Any:
    def failing(_: StepContext) -> str:
        raise RuntimeError("step failed")

    try:
        context.step(failing, config=NO_RETRY)
    except Exception:
        fallback = "fallback"
    return context.step(lambda _: f"{fallback}_result")
