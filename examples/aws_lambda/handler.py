"""AWS Lambda handler for the document-approval workflow; all state in S3.

Events (see approval_flow.py): ``{"action": "start", "document": {...}}``,
``{"action": "answer", "thread_id", "interrupt_id", "answer"}``,
``{"action": "continue", "thread_id"}``, ``{"action": "status", "thread_id"}``.

The S3 client and the saver are built once per container, at import (Lambda's
init phase), and reused by every invocation the container serves. Each
invocation's deadline comes from ``context.get_remaining_time_in_millis()``;
no task starts when less than ``CAIRNFLOW_RESERVE_SECONDS`` remain, and the
response is then ``{"status": "suspended", "next_event": {...}}``.

Environment: ``CAIRNFLOW_URL`` (``s3://bucket/prefix``), optional
``CAIRNFLOW_RESERVE_SECONDS`` (5), ``CAIRNFLOW_DURABILITY`` (``sync``).
"""

from __future__ import annotations

import time
from typing import Any, Protocol

import approval_flow

from cairnflow.core import CheckpointLog
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


SETTINGS = approval_flow.Settings.from_env()
SAVER = _open_saver(SETTINGS)


def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    deadline = time.time() + context.get_remaining_time_in_millis() / 1000
    return approval_flow.handle(event, saver=SAVER, deadline=deadline, settings=SETTINGS)
