"""Handlers written for the AWS Durable Execution SDK, run unchanged by LocalRunner on cairnflow."""

from __future__ import annotations

import json
from typing import Any

from aws_durable_execution_sdk_python import DurableContext, durable_execution
from aws_durable_execution_sdk_python.config import Duration, JitterStrategy, StepConfig
from aws_durable_execution_sdk_python.lambda_service import OperationStatus, OperationType
from aws_durable_execution_sdk_python.retries import RetryStrategyConfig, create_retry_strategy

from cairnflow.aws_durable import CairnflowDurableClient, LocalRunner
from tests.aws_durable.conftest import START, FakeClock, kinds


def runner_for(handler: Any, client: CairnflowDurableClient, clock: FakeClock) -> LocalRunner:
    return LocalRunner(handler, client, sleep=clock.sleep)


def test_steps_and_wait_resume_after_the_service_timestamp(
    client: CairnflowDurableClient, clock: FakeClock
) -> None:
    calls: list[str] = []

    @durable_execution
    def handler(event: dict[str, Any], context: DurableContext) -> dict[str, int]:
        a = context.step(lambda _: calls.append("add") or event["x"] + 1, name="add")
        context.wait(Duration.from_seconds(30), name="pause")
        b = context.step(lambda _: calls.append("double") or a * 2, name="double")
        return {"b": b}

    result = runner_for(handler, client, clock).run({"x": 20})

    assert result.status == "SUCCEEDED"
    assert result.value == {"b": 42}
    assert result.invocations == 2
    assert calls == ["add", "double"]  # the replay did not run "add" again
    assert clock.slept == [30.0]  # woken exactly at the wait's scheduled end
    wait = result.operation("pause")
    assert wait.operation_type is OperationType.WAIT and wait.status is OperationStatus.SUCCEEDED
    assert wait.wait_details is not None and wait.wait_details.scheduled_end_timestamp is not None
    assert wait.wait_details.scheduled_end_timestamp.timestamp() == START + 30
    assert kinds(client.records(result.arn)) == [
        ("service", [("EXECUTION", "START")]),
        ("service", []),
        ("sdk", [("STEP", "START"), ("STEP", "SUCCEED")]),
        ("sdk", [("WAIT", "START")]),
        ("end", []),  # the invocation ended (suspended at the wait)
        ("service", [("WAIT", "SUCCEED")]),
        ("sdk", [("STEP", "START"), ("STEP", "SUCCEED")]),
        ("end", [("EXECUTION", "SUCCEED")]),  # the result, in the record that ends the invocation
    ]


def test_failing_step_is_retried_after_its_back_off(client: CairnflowDurableClient, clock: FakeClock) -> None:
    attempts: list[int] = []

    def flaky(_: Any) -> str:
        attempts.append(len(attempts) + 1)
        if len(attempts) < 3:
            raise RuntimeError(f"boom {len(attempts)}")
        return "ok"

    strategy = create_retry_strategy(
        RetryStrategyConfig(
            max_attempts=5, initial_delay=Duration.from_seconds(2), jitter_strategy=JitterStrategy.NONE
        )
    )

    @durable_execution
    def handler(event: Any, context: DurableContext) -> str:
        return context.step(flaky, name="flaky", config=StepConfig(retry_strategy=strategy))

    result = runner_for(handler, client, clock).run()

    assert result.status == "SUCCEEDED" and result.value == "ok"
    assert attempts == [1, 2, 3]
    assert result.invocations == 3
    assert len(clock.slept) == 2 and clock.slept[0] == 2.0  # the back-off the retry strategy chose
    step = result.operation("flaky")
    assert step.step_details is not None and step.step_details.attempt == 3


def test_step_that_keeps_failing_fails_the_execution(
    client: CairnflowDurableClient, clock: FakeClock
) -> None:
    strategy = create_retry_strategy(
        RetryStrategyConfig(max_attempts=2, initial_delay=Duration.from_seconds(1))
    )

    def broken(_: Any) -> None:
        raise ValueError("always broken")

    @durable_execution
    def handler(event: Any, context: DurableContext) -> None:
        context.step(broken, name="broken", config=StepConfig(retry_strategy=strategy))

    result = runner_for(handler, client, clock).run()

    assert result.status == "FAILED"
    assert result.error is not None and "always broken" in result.error.get("ErrorMessage", "")
    assert result.operation("broken").status is OperationStatus.FAILED


