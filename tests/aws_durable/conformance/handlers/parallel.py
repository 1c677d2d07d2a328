"""Suite "parallel" (8-x): ``context.parallel``, one handler per requirement.

Branches run one at a time (``max_concurrency=1``) unless the requirement
says otherwise, so the history is deterministic. A failing branch raises
:class:`BranchFailure`. ``event`` is the requirement's ``Input`` (null here).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from aws_durable_execution_sdk_python import BatchResult, DurableContext, ParallelBranch, durable_execution
from aws_durable_execution_sdk_python.config import (
    CompletionConfig,
    Duration,
    NestingType,
    ParallelConfig,
)
from aws_durable_execution_sdk_python.serdes import SerDes, SerDesContext

from ..registry import requirement


class BranchFailure(Exception):
    """The error a failing branch raises on purpose."""


def const(value: Any) -> Callable[[DurableContext], Any]:
    """A branch that returns ``value`` directly (no inner operation)."""
    return lambda _ctx: value


def failing(message: str) -> Callable[[DurableContext], Any]:
    """A branch that raises."""

    def branch(_ctx: DurableContext) -> Any:
        raise BranchFailure(message)

    return branch


def stepping(value: Any) -> Callable[[DurableContext], Any]:
    """A branch that runs one step returning ``value``."""
    return lambda ctx: ctx.step(lambda _: value, name=f"step-{value}")


def sequential(completion: CompletionConfig | None = None, **options: Any) -> ParallelConfig:
    """Branches one at a time (deterministic history), with ``completion`` if given."""
    if completion is not None:
        options["completion_config"] = completion
    return ParallelConfig(max_concurrency=1, **options)


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


@requirement("8-1")
@durable_execution
def parallel_basic(event: Any, context: DurableContext) -> Any:
    result = context.parallel([stepping("task-1"), stepping("task-2")], name="parallel", config=sequential())
    return result.get_results()


@requirement("8-2")
@durable_execution
def parallel_branches_only(event: Any, context: DurableContext) -> Any:
    return context.parallel([const("alpha"), const("beta")], config=sequential()).get_results()


@requirement("8-3")
@durable_execution
def parallel_named_branches(event: Any, context: DurableContext) -> Any:
    branches = [
        ParallelBranch(func=const("one"), name="first"),
        ParallelBranch(func=const("two"), name="second"),
    ]
    return context.parallel(branches, name="named", config=sequential()).get_results()


@requirement("8-4")
@durable_execution
def parallel_heterogeneous(event: Any, context: DurableContext) -> Any:
    branches = [const("hello"), const(42), const({"k": "v"})]
    return context.parallel(branches, name="hetero", config=sequential()).get_results()


@requirement("8-5")
@durable_execution
def parallel_empty(event: Any, context: DurableContext) -> Any:
    return context.parallel([], name="empty").get_results()


@requirement("8-6")
@durable_execution
def parallel_fail_fast(event: Any, context: DurableContext) -> Any:
    branches = [const("ok"), failing("branch 1 fails"), const("never")]
    config = sequential(CompletionConfig(tolerated_failure_count=0))
    return projection(context.parallel(branches, name="failfast", config=config), *ALL)


@requirement("8-7")
@durable_execution
def parallel_throw_if_error(event: Any, context: DurableContext) -> Any:
    branches = [failing("branch 0 fails"), const("never")]
    result = context.parallel(
        branches, name="throwing", config=sequential(CompletionConfig(tolerated_failure_count=0))
    )
    result.throw_if_error()
    return result.get_results()


@requirement("8-8")
@durable_execution
def parallel_min_successful(event: Any, context: DurableContext) -> Any:
    branches = [const("b0"), const("b1"), const("b2"), const("b3")]
    result = context.parallel(
        branches, name="min-successful", config=sequential(CompletionConfig(min_successful=2))
    )
    return projection(result, "completionReason", "successCount", "totalCount")


@requirement("8-9")
@durable_execution
def parallel_tolerated_count(event: Any, context: DurableContext) -> Any:
    branches = [const("b0"), failing("branch 1 fails"), const("b2")]
    config = sequential(CompletionConfig(tolerated_failure_count=1))
    return projection(context.parallel(branches, name="tolerated", config=config), *ALL)


@requirement("8-10")
@durable_execution
def parallel_tolerated_count_exceeded(event: Any, context: DurableContext) -> Any:
    branches = [failing("branch 0 fails"), failing("branch 1 fails"), const("never")]
    config = sequential(CompletionConfig(tolerated_failure_count=1))
    return projection(context.parallel(branches, name="tolerated-exceeded", config=config), *NO_STATUS)


@requirement("8-11")
@durable_execution
def parallel_concurrent(event: Any, context: DurableContext) -> Any:
    branches = [const("r0"), const("r1"), const("r2")]
    return context.parallel(
        branches, name="concurrent", config=ParallelConfig(max_concurrency=2)
    ).get_results()


@requirement("8-12")
@durable_execution
def parallel_flat(event: Any, context: DurableContext) -> Any:
    config = sequential(nesting_type=NestingType.FLAT)
    return context.parallel([stepping("fa"), stepping("fb")], name="flat", config=config).get_results()


@requirement("8-13")
@durable_execution
def parallel_tolerated_percentage_exceeded(event: Any, context: DurableContext) -> Any:
    branches = [failing("branch 0 fails"), failing("branch 1 fails"), const("b2"), const("b3")]
    config = sequential(CompletionConfig(tolerated_failure_percentage=25))
    return projection(context.parallel(branches, name="tolerated-pct", config=config), *NO_STATUS)


@requirement("8-14")
@durable_execution
def parallel_replay_across_wait(event: Any, context: DurableContext) -> Any:
    def waiting(ctx: DurableContext) -> Any:
        ctx.wait(Duration.from_seconds(2))
        return "b1"

    return context.parallel([stepping("b0"), waiting], name="replay", config=sequential()).get_results()


class WrappingSerDes(SerDes[Any]):
    """Serializes ``v`` as ``{"wrapped": v}`` and reads that envelope back as ``v``."""

    def serialize(self, value: Any, serdes_context: SerDesContext) -> str:
        return json.dumps({"wrapped": value})

    def deserialize(self, data: str, serdes_context: SerDesContext) -> Any:
        return json.loads(data)["wrapped"]


@requirement("8-15")
@durable_execution
def parallel_item_serdes(event: Any, context: DurableContext) -> Any:
    config = sequential(item_serdes=WrappingSerDes())
    return context.parallel([const("x"), const("y")], name="serde", config=config).get_results()


@requirement("8-16")
@durable_execution
def parallel_all_fail_tolerated(event: Any, context: DurableContext) -> Any:
    branches = [failing("branch 0 fails"), failing("branch 1 fails"), failing("branch 2 fails")]
    config = sequential(CompletionConfig(tolerated_failure_count=3))
    return projection(context.parallel(branches, name="all-fail", config=config), *ALL)


@requirement("8-17")
@durable_execution
def parallel_min_successful_not_reached(event: Any, context: DurableContext) -> Any:
    branches = [const("b0"), failing("branch 1 fails"), const("b2")]
    config = sequential(CompletionConfig(min_successful=3))
    return projection(context.parallel(branches, name="min-not-reached", config=config), *ALL)


@requirement("8-18")
@durable_execution
def parallel_combined_completion(event: Any, context: DurableContext) -> Any:
    branches = [failing("branch 0 fails"), failing("branch 1 fails"), const("b2"), const("b3")]
    config = sequential(CompletionConfig(min_successful=3, tolerated_failure_count=1))
    return projection(context.parallel(branches, name="combined", config=config), *NO_STATUS)


@requirement("8-19")
@durable_execution
def parallel_invalid_concurrency(event: Any, context: DurableContext) -> Any:
    config = ParallelConfig(max_concurrency=0)  # the SDK refuses it: ValidationError, uncaught
    return context.parallel([const("b0"), const("b1")], name="bad-concurrency", config=config).get_results()


@requirement("8-20")
@durable_execution
def parallel_accessors(event: Any, context: DurableContext) -> Any:
    branches = [const("b0"), failing("branch 1 fails"), const("b2")]
    config = sequential(CompletionConfig(tolerated_failure_count=1))
    result = context.parallel(branches, name="accessors", config=config)
    return {
        "hasFailure": result.has_failure,
        "successCount": len(result.succeeded()),
        "failureCount": len(result.failed()),
        "errorCount": len(result.get_errors()),
    }


@requirement("8-21")
@durable_execution
def parallel_nested(event: Any, context: DurableContext) -> Any:
    def inner(ctx: DurableContext) -> Any:
        return ctx.parallel([stepping("i1"), stepping("i2")], name="inner", config=sequential()).get_results()

    return context.parallel([inner], name="outer", config=sequential()).get_results()


@requirement("8-22")
@durable_execution
def parallel_percentage_boundary(event: Any, context: DurableContext) -> Any:
    branches = [failing("branch 0 fails"), const("b1"), const("b2"), const("b3")]
    config = sequential(CompletionConfig(tolerated_failure_percentage=25))
    return projection(context.parallel(branches, name="pct-boundary", config=config), *ALL)
