"""The operations of one durable execution, folded from its log records.

Pure data, no SDK import: every record of an execution's log is a JSON
document, and the state the SDK reads (``Operation`` in the service API's
JSON shape, timestamps as epoch milliseconds) is a deterministic fold of
those records. So the same records always give the same operations, on the
first read and on every later one.

A record is one service call that changed the execution::

    {"n": nonce, "t": epoch ms, "by": "sdk" | "service", "ct": client token or null,
     "u": [operation update, ...]}

``by == "sdk"`` records hold the updates of one ``checkpoint`` call, in the
SDK's own ``OperationUpdate.to_dict()`` shape, plus what the service computed
when it accepted them (a callback's ``CallbackId``). ``by == "service"``
records hold what the service did on its own: start the execution, fire a
timer, make a retry due, deliver a callback, record the handler's result.
The service-only actions (``READY``, ``TIMEOUT``, and ``SUCCEED``/``FAIL`` of
waits, callbacks and invokes) are refused from the SDK.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from cairnflow.core.errors import InvalidArgumentError

__all__ = ["TERMINAL", "ExecutionView", "apply_record", "due_updates", "fold", "only_invocation_ends"]

TERMINAL = frozenset({"SUCCEEDED", "FAILED", "CANCELLED", "TIMED_OUT", "STOPPED"})

#: (type, action) pairs the SDK may send; the rest are the service's own.
_SDK_ACTIONS = frozenset(
    {
        ("EXECUTION", "SUCCEED"),
        ("EXECUTION", "FAIL"),
        ("STEP", "START"),
        ("STEP", "RETRY"),
        ("STEP", "SUCCEED"),
        ("STEP", "FAIL"),
        ("WAIT", "START"),
        ("WAIT", "CANCEL"),
        ("CALLBACK", "START"),
        ("CONTEXT", "START"),
        ("CONTEXT", "SUCCEED"),
        ("CONTEXT", "FAIL"),
        ("CHAINED_INVOKE", "START"),
    }
)


@dataclass
class ExecutionView:
    """The state of one execution at one point of its log.

    ``operations`` maps operation id to the operation in the service API's
    JSON shape (plus private ``_``-prefixed keys the service keeps for
    itself), in the order the operations first appeared.
    """

    execution_id: str
    operations: dict[str, dict[str, Any]] = field(default_factory=dict)
    status: str = "STARTED"
    result: str | None = None
    error: dict[str, Any] | None = None
    client_tokens: dict[str, int] = field(default_factory=dict)
    """Client token of each accepted ``checkpoint`` call -> the record's position."""

    def copy(self) -> ExecutionView:
        return copy.deepcopy(self)

    @property
    def done(self) -> bool:
        return self.status in TERMINAL


def public(op: dict[str, Any]) -> dict[str, Any]:
    """The operation as the service API shows it (private keys removed)."""
    return {k: v for k, v in op.items() if not k.startswith("_")}


def fold(execution_id: str, records: Any) -> ExecutionView:
    """The state after ``records`` (oldest first)."""
    view = ExecutionView(execution_id)
    for position, record in enumerate(records):
        apply_record(view, record, position=position, check=False)
    return view


def apply_record(
    view: ExecutionView, record: dict[str, Any], *, position: int, check: bool = True
) -> list[str]:
    """Apply one record to ``view`` in place; return the ids of the operations it changed.

    With ``check``, an SDK update the service must refuse raises
    ``InvalidArgumentError`` (``view`` is then partly updated: apply to a copy).
    """
    t = int(record["t"])
    changed: list[str] = []
    by_sdk = record.get("by") == "sdk"
    if record.get("ct") is not None:
        view.client_tokens[str(record["ct"])] = position
    for update in record["u"]:
        if check and by_sdk:
            _check(view, update)
        op_id = _apply(view, update, t)
        if op_id not in changed:
            changed.append(op_id)
    return changed


def _check(view: ExecutionView, update: dict[str, Any]) -> None:
    kind, action, op_id = update.get("Type"), update.get("Action"), update.get("Id")
    if (kind, action) not in _SDK_ACTIONS:
        raise InvalidArgumentError(f"operation {op_id!r}: action {action} is not allowed for type {kind}")
    if view.done:
        raise InvalidArgumentError(f"execution already {view.status}; operation {op_id!r} refused")
    if kind == "EXECUTION":
        return
    current = view.operations.get(str(op_id))
    if current is not None and current["Status"] in TERMINAL:
        raise InvalidArgumentError(f"operation {op_id!r} is already {current['Status']}; {action} refused")
    if current is not None and current["Type"] != kind:
        raise InvalidArgumentError(f"operation {op_id!r} is a {current['Type']}, not a {kind}")
    parent = update.get("ParentId")
    if parent and parent not in view.operations:
        raise InvalidArgumentError(f"operation {op_id!r} names unknown parent {parent!r}")


