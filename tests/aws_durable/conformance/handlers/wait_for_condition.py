"""Suite "wait_for_condition" (6-1 .. 6-13), written from the requirements' YAML."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from aws_durable_execution_sdk_python import DurableContext, durable_execution
from aws_durable_execution_sdk_python.config import Duration, JitterStrategy
from aws_durable_execution_sdk_python.serdes import SerDes, SerDesContext
from aws_durable_execution_sdk_python.waits import (
    WaitForConditionConfig,
    WaitForConditionDecision,
    WaitStrategyConfig,
    create_wait_strategy,
)

from ..registry import requirement


def until(done: Callable[[Any], bool], delay: int = 1) -> Callable[[Any, int], WaitForConditionDecision]:
    """Poll every ``delay`` seconds until ``done(state)``."""

    def strategy(state: Any, attempts: int) -> WaitForConditionDecision:
        if done(state):
            return WaitForConditionDecision.stop_polling()
        return WaitForConditionDecision.continue_waiting(Duration.from_seconds(delay))

    return strategy


def increment(state: int, _context: Any) -> int:
    return state + 1


def count_to(context: DurableContext, start: int, target: int, name: str | None = None) -> Any:
    config = WaitForConditionConfig(wait_strategy=until(lambda s: s >= target), initial_state=start)
    return context.wait_for_condition(increment, config=config, name=name)


@requirement("6-1")
@durable_execution
def wfcond_basic(event: Any, context: DurableContext) -> Any:
    return count_to(context, 0, int(event))


@requirement("6-2")
@durable_execution
def wfcond_immediate(event: Any, context: DurableContext) -> Any:
    config = WaitForConditionConfig(wait_strategy=until(lambda s: s >= 5), initial_state=5)
    return context.wait_for_condition(lambda state, _ctx: state, config=config)


@requirement("6-3")
@durable_execution
def wfcond_named(event: Any, context: DurableContext) -> Any:
    return count_to(context, 0, int(event), name="poll-status")


@requirement("6-4")
@durable_execution
def wfcond_initial_state(event: Any, context: DurableContext) -> Any:
    return count_to(context, 5, int(event))


@requirement("6-5")
@durable_execution
def wfcond_fixed_delay(event: Any, context: DurableContext) -> Any:
    target = int(event)
    strategy = create_wait_strategy(
        WaitStrategyConfig(
            should_continue_polling=lambda s: s < target,
            initial_delay=Duration.from_seconds(2),
            backoff_rate=1,
            jitter_strategy=JitterStrategy.NONE,
        )
    )
    config = WaitForConditionConfig(wait_strategy=strategy, initial_state=0)
    return context.wait_for_condition(increment, config=config)


@requirement("6-6")
@durable_execution
def wfcond_exhausted(event: Any, context: DurableContext) -> Any:
    strategy = create_wait_strategy(
        WaitStrategyConfig(
            should_continue_polling=lambda s: True,
            max_attempts=3,
            initial_delay=Duration.from_seconds(1),
            backoff_rate=1,
            jitter_strategy=JitterStrategy.NONE,
        )
    )
    config = WaitForConditionConfig(wait_strategy=strategy, initial_state=0)
    return context.wait_for_condition(increment, config=config)


def _raises(state: Any, _context: Any) -> Any:
    raise RuntimeError("check failed")


@requirement("6-7")
@durable_execution
def wfcond_check_raises(event: Any, context: DurableContext) -> Any:
    config = WaitForConditionConfig(wait_strategy=until(lambda s: True), initial_state=0)
    return context.wait_for_condition(_raises, config=config)


@requirement("6-8")
@durable_execution
def wfcond_check_raises_caught(event: Any, context: DurableContext) -> Any:
    config = WaitForConditionConfig(wait_strategy=until(lambda s: True), initial_state=0)
    try:
        return context.wait_for_condition(_raises, config=config)
    except Exception:
        return "recovered"


@requirement("6-9")
@durable_execution
def wfcond_object_state(event: Any, context: DurableContext) -> Any:
    def check(state: dict[str, Any], _ctx: Any) -> dict[str, Any]:
        attempts = int(state["attempts"]) + 1
        return {"status": "DONE" if attempts >= 2 else "PENDING", "attempts": attempts}

    config = WaitForConditionConfig(
        wait_strategy=until(lambda s: s["status"] != "PENDING"),
        initial_state={"status": "PENDING", "attempts": 0},
    )
    return context.wait_for_condition(check, config=config)


@requirement("6-10")
@durable_execution
def wfcond_null_state(event: Any, context: DurableContext) -> Any:
    config = WaitForConditionConfig(wait_strategy=until(lambda s: True), initial_state=0)
    return context.wait_for_condition(lambda state, _ctx: None, config=config)


class _Encoded(SerDes[Any]):
    """Checkpoints the string state wrapped and reversed; decodes it back."""

    def serialize(self, value: Any, serdes_context: SerDesContext) -> str:
        return json.dumps({"enc": str(value)[::-1]})

    def deserialize(self, data: str, serdes_context: SerDesContext) -> Any:
        return str(json.loads(data)["enc"])[::-1]


@requirement("6-11")
@durable_execution
def wfcond_custom_serdes(event: Any, context: DurableContext) -> Any:
    config = WaitForConditionConfig(
        wait_strategy=until(lambda s: len(s) >= 2), initial_state="", serdes=_Encoded()
    )
    return context.wait_for_condition(lambda state, _ctx: state + "x", config=config)


@requirement("6-12")
@durable_execution
def wfcond_then_step(event: Any, context: DurableContext) -> Any:
    reached = count_to(context, 0, int(event))
    return context.step(lambda _: reached * 10)


@requirement("6-13")
@durable_execution
def wfcond_twice(event: Any, context: DurableContext) -> Any:
    first = count_to(context, 0, 2)
    return count_to(context, first, 4)
