"""Suite "child" (3-x): ``context.run_in_child_context``, one handler per requirement.

Each handler is written from its YAML (handler description, invocations,
input, expected result). ``event`` is the requirement's ``Input``.
"""

from __future__ import annotations

import contextlib
import hashlib
import sys
import tempfile
from pathlib import Path
from typing import Any

from aws_durable_execution_sdk_python import ChildContextError, DurableContext, durable_execution
from aws_durable_execution_sdk_python.config import ChildConfig, Duration, StepConfig
from aws_durable_execution_sdk_python.retries import RetryDecision
from aws_durable_execution_sdk_python.serdes import SerDes, SerDesContext

from ..registry import requirement

#: A step that fails once is not retried (3-4, 3-5, 3-15: the error must reach the child at once).
NO_RETRY = StepConfig(retry_strategy=lambda _error, _attempts: RetryDecision.no_retry())


def retry_once_after_1s(_error: Exception, attempts: int) -> RetryDecision:
    """At most two attempts, one second apart (3-7, 3-8: maxAttempts=2)."""
    return RetryDecision.retry(Duration.from_seconds(1)) if attempts < 2 else RetryDecision.no_retry()


RETRY_ONCE = StepConfig(retry_strategy=retry_once_after_1s)


def replay_logger(ctx: DurableContext) -> Any:
    """The child's logger with replay logging enabled: it logs on replay too, so re-execution shows."""
    return ctx.logger.with_is_replaying(lambda: False)


@requirement("3-1")
@durable_execution
def child_basic(event: Any, context: DurableContext) -> Any:
    return context.run_in_child_context(lambda child: child.step(lambda _: event, name="echo"))


@requirement("3-2")
@durable_execution
def child_named(event: Any, context: DurableContext) -> Any:
    value = event["value"]
    return context.run_in_child_context(lambda child: child.step(lambda _: value), name=event["name"])


@requirement("3-3")
@durable_execution
def child_sequential_steps(event: Any, context: DurableContext) -> Any:
    def body(child: DurableContext) -> Any:
        first = child.step(lambda _: event, name="first")
        return child.step(lambda _: first, name="second")

    return context.run_in_child_context(body, name="sequential")


class StepFailure(Exception):
    """The error a conformance step raises on purpose."""


def fail(message: str) -> Any:
    raise StepFailure(message)


@requirement("3-4")
@durable_execution
def child_error(event: Any, context: DurableContext) -> Any:
    return context.run_in_child_context(
        lambda child: child.step(lambda _: fail("step failed"), name="failing", config=NO_RETRY),
        name="failing-child",
    )


@requirement("3-5")
@durable_execution
def child_error_caught(event: Any, context: DurableContext) -> Any:
    with contextlib.suppress(ChildContextError):  # caught in the parent; the handler recovers
        context.run_in_child_context(
            lambda child: child.step(lambda _: fail("step failed"), name="failing", config=NO_RETRY),
            name="failing-child",
        )
    return context.step(lambda _: event, name="recover")


@requirement("3-6")
@durable_execution
def child_nested(event: Any, context: DurableContext) -> Any:
    def inner(child: DurableContext) -> Any:
        return child.step(lambda _: event, name="inner-step")

    def outer(child: DurableContext) -> Any:
        child.step(lambda _: event, name="outer-step")
        return child.run_in_child_context(inner, name="inner")

    return context.run_in_child_context(outer, name="outer")


@requirement("3-7")
@durable_execution
def child_step_retry(event: Any, context: DurableContext) -> Any:
    def flaky(step: Any) -> Any:
        if step.attempt == 1:
            raise StepFailure("first attempt fails")
        return event

    return context.run_in_child_context(
        lambda child: child.step(flaky, name="flaky", config=RETRY_ONCE), name="retrying"
    )


@requirement("3-8")
@durable_execution
def child_step_retry_exhausted(event: Any, context: DurableContext) -> Any:
    return context.run_in_child_context(
        lambda child: child.step(lambda _: fail("always fails"), name="failing", config=RETRY_ONCE),
        name="exhausted",
    )


