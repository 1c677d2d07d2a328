"""``order.handler`` on AWS Lambda with its state in S3, continued by SQS (no managed service).

Settings: ``CAIRNFLOW_URL`` (``s3://bucket/prefix``), ``CAIRNFLOW_WAKE_QUEUE_URL``
(an SQS queue whose event source mapping invokes this function, with
``ReportBatchItemFailures``). Handler setting: ``lambda_function.handler``.

Events:

* ``{"action": "start", "input": {...}}`` -> ``{"arn": ...}``: the first record
  is written and an invocation is scheduled on the queue at once;
* ``{"action": "callback", "callback_id": ..., "result": ...}`` (or ``"error"``):
  what the approver's link calls; the execution is woken at once;
* ``{"action": "status", "arn": ...}``;
* anything else is a wake-up (an SQS batch): one invocation of ``order.handler``.
"""

from __future__ import annotations

import os
from typing import Any

import order

from cairnflow.aws_durable import CairnflowDurableClient, DurableDriver
from cairnflow.driver.aws import SqsWakeScheduler, lambda_handler
from cairnflow.savers import open_saver

_client = CairnflowDurableClient(open_saver(os.environ["CAIRNFLOW_URL"]))  # type: ignore[arg-type]
driver = DurableDriver(
    _client, SqsWakeScheduler(os.environ["CAIRNFLOW_WAKE_QUEUE_URL"]), {"order": order.handler}
)
_wakeups = lambda_handler(driver)


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    action = event.get("action")
    if action == "start":
        return {"arn": driver.start("order", event.get("input"))}
    if action == "callback":
        if event.get("error"):
            driver.send_callback_failure(event["callback_id"], str(event["error"]))
        else:
            driver.send_callback_success(event["callback_id"], event.get("result"))
        return {"ok": True}
    if action == "status":
        standing = driver.result(event["arn"])
        callbacks = list(driver.runner("order").callback_ids(event["arn"]))
        return {"status": standing.status, "result": standing.value, "callbacks": callbacks}
    return _wakeups(event, context)
