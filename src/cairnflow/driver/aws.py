"""Waking runs on AWS: EventBridge Scheduler one-time schedules, or SQS with a delay.

Both invoke the same Lambda function again with the :class:`Wakeup` as the
event; :func:`lambda_handler` turns such an event into a continued run.

- :class:`EventBridgeWakeScheduler` creates a one-time schedule
  (``at(...)``, deleted after it fires) whose target is the function. It has
  no limit on how far ahead a wake-up may be, and a schedule can be
  cancelled, so leases that end cleanly cost nothing further. Needs an IAM
  role that EventBridge Scheduler assumes to invoke the function.
- :class:`SqsWakeScheduler` sends a message with ``DelaySeconds`` (at most
  900 s); the function consumes the queue through an event source mapping.
  Longer waits are chained: an early message is sent again for the rest.

Requires ``pip install "cairnflow[s3]"`` (boto3), imported when used.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import math
import time
from collections.abc import Callable, Mapping
from typing import Any

from cairnflow.core.errors import MissingDependencyError
from cairnflow.core.wake import Wakeup
from cairnflow.driver.driver import WakeHandler

__all__ = ["EventBridgeWakeScheduler", "SqsWakeScheduler", "lambda_handler"]

#: SQS's largest per-message delay.
SQS_MAX_DELAY = 900


def _client(service: str, client: Any) -> Any:
    if client is not None:
        return client
    try:
        import boto3
    except ImportError as exc:  # pragma: no cover - the extra is installed in tests
        raise MissingDependencyError(
            f'waking runs through {service} needs boto3: pip install "cairnflow[s3]"'
        ) from exc
    make: Any = boto3.client  # typed per service name; ours is a variable
    return make(service)


def schedule_name(wakeup: Wakeup, prefix: str = "cairnflow-") -> str:
    """A schedule name unique per (workflow, thread, time): scheduling twice is one schedule."""
    digest = hashlib.sha256(f"{wakeup.workflow}\0{wakeup.thread_id}\0{round(wakeup.at * 1000)}".encode())
    return f"{prefix}{digest.hexdigest()[:40]}"  # names: <= 64 of [0-9a-zA-Z-_.]


class EventBridgeWakeScheduler:
    """Wake-ups as EventBridge Scheduler one-time schedules that invoke ``target_arn``."""

    def __init__(
        self,
        target_arn: str,
        role_arn: str,
        *,
        group: str = "default",
        name_prefix: str = "cairnflow-",
        client: Any = None,
    ) -> None:
        self.client = _client("scheduler", client)
        self.target_arn = target_arn
        self.role_arn = role_arn
        self.group = group
        self.name_prefix = name_prefix

    def schedule(self, wakeup: Wakeup) -> None:
        at = dt.datetime.fromtimestamp(math.ceil(wakeup.at), tz=dt.timezone.utc)
        # ConflictException: this very wake-up is already scheduled (a retried call, or a twin).
        with contextlib.suppress(self.client.exceptions.ConflictException):
            self.client.create_schedule(
                Name=schedule_name(wakeup, self.name_prefix),
                GroupName=self.group,
                ScheduleExpression=f"at({at:%Y-%m-%dT%H:%M:%S})",
                ScheduleExpressionTimezone="UTC",
                FlexibleTimeWindow={"Mode": "OFF"},
                Target={"Arn": self.target_arn, "RoleArn": self.role_arn, "Input": wakeup.to_json()},
                ActionAfterCompletion="DELETE",
            )

    def cancel(self, wakeup: Wakeup) -> None:
        with contextlib.suppress(self.client.exceptions.ResourceNotFoundException):  # fired, or never made
            self.client.delete_schedule(Name=schedule_name(wakeup, self.name_prefix), GroupName=self.group)


class SqsWakeScheduler:
    """Wake-ups as SQS messages delayed until due (chained past 15 minutes)."""

    def __init__(self, queue_url: str, *, client: Any = None, clock: Callable[[], float] = time.time) -> None:
        self.client = _client("sqs", client)
        self.queue_url = queue_url
        self.clock = clock

    def schedule(self, wakeup: Wakeup) -> None:
        delay = min(SQS_MAX_DELAY, max(0, math.ceil(wakeup.at - self.clock())))
        self.client.send_message(QueueUrl=self.queue_url, MessageBody=wakeup.to_json(), DelaySeconds=delay)


def lambda_handler(driver: WakeHandler) -> Callable[[Mapping[str, Any], Any], dict[str, Any]]:
    """A Lambda handler that continues the runs named by its events.

    It accepts an EventBridge Scheduler target input (the wake-up itself) and
    an SQS batch (``Records``; failures are reported per message as
    ``batchItemFailures``, so enable ``ReportBatchItemFailures``). The run may
    use the invocation's remaining time: its deadline is set from
    ``context.get_remaining_time_in_millis()``, so a long run suspends cleanly
    and is woken again instead of being killed by the timeout.
    """

    def handle(event: Mapping[str, Any], context: Any = None) -> dict[str, Any]:
        options: dict[str, Any] = {}
        remaining = getattr(context, "get_remaining_time_in_millis", None)
        if remaining is not None:
            options["deadline"] = time.time() + remaining() / 1000
        if "Records" not in event:
            run = driver.handle(Wakeup.from_json(json.dumps(dict(event))), **options)
            return {"thread_id": event.get("thread_id"), "status": None if run is None else run.status}
        failures = [
            {"itemIdentifier": record["messageId"]}
            for record in event["Records"]
            if not driver.deliver(Wakeup.from_json(record["body"]), **options)  # SQS redelivers these
        ]
        return {"batchItemFailures": failures}

    return handle
