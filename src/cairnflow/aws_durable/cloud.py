"""Durable executions woken by the cloud's own scheduler or queue: no runner process of ours.

:class:`DurableDriver` is the :class:`~cairnflow.driver.driver.WakeHandler`
that :mod:`cairnflow.driver`'s entry points call, so the same wake-ups that
continue cairnflow workflows continue ``@durable_execution`` handlers:

* AWS Lambda: ``cairnflow.driver.aws.lambda_handler(driver)`` with
  :class:`~cairnflow.driver.aws.SqsWakeScheduler` (a delayed SQS message) or
  :class:`~cairnflow.driver.aws.EventBridgeWakeScheduler`;
* Google Cloud Run: ``cairnflow.driver.gcp.wsgi_app(driver)`` with
  :class:`~cairnflow.driver.gcp.CloudTasksWakeScheduler`;
* Azure Functions: ``cairnflow.driver.azure.handle_message(driver, body)``
  with :class:`~cairnflow.driver.azure.StorageQueueWakeScheduler`.

:meth:`DurableDriver.start` writes the execution's first record and schedules
its first invocation at once; each delivered wake-up invokes the handler once
(in the function that received it) and schedules the next one the execution
needs: a wait's end, a retry's back-off, a callback's deadline, the execution
timeout. A callback delivered through the driver schedules an invocation now.

Wake-ups are delivered at least once. A wake-up for an execution with nothing
new (already handled, or finished) invokes nothing; one that arrives early (a
queue's capped delay) is scheduled again for the rest. While an invocation
runs, a *lease* wake-up stands ``lease`` seconds ahead: if the function dies
(timeout, out of memory), the lease continues the execution, and the
checkpoint tokens make a late twin stand down without recording anything.
A chained invoke (``context.invoke``) starts the callee as an execution of its
own, woken through the same scheduler; its first record names the caller, and
when it ends its result (or error) is recorded in the caller, which is woken.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from cairnflow.core.errors import InvalidArgumentError, StoreError
from cairnflow.core.wake import WakeScheduler, Wakeup

from .client import CairnflowDurableClient
from .ids import decode_callback_id
from .runner import ExecutionResult, Handler, LocalRunner, _if_started, unseen
from .state import TERMINAL, fold

__all__ = ["DurableDriver"]

_log = logging.getLogger("cairnflow.aws_durable")

#: A wake-up earlier than its time by less than this is handled now (clock skew, queue jitter).
EARLY_TOLERANCE = 1.0

_PREFIX = "aws-durable/"


class DurableDriver:
    """Continues the durable executions of ``functions`` (name -> handler) from delivered wake-ups.

    ``scheduler`` is the cloud's (or the store's :class:`~cairnflow.driver.DueIndex`);
    ``execution_timeout`` (seconds) applies to executions it starts.
    """

    def __init__(
        self,
        client: CairnflowDurableClient,
        scheduler: WakeScheduler,
        functions: Mapping[str, Handler],
        *,
        lease: float = 900.0,
        execution_timeout: float | None = None,
    ) -> None:
        if lease <= 0:
            raise InvalidArgumentError(f"lease must be positive seconds, got {lease!r}")
        if not functions:
            raise InvalidArgumentError("DurableDriver needs at least one function (name -> handler)")
        self.client = client
        self.scheduler = scheduler
        self.lease = lease
        self.runners = {
            name: LocalRunner(
                handler,
                client,
                scheduler=scheduler,
                function=name,
                functions=functions,
                execution_timeout=execution_timeout,
            )
            for name, handler in functions.items()
        }

    def runner(self, function: str) -> LocalRunner:
        """The runner of ``function``; ``InvalidArgumentError`` naming the known ones if none."""
        try:
            return self.runners[function]
        except KeyError:
            known = ", ".join(sorted(self.runners))
            raise InvalidArgumentError(
                f"no durable function {function!r} in this process (it has: {known}); "
                "pass its handler in DurableDriver(functions=...)"
            ) from None

    def start(self, function: str, event: Any = None, *, name: str | None = None) -> str:
        """Create an execution of ``function`` and schedule its first invocation now; return its ARN."""
        return self.runner(function).start(event, name=name)

    def handle(self, wakeup: Wakeup, **options: Any) -> ExecutionResult | None:
        """Invoke the execution ``wakeup`` names if it has something new; None when it came early.

        ``options`` (such as the ``deadline`` the Lambda entry point passes) are accepted and unused.
        """
        if not wakeup.workflow.startswith(_PREFIX):
            raise InvalidArgumentError(
                f"wake-up for {wakeup.thread_id!r} names workflow {wakeup.workflow!r}, not a durable "
                f"function ({_PREFIX}NAME); is this queue shared with cairnflow workflows?"
            )
        runner = self.runner(wakeup.workflow[len(_PREFIX) :])
        now = self.client.clock()
        if wakeup.at > now + EARLY_TOLERANCE:
            self.scheduler.schedule(wakeup)  # delivered early (a capped delay): chain
            return None
        arn = wakeup.thread_id
        records = self.client.records(arn)
        if fold(arn.rsplit("/", 1)[-1], records).done:
            self._answer_caller(records)  # again, if a crash came between the end and the answer
            return runner.result(arn)
        due = self.client.next_due(arn)
        if not unseen(records) and (due is None or due > now):
            if due is not None:  # early within the tolerance: keep the timer alive
                self.scheduler.schedule(Wakeup(arn, runner.workflow, due, reason="timer"))
            return runner.result(arn)  # a duplicate or a lease of a finished invocation
        lease = Wakeup(arn, runner.workflow, now + self.lease, reason="lease")
        self.scheduler.schedule(lease)
        runner.advance(arn)  # one invocation; schedules the next wake-up it needs
        self._dispatch_invokes(runner, arn)
        cancel = getattr(self.scheduler, "cancel", None)
        if cancel is not None:
            cancel(lease)
        result = runner.result(arn)
        if result.status in TERMINAL:
            self._answer_caller(self.client.records(arn))
        return result

    # ------------------------------------------------------------------ chained invokes

    def _dispatch_invokes(self, runner: LocalRunner, arn: str) -> None:
        """Start the executions ``arn``'s chained invokes call, each woken by the scheduler now.

        The callee's first record names its caller (``Parent``): when it ends,
        :meth:`_answer_caller` records its result in the caller and wakes it.
        """
        for op in self.client.describe(arn).operations.values():
            if op["Type"] != "CHAINED_INVOKE" or op["Status"] != "STARTED":
                continue
            invoke = op.get("_invoke") or {}
            if invoke.get("child"):
                continue  # dispatched by an earlier invocation: its end will answer
            function = str((invoke.get("options") or {}).get("FunctionName"))
            child = runner._dispatch(arn, op["Id"], function, invoke.get("input"))
            if child is None:  # no such function: the invoke failed, the caller goes on
                self.scheduler.schedule(Wakeup(arn, runner.workflow, self.client.clock(), reason="child"))
                continue
            self.scheduler.schedule(Wakeup(child, _PREFIX + function, self.client.clock(), reason="child"))

    def _answer_caller(self, records: list[dict[str, Any]]) -> None:
        """Record a finished callee's outcome in the chained invoke that waits for it, and wake its caller."""
        start = records[0]["u"][0] if records and records[0]["u"] else {}
        parent = start.get("Parent")
        if not isinstance(parent, dict):
            return
        view = fold(str(start["Id"]), records)
        update: dict[str, Any] = {"Id": parent["op"], "Type": "CHAINED_INVOKE"}
        if view.status == "SUCCEEDED":
            update.update(Action="SUCCEED", Payload=view.result)
        else:
            error = view.error or {"ErrorType": f"Execution.{view.status}", "ErrorMessage": view.status}
            update.update(Action="FAIL", Error=error)
        caller = str(parent["arn"])
        answered = self.client.service_update(caller, lambda v: _if_started(v, str(parent["op"]), update))
        if answered is not None:
            workflow = self._runner_of(caller).workflow
            self.scheduler.schedule(Wakeup(caller, workflow, self.client.clock(), reason="child"))

    def deliver(self, wakeup: Wakeup, **options: Any) -> bool:
        """Handle ``wakeup`` for a queue: False (deliver it again later) only when the store failed."""
        try:
            self.handle(wakeup, **options)
        except StoreError:
            _log.warning("continuing execution %r: store error", wakeup.thread_id, exc_info=True)
            return False
        return True

    # ------------------------------------------------------------------ outside calls

    def _runner_of(self, arn: str) -> LocalRunner:
        return self.runner(arn.split(":function:", 1)[-1].split("/", 1)[0])

    def send_callback_success(self, callback_id: str, result: str | None = None) -> None:
        """Complete a callback and schedule the execution's invocation now."""
        self._runner_of(decode_callback_id(callback_id)[0]).send_callback_success(callback_id, result)

    def send_callback_failure(
        self, callback_id: str, error_message: str, error_type: str | None = None
    ) -> None:
        """Fail a callback and schedule the execution's invocation now."""
        arn = decode_callback_id(callback_id)[0]
        self._runner_of(arn).send_callback_failure(callback_id, error_message, error_type)

    def send_callback_heartbeat(self, callback_id: str) -> None:
        """Push a callback's heartbeat deadline forward."""
        self.client.send_callback_heartbeat(callback_id)

    def stop(self, arn: str, error: Mapping[str, Any] | None = None) -> ExecutionResult:
        """Stop an execution (``STOPPED``); wake-ups still in flight then find nothing to do."""
        return self._runner_of(arn).stop(arn, error)

    def result(self, arn: str) -> ExecutionResult:
        """Where execution ``arn`` stands."""
        return self._runner_of(arn).result(arn)