def _apply(view: ExecutionView, update: dict[str, Any], t: int) -> str:
    kind, action = update["Type"], update["Action"]
    if kind == "EXECUTION":
        return _apply_execution(view, update, action, t)
    op_id = str(update["Id"])
    op = view.operations.get(op_id)
    if action == "HEARTBEAT" and op is not None:
        timing = op.setdefault("_callback", {})
        if timing.get("heartbeat"):
            timing["heartbeat_deadline"] = t + int(timing["heartbeat"]) * 1000
        return op_id
    if action == "DISPATCH" and op is not None:
        op.setdefault("_invoke", {})["child"] = update["ChildArn"]
        return op_id
    if op is None:
        op = {"Id": op_id, "Type": kind, "Status": "STARTED", "StartTimestamp": t}
        view.operations[op_id] = op
    for key in ("ParentId", "Name", "SubType"):
        if update.get(key):
            op[key] = update[key]
    status = _STATUS[action]
    op["Status"] = status
    if status in TERMINAL:
        op["EndTimestamp"] = t
    if kind == "STEP":
        _apply_step(op, update, action, t)
    elif kind == "WAIT":
        if action == "START":
            seconds = int((update.get("WaitOptions") or {}).get("WaitSeconds", 1))
            op["WaitDetails"] = {"ScheduledEndTimestamp": t + seconds * 1000}
            op["_wait"] = {"seconds": seconds}
    elif kind == "CALLBACK":
        _apply_callback(op, update, action, t)
    elif kind == "CONTEXT":
        details: dict[str, Any] = dict(op.get("ContextDetails") or {})
        if update.get("Payload") is not None:
            details["Result"] = update["Payload"]
        if update.get("Error"):
            details["Error"] = update["Error"]
        if (update.get("ContextOptions") or {}).get("ReplayChildren"):
            details["ReplayChildren"] = True
        op["ContextDetails"] = details
    elif kind == "CHAINED_INVOKE":
        invoke: dict[str, Any] = dict(op.get("ChainedInvokeDetails") or {})
        if action == "START":
            op["_invoke"] = {
                "options": update.get("ChainedInvokeOptions"),
                "input": update.get("Payload"),
                "arn": update.get("ChildArn"),  # assigned on acceptance; None in older records
            }
        if update.get("Payload") is not None and action != "START":
            invoke["Result"] = update["Payload"]
        if update.get("Error"):
            invoke["Error"] = update["Error"]
        op["ChainedInvokeDetails"] = invoke
    return op_id


_STATUS = {
    "START": "STARTED",
    "RETRY": "PENDING",
    "READY": "READY",
    "SUCCEED": "SUCCEEDED",
    "FAIL": "FAILED",
    "CANCEL": "CANCELLED",
    "TIMEOUT": "TIMED_OUT",
    "STOP": "STOPPED",
}


def _apply_execution(view: ExecutionView, update: dict[str, Any], action: str, t: int) -> str:
    op_id = view.execution_id
    if action == "START":
        op: dict[str, Any] = {
            "Id": op_id,
            "Type": "EXECUTION",
            "Status": "STARTED",
            "StartTimestamp": t,
            "ExecutionDetails": {"InputPayload": update.get("Payload")},
        }
        if update.get("Name"):
            op["Name"] = update["Name"]
        if update.get("ExecutionTimeout"):  # the function's configured timeout, fixed at start
            op["_deadline"] = t + int(update["ExecutionTimeout"]) * 1000
        view.operations[op_id] = op
        return op_id
    op = view.operations[op_id]
    view.status = _STATUS[action]
    op["Status"] = view.status
    op["EndTimestamp"] = t
    if action == "SUCCEED":
        view.result = update.get("Payload")
    elif update.get("Error"):
        view.error = dict(update["Error"])
    return op_id


def _apply_step(op: dict[str, Any], update: dict[str, Any], action: str, t: int) -> None:
    details: dict[str, Any] = dict(op.get("StepDetails") or {"Attempt": 0})
    if action in ("RETRY", "SUCCEED", "FAIL"):
        # The attempt count rises with every finished attempt (as the service does).
        details["Attempt"] = int(details.get("Attempt", 0)) + 1
        details.pop("Result", None)
        details.pop("Error", None)
        if update.get("Payload") is not None:
            details["Result"] = update["Payload"]
        if update.get("Error"):
            details["Error"] = update["Error"]
    if action == "RETRY":
        delay = int((update.get("StepOptions") or {}).get("NextAttemptDelaySeconds", 0))
        details["NextAttemptTimestamp"] = t + delay * 1000
    op["StepDetails"] = details


