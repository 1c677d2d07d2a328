"""Suite "callback" (4-1 .. 4-19), written from the requirements' YAML."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from aws_durable_execution_sdk_python import DurableContext, durable_execution
from aws_durable_execution_sdk_python.config import CallbackConfig, Duration
from aws_durable_execution_sdk_python.serdes import SerDes, SerDesContext

from ..registry import requirement


def _json(raw: Any) -> Any:
    """A callback's payload (passed through raw by the SDK), decoded."""
    return None if raw is None else json.loads(raw)


@requirement("4-1")
@durable_execution
def callback_basic(event: Any, context: DurableContext) -> Any:
    return _json(context.create_callback(name=event).result())


@requirement("4-2")
@durable_execution
def callback_named(event: Any, context: DurableContext) -> Any:
    return _json(context.create_callback(name="approval").result())


@requirement("4-3")
@durable_execution
def callback_timeout(event: Any, context: DurableContext) -> Any:
    config = CallbackConfig(timeout=Duration.from_seconds(5))
    return _json(context.create_callback(name=event, config=config).result())


@requirement("4-4")
@durable_execution
def callback_heartbeat_timeout(event: Any, context: DurableContext) -> Any:
    config = CallbackConfig(heartbeat_timeout=Duration.from_seconds(5))
    return _json(context.create_callback(name=event, config=config).result())


@requirement("4-5")
@durable_execution
def callback_heartbeat_kept_alive(event: Any, context: DurableContext) -> Any:
    config = CallbackConfig(heartbeat_timeout=Duration.from_seconds(10))
    return _json(context.create_callback(name=event, config=config).result())


@requirement("4-6")
@durable_execution
def callback_failure(event: Any, context: DurableContext) -> Any:
    return _json(context.create_callback(name=event).result())


@requirement("4-7")
@durable_execution
def callback_step_then_failure(event: Any, context: DurableContext) -> Any:
    callback = context.create_callback(name=event)
    context.step(lambda _: "step done")
    return _json(callback.result())


@requirement("4-8")
@durable_execution
def callback_step_then_timeout(event: Any, context: DurableContext) -> Any:
    callback = context.create_callback(name=event, config=CallbackConfig(timeout=Duration.from_seconds(5)))
    context.step(lambda _: "step done")
    return _json(callback.result())


@requirement("4-9", "4-10")
@durable_execution
def callback_during_wait(event: Any, context: DurableContext) -> Any:
    callback = context.create_callback(name=event)
    context.wait(Duration.from_seconds(5))
    return _json(callback.result())


@requirement("4-11")
@durable_execution
def callback_times_out_during_wait(event: Any, context: DurableContext) -> Any:
    callback = context.create_callback(name=event, config=CallbackConfig(timeout=Duration.from_seconds(3)))
    context.wait(Duration.from_seconds(6))
    return _json(callback.result())


@requirement("4-12")
@durable_execution
def callback_then_wait(event: Any, context: DurableContext) -> Any:
    result = _json(context.create_callback(name=event).result())
    context.wait(Duration.from_seconds(2))
    return result


@requirement("4-13")
@durable_execution
def callback_failure_caught(event: Any, context: DurableContext) -> Any:
    try:
        message = _json(context.create_callback(name=event).result())
    except Exception as exc:
        message = f"callback failed: {exc}"
    context.wait(Duration.from_seconds(2))
    return message


@requirement("4-14")
@durable_execution
def callback_timeout_caught(event: Any, context: DurableContext) -> Any:
    config = CallbackConfig(timeout=Duration.from_seconds(3))
    try:
        message = _json(context.create_callback(name=event, config=config).result())
    except Exception as exc:
        message = f"callback timed out: {exc}"
    context.wait(Duration.from_seconds(2))
    return message


class _TypedEvent(SerDes[Any]):
    """Parses the raw JSON payload and turns its ISO timestamp into epoch seconds."""

    def serialize(self, value: Any, serdes_context: SerDesContext) -> str:
        return json.dumps(value)

    def deserialize(self, data: str, serdes_context: SerDesContext) -> Any:
        doc = json.loads(data)
        when = datetime.fromisoformat(str(doc["timestamp"]).replace("Z", "+00:00"))
        return {"id": doc["id"], "message": doc["message"], "timestamp": int(when.timestamp())}


@requirement("4-15")
@durable_execution
def callback_custom_serdes_object(event: Any, context: DurableContext) -> Any:
    config = CallbackConfig(serdes=_TypedEvent())
    return {"received": context.create_callback(name=event, config=config).result()}


class _Number(SerDes[Any]):
    def serialize(self, value: Any, serdes_context: SerDesContext) -> str:
        return json.dumps(value)

    def deserialize(self, data: str, serdes_context: SerDesContext) -> Any:
        return float(json.loads(data)) if "." in data else int(json.loads(data))


@requirement("4-16")
@durable_execution
def callback_custom_serdes_number(event: Any, context: DurableContext) -> Any:
    count = context.create_callback(name=event, config=CallbackConfig(serdes=_Number())).result()
    return {"count": count, "doubled": count * 2}


@requirement("4-17")
@durable_execution
def callback_a_then_b(event: Any, context: DurableContext) -> Any:
    a = _json(context.create_callback(name=event[0]).result())
    b = _json(context.create_callback(name=event[1]).result())
    return {"a": a, "b": b}


@requirement("4-18")
@durable_execution
def callbacks_a_b_in_order(event: Any, context: DurableContext) -> Any:
    first, second = context.create_callback(name=event[0]), context.create_callback(name=event[1])
    a = _json(first.result())
    b = _json(second.result())
    return {"a": a, "b": b}


@requirement("4-19")
@durable_execution
def callbacks_b_then_a(event: Any, context: DurableContext) -> Any:
    first, second = context.create_callback(name=event[0]), context.create_callback(name=event[1])
    b = _json(second.result())
    a = _json(first.result())
    return {"a": a, "b": b}
