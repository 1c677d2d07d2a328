"""A minimal runner that plays the Lambda service for ``@durable_execution`` handlers, in process.

:class:`LocalRunner` starts an execution, invokes the handler, and when the
handler returns ``PENDING`` (a wait, a retry back-off, a callback) it waits
until the service has something due (the timestamps the service computed
when it accepted the wait or retry) and invokes it again, until the
execution ends or only an outside event (a callback) can move it on.
Callbacks are delivered with :meth:`LocalRunner.send_callback_success` and
friends, after which :meth:`LocalRunner.drive` continues the execution.

The handler is the decorated function itself: the runner passes it the
SDK's ``DurableExecutionInvocationInputWithClient``, so the handler code is
exactly what runs on Lambda.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aws_durable_execution_sdk_python.execution import (
    DurableExecutionInvocationInput,
    DurableExecutionInvocationInputWithClient,
    InitialExecutionState,
)
from aws_durable_execution_sdk_python.lambda_service import (
    CheckpointOutput,
    Operation,
    OperationUpdate,
    StateOutput,
)

from cairnflow.core.errors import MisuseError
from cairnflow.core.wake import WakeScheduler, Wakeup
from cairnflow.driver.due import DueIndex

from .client import CairnflowDurableClient
from .ids import decode_callback_id
from .state import ExecutionView, fold, public

__all__ = ["ExecutionResult", "LocalLambdaContext", "LocalRunner"]

logger = logging.getLogger(__name__)

Handler = Callable[[Any, Any], MutableMapping[str, Any]]


@dataclass
class LocalLambdaContext:
    """The few attributes of a Lambda context the SDK reads."""

    aws_request_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    function_name: str | None = "local"
    log_group_name: str | None = None
    log_stream_name: str | None = None
    memory_limit_in_mb: str | None = None
    function_version: str | None = None
    invoked_function_arn: str | None = None
    tenant_id: str | None = None
    client_context: Any | None = None
    identity: Any | None = None

    def get_remaining_time_in_millis(self) -> int:
        return 15 * 60 * 1000

    def log(self, msg: str) -> None:
        logger.info("%s", msg)


@dataclass
class ExecutionResult:
    """Where an execution stands after the runner stopped driving it."""

    arn: str
    status: str
    """``SUCCEEDED``, ``FAILED``... when finished; ``STARTED`` while it waits for a callback."""
    result: str | None
    """The handler's result as the JSON string it returned (None unless SUCCEEDED)."""
    error: dict[str, Any] | None
    invocations: int
    operations: list[Operation]

    @property
    def value(self) -> Any:
        """The result, parsed from JSON."""
        return None if self.result is None else json.loads(self.result)

    def operation(self, name: str) -> Operation:
        """The (first) operation named ``name``; KeyError if none."""
        for op in self.operations:
            if op.name == name:
                return op
        raise KeyError(name)


class _InvocationClient:
    """The service client one invocation sees: it remembers the newest token it was given."""

    def __init__(self, service: CairnflowDurableClient, token: str) -> None:
        self.service = service
        self.token = token
        self.ended = False
        self._lock = threading.Lock()

    def checkpoint(
        self,
        durable_execution_arn: str,
        checkpoint_token: str,
        updates: list[OperationUpdate],
        client_token: str | None,
    ) -> CheckpointOutput:
        out = self.service.checkpoint(
            durable_execution_arn=durable_execution_arn,
            checkpoint_token=checkpoint_token,
            updates=updates,
            client_token=client_token,
        )
        with self._lock:
            if out.checkpoint_token:
                self.token = out.checkpoint_token
            else:
                self.ended = True
        return out

    def get_execution_state(
        self, durable_execution_arn: str, checkpoint_token: str, next_marker: str, max_items: int = 1000
    ) -> StateOutput:
        return self.service.get_execution_state(
            durable_execution_arn=durable_execution_arn,
            checkpoint_token=checkpoint_token,
            next_marker=next_marker,
            max_items=max_items,
        )


