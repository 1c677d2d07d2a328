"""The execution history in the Lambda API's event shape, and the boto3-shaped ``LocalLambda``."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from aws_durable_execution_sdk_python import DurableContext, durable_execution
from aws_durable_execution_sdk_python.config import Duration, JitterStrategy, StepConfig
from aws_durable_execution_sdk_python.retries import RetryStrategyConfig, create_retry_strategy

from cairnflow.aws_durable import CairnflowDurableClient, LocalRunner
from cairnflow.aws_durable.history import events
from cairnflow.aws_durable.lambda_api import LambdaApiError, LocalLambda
from tests.aws_durable.conftest import START, FakeClock


def brief(history: list[dict[str, Any]]) -> list[tuple[int, str, str | None]]:
    return [(e["EventId"], e["EventType"], e.get("Name")) for e in history]


def test_step_retry_wait_and_result_become_the_service_events(
    client: CairnflowDurableClient, clock: FakeClock
) -> None:
    attempts: list[int] = []

    def flaky(step_context: Any) -> str:
        attempts.append(step_context.attempt)
        if len(attempts) == 1:
            raise RuntimeError("first attempt fails")
        return "ok"

    retry = create_retry_strategy(
        RetryStrategyConfig(
            max_attempts=2, initial_delay=Duration.from_seconds(3), jitter_strategy=JitterStrategy.NONE
        )
    )

    @durable_execution
    def handler(event: Any, context: DurableContext) -> Any:
        value = context.step(flaky, name="flaky", config=StepConfig(retry_strategy=retry))
        context.wait(Duration.from_seconds(7), name="pause")
        return {"value": value, "input": event}

    result = LocalRunner(handler, client, sleep=clock.sleep).run({"n": 1})
    assert result.status == "SUCCEEDED"
    history = events(result.arn.rsplit("/", 1)[-1], client.records(result.arn))
    assert brief(history) == [
        (1, "ExecutionStarted", None),
        (2, "StepStarted", "flaky"),
        (3, "StepFailed", "flaky"),
        (4, "InvocationCompleted", None),
        (5, "StepStarted", "flaky"),
        (6, "StepSucceeded", "flaky"),
        (7, "WaitStarted", "pause"),
        (8, "InvocationCompleted", None),
        (9, "WaitSucceeded", "pause"),
        (10, "InvocationCompleted", None),
        (11, "ExecutionSucceeded", None),
    ]
    by_id = {e["EventId"]: e for e in history}
    assert by_id[1]["ExecutionStartedDetails"]["Input"]["Payload"] == json.dumps({"n": 1})
    assert by_id[3]["StepFailedDetails"]["RetryDetails"] == {
        "CurrentAttempt": 1,
        "NextAttemptDelaySeconds": 3,
    }
    assert by_id[3]["StepFailedDetails"]["Error"]["Payload"]["ErrorMessage"] == "first attempt fails"
    assert by_id[6]["StepSucceededDetails"] == {
        "Result": {"Payload": '"ok"', "Truncated": False},
        "RetryDetails": {"CurrentAttempt": 2},
    }
    assert by_id[7]["WaitStartedDetails"]["Duration"] == 7
    assert by_id[9]["WaitSucceededDetails"] == {"Duration": 7}
    # Timestamps are the service's (the fake clock): the retry 3 s later, the wait 7 s after it.
    assert by_id[1]["EventTimestamp"] == datetime.fromtimestamp(START, tz=UTC)
    assert by_id[5]["EventTimestamp"] == datetime.fromtimestamp(START + 3, tz=UTC)
    assert by_id[7]["WaitStartedDetails"]["ScheduledEndTimestamp"] == datetime.fromtimestamp(
        START + 10, tz=UTC
    )
    assert by_id[9]["EventTimestamp"] == by_id[7]["WaitStartedDetails"]["ScheduledEndTimestamp"]
    assert json.loads(by_id[11]["ExecutionSucceededDetails"]["Result"]["Payload"]) == {
        "value": "ok",
        "input": {"n": 1},
    }
    # Without IncludeExecutionData, payloads are left out.
    bare = events(result.arn.rsplit("/", 1)[-1], client.records(result.arn), include_data=False)
    assert bare[0]["ExecutionStartedDetails"]["Input"] == {"Truncated": False}
    assert bare[5]["StepSucceededDetails"]["Result"] == {"Truncated": False}
    assert bare[2]["StepFailedDetails"]["Error"] == by_id[3]["StepFailedDetails"]["Error"]  # errors stay


def test_local_lambda_answers_the_boto3_calls(client: CairnflowDurableClient) -> None:
    @durable_execution
    def approve(event: Any, context: DurableContext) -> Any:
        return context.wait_for_callback(lambda _cid, _ctx: None, name="approval")

    with LocalLambda(client, {"approve": approve}) as lam:
        sync = lam.invoke(FunctionName="arn:aws:lambda:x:1:function:approve:$LATEST", Payload=b'"go"')
        arn = sync["DurableExecutionArn"]  # it waits for a callback: the invoke returns the state
        assert lam.get_durable_execution(DurableExecutionArn=arn)["Status"] == "RUNNING"
        history = lam.get_durable_execution_history(DurableExecutionArn=arn, IncludeExecutionData=True)[
            "Events"
        ]
        (started,) = [e for e in history if e["EventType"] == "CallbackStarted"]
        callback_id = started["CallbackStartedDetails"]["CallbackId"]
        lam.send_durable_execution_callback_success(CallbackId=callback_id, Result=b'"yes"')
        with pytest.raises(LambdaApiError) as refused:  # a second answer to the same callback
            lam.send_durable_execution_callback_success(CallbackId=callback_id, Result=b'"no"')
        assert refused.value.response["Error"]["Code"] == "InvalidParameterValueException"
        with pytest.raises(LambdaApiError):
            lam.invoke(FunctionName="nope")
    # The sync invoke stopped driving when only a callback could move it on; drive it now.
    done = LocalRunner(approve, client).drive(arn)
    assert done.status == "SUCCEEDED" and done.value == '"yes"'  # callback results are passed through raw
    lam = LocalLambda(client, {})
    page = lam.get_durable_execution_history(DurableExecutionArn=arn, MaxItems=2)
    assert [e["EventId"] for e in page["Events"]] == [1, 2] and page["NextMarker"] == "2"
    rest = lam.get_durable_execution_history(DurableExecutionArn=arn, Marker=page["NextMarker"])
    assert rest["Events"][0]["EventId"] == 3 and "NextMarker" not in rest
    newest = lam.get_durable_execution_history(DurableExecutionArn=arn, ReverseOrder=True, MaxItems=1)
    assert newest["Events"][0]["EventType"] == "ExecutionSucceeded"
    with pytest.raises(LambdaApiError):
        lam.get_durable_execution_history(DurableExecutionArn=arn, MaxItems=1001)


def _until(condition: Any, timeout: float = 20.0) -> None:
    """Poll ``condition()`` until true (the background driver's progress), or fail after ``timeout``."""
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def test_driving_a_waiting_execution_again_costs_no_invocation(
    client: CairnflowDurableClient, clock: FakeClock
) -> None:
    @durable_execution
    def approve(event: Any, context: DurableContext) -> Any:
        return context.wait_for_callback(lambda _cid, _ctx: None, name="approval")

    runner = LocalRunner(approve, client, sleep=clock.sleep)
    waiting = runner.run("go")
    assert waiting.status == "STARTED" and waiting.invocations == 1
    before = client.records(waiting.arn)
    again = runner.drive(waiting.arn)  # nothing happened since: nothing to invoke
    assert again.invocations == 0 and client.records(waiting.arn) == before
    runner.send_callback_success(runner.callback_ids(waiting.arn)[0], '"yes"')
    done = runner.drive(waiting.arn)
    assert done.invocations == 1 and done.status == "SUCCEEDED"


def test_a_callback_to_an_invoked_function_wakes_its_caller(client: CairnflowDurableClient) -> None:
    @durable_execution
    def approver(event: Any, context: DurableContext) -> Any:
        return context.wait_for_callback(lambda _cid, _ctx: None, name="approve")

    @durable_execution
    def caller(event: Any, context: DurableContext) -> Any:
        return {"answer": context.invoke("approver", event, name="ask")}

    with LocalLambda(client, {"approver": approver, "caller": caller}) as lam:
        arn = lam.invoke(FunctionName="caller", InvocationType="Event", Payload=b'"q"')["DurableExecutionArn"]

        def started(of: str, kind: str) -> list[dict[str, Any]]:
            try:
                found = lam.get_durable_execution_history(DurableExecutionArn=of)["Events"]
            except LambdaApiError:  # not started yet
                return []
            return [e for e in found if e["EventType"] == kind]

        _until(lambda: started(arn, "ChainedInvokeStarted") and started(arn, "InvocationCompleted"))
        child = started(arn, "ChainedInvokeStarted")[0]["ChainedInvokeStartedDetails"]["DurableExecutionArn"]
        _until(lambda: bool(started(child, "InvocationCompleted")))
        callback_id = started(child, "CallbackStarted")[0]["CallbackStartedDetails"]["CallbackId"]
        lam.send_durable_execution_callback_success(CallbackId=callback_id, Result=b'"ok"')
        _until(lambda: lam.get_durable_execution(DurableExecutionArn=arn)["Status"] == "SUCCEEDED")
        assert json.loads(lam.get_durable_execution(DurableExecutionArn=arn)["Result"]) == {"answer": '"ok"'}
        history = lam.get_durable_execution_history(DurableExecutionArn=arn)["Events"]
    # The caller was invoked twice: once to start the invoke, once after it finished.
    assert [e["EventType"] for e in history] == [
        "ExecutionStarted",
        "ChainedInvokeStarted",
        "InvocationCompleted",
        "ChainedInvokeSucceeded",
        "InvocationCompleted",
        "ExecutionSucceeded",
    ]


def test_callback_ids_have_the_api_shape_and_old_ones_still_decode() -> None:
    import base64
    import re

    from cairnflow.aws_durable.ids import decode_callback_id, encode_callback_id
    from cairnflow.core.errors import InvalidArgumentError

    arn = "arn:cairnflow:lambda:local:000000000000:function:f/durable-execution/n/" + "e" * 32
    for op_id in ("c4ca4238a0b923820dcc509a6f75849b", "x" * 64, "é?~>"):  # the last gives + or /
        cid = encode_callback_id(arn, op_id)
        assert re.fullmatch(r"[A-Za-z0-9+/]+={0,2}", cid) and len(cid) <= 1024, cid
        assert decode_callback_id(cid) == (arn, op_id)
        if op_id == "é?~>":
            assert "+" in cid or "/" in cid  # the alphabet the API's pattern allows, not URL-safe
        old = base64.urlsafe_b64encode(f"{arn}\n{op_id}\nabc".encode()).decode().rstrip("=")
        assert decode_callback_id(old) == (arn, op_id)
    with pytest.raises(InvalidArgumentError):
        decode_callback_id("not a callback id")


def test_checkpoint_tokens_have_the_api_shape(client: CairnflowDurableClient) -> None:
    import re

    arn = client.start_execution("null")
    token, _ = client.begin_invocation(arn)
    assert re.fullmatch(r"[A-Za-z0-9+/]+={0,2}", token) and len(token) <= 2048, token
    state = client.get_execution_state(durable_execution_arn=arn, checkpoint_token=token, next_marker="")
    assert len(state.operations) == 1  # the token names the record it was issued at


def test_an_invoke_dispatched_by_two_runners_starts_one_execution(
    client: CairnflowDurableClient, clock: FakeClock
) -> None:
    @durable_execution
    def target(event: Any, context: DurableContext) -> Any:
        return context.wait_for_callback(lambda _cid, _ctx: None, name="hold")

    @durable_execution
    def caller(event: Any, context: DurableContext) -> Any:
        return context.invoke("target", event, name="call")

    one = LocalRunner(caller, client, sleep=clock.sleep, functions={"target": target})
    arn = one.start("x")
    one.invoke(arn)  # the invoke is accepted: the service names its execution at once
    (op,) = [o for o in client.describe(arn).operations.values() if o["Type"] == "CHAINED_INVOKE"]
    assigned = op["_invoke"]["arn"]
    history = events(arn.rsplit("/", 1)[-1], client.records(arn))
    (started,) = [e for e in history if e["EventType"] == "ChainedInvokeStarted"]
    assert started["ChainedInvokeStartedDetails"]["DurableExecutionArn"] == assigned
    # Two runners (two processes after a crash, say) dispatch the same invoke.
    other = CairnflowDurableClient(client.saver, clock=clock)
    two = LocalRunner(caller, other, sleep=clock.sleep, functions={"target": target})
    assert one._dispatch(arn, op["Id"], "target", '"x"', assigned) == assigned
    assert two._dispatch(arn, op["Id"], "target", '"x"', assigned) == assigned
    starts = [t for t in client.log.threads() if ":function:target/" in str(t)]
    assert len(starts) == 1  # one execution of the target, not two
