"""The same handler with its state in S3 (moto): waits, retries and a callback, fenced by If-None-Match."""

from __future__ import annotations

import json
from typing import Any

from aws_durable_execution_sdk_python import DurableContext, durable_execution
from aws_durable_execution_sdk_python.config import Duration

from cairnflow.aws_durable import CairnflowDurableClient, LocalRunner
from cairnflow.core.log import CheckpointLog
from cairnflow.core.store import ObjectStore
from tests.aws_durable.conftest import FakeClock


def test_execution_on_s3(s3_store: ObjectStore, clock: FakeClock) -> None:
    client = CairnflowDurableClient(CheckpointLog(s3_store, prefix="lambda"), clock=clock)

    @durable_execution
    def handler(event: dict[str, Any], context: DurableContext) -> dict[str, Any]:
        total = context.step(lambda _: sum(event["items"]), name="sum")
        context.wait(Duration.from_seconds(60), name="cool-off")
        verdict = context.wait_for_callback(lambda _cid, _ctx: None, name="review")
        return {"total": total, "verdict": verdict}

    runner = LocalRunner(handler, client, sleep=clock.sleep)
    waiting = runner.run({"items": [1, 2, 3]})
    assert waiting.status == "STARTED"
    (callback_id,) = runner.callback_ids(waiting.arn)
    runner.send_callback_success(callback_id, "approved")
    done = runner.drive(waiting.arn)

    assert done.status == "SUCCEEDED"
    assert done.value == {"total": 6, "verdict": "approved"}
    # Read back by a fresh client (another process): the state is all in the bucket.
    fresh = CairnflowDurableClient(CheckpointLog(s3_store, prefix="lambda"), clock=clock)
    assert json.loads(fresh.describe(done.arn).result or "null") == {"total": 6, "verdict": "approved"}
    keys = [info.key for info in s3_store.list("lambda/durable/v1/threads/")]
    assert len(keys) == len(fresh.records(done.arn)) and all("/durable/v1/threads/arn%3A" in k for k in keys)
