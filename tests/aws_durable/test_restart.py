"""A service that restarts between invocations does not invoke before what the execution waits for is due.

The runner that died had let the last invocation end (its ``InvocationCompleted``
is recorded) and was sleeping until a timer, a retry, a callback or a chained
invoke. A fresh runner must pick up from there: invoking at once would add an
invocation (and an ``InvocationCompleted`` event) the managed service never makes.
"""

from __future__ import annotations

from typing import Any

from aws_durable_execution_sdk_python import DurableContext, durable_execution
from aws_durable_execution_sdk_python.config import Duration

from cairnflow.aws_durable import CairnflowDurableClient, LocalRunner
from cairnflow.aws_durable.runner import unseen
from tests.aws_durable.conftest import FakeClock, kinds


@durable_execution
def step_wait_step(event: Any, context: DurableContext) -> str:
    first = context.step(lambda _: "a", name="first")
    context.wait(Duration.from_seconds(60))
    return first + context.step(lambda _: "b", name="second")


def fresh(client: CairnflowDurableClient, clock: FakeClock, handler: Any, **options: Any) -> LocalRunner:
    """A runner in a new process: a new client on the same store."""
    return LocalRunner(
        handler, CairnflowDurableClient(client.saver, clock=clock), sleep=clock.sleep, **options
    )


def test_a_restarted_runner_waits_for_the_timer_before_invoking(
    client: CairnflowDurableClient, clock: FakeClock
) -> None:
    first = LocalRunner(step_wait_step, client, sleep=clock.sleep)
    arn = first.start()
    assert first.invoke(arn)["Status"] == "PENDING"  # ... then the runner dies, before it slept
    clock.now += 20

    result = fresh(client, clock, step_wait_step).drive(arn)

    assert (result.status, result.value, result.invocations) == ("SUCCEEDED", "ab", 1)
    assert clock.slept == [40.0]  # the rest of the minute, then one invocation
    ends = [who for who, _ in kinds(client.records(arn)) if who == "end"]
    assert len(ends) == 2  # as without the restart


def test_a_restarted_runner_invokes_at_once_after_a_failed_invocation(
    client: CairnflowDurableClient, clock: FakeClock
) -> None:
    crashed: list[bool] = []

    @durable_execution
    def crash_then_wait(event: Any, context: DurableContext) -> str:
        if not crashed:
            crashed.append(True)
            raise SystemExit(1)  # the Lambda process dies: the service retries it at once
        context.wait(Duration.from_seconds(60))
        return "done"

    first = LocalRunner(crash_then_wait, client, sleep=clock.sleep)
    arn = first.start()
    assert first.invoke(arn)["Status"] == "RETRY"

    result = fresh(client, clock, crash_then_wait).drive(arn)

    assert (result.status, result.value, result.invocations) == ("SUCCEEDED", "done", 2)
    assert clock.slept == [60.0]


def test_an_invocation_is_due_only_for_what_no_invocation_saw() -> None:
    def record(
        *updates: dict[str, Any], inv: dict[str, Any] | None = None, by: str = "service"
    ) -> dict[str, Any]:
        out: dict[str, Any] = {"n": "x", "t": 0, "by": by, "ct": None, "u": list(updates)}
        if inv is not None:
            out["inv"] = inv
        return out

    start = record({"Id": "e", "Type": "EXECUTION", "Action": "START"})
    invoke = record({"Id": "i", "Type": "CHAINED_INVOKE", "Action": "START"}, by="sdk")
    end = record(inv={"s": 0, "rid": "r"})
    dispatch = record({"Id": "i", "Type": "CHAINED_INVOKE", "Action": "DISPATCH", "ChildArn": "c"})
    delivered = record({"Id": "i", "Type": "CHAINED_INVOKE", "Action": "SUCCEED", "Payload": "1"})
    failed_end = record(inv={"s": 0, "rid": "r", "err": {"ErrorType": "Runtime.ExitError"}})

    assert unseen([start, record(), invoke])  # no invocation ended yet
    assert not unseen([start, record(), invoke, end])
    assert not unseen([start, record(), invoke, end, dispatch])  # bookkeeping only
    assert unseen([start, record(), invoke, end, dispatch, delivered])  # go on now
    assert unseen([start, record(), invoke, end, record()])  # an invocation began (and died)
    assert unseen([start, record(), failed_end])  # retried at once
