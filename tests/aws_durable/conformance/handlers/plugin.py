"""Suite "plugin" (10-1 .. 10-7): the SDK's instrumentation plugins, logging JSON lines to stdout."""

from __future__ import annotations

import json
from typing import Any

from aws_durable_execution_sdk_python import DurableContext, StepContext, durable_execution
from aws_durable_execution_sdk_python.config import Duration, StepConfig
from aws_durable_execution_sdk_python.plugin import (
    DurableInstrumentationPlugin,
    InvocationEndInfo,
    InvocationStartInfo,
    OperationEndInfo,
    OperationStartInfo,
    OperationType,
    UserFunctionEndInfo,
    UserFunctionStartInfo,
)
from aws_durable_execution_sdk_python.retries import (
    JitterStrategy,
    RetryPresets,
    RetryStrategyConfig,
    create_retry_strategy,
)

from ..registry import requirement


class _Plugin(DurableInstrumentationPlugin):
    """Prints one JSON record per hook, stamped with the execution ARN from invocation start."""

    def __init__(self, tag: str, info: InvocationStartInfo, *, hooks: set[str], faulty: bool = False) -> None:
        self.tag, self.arn, self.hooks, self.faulty = tag, info.execution_arn, hooks, faulty

    def _log(self, hook: str, **fields: Any) -> None:
        if hook in self.hooks:
            print(json.dumps({"plugin": self.tag, "hook": hook, **fields, "durableExecutionArn": self.arn}))
        if self.faulty:
            raise RuntimeError(f"{self.tag} {hook} hook fails on purpose")

    def on_invocation_start(self, info: InvocationStartInfo) -> None:
        self._log("invocation-start", first=info.is_first_invocation)

    def on_invocation_end(self, info: InvocationEndInfo) -> None:
        self._log("invocation-end", status=info.status.value)

    def on_operation_start(self, info: OperationStartInfo) -> None:
        if info.operation_type is OperationType.STEP:
            self._log("operation-start", op=info.operation_id)

    def on_operation_end(self, info: OperationEndInfo) -> None:
        if info.operation_type is OperationType.STEP:
            self._log("operation-end", op=info.operation_id, status=info.status.value)

    def on_user_function_start(self, info: UserFunctionStartInfo) -> None:
        if info.operation_type is OperationType.STEP:
            self._log("attempt-start", n=info.attempt, op=info.operation_id)

    def on_user_function_end(self, info: UserFunctionEndInfo) -> None:
        if info.operation_type is OperationType.STEP:
            self._log("attempt-end", n=info.attempt, outcome=info.outcome.value, op=info.operation_id)


_INVOCATION = {"invocation-start", "invocation-end"}
_OPERATION = {"operation-start", "operation-end"}
_ATTEMPT = {"attempt-start", "attempt-end"}


class Factory:
    """The SDK registers factories; each invocation gets a fresh plugin."""

    def __init__(self, tag: str, hooks: set[str], *, faulty: bool = False) -> None:
        self.tag, self.hooks, self.faulty = tag, hooks, faulty

    def create_plugin(self, info: InvocationStartInfo, /) -> DurableInstrumentationPlugin:
        return _Plugin(self.tag, info, hooks=self.hooks, faulty=self.faulty)


def greet(event: Any) -> Any:
    def body(step_context: StepContext) -> str:
        step_context.logger.info(f"Greeting step running for: {event}")
        return f"Hello, {event}!"

    return body


@requirement("10-1")
@durable_execution(plugins=[Factory("CONFPLUGIN", _INVOCATION)])
def plugin_invocation_hooks(event: Any, context: DurableContext) -> Any:
    return context.step(greet(event))


@requirement("10-2")
@durable_execution(plugins=[Factory("CONFPLUGIN", _OPERATION)])
def plugin_operation_hooks(event: Any, context: DurableContext) -> Any:
    return context.step(greet(event))


def _unreliable(step_context: StepContext) -> str:
    if step_context.attempt == 1:
        raise RuntimeError("first attempt fails")
    return "Operation succeeded"


_RETRY = create_retry_strategy(
    RetryStrategyConfig(
        max_attempts=3, initial_delay=Duration.from_seconds(1), jitter_strategy=JitterStrategy.NONE
    )
)


@requirement("10-3")
@durable_execution(plugins=[Factory("CONFPLUGIN", _ATTEMPT)])
def plugin_attempt_hooks(event: Any, context: DurableContext) -> Any:
    return context.step(_unreliable, config=StepConfig(retry_strategy=_RETRY))


@requirement("10-4")
@durable_execution(plugins=[Factory("CONFPLUGIN-FAULTY", _INVOCATION | _OPERATION | _ATTEMPT, faulty=True)])
def plugin_faulty(event: Any, context: DurableContext) -> Any:
    return context.step(greet(event))


@requirement("10-5")
@durable_execution(plugins=[Factory("CONFPLUGIN-A", _INVOCATION), Factory("CONFPLUGIN-B", _INVOCATION)])
def plugin_two(event: Any, context: DurableContext) -> Any:
    return context.step(greet(event))


@requirement("10-6")
@durable_execution(plugins=[Factory("CONFPLUGIN", _INVOCATION)])
def plugin_replay(event: Any, context: DurableContext) -> Any:
    context.wait(Duration.from_seconds(2))
    return "waited"


@requirement("10-7")
@durable_execution(plugins=[Factory("CONFPLUGIN", _INVOCATION)])
def plugin_failed(event: Any, context: DurableContext) -> Any:
    def failing(_: StepContext) -> str:
        raise RuntimeError("step always fails")

    return context.step(failing, config=StepConfig(retry_strategy=RetryPresets.none()))
