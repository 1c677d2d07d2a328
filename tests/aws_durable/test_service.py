"""The service protocol itself: tokens as fences, client tokens, paging, refusals, request counts."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from aws_durable_execution_sdk_python import DurableContext, durable_execution
from aws_durable_execution_sdk_python.exceptions import CheckpointError, GetExecutionStateError
from aws_durable_execution_sdk_python.execution import (
    DurableExecutionInvocationInputWithClient,
    InitialExecutionState,
)
from aws_durable_execution_sdk_python.lambda_service import (
    OperationAction,
    OperationStatus,
    OperationType,
    OperationUpdate,
)

from cairnflow.aws_durable import CairnflowDurableClient, LocalLambdaContext, LocalRunner
from cairnflow.core.counting import CountingStore
from cairnflow.core.errors import InvalidArgumentError, TransientStoreError
from cairnflow.core.log import CheckpointLog
from cairnflow.core.store import CREATE, PutMode
from cairnflow.savers.memory import MemoryStore
from tests.aws_durable.conftest import FakeClock, kinds


def step(op_id: str, action: OperationAction, **extra: Any) -> OperationUpdate:
    return OperationUpdate(
        operation_id=op_id, operation_type=OperationType.STEP, action=action, name=op_id, **extra
    )


def test_checkpoint_advances_the_token_and_returns_the_changed_operations(
    client: CairnflowDurableClient,
) -> None:
    arn = client.start_execution('{"a": 1}')
    token, _ = client.begin_invocation(arn)

    out = client.checkpoint(
        durable_execution_arn=arn,
        checkpoint_token=token,
        updates=[step("s1", OperationAction.START), step("s1", OperationAction.SUCCEED, payload='"v"')],
        client_token=None,
    )

    assert out.checkpoint_token is not None and out.checkpoint_token != token
    (op,) = out.new_execution_state.operations
    assert op.operation_id == "s1" and op.status is OperationStatus.SUCCEEDED
    assert op.step_details is not None and op.step_details.result == '"v"' and op.step_details.attempt == 1


def test_stale_token_gets_the_retryable_invalid_token_error_and_writes_nothing(
    client: CairnflowDurableClient,
) -> None:
    arn = client.start_execution(None)
    token, _ = client.begin_invocation(arn)
    client.checkpoint(
        durable_execution_arn=arn,
        checkpoint_token=token,
        updates=[step("s1", OperationAction.START)],
        client_token=None,
    )
    before = client.records(arn)

    with pytest.raises(CheckpointError) as caught:
        client.checkpoint(
            durable_execution_arn=arn,
            checkpoint_token=token,
            updates=[step("other", OperationAction.START)],
            client_token=None,
        )

    assert str(caught.value).startswith("Invalid checkpoint token")
    assert caught.value.is_retryable()
    assert client.records(arn) == before


def test_a_token_of_another_execution_is_refused(client: CairnflowDurableClient) -> None:
    first, second = client.start_execution(None), client.start_execution(None)
    token, _ = client.begin_invocation(first)
    with pytest.raises(CheckpointError, match="Invalid checkpoint token"):
        client.checkpoint(
            durable_execution_arn=second,
            checkpoint_token=token,
            updates=[step("s", OperationAction.START)],
            client_token=None,
        )
    with pytest.raises(GetExecutionStateError, match="Invalid checkpoint token"):
        client.get_execution_state(durable_execution_arn=second, checkpoint_token=token, next_marker="1")


def test_retried_call_with_the_same_client_token_recognises_its_own_record(
    counted: CountingStore, clock: FakeClock
) -> None:
    client = CairnflowDurableClient(CheckpointLog(counted), clock=clock)
    arn = client.start_execution(None)
    token, _ = client.begin_invocation(arn)
    updates = [step("s1", OperationAction.START), step("s1", OperationAction.SUCCEED, payload="1")]
    first = client.checkpoint(
        durable_execution_arn=arn, checkpoint_token=token, updates=updates, client_token="call-1"
    )
    # The caller never saw the answer and retries, from a fresh process (nothing cached).
    again = CairnflowDurableClient(CheckpointLog(counted), clock=clock)
    second = again.checkpoint(
        durable_execution_arn=arn, checkpoint_token=token, updates=updates, client_token="call-1"
    )

    assert second.checkpoint_token == first.checkpoint_token
    assert [op.to_dict() for op in second.new_execution_state.operations] == [
        op.to_dict() for op in first.new_execution_state.operations
    ]
    assert [r["ct"] for r in client.records(arn)] == [None, None, "call-1"]  # recorded once
    with pytest.raises(CheckpointError, match="Invalid checkpoint token"):  # another call is still fenced
        again.checkpoint(
            durable_execution_arn=arn, checkpoint_token=token, updates=updates, client_token="call-2"
        )


class LandsThenFails(MemoryStore):
    """A store whose next create lands but reports a transient failure (an ambiguous write)."""

    def __init__(self) -> None:
        super().__init__()
        self.fail_next = False

    def put(self, key: str, data: bytes, mode: PutMode = CREATE) -> str:
        etag = super().put(key, data, mode)
        if self.fail_next:
            self.fail_next = False
            raise TransientStoreError("connection reset after the write landed")
        return etag


def test_ambiguous_write_is_recognised_not_duplicated(clock: FakeClock) -> None:
    store = LandsThenFails()
    client = CairnflowDurableClient(CheckpointLog(store), clock=clock)
    arn = client.start_execution(None)
    token, _ = client.begin_invocation(arn)

    store.fail_next = True
    out = client.checkpoint(
        durable_execution_arn=arn,
        checkpoint_token=token,
        updates=[step("s1", OperationAction.START)],
        client_token=None,
    )

    assert out.checkpoint_token is not None
    assert kinds(client.records(arn))[-1] == ("sdk", [("STEP", "START")])
    assert len(client.records(arn)) == 3


def test_sdk_updates_the_service_owns_are_refused(client: CairnflowDurableClient) -> None:
    arn = client.start_execution(None)
    token, _ = client.begin_invocation(arn)
    wait_done = OperationUpdate(
        operation_id="w", operation_type=OperationType.WAIT, action=OperationAction.SUCCEED
    )
    with pytest.raises(CheckpointError, match="not allowed") as caught:
        client.checkpoint(
            durable_execution_arn=arn, checkpoint_token=token, updates=[wait_done], client_token=None
        )
    assert not caught.value.is_retryable()
    out = client.checkpoint(
        durable_execution_arn=arn,
        checkpoint_token=token,
        updates=[step("s", OperationAction.START), step("s", OperationAction.SUCCEED)],
        client_token=None,
    )
    assert out.checkpoint_token is not None
    with pytest.raises(CheckpointError, match="already SUCCEEDED"):
        client.checkpoint(
            durable_execution_arn=arn,
            checkpoint_token=out.checkpoint_token,
            updates=[step("s", OperationAction.START)],
            client_token=None,
        )


def test_state_pages_by_marker_and_costs_a_fixed_number_of_requests(
    counted: CountingStore, clock: FakeClock
) -> None:
    writer = CairnflowDurableClient(CheckpointLog(counted, snapshot_every=4), clock=clock)
    arn = writer.start_execution(None)
    token, _ = writer.begin_invocation(arn)
    for i in range(25):  # 25 checkpoint calls: snapshots and deltas
        out = writer.checkpoint(
            durable_execution_arn=arn,
            checkpoint_token=token,
            updates=[step(f"s{i}", OperationAction.START)],
            client_token=None,
        )
        assert out.checkpoint_token is not None
        token = out.checkpoint_token

    counted.reset()
    reader = CairnflowDurableClient(CheckpointLog(counted, snapshot_every=4), clock=clock)
    ids: list[str] = []
    marker = ""
    pages = 0
    while True:
        page = reader.get_execution_state(
            durable_execution_arn=arn, checkpoint_token=token, next_marker=marker, max_items=7
        )
        ids += [op.operation_id for op in page.operations]
        pages += 1
        if not page.next_marker:
            break
        marker = page.next_marker

    assert pages == 4
    assert ids[1:] == [f"s{i}" for i in range(25)]  # the execution operation first, then in order
    assert counted.counts["GET"] <= 2 and counted.counts["LIST"] == 0 and counted.counts["PUT"] == 0


def test_a_checkpoint_costs_one_put(counted: CountingStore, client: CairnflowDurableClient) -> None:
    arn = client.start_execution(None)
    token, _ = client.begin_invocation(arn)
    counted.reset()
    for i in range(10):
        out = client.checkpoint(
            durable_execution_arn=arn,
            checkpoint_token=token,
            updates=[step(f"s{i}", OperationAction.START)],
            client_token=None,
        )
        assert out.checkpoint_token is not None
        token = out.checkpoint_token
    assert counted.counts == {"PUT": 10}


def test_two_invocations_racing_on_one_token_leave_one_line_of_history(
    client: CairnflowDurableClient, clock: FakeClock
) -> None:
    """Duplicate delivery: both run the step, exactly one records it, the other stands down."""
    both_in_step = threading.Barrier(2, timeout=30)
    runs: list[str] = []

    @durable_execution
    def handler(event: Any, context: DurableContext) -> str:
        def body(_: Any) -> str:
            runs.append(threading.current_thread().name)
            both_in_step.wait()  # neither checkpoints the step before both have run it
            return "done"

        return context.step(body, name="charge")

    arn = client.start_execution("{}")
    token, view = client.begin_invocation(arn)
    operations, _ = client.page(view, None, 100)
    outputs: list[Any] = []

    def invoke() -> None:
        event = DurableExecutionInvocationInputWithClient(
            durable_execution_arn=arn,
            checkpoint_token=token,
            initial_execution_state=InitialExecutionState(operations=operations, next_marker=""),
            service_client=client,
        )
        try:
            outputs.append(handler(event, LocalLambdaContext()))
        except CheckpointError as exc:  # the SDK raises the retryable error for Lambda to retry
            outputs.append(exc)

    threads = [threading.Thread(target=invoke, name=f"invocation-{i}") for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)

    assert len(runs) == 2
    stood_down = [o for o in outputs if isinstance(o, CheckpointError) or o.get("Status") == "PENDING"]
    won = [o for o in outputs if isinstance(o, dict) and o.get("Status") == "SUCCEEDED"]
    assert len(won) == 1 and len(stood_down) == 1
    if isinstance(stood_down[0], CheckpointError):
        assert str(stood_down[0]).startswith("Invalid checkpoint token")
    history = kinds(client.records(arn))
    assert history == [
        ("service", [("EXECUTION", "START")]),
        ("service", []),
        ("sdk", [("STEP", "START"), ("STEP", "SUCCEED")]),
    ]
    # The runner then finishes the execution once, from the winner's token.
    result = LocalRunner(handler, client, sleep=clock.sleep).drive(arn)
    assert result.status == "SUCCEEDED" and result.value == "done"


def test_boto3_client_path_with_plain_json_events(client: CairnflowDurableClient, clock: FakeClock) -> None:
    from aws_durable_execution_sdk_python.config import Duration

    @durable_execution(boto3_client=client.boto3_client())
    def handler(event: Any, context: DurableContext) -> int:
        n = context.step(lambda _: event["n"] * 3, name="triple")
        context.wait(Duration.from_seconds(2))
        return n + 1

    result = LocalRunner(handler, client, sleep=clock.sleep, json_events=True).run({"n": 4})
    assert result.status == "SUCCEEDED" and result.value == 13
    assert result.invocations == 2


def test_callback_ids_are_checked(client: CairnflowDurableClient) -> None:
    with pytest.raises(InvalidArgumentError, match="not a callback id"):
        client.send_callback_success("not-a-callback")
