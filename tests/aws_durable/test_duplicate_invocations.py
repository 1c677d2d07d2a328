"""Two invocations of one execution (Lambda delivers at least once): one stands down, the other goes on.

A newer invocation's begin record fences the older one (its checkpoints are
refused). The older one then records its end (``InvocationCompleted``); that
record changes no operation, so it must not fence the live invocation too,
or both stand down and nothing is left running the execution.
"""

from __future__ import annotations

import pytest
from aws_durable_execution_sdk_python.exceptions import CheckpointError
from aws_durable_execution_sdk_python.lambda_service import OperationAction, OperationType, OperationUpdate

from cairnflow.aws_durable import CairnflowDurableClient
from cairnflow.aws_durable.history import events
from cairnflow.core.counting import CountingStore
from cairnflow.core.log import CheckpointLog
from tests.aws_durable.conftest import FakeClock, kinds


def step(op_id: str, action: OperationAction, **extra: object) -> OperationUpdate:
    return OperationUpdate(
        operation_id=op_id,
        operation_type=OperationType.STEP,
        action=action,
        name=op_id,
        **extra,  # type: ignore[arg-type]
    )


def checkpoint(client: CairnflowDurableClient, arn: str, token: str, *updates: OperationUpdate) -> str | None:
    out = client.checkpoint(
        durable_execution_arn=arn, checkpoint_token=token, updates=list(updates), client_token=None
    )
    return out.checkpoint_token


def end(client: CairnflowDurableClient, arn: str, token: str, status: str, result: str | None = None) -> bool:
    output = {"Status": status, "Result": result}
    return client.end_invocation(arn, token, output, started_ms=0, request_id="r")


def test_a_stood_down_invocations_end_does_not_fence_the_live_one(
    client: CairnflowDurableClient, counted: CountingStore, clock: FakeClock
) -> None:
    arn = client.start_execution(None)
    older, _ = client.begin_invocation(arn)
    live, _ = client.begin_invocation(arn)  # a duplicate delivery begins: the older one is stale
    with pytest.raises(CheckpointError, match="Invalid checkpoint token"):
        checkpoint(client, arn, older, step("s1", OperationAction.START))
    assert end(client, arn, older, "PENDING")  # the older one ends, having stood down

    # Another process runs the live invocation: it knows nothing of the end record.
    other = CairnflowDurableClient(CheckpointLog(counted, prefix="app"), clock=clock)
    token = checkpoint(other, arn, live, step("s1", OperationAction.START))
    assert token is not None
    token = checkpoint(other, arn, token, step("s1", OperationAction.SUCCEED, payload='"v"'))
    assert token is not None
    assert end(client, arn, older, "PENDING")  # a second end record, after the live one wrote
    assert end(other, arn, token, "SUCCEEDED", '"done"')  # the result counts

    view = client.describe(arn)
    assert (view.status, view.result) == ("SUCCEEDED", '"done"')
    assert kinds(client.records(arn)) == [
        ("service", [("EXECUTION", "START")]),
        ("service", []),
        ("service", []),
        ("end", []),
        ("sdk", [("STEP", "START")]),
        ("sdk", [("STEP", "SUCCEED")]),
        ("end", []),
        ("end", [("EXECUTION", "SUCCEED")]),
    ]
    names = [e["EventType"] for e in events(view.execution_id, client.records(arn))]
    assert names == [
        "ExecutionStarted",
        "InvocationCompleted",
        "StepStarted",
        "StepSucceeded",
        "InvocationCompleted",
        "InvocationCompleted",
        "ExecutionSucceeded",
    ]


def test_a_newer_begin_still_fences_the_older_invocation(client: CairnflowDurableClient) -> None:
    arn = client.start_execution(None)
    older, _ = client.begin_invocation(arn)
    token = checkpoint(client, arn, older, step("s1", OperationAction.START))
    assert token is not None
    assert end(client, arn, token, "PENDING")
    client.begin_invocation(arn)  # begins after an end: a real fence, not an end alone
    with pytest.raises(CheckpointError, match="Invalid checkpoint token"):
        checkpoint(client, arn, token, step("s1", OperationAction.SUCCEED, payload='"v"'))
    assert not end(client, arn, token, "SUCCEEDED", '"late"')  # its result does not count
    assert client.describe(arn).status == "STARTED"
