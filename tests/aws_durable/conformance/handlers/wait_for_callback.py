"""Suite "wait_for_callback" (7-1 .. 7-15), written from the requirements' YAML."""

from __future__ import annotations

import json
from typing import Any

from aws_durable_execution_sdk_python import DurableContext, durable_execution
from aws_durable_execution_sdk_python.config import Duration, WaitForCallbackConfig
from aws_durable_execution_sdk_python.retries import RetryStrategyConfig, create_retry_strategy
from aws_durable_execution_sdk_python.serdes import JsonSerDes

from ..registry import requirement


def submit(callback_id: str, _context: Any) -> None:
    """The submitter: hands the id to nobody (the validator finds it in the history)."""


@requirement("7-1", "7-4")
@durable_execution
def wfc_basic(event: Any, context: DurableContext) -> Any:
    return context.wait_for_callback(submit, name=event)


@requirement("7-2")
@durable_execution
def wfc_named(event: Any, context: DurableContext) -> Any:
    return context.wait_for_callback(submit, name="approval")


@requirement("7-3")
@durable_execution
def wfc_anonymous(event: Any, context: DurableContext) -> Any:
    return context.wait_for_callback(lambda _cid, _ctx: None)


@requirement("7-5")
@durable_execution
def wfc_timeout(event: Any, context: DurableContext) -> Any:
    config = WaitForCallbackConfig(timeout=Duration.from_seconds(3))
    return context.wait_for_callback(submit, name=event, config=config)


@requirement("7-6")
@durable_execution
def wfc_failure_caught(event: Any, context: DurableContext) -> Any:
    try:
        return context.wait_for_callback(submit, name=event)
    except Exception:
        return "recovered"


@requirement("7-7")
@durable_execution
def wfc_submitter_fails(event: Any, context: DurableContext) -> Any:
    def failing(callback_id: str, _context: Any) -> None:
        raise RuntimeError("submitter failed")

    retry = create_retry_strategy(
        RetryStrategyConfig(max_attempts=2, initial_delay=Duration.from_seconds(1), backoff_rate=1)
    )
    config = WaitForCallbackConfig(retry_strategy=retry)
    return context.wait_for_callback(failing, name=event, config=config)


@requirement("7-8")
@durable_execution
def wfc_in_child(event: Any, context: DurableContext) -> Any:
    return context.run_in_child_context(
        lambda child: child.wait_for_callback(submit, name=event), name="wrapper"
    )


@requirement("7-9")
@durable_execution
def wfc_twice(event: Any, context: DurableContext) -> Any:
    context.wait_for_callback(submit, name="first")
    return context.wait_for_callback(submit, name="second")


@requirement("7-10")
@durable_execution
def wfc_after_wait_and_step(event: Any, context: DurableContext) -> Any:
    context.wait(Duration.from_seconds(1))
    context.step(lambda _: {"data": "fixed"})
    return context.wait_for_callback(submit, name=event)


@requirement("7-11")
@durable_execution
def wfc_json(event: Any, context: DurableContext) -> Any:
    config = WaitForCallbackConfig(serdes=JsonSerDes())
    return context.wait_for_callback(submit, name=event, config=config)["status"]


@requirement("7-12")
@durable_execution
def wfc_heartbeat_timeout(event: Any, context: DurableContext) -> Any:
    config = WaitForCallbackConfig(heartbeat_timeout=Duration.from_seconds(5))
    return context.wait_for_callback(submit, name=event, config=config)


@requirement("7-13")
@durable_execution
def wfc_heartbeat(event: Any, context: DurableContext) -> Any:
    config = WaitForCallbackConfig(heartbeat_timeout=Duration.from_seconds(10))
    return context.wait_for_callback(submit, name=event, config=config)


@requirement("7-14")
@durable_execution
def wfc_timeout_caught(event: Any, context: DurableContext) -> Any:
    config = WaitForCallbackConfig(timeout=Duration.from_seconds(3))
    try:
        return context.wait_for_callback(submit, name=event, config=config)
    except Exception:
        return "timed-out-handled"


@requirement("7-15")
@durable_execution
def wfc_empty(event: Any, context: DurableContext) -> Any:
    result = context.wait_for_callback(submit, name=event)
    return None if result in (None, "") else json.loads(result) if isinstance(result, str) else result
