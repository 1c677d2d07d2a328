"""Calls from outside an execution: callbacks completed, failed or kept alive, and stopping it.

These are the service's ``SendDurableExecutionCallbackSuccess``/``Failure``/
``Heartbeat`` and ``StopDurableExecution``. Each is one record appended by
the service (:meth:`CairnflowDurableClient.service_update`: one conditional
create, retried on a lost race), so an invocation running meanwhile finds its
token stale at its next checkpoint and stands down; the record is what the
next invocation replays.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from cairnflow.core.errors import InvalidArgumentError, ThreadNotFoundError

from .ids import decode_callback_id
from .state import ExecutionView

__all__ = ["OutsideCalls"]


class OutsideCalls:
    """The outside calls of :class:`~cairnflow.aws_durable.CairnflowDurableClient` (a mixin)."""

    if TYPE_CHECKING:

        def service_update(
            self,
            arn: str,
            make: Callable[[ExecutionView], list[dict[str, Any]] | None],
            *,
            always: bool = False,
            inv: dict[str, Any] | None = None,
        ) -> tuple[str, ExecutionView] | None: ...

        def describe(self, arn: str) -> ExecutionView: ...

    def _callback(self, callback_id: str, make: Callable[[str], dict[str, Any] | None]) -> None:
        arn, op_id = decode_callback_id(callback_id)

        def deliver(view: ExecutionView) -> list[dict[str, Any]] | None:
            if view.done:
                raise InvalidArgumentError(
                    f"callback {callback_id!r}: execution {arn!r} is already {view.status}"
                )
            op = view.operations.get(op_id)
            if (
                op is None
                or op["Type"] != "CALLBACK"
                or op.get("CallbackDetails", {}).get("CallbackId") != callback_id
            ):
                raise InvalidArgumentError(f"callback id {callback_id!r} names no callback of {arn!r}")
            if op["Status"] != "STARTED":
                raise InvalidArgumentError(
                    f"callback {callback_id!r} is already {op['Status']}; it cannot be completed again"
                )
            update = make(op_id)
            return None if update is None else [update]

        try:
            self.service_update(arn, deliver)
        except ThreadNotFoundError:
            raise InvalidArgumentError(f"callback id {callback_id!r}: execution {arn!r} not found") from None

    def send_callback_success(self, callback_id: str, result: str | None = None) -> None:
        """Complete a callback with ``result`` (the serialized payload, as the SDK reads it)."""
        self._callback(
            callback_id, lambda op: {"Id": op, "Type": "CALLBACK", "Action": "SUCCEED", "Payload": result}
        )

    def send_callback_failure(
        self,
        callback_id: str,
        error_message: str | None = None,
        error_type: str | None = None,
        error_data: str | None = None,
    ) -> None:
        """Fail a callback; the handler's ``wait_for_callback`` raises with this error."""
        error = {"ErrorMessage": error_message, "ErrorType": error_type, "ErrorData": error_data}
        error = {k: v for k, v in error.items() if v is not None}
        self._callback(
            callback_id, lambda op: {"Id": op, "Type": "CALLBACK", "Action": "FAIL", "Error": error}
        )

    def send_callback_heartbeat(self, callback_id: str) -> None:
        """Push a callback's heartbeat deadline forward."""
        self._callback(callback_id, lambda op: {"Id": op, "Type": "CALLBACK", "Action": "HEARTBEAT"})

    def stop_execution(self, arn: str, error: Mapping[str, Any] | None = None) -> ExecutionView:
        """End execution ``arn`` as ``STOPPED`` (StopDurableExecution); a finished one is left as it is.

        A running invocation's next checkpoint is then refused (its token is
        stale) and nothing of it is recorded. Returns the state after.
        """
        stop = {"Id": "", "Type": "EXECUTION", "Action": "STOP", "Error": dict(error or {})}

        def make(view: ExecutionView) -> list[dict[str, Any]] | None:
            return None if view.done else [{**stop, "Id": view.execution_id}]

        done = self.service_update(arn, make)
        return self.describe(arn) if done is None else done[1].copy()
