"""Suite "map" (9-x): ``context.map``, one handler per requirement.

Items run one at a time (``max_concurrency=1``) unless the requirement says
otherwise, so the history is deterministic. An item whose value is ``"fail"``
raises :class:`ItemFailure`. ``event`` is the requirement's ``Input``.
"""

from __future__ import annotations

from typing import Any

from aws_durable_execution_sdk_python import BatchItemStatus, BatchResult, DurableContext, durable_execution
from aws_durable_execution_sdk_python.concurrency.models import BatchItem, CompletionReason
from aws_durable_execution_sdk_python.config import CompletionConfig, Duration, MapConfig, NestingType
from aws_durable_execution_sdk_python.serdes import JsonSerDes, SerDes, SerDesContext

from ..registry import requirement


class ItemFailure(Exception):
    """The error a failing item raises on purpose."""


def sequential(completion: CompletionConfig | None = None, **options: Any) -> MapConfig[Any]:
    """Items one at a time (deterministic history), with ``completion`` if given."""
    if completion is not None:
        options["completion_config"] = completion
    return MapConfig(max_concurrency=1, **options)


def ok_or_fail(_ctx: DurableContext, item: Any, _index: int, _items: Any) -> Any:
    """Returns the item, or raises if the item is ``"fail"``."""
    if item == "fail":
        raise ItemFailure(f"item {item!r} fails")
    return item


def projection(result: BatchResult[Any], *fields: str) -> dict[str, Any]:
    """The batch summary the requirements return: the named fields of the batch result."""
    values = {
        "completionReason": result.completion_reason.value,
        "status": result.status.value,
        "successCount": result.success_count,
        "failureCount": result.failure_count,
        "totalCount": result.total_count,
    }
    return {name: values[name] for name in fields}


ALL = ("completionReason", "status", "successCount", "failureCount", "totalCount")
NO_STATUS = ("completionReason", "successCount", "failureCount", "totalCount")


@requirement("9-1")
@durable_execution
def map_basic(event: Any, context: DurableContext) -> Any:
    def greet(ctx: DurableContext, item: Any, _index: int, _items: Any) -> Any:
        return ctx.step(lambda _: f"Hello, {item}!", name="greet")

    return context.map(event, greet, name="map", config=sequential()).get_results()


@requirement("9-2")
@durable_execution
def map_items_only(event: Any, context: DurableContext) -> Any:
    return context.map(event, lambda _ctx, item, _i, _items: item * 2, config=sequential()).get_results()


@requirement("9-3")
@durable_execution
def map_item_and_index(event: Any, context: DurableContext) -> Any:
    result = context.map(
        event, lambda _ctx, item, index, _items: item + index, name="indexed", config=sequential()
    )
    return result.get_results()


@requirement("9-4")
@durable_execution
def map_empty(event: Any, context: DurableContext) -> Any:
    return context.map(event, ok_or_fail, name="empty").get_results()


@requirement("9-5")
@durable_execution
def map_fail_fast(event: Any, context: DurableContext) -> Any:
    config = sequential(CompletionConfig(tolerated_failure_count=0))
    return projection(context.map(["ok", "fail", "never"], ok_or_fail, name="failfast", config=config), *ALL)


@requirement("9-6")
@durable_execution
def map_throw_if_error(event: Any, context: DurableContext) -> Any:
    config = sequential(CompletionConfig(tolerated_failure_count=0))
    result = context.map(["fail", "never"], ok_or_fail, name="throwing", config=config)
    result.throw_if_error()
    return result.get_results()


@requirement("9-7")
@durable_execution
def map_min_successful(event: Any, context: DurableContext) -> Any:
    config = sequential(CompletionConfig(min_successful=2))
    result = context.map(["i0", "i1", "i2", "i3"], ok_or_fail, name="min-successful", config=config)
    return projection(result, "completionReason", "successCount", "totalCount")


@requirement("9-8")
@durable_execution
def map_tolerated_count(event: Any, context: DurableContext) -> Any:
    config = sequential(CompletionConfig(tolerated_failure_count=1))
    return projection(context.map(["i0", "fail", "i2"], ok_or_fail, name="tolerated", config=config), *ALL)


@requirement("9-9")
@durable_execution
def map_tolerated_count_exceeded(event: Any, context: DurableContext) -> Any:
    config = sequential(CompletionConfig(tolerated_failure_count=1))
    result = context.map(["fail", "fail", "never"], ok_or_fail, name="tolerated-exceeded", config=config)
    return projection(result, *NO_STATUS)


@requirement("9-10")
@durable_execution
def map_tolerated_percentage_exceeded(event: Any, context: DurableContext) -> Any:
    config = sequential(CompletionConfig(tolerated_failure_percentage=25))
    result = context.map(["fail", "fail", "i2", "i3"], ok_or_fail, name="tolerated-pct", config=config)
    return projection(result, *NO_STATUS)