@requirement("3-9")
@durable_execution
def child_replay_cached(event: Any, context: DurableContext) -> Any:
    result = context.run_in_child_context(lambda child: child.step(lambda _: event, name="echo"))
    context.wait(Duration.from_seconds(1))
    return result


@requirement("3-10")
@durable_execution
def child_step_and_wait(event: Any, context: DurableContext) -> Any:
    def body(child: DurableContext) -> Any:
        value = child.step(lambda _: event, name="echo")
        child.wait(Duration.from_seconds(1))
        return value

    return context.run_in_child_context(body, name="step-and-wait")


@requirement("3-11")
@durable_execution
def child_large_payload(event: Any, context: DurableContext) -> Any:
    def body(child: DurableContext) -> Any:
        replay_logger(child).info(f"child context input {event}")
        small = child.step(lambda _: event, name="small")
        return small * (300 * 1024 // max(len(small), 1) + 1)  # > 256 KB: ReplayChildren

    large = context.run_in_child_context(body, name="large")
    context.wait(Duration.from_seconds(1))
    return {"length": len(large), "prefix": large[: len(event)]}


def crash_mark(arn: str) -> Path:
    """The file that says an invocation of ``arn`` crashed (3-12 crashes once per execution).

    A file, not process memory: a crashed Lambda process comes back empty, and a service
    restarted after being killed must see the same handler behaviour.
    """
    mark = Path(tempfile.gettempdir(), "cairnflow-conformance", hashlib.sha256(arn.encode()).hexdigest())
    mark.parent.mkdir(parents=True, exist_ok=True)
    return mark


@requirement("3-12")
@durable_execution
def child_interrupted(event: Any, context: DurableContext) -> Any:
    arn = context.state.durable_execution_arn

    def crash_once(_: Any) -> Any:
        mark = crash_mark(arn)
        if not mark.exists():
            context.state.create_checkpoint()  # ContextStarted and StepStarted are durable first
            mark.touch()
            sys.exit(1)  # the Lambda process dies mid-step (Runtime.ExitError)
        return event

    return context.run_in_child_context(lambda child: child.step(crash_once, name="crashing"))


@requirement("3-13")
@durable_execution
def child_wait_only(event: Any, context: DurableContext) -> Any:
    def body(child: DurableContext) -> Any:
        child.wait(Duration.from_seconds(1))
        return event

    value = context.run_in_child_context(body, name="waiting")
    return context.step(lambda _: value, name="after")


class UpperSerDes(SerDes[str]):
    """Serializes a string as its upper-case text (not JSON); reads it back as is."""

    def serialize(self, value: str, serdes_context: SerDesContext) -> str:
        return value.upper()

    def deserialize(self, data: str, serdes_context: SerDesContext) -> str:
        return data


@requirement("3-14")
@durable_execution
def child_custom_serdes(event: Any, context: DurableContext) -> Any:
    return context.run_in_child_context(
        lambda child: child.step(lambda _: event, name="echo"),
        name="upper",
        config=ChildConfig(serdes=UpperSerDes()),
    )


@requirement("3-15")
@durable_execution
def child_error_without_step(event: Any, context: DurableContext) -> Any:
    return context.run_in_child_context(lambda _child: fail("thrown in the child body"), name="throwing")


@requirement("3-16")
@durable_execution
def child_returns_null(event: Any, context: DurableContext) -> Any:
    return context.run_in_child_context(lambda _child: None, name="null")


@requirement("3-17")
@durable_execution
def child_logger_only(event: Any, context: DurableContext) -> Any:
    def body(child: DurableContext) -> Any:
        replay_logger(child).info(f"child context input {event}")
        return event

    value = context.run_in_child_context(body, name="logging")
    context.wait(Duration.from_seconds(1))
    return value


@requirement("3-18")
@durable_execution
def child_mixed_then_outer(event: Any, context: DurableContext) -> Any:
    def body(child: DurableContext) -> Any:
        value = child.step(lambda _: event, name="inner-step")
        child.wait(Duration.from_seconds(1))
        return value

    value = context.run_in_child_context(body, name="mixed")
    result = context.step(lambda _: value, name="outer-step")
    context.wait(Duration.from_seconds(1))
    return result
