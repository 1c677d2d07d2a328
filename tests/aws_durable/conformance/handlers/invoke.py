"""Suite "invoke" (5-x): ``context.invoke`` (chained invokes), one handler per requirement.

The targets (``invoke-echo``, ``invoke-fail``, ``invoke-size``) are durable
functions of their own, registered with ``@function`` and run by the service
as executions of their own. ``event`` is the requirement's ``Input``.
"""

from __future__ import annotations

import json
from typing import Any

from aws_durable_execution_sdk_python import DurableContext, InvokeError, durable_execution
from aws_durable_execution_sdk_python.config import Duration, InvokeConfig
from aws_durable_execution_sdk_python.serdes import SerDes, SerDesContext

from ..registry import function, requirement

ECHO = "invoke-echo"
FAIL = "invoke-fail"
SIZE = "invoke-size"


@function(ECHO)
@durable_execution
def echo(event: Any, context: DurableContext) -> Any:
    """Returns whatever it receives."""
    return event


class TargetFailure(Exception):
    """The error the failing target raises."""


@function(FAIL)
@durable_execution
def failing(event: Any, context: DurableContext) -> Any:
    """Always fails."""
    raise TargetFailure("the invoked function failed")


@function(SIZE)
@durable_execution
def size(event: Any, context: DurableContext) -> Any:
    """Processes a (large) payload: returns its length."""
    return {"length": len(event["data"])}


@requirement("5-1", "5-3", "5-4")
@durable_execution
def invoke_echo(event: Any, context: DurableContext) -> Any:
    return context.invoke(ECHO, event)


@requirement("5-2")
@durable_execution
def invoke_named(event: Any, context: DurableContext) -> Any:
    return context.invoke(ECHO, event["payload"], name=event["name"])


@requirement("5-5")
@durable_execution
def invoke_target_fails(event: Any, context: DurableContext) -> Any:
    return context.invoke(FAIL, event)


@requirement("5-6")
@durable_execution
def invoke_target_fails_caught(event: Any, context: DurableContext) -> Any:
    try:
        return context.invoke(FAIL, event)
    except InvokeError:
        return "fallback"


@requirement("5-7")
@durable_execution
def invoke_large_payload(event: Any, context: DurableContext) -> Any:
    payload = {"data": "x" * (200 * 1024)}  # near Lambda's 256 KB payload limit, within it
    return context.invoke(SIZE, payload)


@requirement("5-8")
@durable_execution
def invoke_tenant(event: Any, context: DurableContext) -> Any:
    return context.invoke(ECHO, event["payload"], config=InvokeConfig(tenant_id=event["tenantId"]))


@requirement("5-9")
@durable_execution
def invoke_then_wait(event: Any, context: DurableContext) -> Any:
    result = context.invoke(ECHO, event)
    context.wait(Duration.from_seconds(1))
    return result


@requirement("5-10")
@durable_execution
def invoke_failure_cached(event: Any, context: DurableContext) -> Any:
    try:
        context.invoke(FAIL, event)
        outcome = "unexpected success"
    except InvokeError:
        outcome = "caught"
    context.wait(Duration.from_seconds(1))
    return outcome


@requirement("5-11")
@durable_execution
def step_then_invoke(event: Any, context: DurableContext) -> Any:
    value = context.step(lambda _: "from-step", name="produce")
    return context.invoke(ECHO, value)


@requirement("5-12")
@durable_execution
def invoke_then_step(event: Any, context: DurableContext) -> Any:
    result = context.invoke(ECHO, "from-invoke")
    return context.step(lambda _: result, name="consume")


@requirement("5-13")
@durable_execution
def invoke_in_child(event: Any, context: DurableContext) -> Any:
    return context.run_in_child_context(lambda child: child.invoke(ECHO, "in-child"), name="invoking")


@requirement("5-14")
@durable_execution
def invoke_twice(event: Any, context: DurableContext) -> Any:
    first = context.invoke(ECHO, "first")
    second = context.invoke(ECHO, "second")
    return [first, second]


class UpperJsonSerDes(SerDes[Any]):
    """Serializes a payload as upper-cased JSON (the target receives the transformed payload)."""

    def serialize(self, value: Any, serdes_context: SerDesContext) -> str:
        return json.dumps(value).upper()

    def deserialize(self, data: str, serdes_context: SerDesContext) -> Any:
        return json.loads(data)


@requirement("5-15")
@durable_execution
def invoke_payload_serdes(event: Any, context: DurableContext) -> Any:
    return context.invoke(ECHO, event, config=InvokeConfig(serdes_payload=UpperJsonSerDes()))


class UpperTextSerDes(SerDes[str]):
    """Reads a result back as its upper-cased serialized text (no JSON parsing)."""

    def serialize(self, value: str, serdes_context: SerDesContext) -> str:
        return json.dumps(value)

    def deserialize(self, data: str, serdes_context: SerDesContext) -> str:
        return data.upper()


@requirement("5-16")
@durable_execution
def invoke_result_serdes(event: Any, context: DurableContext) -> Any:
    return context.invoke(ECHO, event, config=InvokeConfig(serdes_result=UpperTextSerDes()))