def test_wait_for_callback_is_completed_by_the_runner(
    client: CairnflowDurableClient, clock: FakeClock
) -> None:
    submitted: list[str] = []

    @durable_execution
    def handler(event: Any, context: DurableContext) -> dict[str, Any]:
        answer = context.wait_for_callback(
            lambda callback_id, _ctx: submitted.append(callback_id), name="approve"
        )
        return {"answer": answer}

    runner = runner_for(handler, client, clock)
    waiting = runner.run({"order": 7})
    assert waiting.status == "STARTED" and waiting.result is None
    assert runner.callback_ids(waiting.arn) == submitted  # the id the handler sent out is the live one

    runner.send_callback_success(submitted[0], json.dumps({"ok": True}))
    done = runner.drive(waiting.arn)

    assert done.status == "SUCCEEDED"
    assert json.loads(done.value["answer"]) == {"ok": True}
    assert runner.callback_ids(waiting.arn) == []


def test_callback_failure_reaches_the_handler(client: CairnflowDurableClient, clock: FakeClock) -> None:
    @durable_execution
    def handler(event: Any, context: DurableContext) -> str:
        callback = context.create_callback(name="cb")
        try:
            callback.result()
        except Exception as exc:  # the SDK raises a CallbackError carrying our message
            return f"refused: {exc}"
        return "accepted"

    runner = runner_for(handler, client, clock)
    waiting = runner.run()
    (callback_id,) = runner.callback_ids(waiting.arn)
    runner.send_callback_failure(callback_id, "manager said no", "Rejected")
    done = runner.drive(waiting.arn)

    assert done.status == "SUCCEEDED"
    assert "manager said no" in done.value


def test_child_context_map_and_parallel(client: CairnflowDurableClient, clock: FakeClock) -> None:
    @durable_execution
    def handler(event: Any, context: DurableContext) -> dict[str, Any]:
        x = context.run_in_child_context(lambda ctx: ctx.step(lambda _: 5, name="inner") + 1, name="kid")
        mapped = context.map(
            [1, 2, 3], lambda ctx, item, i, _items: ctx.step(lambda _: item * 10, name=f"m{i}"), name="mapper"
        )
        par = context.parallel([lambda ctx: ctx.step(lambda _: "a", name="pa"), lambda _ctx: "b"], name="par")
        return {"x": x, "m": mapped.get_results(), "p": par.get_results()}

    result = runner_for(handler, client, clock).run()

    assert result.status == "SUCCEEDED"
    assert result.value == {"x": 6, "m": [10, 20, 30], "p": ["a", "b"]}
    kid = result.operation("kid")
    inner = result.operation("inner")
    assert kid.operation_type is OperationType.CONTEXT and inner.parent_id == kid.operation_id


def test_replay_sees_the_first_run_values(client: CairnflowDurableClient, clock: FakeClock) -> None:
    """A step's recorded value is what every later invocation sees, not a fresh computation."""
    counter = iter(range(100))

    @durable_execution
    def handler(event: Any, context: DurableContext) -> list[int]:
        first = context.step(lambda _: next(counter), name="draw")
        context.wait(Duration.from_seconds(5))
        second = context.step(lambda _: next(counter), name="draw2")
        return [first, second]

    result = runner_for(handler, client, clock).run()

    assert result.value == [0, 1]  # the replayed invocation did not draw again for "draw"


def test_due_index_drives_the_execution_without_sleeping(counted: Any, clock: FakeClock) -> None:
    """The driver seam: wake-ups in the store's due index, served by polling; an idle poll is one LIST."""
    from cairnflow.core.log import CheckpointLog
    from cairnflow.driver.due import DueIndex

    saver = CheckpointLog(counted)
    client = CairnflowDurableClient(saver, clock=clock)
    index = DueIndex(saver, clock=clock)
    submitted: list[str] = []

    @durable_execution
    def handler(event: Any, context: DurableContext) -> list[Any]:
        first = context.step(lambda _: "a", name="first")
        context.wait(Duration.from_seconds(10))
        answer = context.wait_for_callback(lambda cid, _ctx: submitted.append(cid), name="ask")
        return [first, answer]

    runner = LocalRunner(handler, client, scheduler=index, sleep=clock.sleep)
    arn = runner.start()
    assert runner.serve(index) == 1  # the first invocation: step, then the wait suspends it
    counted.reset()
    assert runner.serve(index) == 0  # the wait is not due yet
    assert counted.counts == {"LIST": 1}
    clock.sleep(10)
    assert runner.serve(index) == 1  # the wait fired; now waiting for the callback
    assert runner.result(arn).status == "STARTED" and len(submitted) == 1
    assert runner.serve(index) == 0
    runner.send_callback_success(submitted[0], "yes")  # schedules a wake-up for now
    assert runner.serve(index) == 1
    result = runner.result(arn)
    assert result.status == "SUCCEEDED" and result.value == ["a", "yes"]
    assert clock.slept == [10]  # only the test's own clock move: the runner never slept
    assert list(index.due()) == []