class LocalRunner:
    """Run a ``@durable_execution`` handler against a :class:`CairnflowDurableClient`, in process.

    ``sleep`` defaults to real time (the clock is the client's); tests pass
    a ``sleep`` that advances a fake clock. ``page_size`` is how many
    operations the invocation input carries (the rest is paged through
    ``get_execution_state``). With ``json_events`` the handler gets the plain
    JSON event Lambda delivers, and must have been decorated with
    ``@durable_execution(boto3_client=client.boto3_client())``.

    With a ``scheduler`` (for example :class:`cairnflow.driver.DueIndex`),
    :meth:`advance` does not sleep: it hands the next due time to the
    scheduler as a :class:`~cairnflow.core.wake.Wakeup` (workflow
    ``aws-durable/{function}``), and :meth:`serve` continues the executions
    whose wake-ups are due.

    ``execution_timeout`` (seconds) is the function's execution timeout: an
    execution still running that long after it started ends as ``TIMED_OUT``.

    ``functions`` maps function names to handlers for ``context.invoke``: a
    chained invoke runs as an execution of its own in the same store, driven
    by :meth:`drive`, and its result or error is delivered to the caller.
    """

    def __init__(
        self,
        handler: Handler,
        client: CairnflowDurableClient,
        *,
        sleep: Callable[[float], None] = time.sleep,
        max_invocations: int = 100,
        page_size: int = 1000,
        json_events: bool = False,
        scheduler: WakeScheduler | None = None,
        function: str | None = None,
        functions: Mapping[str, Handler] | None = None,
        execution_timeout: float | None = None,
        wait: Callable[[str, float], bool] | None = None,
    ) -> None:
        self.handler = handler
        self.client = client
        self.sleep = sleep
        self.max_invocations = max_invocations
        self.page_size = page_size
        self.json_events = json_events
        self.scheduler = scheduler
        self.function = function or getattr(handler, "__name__", None) or "handler"
        self.functions: dict[str, Handler] = dict(functions or {})
        self.execution_timeout = execution_timeout
        self.wait = wait

    def start(self, event: Any = None, *, name: str | None = None) -> str:
        """Create an execution whose input is ``event`` (JSON-serialisable); return its ARN.

        With a scheduler, the first invocation is scheduled for now (:meth:`serve` runs it).
        """
        arn = self.client.start_execution(
            json.dumps(event), function=self.function, name=name, timeout=self.execution_timeout
        )
        if self.scheduler is not None:
            self.scheduler.schedule(Wakeup(arn, self.workflow, self.client.clock(), reason="suspended"))
        return arn

    def invoke(self, arn: str) -> MutableMapping[str, Any]:
        """One invocation of the handler; returns its output (``Status`` SUCCEEDED/FAILED/PENDING/RETRY)."""
        token, view = self.client.begin_invocation(arn)
        if view.done:  # the service ended it as the invocation began (the execution timed out)
            return {"Status": view.status}
        operations, marker = self.client.page(view, None, self.page_size)
        service = _InvocationClient(self.client, token)
        initial = InitialExecutionState(operations=operations, next_marker=marker or "")
        event: Any
        if self.json_events:
            event = DurableExecutionInvocationInput(arn, token, initial).to_json_dict()
        else:
            event = DurableExecutionInvocationInputWithClient(
                durable_execution_arn=arn,
                checkpoint_token=token,
                initial_execution_state=initial,
                service_client=service,
            )
        context = LocalLambdaContext(function_name=self.function)
        started_ms = int(self.client.clock() * 1000)
        try:
            output = self.handler(event, context)
        except SystemExit as exc:  # the handler's process would have died: Lambda reports a runtime exit
            logger.info("invocation of %s exited (%s); it will be retried", arn, exc.code)
            rid = context.aws_request_id
            message = f"RequestId: {rid} Error: Runtime exited with error: exit status {exc.code}"
            output = {"Status": "RETRY", "Error": {"ErrorType": "Runtime.ExitError", "ErrorMessage": message}}
        except Exception as exc:  # noqa: BLE001 - the SDK raises retryable failures for the service to retry
            logger.info("invocation of %s failed; it will be retried: %s", arn, exc)
            output = {"Status": "RETRY", "Error": {"ErrorType": type(exc).__name__, "ErrorMessage": str(exc)}}
        if self.json_events:  # the handler checkpointed through the adapter: its newest token is the head's
            service.token = self.client.token_for(arn, self.client.known_seq(arn))
        ended = {"Status": "PENDING"} if service.ended else output  # the SDK recorded the end itself
        counted = self.client.end_invocation(
            arn, service.token, ended, started_ms=started_ms, request_id=context.aws_request_id, begun=token
        )
        if output.get("Status") in ("SUCCEEDED", "FAILED") and not service.ended and not counted:
            return {"Status": "PENDING"}  # a stale invocation: its output does not count
        return output

    def drive(self, arn: str) -> ExecutionResult:
        """Invoke ``arn`` until it ends or waits for something only the outside can deliver.

        An invocation happens only when there is something the handler has not
        seen (a callback delivered, a chained invoke finished, a timer or retry
        due, an invocation that died) or the execution was never invoked: driving
        an execution that waits for a callback nobody sent costs no invocation.
        """
        invocations = 0
        while True:
            records = self.client.records(arn)
            if fold(arn.rsplit("/", 1)[-1], records).done:
                break
            if not (unseen(records) or self._due_now(arn)):
                if self._run_invokes(arn):
                    continue  # a chained invoke finished: its caller can go on at once
                if not self._pause_until_due(arn):
                    break  # waiting on a callback (or an invoke) nobody has delivered yet
                continue
            if invocations >= self.max_invocations:
                raise RuntimeError(f"execution {arn!r} still running after {invocations} invocations")
            self.invoke(arn)
            invocations += 1
        return self.result(arn, invocations=invocations)

    def _due_now(self, arn: str) -> bool:
        due = self.client.next_due(arn)
        return due is not None and due <= self.client.clock()

    def _pause_until_due(self, arn: str) -> bool:
        """Sleep until the service has something due for ``arn``; False if nothing is scheduled.

        With ``wait`` (``wait(arn, seconds)``) a delivery (a callback) ends the
        pause early; :meth:`drive` then looks again at what is unseen or due, so
        a heartbeat that moved a deadline causes no invocation.
        """
        due = self.client.next_due(arn)
        if due is None:
            return False
        delay = due - self.client.clock()
        if delay > 0:
            if self.wait is None:
                self.sleep(delay)
            else:
                self.wait(arn, delay)
        return True

    @property
    def workflow(self) -> str:
        """The workflow name this runner's wake-ups carry."""
        return f"aws-durable/{self.function}"

    def advance(self, arn: str) -> str:
        """One invocation, then hand the next due time to the scheduler; returns the output's status.

        The scheduler-driven counterpart of :meth:`drive`: nothing sleeps.
        A failed invocation (the SDK's retryable errors) is rescheduled at once.
        """
        if self.scheduler is None:
            raise MisuseError(
                "LocalRunner.advance needs a scheduler (LocalRunner(..., scheduler=DueIndex(saver)))"
            )
        if self.client.describe(arn).done:
            return "DONE"
        status = str(self.invoke(arn).get("Status"))
        now = self.client.clock()
        if status == "RETRY":
            self.scheduler.schedule(Wakeup(arn, self.workflow, now, reason="suspended"))
        elif status == "PENDING":
            due = self.client.next_due(arn)
            if due is not None:
                self.scheduler.schedule(Wakeup(arn, self.workflow, max(due, 0.0), reason="timer"))
        return status

    def serve(self, index: DueIndex, *, limit: int = 100) -> int:
        """Continue every execution of this runner's function whose wake-up is due; return how many."""
        served = 0
        for entry in index.due(limit=limit):
            if entry.wakeup.workflow != self.workflow or not index.claim(entry):
                continue  # another function's wake-up, or another worker has it
            self.advance(entry.wakeup.thread_id)
            index.done(entry)
            served += 1
        return served

    def _wake_now(self, callback_id: str) -> None:
        if self.scheduler is not None:
            arn, _ = decode_callback_id(callback_id)
            self.scheduler.schedule(Wakeup(arn, self.workflow, self.client.clock(), reason="callback"))

    def _run_invokes(self, arn: str) -> bool:
        """Start and drive the chained invokes ``arn`` waits for; True if one finished."""
        finished = False
        for op in list(self.client.describe(arn).operations.values()):
            if op["Type"] != "CHAINED_INVOKE" or op["Status"] != "STARTED":
                continue
            invoke = op.get("_invoke") or {}
            child = invoke.get("child")
            if child is None:
                name = str((invoke.get("options") or {}).get("FunctionName"))
                child = self._dispatch(arn, op["Id"], name, invoke.get("input"), invoke.get("arn"))
                if child is None:
                    continue
            target = self._runner_for(child)
            outcome = target.drive(child)
            if outcome.status == "STARTED":
                continue  # the invoked execution itself waits (for a callback): so does its caller
            if outcome.status == "SUCCEEDED":
                update = {
                    "Id": op["Id"],
                    "Type": "CHAINED_INVOKE",
                    "Action": "SUCCEED",
                    "Payload": outcome.result,
                }
            else:
                update = {
                    "Id": op["Id"],
                    "Type": "CHAINED_INVOKE",
                    "Action": "FAIL",
                    "Error": outcome.error or {},
                }
            self.client.service_update(arn, functools.partial(_if_started, op_id=op["Id"], update=update))
            finished = True
        return finished

    def _dispatch(
        self, arn: str, op_id: str, function: str, payload: str | None, assigned: str | None = None
    ) -> str | None:
        """Start the invoked function's execution and record its ARN in the caller (once).

        ``assigned`` is the ARN the service gave the invoke when it accepted it: two
        runners dispatching the same invoke then start the same execution, not two.
        """
        if function not in self.functions:
            error = {"ErrorType": "ResourceNotFoundException", "ErrorMessage": f"no function {function!r}"}
            update = {"Id": op_id, "Type": "CHAINED_INVOKE", "Action": "FAIL", "Error": error}
            self.client.service_update(arn, lambda view: _if_started(view, op_id, update))
            return None
        child = self.client.start_execution(
            payload, function=function, parent={"arn": arn, "op": op_id}, arn=assigned
        )
        dispatch = {"Id": op_id, "Type": "CHAINED_INVOKE", "Action": "DISPATCH", "ChildArn": child}
        done = self.client.service_update(
            arn, lambda view: _if_started(view, op_id, dispatch, undispatched=True)
        )
        if done is None:  # another runner dispatched it first: follow that one
            recorded = self.client.describe(arn).operations[op_id].get("_invoke", {}).get("child")
            return None if recorded is None else str(recorded)
        return child

    def _runner_for(self, child_arn: str) -> LocalRunner:
        function = child_arn.split(":function:", 1)[1].split("/", 1)[0]
        return LocalRunner(
            self.functions[function],
            self.client,
            sleep=self.sleep,
            max_invocations=self.max_invocations,
            page_size=self.page_size,
            function=function,
            functions=self.functions,
            wait=self.wait,
        )

    def run(self, event: Any = None, *, name: str | None = None) -> ExecutionResult:
        """Start an execution and drive it."""
        return self.drive(self.start(event, name=name))

    def result(self, arn: str, *, invocations: int = 0) -> ExecutionResult:
        """Where execution ``arn`` stands now."""
        view = self.client.describe(arn)
        return ExecutionResult(
            arn=arn,
            status=view.status,
            result=view.result,
            error=view.error,
            invocations=invocations,
            operations=[Operation.from_json_dict(public(op)) for op in view.operations.values()],
        )

    def callback_ids(self, arn: str) -> Sequence[str]:
        """The ids of the callbacks of ``arn`` still waiting for a result, oldest first."""
        view = self.client.describe(arn)
        return [
            op["CallbackDetails"]["CallbackId"]
            for op in view.operations.values()
            if op["Type"] == "CALLBACK" and op["Status"] == "STARTED"
        ]

    def send_callback_success(self, callback_id: str, result: str | None = None) -> None:
        """Complete a callback (then :meth:`drive` the execution on, or let the scheduler wake it)."""
        self.client.send_callback_success(callback_id, result)
        self._wake_now(callback_id)

    def send_callback_failure(
        self, callback_id: str, error_message: str, error_type: str | None = None
    ) -> None:
        """Fail a callback (then :meth:`drive` the execution on, or let the scheduler wake it)."""
        self.client.send_callback_failure(callback_id, error_message, error_type)
        self._wake_now(callback_id)

    def send_callback_heartbeat(self, callback_id: str) -> None:
        """Push a callback's heartbeat deadline forward (the wake-up already scheduled re-plans)."""
        self.client.send_callback_heartbeat(callback_id)

    def stop(self, arn: str, error: Mapping[str, Any] | None = None) -> ExecutionResult:
        """Stop execution ``arn`` (``STOPPED``; see :meth:`CairnflowDurableClient.stop_execution`)."""
        self.client.stop_execution(arn, error)
        return self.result(arn)

    def history(self, arn: str) -> list[dict[str, Any]]:
        """Every record of the execution, oldest first (who changed which operations, and when)."""
        return self.client.records(arn)