def _apply_callback(op: dict[str, Any], update: dict[str, Any], action: str, t: int) -> None:
    details: dict[str, Any] = dict(op.get("CallbackDetails") or {})
    if action == "START":
        details["CallbackId"] = update["CallbackId"]
        options = update.get("CallbackOptions") or {}
        timeout = int(options.get("TimeoutSeconds") or 0)
        heartbeat = int(options.get("HeartbeatTimeoutSeconds") or 0)
        op["_callback"] = {
            "deadline": t + timeout * 1000 if timeout else None,
            "heartbeat": heartbeat,
            "heartbeat_deadline": t + heartbeat * 1000 if heartbeat else None,
        }
    if update.get("Payload") is not None:
        details["Result"] = update["Payload"]
    if update.get("Error"):
        details["Error"] = update["Error"]
    op["CallbackDetails"] = details


def only_invocation_ends(records: Any) -> bool:
    """True if ``records`` (at least one) only note that invocations ended, changing no operation.

    Such records (a stood-down invocation's ``InvocationCompleted``) are no reason
    to refuse the live invocation's token: its batch can go on top of them. A
    record that begins an invocation (no ``inv``) still fences the one before it.
    """
    records = list(records)
    return bool(records) and all(
        r.get("by") == "service" and r.get("inv") and not r.get("u") for r in records
    )


def due_updates(view: ExecutionView, now_ms: int) -> list[dict[str, Any]]:
    """The service's own updates due at ``now_ms``: timers fired, retries ready, callbacks timed out."""
    updates: list[dict[str, Any]] = []
    deadline = _execution_deadline(view)
    if deadline is not None and deadline <= now_ms:
        error = {"ErrorType": "Execution.Timeout", "ErrorMessage": "execution timed out"}
        return [{"Id": view.execution_id, "Type": "EXECUTION", "Action": "TIMEOUT", "Error": error}]
    for op in view.operations.values():
        kind, status, op_id = op["Type"], op["Status"], op["Id"]
        if kind == "WAIT" and status == "STARTED":
            if int(op["WaitDetails"]["ScheduledEndTimestamp"]) <= now_ms:
                updates.append({"Id": op_id, "Type": "WAIT", "Action": "SUCCEED"})
        elif kind == "STEP" and status == "PENDING":
            if int(op["StepDetails"].get("NextAttemptTimestamp", 0)) <= now_ms:
                updates.append({"Id": op_id, "Type": "STEP", "Action": "READY"})
        elif kind == "CALLBACK" and status == "STARTED":
            timing = op.get("_callback") or {}
            for which, reason in (
                ("deadline", "Callback.Timeout"),
                ("heartbeat_deadline", "Callback.Heartbeat"),
            ):
                deadline = timing.get(which)
                if deadline is not None and int(deadline) <= now_ms:
                    error = {"ErrorType": reason, "ErrorMessage": f"callback {reason.split('.')[1].lower()}"}
                    updates.append({"Id": op_id, "Type": "CALLBACK", "Action": "TIMEOUT", "Error": error})
                    break
    return updates


def next_due_ms(view: ExecutionView) -> int | None:
    """The earliest time a service update becomes due (None: nothing scheduled)."""
    if view.done:
        return None  # a finished execution has nothing scheduled (its waits died with it)
    times: list[int] = []
    deadline = _execution_deadline(view)
    if deadline is not None:
        times.append(deadline)
    for op in view.operations.values():
        if op["Type"] == "WAIT" and op["Status"] == "STARTED":
            times.append(int(op["WaitDetails"]["ScheduledEndTimestamp"]))
        elif op["Type"] == "STEP" and op["Status"] == "PENDING":
            times.append(int(op["StepDetails"].get("NextAttemptTimestamp", 0)))
        elif op["Type"] == "CALLBACK" and op["Status"] == "STARTED":
            timing = op.get("_callback") or {}
            times.extend(
                int(timing[k]) for k in ("deadline", "heartbeat_deadline") if timing.get(k) is not None
            )
    return min(times) if times else None


def _execution_deadline(view: ExecutionView) -> int | None:
    """When the execution times out (epoch ms), if its function has a timeout and it still runs."""
    op = view.operations.get(view.execution_id)
    if op is None or view.done or op.get("_deadline") is None:
        return None
    return int(op["_deadline"])