def test_restart_after_a_runner_dies_mid_invocation(client: CairnflowDurableClient, clock: FakeClock) -> None:
    """A runner that died after the handler checkpointed (before recording the result) is simply re-run."""
    ran: list[str] = []

    @durable_execution
    def handler(event: Any, context: DurableContext) -> str:
        value = context.step(lambda _: ran.append("step") or "v", name="once")
        return value

    first = LocalRunner(handler, client, sleep=clock.sleep)
    arn = first.start()
    client.begin_invocation(arn)  # an invocation that died before running anything
    token, view = client.begin_invocation(arn)  # one that ran the handler, then died before finishing
    from aws_durable_execution_sdk_python.execution import (
        DurableExecutionInvocationInputWithClient,
        InitialExecutionState,
    )

    from cairnflow.aws_durable import LocalLambdaContext

    operations, _ = client.page(view, None, 100)
    lost_output = handler(
        DurableExecutionInvocationInputWithClient(
            durable_execution_arn=arn,
            checkpoint_token=token,
            initial_execution_state=InitialExecutionState(operations=operations, next_marker=""),
            service_client=client,
        ),
        LocalLambdaContext(),
    )
    assert lost_output["Status"] == "SUCCEEDED"
    assert client.describe(arn).status == "STARTED"  # the result was never recorded

    # A new runner (a fresh process: a fresh client on the same store) finishes it.
    restarted = LocalRunner(handler, CairnflowDurableClient(client.saver, clock=clock), sleep=clock.sleep)
    result = restarted.drive(arn)
    assert result.status == "SUCCEEDED" and result.value == "v"
    assert ran == ["step"]  # the step ran once; the replay used its record


def test_chained_invoke_runs_the_named_function_and_returns_its_result(
    client: CairnflowDurableClient, clock: FakeClock
) -> None:
    @durable_execution
    def pricing(event: dict[str, Any], context: DurableContext) -> dict[str, Any]:
        context.wait(Duration.from_seconds(3))
        return {"price": context.step(lambda _: event["qty"] * 5, name="price")}

    @durable_execution
    def failing(event: Any, context: DurableContext) -> None:
        raise RuntimeError("out of stock")

    @durable_execution
    def order(event: Any, context: DurableContext) -> dict[str, Any]:
        quote = context.invoke("pricing", {"qty": 4}, name="quote")
        try:
            context.invoke("failing", {}, name="reserve")
        except Exception as exc:  # the SDK's InvokeError with the callee's error
            return {"quote": quote, "reserve": str(exc)}
        return {"quote": quote, "reserve": "ok"}

    runner = LocalRunner(order, client, sleep=clock.sleep, functions={"pricing": pricing, "failing": failing})
    result = runner.run()

    assert result.status == "SUCCEEDED", result.error
    assert result.value["quote"] == {"price": 20}
    assert "out of stock" in result.value["reserve"]
    assert clock.slept == [3.0]  # the callee's wait
    quote = result.operation("quote")
    assert quote.operation_type is OperationType.CHAINED_INVOKE and quote.status is OperationStatus.SUCCEEDED


def test_callback_timeout_is_fired_by_the_service(client: CairnflowDurableClient, clock: FakeClock) -> None:
    from aws_durable_execution_sdk_python.config import CallbackConfig

    @durable_execution
    def handler(event: Any, context: DurableContext) -> str:
        callback = context.create_callback(
            name="cb", config=CallbackConfig(timeout=Duration.from_seconds(60))
        )
        try:
            return str(callback.result())
        except Exception as exc:  # CallbackTimeoutError
            return f"timed out: {type(exc).__name__}"

    result = runner_for(handler, client, clock).run()

    assert result.status == "SUCCEEDED"
    assert result.value.startswith("timed out")
    assert clock.slept == [60.0]
    assert result.operation("cb").status is OperationStatus.TIMED_OUT