def _if_started(
    view: ExecutionView, op_id: str, update: dict[str, Any], *, undispatched: bool = False
) -> list[dict[str, Any]] | None:
    """``[update]`` if operation ``op_id`` still waits (and, with ``undispatched``, has no child yet)."""
    op = view.operations.get(op_id)
    if op is None or op["Status"] != "STARTED":
        return None
    if undispatched and (op.get("_invoke") or {}).get("child"):
        return None
    return [update]


#: Actions that change nothing a handler can observe (no invocation needed for them).
_BOOKKEEPING = frozenset({"DISPATCH", "HEARTBEAT"})


def _observable(record: Mapping[str, Any]) -> bool:
    return any(u.get("Action") not in _BOOKKEEPING for u in record["u"])


def unseen(records: Sequence[Mapping[str, Any]]) -> bool:
    """True if the execution holds something no invocation has seen (so one is due).

    That is: no invocation ever ended, or the last one failed; or after its end
    there is an SDK record or an empty service record (an invocation that
    began, and perhaps checkpointed, then died) or an observable service
    update (a callback delivered, a chained invoke finished); or the
    service recorded such an update while that last invocation ran (after
    the record it began with, ``inv.from``), which it could not see.
    """
    for index in range(len(records) - 1, -1, -1):
        inv = records[index].get("inv")
        if inv is None:
            continue
        if inv.get("err"):
            return True  # the last invocation failed (crashed): it is retried
        for after in records[index + 1 :]:
            if after.get("by") == "sdk" or not after["u"] or _observable(after):
                return True
        first = inv.get("from")
        if first is None:
            return False
        return any(
            r.get("by") == "service" and "inv" not in r and _observable(r)
            for r in records[int(first) + 1 : index]
        )
    return True
