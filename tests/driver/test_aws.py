"""Waking runs on AWS, against moto: EventBridge Scheduler schedules and delayed SQS messages."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("boto3")

from cairnflow.core.wake import Wakeup
from cairnflow.driver import Driver
from cairnflow.driver.aws import SQS_MAX_DELAY, EventBridgeWakeScheduler, SqsWakeScheduler, lambda_handler
from cairnflow.savers import open_saver
from tests.driver import flows
from tests.emulators.s3 import ACCESS_KEY, REGION, SECRET_KEY

FUNCTION = "arn:aws:lambda:us-east-1:123456789012:function:orders"
ROLE = "arn:aws:iam::123456789012:role/scheduler-invokes-orders"


def client(service: str, endpoint: str) -> Any:
    import boto3.session

    session = boto3.session.Session(
        aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY, region_name=REGION
    )
    return session.client(service, endpoint_url=endpoint)  # type: ignore[call-overload]


@pytest.fixture
def sqs_queue(s3_server_url: str) -> tuple[Any, str]:
    sqs = client("sqs", s3_server_url)
    url = sqs.create_queue(QueueName=f"wake-{uuid.uuid4().hex[:12]}")["QueueUrl"]
    return sqs, url


def receive(sqs: Any, url: str) -> list[dict[str, Any]]:
    # Long polling: returns as soon as a message is visible (no sleeping on our side).
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=10)
    return got.get("Messages", [])


def schedule_group(scheduler: Any) -> str:
    """A fresh schedule group: moto's scheduler is shared by every test (and, under
    pytest-xdist, by the other tests of the same worker), so listings count only ours."""
    name = f"wake-{uuid.uuid4().hex[:12]}"
    scheduler.create_schedule_group(Name=name)
    return name


def as_sqs_event(messages: list[dict[str, Any]]) -> dict[str, Any]:
    return {"Records": [{"messageId": m["MessageId"], "body": m["Body"]} for m in messages]}


def test_eventbridge_schedule_is_a_one_time_schedule_invoking_the_function(s3_server_url: str) -> None:
    scheduler = client("scheduler", s3_server_url)
    group = schedule_group(scheduler)
    wakeups = EventBridgeWakeScheduler(FUNCTION, ROLE, client=scheduler, group=group)
    wakeup = Wakeup("order-7", "five_steps", 1_900_000_000.4, "timer")
    wakeups.schedule(wakeup)
    wakeups.schedule(wakeup)  # a retried call: still one schedule
    listed = scheduler.list_schedules(GroupName=group)["Schedules"]
    assert len(listed) == 1
    got = scheduler.get_schedule(Name=listed[0]["Name"], GroupName=group)
    assert got["ScheduleExpression"] == "at(2030-03-17T17:46:41)"
    assert got["ScheduleExpressionTimezone"] == "UTC"
    assert got["Target"]["Arn"] == FUNCTION and got["Target"]["RoleArn"] == ROLE
    assert Wakeup.from_json(got["Target"]["Input"]) == wakeup
    wakeups.cancel(wakeup)
    wakeups.cancel(wakeup)  # cancelling what is gone is fine
    assert scheduler.list_schedules(GroupName=group)["Schedules"] == []


def test_a_scheduled_run_continues_when_its_target_input_is_delivered(
    s3_server_url: str, tmp_path: Path
) -> None:
    # moto stores schedules but never fires them: deliver the target input as EventBridge would.
    scheduler = client("scheduler", s3_server_url)
    group = schedule_group(scheduler)
    saver = open_saver(f"file://{tmp_path}/store")
    wakeups = EventBridgeWakeScheduler(FUNCTION, ROLE, client=scheduler, group=group)
    driver = Driver(saver, wakeups, [flows.five_steps])
    run = driver.start(flows.five_steps, "eb-1", thread_id="eb-1", deadline=time.time() + 5, reserve=60)
    assert run.status == "suspended"
    (entry,) = list(scheduler.list_schedules(GroupName=group)["Schedules"])  # the lease was cancelled
    event = json.loads(scheduler.get_schedule(Name=entry["Name"], GroupName=group)["Target"]["Input"])
    assert lambda_handler(driver)(event, None)["status"] == "completed"
    assert flows.five_steps.get_run(thread_id="eb-1", saver=saver).result == 30  # type: ignore[union-attr]


@pytest.mark.xfail(
    strict=True, reason="moto's EventBridge Scheduler stores schedules but never invokes targets"
)
def test_eventbridge_fires_the_schedule(s3_server_url: str, sqs_queue: tuple[Any, str]) -> None:
    # An SQS queue as the schedule's target: a schedule that fires puts its input there.
    sqs, url = sqs_queue
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    wakeup = Wakeup("t", "wf", time.time())
    EventBridgeWakeScheduler(arn, ROLE, client=client("scheduler", s3_server_url)).schedule(wakeup)
    assert [Wakeup.from_json(m["Body"]) for m in receive(sqs, url)] == [wakeup]


def test_sqs_wakeups_continue_suspended_runs_through_the_lambda_handler(
    sqs_queue: tuple[Any, str], tmp_path: Path
) -> None:
    sqs, url = sqs_queue
    saver = open_saver(f"file://{tmp_path}/store")
    driver = Driver(saver, SqsWakeScheduler(url, client=sqs), [flows.five_steps], lease=600)
    for n in range(3):
        run = driver.start(
            flows.five_steps, f"q-{n}", thread_id=f"q-{n}", deadline=time.time() + 5, reserve=60
        )
        assert run.status == "suspended"
    messages = receive(sqs, url)  # the three follow-ups (leases are 600 s away, still delayed)
    assert sorted(Wakeup.from_json(m["Body"]).thread_id for m in messages) == ["q-0", "q-1", "q-2"]
    assert lambda_handler(driver)(as_sqs_event(messages), None) == {"batchItemFailures": []}
    for n in range(3):
        assert flows.five_steps.get_run(thread_id=f"q-{n}", saver=saver).status == "completed"  # type: ignore[union-attr]


def test_sqs_chains_waits_longer_than_its_delay_limit(sqs_queue: tuple[Any, str]) -> None:
    sqs, url = sqs_queue
    sent: list[int] = []
    sqs.meta.events.register(
        "provide-client-params.sqs.SendMessage", lambda params, **_: sent.append(params["DelaySeconds"])
    )
    start = 1_000_000.0
    now = [start]
    wakeups = SqsWakeScheduler(url, client=sqs, clock=lambda: now[0])
    driver = Driver(
        open_saver(f"memory://chain-{uuid.uuid4().hex}"), wakeups, [flows.five_steps], clock=lambda: now[0]
    )
    due = Wakeup("t", "five_steps", start + 2000, "timer")
    wakeups.schedule(due)
    assert sent == [SQS_MAX_DELAY]
    # Each hop arrives after 900 s, early: the driver sends it on for the rest of the wait.
    now[0] += SQS_MAX_DELAY
    assert driver.handle(due) is None
    now[0] += SQS_MAX_DELAY
    assert driver.handle(due) is None
    assert sent == [SQS_MAX_DELAY, SQS_MAX_DELAY, 200]


def test_a_message_that_is_not_a_wakeup_is_refused_by_name(
    sqs_queue: tuple[Any, str], tmp_path: Path
) -> None:
    driver = Driver(
        open_saver(f"file://{tmp_path}/s"), SqsWakeScheduler(sqs_queue[1], client=sqs_queue[0]), []
    )
    with pytest.raises(Exception, match="shared with another application"):
        lambda_handler(driver)({"Records": [{"messageId": "m1", "body": '{"order": 1}'}]}, None)
