"""AWS Lambda handler for the document-approval workflow; all state in S3.

Events (see approval_flow.py): ``{"action": "start", "document": {...}}``,
``{"action": "answer", "thread_id", "token", "answer"}``,
``{"action": "continue", "thread_id"}``, ``{"action": "status", "thread_id"}``;
and SQS batches from the wake-up queue (``Records``), which continue suspended and
waiting runs: the driver sends those messages (delayed until due) whenever a run
stops before its end, so no client ever has to continue a run.

The S3 client and the saver are built once per container, at import (Lambda's
init phase), and reused by every invocation the container serves. Each
invocation's deadline comes from ``context.get_remaining_time_in_millis()``;
no task starts when less than ``CAIRNFLOW_RESERVE_SECONDS`` remain, and the
response is then ``{"status": "suspended"}``: a wake-up message continues it.

Environment: ``CAIRNFLOW_URL`` (``s3://bucket/prefix``), ``CAIRNFLOW_WAKE_QUEUE_URL``
(the SQS queue mapped to this function; without it wake-ups go to the store's due
index, for ``cairnflow worker``), optional ``CAIRNFLOW_RESERVE_SECONDS`` (5),
``CAIRNFLOW_DURABILITY`` (``sync``), ``CAIRNFLOW_LEASE_SECONDS`` (900).
"""

from __future__ import annotations

import os
import time
from typing import Any, Protocol

import approval_flow

from cairnflow.core import CheckpointLog
from cairnflow.driver import DueIndex, WakeScheduler
from cairnflow.driver.aws import SqsWakeScheduler
from cairnflow.driver.aws import lambda_handler as wakeup_handler
from cairnflow.savers import open_saver


class LambdaContext(Protocol):
    def get_remaining_time_in_millis(self) -> int: ...


def _open_saver(settings: approval_flow.Settings) -> CheckpointLog:
    if not settings.url.startswith("s3://"):
        return open_saver(settings.url)  # e.g. file:// for `sam local invoke` without AWS
    import boto3
    from botocore.config import Config

    from cairnflow.savers.s3 import default_client_config

    # cairnflow's defaults (standard retries, 32 connections) with short timeouts: a
    # stalled request fails and is retried well inside the reserve, instead of hanging
    # for botocore's 60 s until Lambda kills the invocation.
    config = default_client_config().merge(Config(connect_timeout=2, read_timeout=5))
    return open_saver(settings.url, client=boto3.client("s3", config=config))


def _wake_scheduler(saver: CheckpointLog) -> WakeScheduler:
    queue_url = os.environ.get("CAIRNFLOW_WAKE_QUEUE_URL")
    if not queue_url:
        return DueIndex(saver)  # `cairnflow worker URL --import approval_flow` serves these
    import boto3

    return SqsWakeScheduler(queue_url, client=boto3.client("sqs"))


SETTINGS = approval_flow.Settings.from_env()
SAVER = _open_saver(SETTINGS)
DRIVER = approval_flow.make_driver(SAVER, _wake_scheduler(SAVER), SETTINGS)
CONTINUE = wakeup_handler(DRIVER)


def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if "Records" in event:  # wake-ups from the SQS queue: continue the runs they name
        return CONTINUE(event, context)
    deadline = time.time() + context.get_remaining_time_in_millis() / 1000
    return approval_flow.handle(event, driver=DRIVER, deadline=deadline, settings=SETTINGS)
