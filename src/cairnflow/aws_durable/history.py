"""An execution's history in the Lambda API's event shape (``GetDurableExecutionHistory``).

The service keeps one record per call that changed an execution (see
:mod:`cairnflow.aws_durable.state`); the history is a translation of those
records, oldest first: each operation update becomes one event
(``StepStarted``, ``WaitSucceeded``, ``CallbackTimedOut``...), and each
invocation's end record (the ``inv`` field the runner writes) becomes an
``InvocationCompleted`` event placed before the updates of that record (an
execution's result is recorded by the service after the invocation ended).

Event fields follow botocore's Lambda model: ``EventType``, ``SubType``,
``EventId`` (1-based, in order), ``Id``, ``Name``, ``ParentId``,
``EventTimestamp`` (a timezone-aware ``datetime``, as boto3 returns it) and
one ``<EventType>Details`` member. Pure data, no SDK import.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

from .state import ExecutionView, apply_record

__all__ = ["dumps", "events", "execution_summary", "timestamp"]

_EVENT = {
    ("EXECUTION", "START"): "ExecutionStarted",
    ("EXECUTION", "SUCCEED"): "ExecutionSucceeded",
    ("EXECUTION", "FAIL"): "ExecutionFailed",
    ("EXECUTION", "TIMEOUT"): "ExecutionTimedOut",
    ("EXECUTION", "STOP"): "ExecutionStopped",
    ("STEP", "START"): "StepStarted",
    ("STEP", "SUCCEED"): "StepSucceeded",
    ("STEP", "FAIL"): "StepFailed",
    ("STEP", "RETRY"): "StepFailed",
    ("WAIT", "START"): "WaitStarted",
    ("WAIT", "SUCCEED"): "WaitSucceeded",
    ("WAIT", "CANCEL"): "WaitCancelled",
    ("CALLBACK", "START"): "CallbackStarted",
    ("CALLBACK", "SUCCEED"): "CallbackSucceeded",
    ("CALLBACK", "FAIL"): "CallbackFailed",
    ("CALLBACK", "TIMEOUT"): "CallbackTimedOut",
    ("CONTEXT", "START"): "ContextStarted",
    ("CONTEXT", "SUCCEED"): "ContextSucceeded",
    ("CONTEXT", "FAIL"): "ContextFailed",
    ("CHAINED_INVOKE", "START"): "ChainedInvokeStarted",
    ("CHAINED_INVOKE", "SUCCEED"): "ChainedInvokeSucceeded",
    ("CHAINED_INVOKE", "FAIL"): "ChainedInvokeFailed",
    ("CHAINED_INVOKE", "TIMEOUT"): "ChainedInvokeTimedOut",
    ("CHAINED_INVOKE", "STOP"): "ChainedInvokeStopped",
}


def timestamp(ms: int | float) -> datetime:
    """Epoch milliseconds as the timezone-aware ``datetime`` boto3 returns."""
    return datetime.fromtimestamp(int(ms) / 1000.0, tz=timezone.utc)


def _payload(value: Any, *, include_data: bool) -> dict[str, Any]:
    # Nothing is ever cut short here (no size limit on stored payloads): Truncated is False.
    return {"Payload": value, "Truncated": False} if include_data else {"Truncated": False}


def _error(error: Any, *, include_data: bool) -> dict[str, Any]:
    del include_data  # an error is what happened, not execution data: always shown
    return {"Payload": dict(error or {}), "Truncated": False}


def events(
    execution_id: str, records: Iterable[dict[str, Any]], *, include_data: bool = True
) -> list[dict[str, Any]]:
    """The history events of the execution whose records are ``records`` (oldest first).

    ``include_data`` is the API's ``IncludeExecutionData``: without it the
    execution data (inputs, step and callback results) is left out, errors stay.
    """
    records = list(records)
    final = ExecutionView(execution_id)
    for position, record in enumerate(records):
        apply_record(final, record, position=position, check=False)
    view = ExecutionView(execution_id)
    out: list[dict[str, Any]] = []
    for position, record in enumerate(records):
        t = int(record["t"])
        inv = record.get("inv")
        if inv is not None:
            out.append(_invocation_completed(inv, t, include_data=include_data))
        apply_record(view, record, position=position, check=False)
        for update in record["u"]:
            name = _EVENT.get((str(update.get("Type")), str(update.get("Action"))))
            if name == "StepFailed" and update["Action"] == "RETRY" and not update.get("Error"):
                name = "StepSucceeded"  # a poll that goes on (wait_for_condition): a result, no error
            if name is None:
                continue  # READY, HEARTBEAT, DISPATCH: the service's bookkeeping, no event
            out.append(_event(name, update, view, final, t, include_data=include_data))
    for number, event in enumerate(out, start=1):
        event["EventId"] = number
    return out


def _invocation_completed(inv: dict[str, Any], t: int, *, include_data: bool) -> dict[str, Any]:
    details: dict[str, Any] = {
        "StartTimestamp": timestamp(inv.get("s", t)),
        "EndTimestamp": timestamp(t),
        "RequestId": str(inv.get("rid") or ""),
    }
    if inv.get("err"):
        details["Error"] = _error(inv["err"], include_data=include_data)
    return {
        "EventType": "InvocationCompleted",
        "EventTimestamp": timestamp(t),
        "InvocationCompletedDetails": details,
    }


def _event(
    name: str,
    update: dict[str, Any],
    after: ExecutionView,
    final: ExecutionView,
    t: int,
    *,
    include_data: bool,
) -> dict[str, Any]:
    kind, action = update["Type"], update["Action"]
    op_id = after.execution_id if kind == "EXECUTION" else str(update["Id"])
    op = after.operations.get(op_id) or {}
    event: dict[str, Any] = {"EventType": name}
    if op.get("SubType"):
        event["SubType"] = op["SubType"]
    event["Id"] = op_id
    if op.get("Name"):
        event["Name"] = op["Name"]
    event["EventTimestamp"] = timestamp(t)
    if op.get("ParentId"):
        event["ParentId"] = op["ParentId"]
    d: dict[str, Any] = {}
    payload, error = update.get("Payload"), update.get("Error")
    if kind == "EXECUTION":
        if action == "START":
            d["Input"] = _payload(payload, include_data=include_data)
        elif action == "SUCCEED":
            d["Result"] = _payload(payload, include_data=include_data)
        else:
            d["Error"] = _error(error, include_data=include_data)
    elif kind == "STEP":
        if action != "START":
            attempt = int((op.get("StepDetails") or {}).get("Attempt", 1))
            retry: dict[str, Any] = {"CurrentAttempt": attempt}
            if action == "RETRY":
                retry["NextAttemptDelaySeconds"] = int(
                    (update.get("StepOptions") or {}).get("NextAttemptDelaySeconds", 0)
                )
            if action == "SUCCEED" or (action == "RETRY" and not error):
                d["Result"] = _payload(payload, include_data=include_data)
            else:
                d["Error"] = _error(error, include_data=include_data)
            d["RetryDetails"] = retry
    elif kind == "WAIT":
        start = (final.operations.get(op_id) or op).get("_wait") or {}
        duration = int(start.get("seconds", 0))
        if action == "START":
            d["Duration"] = duration
            d["ScheduledEndTimestamp"] = timestamp(op["WaitDetails"]["ScheduledEndTimestamp"])
        elif action == "SUCCEED":
            d["Duration"] = duration
        else:
            d["Error"] = _error(error, include_data=include_data)
    elif kind == "CALLBACK":
        if action == "START":
            options = update.get("CallbackOptions") or {}
            d["CallbackId"] = update.get("CallbackId")
            if options.get("TimeoutSeconds"):
                d["Timeout"] = int(options["TimeoutSeconds"])
            if options.get("HeartbeatTimeoutSeconds"):
                d["HeartbeatTimeout"] = int(options["HeartbeatTimeoutSeconds"])
        elif action == "SUCCEED":
            d["Result"] = _payload(payload, include_data=include_data)
        else:
            d["Error"] = _error(error, include_data=include_data)
    elif kind == "CONTEXT":
        if action == "SUCCEED":
            d["Result"] = _payload(payload, include_data=include_data)
        elif action == "FAIL":
            d["Error"] = _error(error, include_data=include_data)
    elif kind == "CHAINED_INVOKE":
        if action == "START":
            options = update.get("ChainedInvokeOptions") or {}
            invoke = (final.operations.get(op_id) or op).get("_invoke") or {}
            d["FunctionName"] = options.get("FunctionName")
            if options.get("TenantId"):
                d["TenantId"] = options["TenantId"]
            d["Input"] = _payload(payload, include_data=include_data)
            d["ExecutedVersion"] = "$LATEST"
            d["DurableExecutionArn"] = update.get("ChildArn") or invoke.get("child") or ""
        elif action == "SUCCEED":
            d["Result"] = _payload(payload, include_data=include_data)
        else:
            d["Error"] = _error(error, include_data=include_data)
    event[f"{name}Details"] = d
    return event


def execution_summary(arn: str, view: ExecutionView, function_arn: str) -> dict[str, Any]:
    """``GetDurableExecution``'s response for an execution in state ``view``."""
    op = view.operations.get(view.execution_id) or {}
    out: dict[str, Any] = {
        "DurableExecutionArn": arn,
        "DurableExecutionName": op.get("Name") or view.execution_id,
        "FunctionArn": function_arn,
        "InputPayload": (op.get("ExecutionDetails") or {}).get("InputPayload"),
        "StartTimestamp": timestamp(op.get("StartTimestamp", 0)),
        "Status": "RUNNING" if view.status == "STARTED" else view.status,
        "Version": "$LATEST",
    }
    if view.status == "SUCCEEDED":
        out["Result"] = view.result
    if view.error is not None:
        out["Error"] = dict(view.error)
    if op.get("EndTimestamp") is not None:
        out["EndTimestamp"] = timestamp(op["EndTimestamp"])
    return out


def dumps(history: list[dict[str, Any]]) -> str:
    """The events as JSON (timestamps in ISO 8601), for saving or printing."""
    return json.dumps(history, indent=2, default=_plain)


def _plain(value: Any) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)
