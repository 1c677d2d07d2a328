"""Durable executions continued by each cloud's scheduler or queue, against the emulators.

AWS: S3 (moto) for the state, SQS (moto) delivering wake-ups to
``cairnflow.driver.aws.lambda_handler``. Google Cloud: fake-gcs-server for
the state, the Cloud Tasks emulator POSTing wake-ups to
``cairnflow.driver.gcp.wsgi_app``. Azure: Azurite's blob service for the state
and its queue service, drained by ``cairnflow.driver.azure``. Nothing but the
delivered wake-ups invokes the handler.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from aws_durable_execution_sdk_python import DurableContext, durable_execution
from aws_durable_execution_sdk_python.config import Duration

from cairnflow.aws_durable import CairnflowDurableClient
from cairnflow.aws_durable.cloud import DurableDriver
from cairnflow.core.errors import InvalidArgumentError
from cairnflow.core.log import CheckpointLog
from cairnflow.core.store import ObjectStore
from cairnflow.core.wake import Wakeup

CALLS: list[str] = []


@durable_execution
def review(event: dict[str, Any], context: DurableContext) -> dict[str, Any]:
    arn = context.state.durable_execution_arn
    total = context.step(lambda _: CALLS.append(arn) or sum(event["items"]), name="sum")
    context.wait(Duration.from_seconds(1), name="cool-off")
    verdict = context.wait_for_callback(lambda _cid, _ctx: None, name="review")
    return {"total": total, "verdict": verdict}


def assert_each_step_once(client: CairnflowDurableClient, arn: str) -> None:
    updates = [u for r in client.records(arn) for u in r["u"]]
    succeeded = [u["Id"] for u in updates if (u["Type"], u["Action"]) == ("STEP", "SUCCEED")]
    assert len(succeeded) == len(set(succeeded)) == 2  # "sum", and wait_for_callback's submitter
    assert CALLS.count(arn) == 1  # the "sum" body ran once: no invocation repeated it


# ---------------------------------------------------------------------------------------- AWS


def test_lambda_with_s3_and_sqs_runs_an_execution_from_queue_messages_alone(
    s3_store: ObjectStore, s3_server_url: str
) -> None:
    pytest.importorskip("boto3")
    from cairnflow.driver.aws import SqsWakeScheduler, lambda_handler
    from tests.driver.test_aws import as_sqs_event, client, receive

    sqs = client("sqs", s3_server_url)
    url = sqs.create_queue(QueueName=f"durable-{uuid.uuid4().hex[:12]}")["QueueUrl"]
    service = CairnflowDurableClient(CheckpointLog(s3_store, prefix="fn"))
    driver = DurableDriver(service, SqsWakeScheduler(url, client=sqs), {"review": review}, lease=600)
    entry = lambda_handler(driver)  # what the Lambda function's handler setting names

    arn = driver.start("review", {"items": [2, 3]})
    for _ in range(3):  # the first invocation; the timer (an SQS delay of 1 s); then it waits
        messages = receive(sqs, url)
        assert messages, "no wake-up arrived"
        assert entry(as_sqs_event(messages), None) == {"batchItemFailures": []}
        for m in messages:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        if driver.result(arn).operation("cool-off").status.value == "SUCCEEDED":
            break
    standing = driver.result(arn)
    assert standing.status == "STARTED" and standing.operation("cool-off").status.value == "SUCCEEDED"
    (callback_id,) = driver.runner("review").callback_ids(arn)
    driver.send_callback_success(callback_id, "approved")  # schedules an invocation now
    messages = receive(sqs, url)
    assert entry(as_sqs_event(messages), None) == {"batchItemFailures": []}
    done = driver.result(arn)
    assert done.status == "SUCCEEDED" and done.value == {"total": 5, "verdict": "approved"}
    assert_each_step_once(service, arn)
    # A duplicate delivery of a handled wake-up invokes nothing and changes nothing.
    before = len(service.records(arn))
    assert entry({"Records": [{"messageId": "dup", "body": messages[0]["Body"]}]}, None) == {
        "batchItemFailures": []
    }
    assert len(service.records(arn)) == before


def test_a_wakeup_that_is_not_a_durable_function_is_refused(tmp_path: Path) -> None:
    from cairnflow.savers.memory import MemoryStore

    class Nowhere:
        def schedule(self, wakeup: Wakeup) -> None:
            raise AssertionError("nothing to schedule")

    driver = DurableDriver(
        CairnflowDurableClient(CheckpointLog(MemoryStore())), Nowhere(), {"review": review}
    )
    with pytest.raises(InvalidArgumentError, match="not a durable function"):
        driver.handle(Wakeup("arn:x", "orders", 0.0))
    with pytest.raises(InvalidArgumentError, match="no durable function 'other'"):
        driver.handle(Wakeup("arn:x", "aws-durable/other", 0.0))


# ---------------------------------------------------------------------------------------- Google


def test_cloud_run_with_gcs_and_cloud_tasks(gcs_store: ObjectStore, cloud_tasks: Any) -> None:
    pytest.importorskip("google.cloud.tasks_v2")
    from cairnflow.driver.gcp import CloudTasksWakeScheduler
    from tests.driver.test_gcp import Service

    tasks = cloud_tasks.client()
    queue = f"projects/test/locations/here/queues/durable-{uuid.uuid4().hex[:10]}"
    tasks.create_queue(parent="projects/test/locations/here", queue={"name": queue})
    try:
        service = CairnflowDurableClient(CheckpointLog(gcs_store, prefix="run"))
        driver = DurableDriver(service, None, {"review": review}, lease=3600)  # type: ignore[arg-type]
        server = Service(driver)  # type: ignore[arg-type]
        scheduler = CloudTasksWakeScheduler(queue, server.url, client=tasks)
        driver.scheduler = scheduler
        for runner in driver.runners.values():
            runner.scheduler = scheduler

        arn = driver.start("review", {"items": [1, 1]})
        answers = server.wait_for(2)  # the first invocation, then the timer's
        assert answers == ["200 OK", "200 OK"]
        (callback_id,) = driver.runner("review").callback_ids(arn)
        driver.send_callback_success(callback_id, "yes")
        assert server.wait_for(3)[-1] == "200 OK"
        done = driver.result(arn)
        assert done.status == "SUCCEEDED" and done.value == {"total": 2, "verdict": "yes"}
        assert_each_step_once(service, arn)
    finally:
        tasks.delete_queue(name=queue)


# ---------------------------------------------------------------------------------------- Azure


def test_azure_functions_with_blob_state_and_a_storage_queue(
    azure_store: ObjectStore, azure_queue_service: Any
) -> None:
    pytest.importorskip("azure.storage.queue")
    from cairnflow.driver.azure import StorageQueueWakeScheduler, drain

    queue = azure_queue_service.get_queue_client(f"durable-{uuid.uuid4().hex[:12]}")
    queue.create_queue()
    service = CairnflowDurableClient(CheckpointLog(azure_store, prefix="az"))
    driver = DurableDriver(service, StorageQueueWakeScheduler(queue), {"review": review}, lease=3600)

    arn = driver.start("review", {"items": [4]})
    assert drain(driver, queue) == 1  # the first invocation; the timer's message is hidden 1 s
    assert driver.result(arn).operation("sum").status.value == "SUCCEEDED"
    deadline = time.monotonic() + 30
    while driver.result(arn).operation("cool-off").status.value != "SUCCEEDED":
        assert time.monotonic() < deadline, "the timer's message never surfaced"
        if not drain(driver, queue):
            time.sleep(0.2)  # Azure queues have no long polling: the 1 s timer is real time
    (callback_id,) = driver.runner("review").callback_ids(arn)
    driver.send_callback_success(callback_id, "fine")
    assert drain(driver, queue) >= 1  # the callback's wake-up (visible at once)
    done = driver.result(arn)
    assert done.status == "SUCCEEDED" and done.value == {"total": 4, "verdict": "fine"}
    assert_each_step_once(service, arn)


# ---------------------------------------------------------------------------------------- chained invokes


@durable_execution
def double(event: int, context: DurableContext) -> int:
    context.wait(Duration.from_seconds(10), name="slow")  # the callee suspends: its own wake-ups
    return int(context.step(lambda _: event * 2, name="double"))


@durable_execution
def broken(event: Any, context: DurableContext) -> None:
    raise ValueError("broken on purpose")


@durable_execution
def caller(event: dict[str, Any], context: DurableContext) -> dict[str, Any]:
    doubled = context.invoke("double", event["n"], name="call-double")
    try:
        context.invoke("broken", None, name="call-broken")
        failed = "reached"
    except Exception as exc:  # the callee's execution FAILED: the invoke raises
        failed = str(exc)
    try:
        context.invoke("missing", 1, name="call-missing")
        missing = "reached"
    except Exception as exc:  # the service failed the invoke: no such function
        missing = type(exc).__name__
    return {"doubled": doubled, "failed": failed, "missing": missing}


def test_chained_invokes_run_through_the_scheduler_alone() -> None:
    from cairnflow.driver import DueIndex
    from cairnflow.savers.memory import MemoryStore
    from tests.aws_durable.conftest import FakeClock

    clock = FakeClock()
    saver = CheckpointLog(MemoryStore(), prefix="inv")
    index = DueIndex(saver, clock=clock)
    client = CairnflowDurableClient(saver, clock=clock)
    driver = DurableDriver(client, index, {"caller": caller, "double": double, "broken": broken}, lease=600)

    arn = driver.start("caller", {"n": 21})
    handled = 0
    for _ in range(50):  # serve the due index as `cairnflow worker` would; time moves to the next entry
        entries = list(index.due())
        if not entries:
            if driver.result(arn).status != "STARTED":
                break
            pending = [
                int(info.key.rsplit("/", 1)[1].split("-")[0]) for info in saver.store.list("inv/v1/due/at/")
            ]
            clock.now = min(pending) / 1000
            continue
        for entry in entries:
            assert index.claim(entry)
            assert driver.deliver(entry.wakeup)
            index.done(entry)
            handled += 1
    done = driver.result(arn)
    assert done.status == "SUCCEEDED", done
    assert done.value["doubled"] == 42 and done.value["missing"] != "reached"
    assert "broken on purpose" in done.value["failed"]
    (callee,) = [t for t in client.log.threads() if ":function:double/" in t]
    assert client.records(callee)[0]["u"][0]["Parent"]["arn"] == arn
    invoked = [u for r in client.records(arn) for u in r["u"] if u["Type"] == "CHAINED_INVOKE"]
    ends = [u["Action"] for u in invoked if u["Action"] in ("SUCCEED", "FAIL")]
    assert ends == ["SUCCEED", "FAIL", "FAIL"]
    # caller (invokes double), double (waits), double's timer (ends, answers and wakes the
    # caller), caller (invokes broken), broken (fails, answers), caller (invokes missing:
    # failed at dispatch, woken), caller (ends): no storm.
    assert handled == 7


def test_eventbridge_one_time_schedules_carry_each_wakeup(s3_store: ObjectStore, s3_server_url: str) -> None:
    # moto keeps schedules but never fires them: deliver each target input as EventBridge would.
    pytest.importorskip("boto3")
    from cairnflow.driver.aws import EventBridgeWakeScheduler, lambda_handler
    from tests.aws_durable.conftest import FakeClock
    from tests.driver.test_aws import FUNCTION, ROLE, client

    @durable_execution
    def steps(event: Any, context: DurableContext) -> int:
        a = context.step(lambda _: 20, name="a")
        context.wait(Duration.from_seconds(3600), name="an hour")
        return int(context.step(lambda _: a + 22, name="b"))

    clock = FakeClock()
    scheduler = client("scheduler", s3_server_url)
    service = CairnflowDurableClient(CheckpointLog(s3_store, prefix="eb"), clock=clock)
    prefix = f"d{uuid.uuid4().hex[:10]}-"  # the moto server is shared: list only this test's schedules
    wakeups = EventBridgeWakeScheduler(FUNCTION, ROLE, client=scheduler, name_prefix=prefix)
    driver = DurableDriver(service, wakeups, {"steps": steps})
    entry = lambda_handler(driver)

    def pending() -> list[Wakeup]:
        listed = scheduler.list_schedules(NamePrefix=prefix)["Schedules"]
        return [Wakeup.from_json(scheduler.get_schedule(Name=s["Name"])["Target"]["Input"]) for s in listed]

    arn = driver.start("steps")
    (first,) = pending()
    assert (first.thread_id, first.reason) == (arn, "suspended")
    (fired,) = scheduler.list_schedules(NamePrefix=prefix)["Schedules"]
    scheduler.delete_schedule(Name=fired["Name"])  # it fired (ActionAfterCompletion=DELETE)
    assert entry(json.loads(first.to_json()), None)["status"] == "STARTED"
    (timer,) = pending()  # the lease was cancelled: only the wait's end is scheduled
    assert timer.reason == "timer" and timer.at == pytest.approx(clock.now + 3600)
    clock.now = timer.at
    assert entry(json.loads(timer.to_json()), None)["status"] == "SUCCEEDED"
    assert driver.result(arn).value == 42
    for left in scheduler.list_schedules(NamePrefix=prefix)["Schedules"]:  # the timer's, "fired"
        scheduler.delete_schedule(Name=left["Name"])
