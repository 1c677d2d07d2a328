"""Suite "wait" (2-1 .. 2-5), written from the requirements' YAML."""

from __future__ import annotations

from typing import Any

from aws_durable_execution_sdk_python import DurableContext, durable_execution
from aws_durable_execution_sdk_python.config import Duration

from ..registry import requirement


@requirement("2-1")
@durable_execution
def wait_basic(event: Any, context: DurableContext) -> Any:
    context.wait(Duration.from_seconds(2))
    return "waited"


@requirement("2-2")
@durable_execution
def wait_named(event: Any, context: DurableContext) -> Any:
    context.wait(Duration.from_seconds(2), name="custom_wait_name")
    return "waited"


@requirement("2-3")
@durable_execution
def wait_twice(event: Any, context: DurableContext) -> Any:
    context.wait(Duration.from_seconds(2), name="wait-1")
    context.wait(Duration.from_seconds(2), name="wait-2")
    return {"completedWaits": 2}


@requirement("2-4")
@durable_execution
def wait_minutes(event: Any, context: DurableContext) -> Any:
    context.wait(Duration.from_minutes(1))
    return "waited"


@requirement("2-5")
@durable_execution
def wait_hours(event: Any, context: DurableContext) -> Any:
    context.wait(Duration.from_hours(1))
    return "waited"