@requirement("9-11")
@durable_execution
def map_concurrent(event: Any, context: DurableContext) -> Any:
    config = MapConfig(max_concurrency=2)
    return context.map(["r0", "r1", "r2"], ok_or_fail, name="concurrent", config=config).get_results()


@requirement("9-12")
@durable_execution
def map_flat(event: Any, context: DurableContext) -> Any:
    def step_item(ctx: DurableContext, item: Any, _index: int, _items: Any) -> Any:
        return ctx.step(lambda _: item, name=f"step-{item}")

    config = sequential(nesting_type=NestingType.FLAT)
    return context.map(["fa", "fb"], step_item, name="flat", config=config).get_results()


@requirement("9-13")
@durable_execution
def map_item_namer(event: Any, context: DurableContext) -> Any:
    config = sequential(item_namer=lambda item, index: f"item-{item}")
    result = context.map(event, lambda _ctx, item, _i, _items: item * 10, name="named-items", config=config)
    return result.get_results()


class WrappedTextSerDes(SerDes[str]):
    """Serializes an item result ``v`` as the text ``wrapped:v`` and reads it back as ``v``."""

    PREFIX = "wrapped:"

    def serialize(self, value: str, serdes_context: SerDesContext) -> str:
        return self.PREFIX + value

    def deserialize(self, data: str, serdes_context: SerDesContext) -> str:
        if not data.startswith(self.PREFIX):
            raise ValueError(f"not a wrapped item: {data!r}")
        return data[len(self.PREFIX) :]


def upper(_ctx: DurableContext, item: Any, _index: int, _items: Any) -> Any:
    return str(item).upper()


@requirement("9-14")
@durable_execution
def map_item_serdes(event: Any, context: DurableContext) -> Any:
    config = sequential(item_serdes=WrappedTextSerDes())
    return context.map(["x", "y"], upper, name="serdes", config=config).get_results()


@requirement("9-15")
@durable_execution
def map_suspend_in_iteration(event: Any, context: DurableContext) -> Any:
    def iteration(ctx: DurableContext, item: Any, index: int, _items: Any) -> Any:
        if index == 1:
            ctx.wait(Duration.from_seconds(1))
        return ctx.step(lambda _: item, name=f"step-{item}")

    return context.map(["r0", "r1"], iteration, name="suspend", config=sequential()).get_results()


@requirement("9-16")
@durable_execution
def map_large_result(event: Any, context: DurableContext) -> Any:
    def large(_ctx: DurableContext, item: Any, _index: int, _items: Any) -> Any:
        return str(item) * (70 * 1024 // len(str(item)))  # ~70 KB per item: > 256 KB in all

    result = context.map(["a", "b", "c", "d"], large, name="large", config=sequential())
    return projection(result, "successCount", "totalCount")


@requirement("9-17")
@durable_execution
def map_then_wait(event: Any, context: DurableContext) -> Any:
    result = context.map(["a", "b"], upper, name="then-wait", config=sequential())
    context.wait(Duration.from_seconds(1))
    return result.get_results()


@requirement("9-18")
@durable_execution
def map_failed_then_wait(event: Any, context: DurableContext) -> Any:
    config = sequential(CompletionConfig(tolerated_failure_count=1))
    result = context.map(["ok", "fail"], ok_or_fail, name="fail-then-wait", config=config)
    context.wait(Duration.from_seconds(1))
    return projection(result, *ALL)


class OpSerDes(SerDes[BatchResult[Any]]):
    """A whole-result serializer: ``OPSERDE:`` and the comma-joined results; parsed back into a batch."""

    PREFIX = "OPSERDE:"

    def serialize(self, value: BatchResult[Any], serdes_context: SerDesContext) -> str:
        return self.PREFIX + ",".join(str(r) for r in value.get_results())

    def deserialize(self, data: str, serdes_context: SerDesContext) -> BatchResult[Any]:
        if not data.startswith(self.PREFIX):
            raise ValueError(f"not an OPSERDE payload: {data!r}")
        body = data[len(self.PREFIX) :]
        values = body.split(",") if body else []
        items = [BatchItem(index=i, status=BatchItemStatus.SUCCEEDED, result=v) for i, v in enumerate(values)]
        return BatchResult(items, CompletionReason.ALL_COMPLETED)


def op_serdes_config() -> MapConfig[Any]:
    # item_serdes explicitly: with serdes alone the SDK would apply it to every item too.
    return sequential(serdes=OpSerDes(), item_serdes=JsonSerDes())


@requirement("9-19")
@durable_execution
def map_operation_serdes(event: Any, context: DurableContext) -> Any:
    return context.map(["x", "y"], upper, name="op-serde", config=op_serdes_config()).get_results()


@requirement("9-20")
@durable_execution
def map_operation_serdes_replay(event: Any, context: DurableContext) -> Any:
    result = context.map(["x", "y"], upper, name="op-serde", config=op_serdes_config())
    context.wait(Duration.from_seconds(1))
    return result.get_results()
