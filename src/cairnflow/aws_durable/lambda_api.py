"""The Lambda API of durable functions, in process: a boto3 ``lambda`` client's methods over the runner.

:class:`LocalLambda` answers the calls a tool written against AWS makes with
``boto3.client("lambda")``: ``invoke`` (synchronous, or ``InvocationType="Event"``
which returns the execution ARN at once and runs it in a background thread),
``get_durable_execution``, ``get_durable_execution_history`` (the events of
:mod:`cairnflow.aws_durable.history`) and the three
``send_durable_execution_callback_*`` calls. Functions are the handlers it was
given, by name; they may ``context.invoke`` each other.

It is what lets the AWS conformance package's own validation pipeline judge
cairnflow: its invoker and validators take a Lambda client, and this is one.
"""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from cairnflow.core.errors import InvalidArgumentError, ThreadNotFoundError

from .client import CairnflowDurableClient
from .history import events, execution_summary
from .ids import decode_callback_id
from .runner import ExecutionResult, Handler, LocalRunner

__all__ = ["LambdaApiError", "LocalLambda"]

_DEFAULT_ITEMS = 100  # GetDurableExecutionHistory's page size unless MaxItems says otherwise
_MAX_ITEMS = 1000


class LambdaApiError(Exception):
    """An API error in botocore's shape (``.response["Error"]["Code"]``)."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(f"An error occurred ({code}): {message}")
        self.response = {
            "Error": {"Code": code, "Message": message},
            "ResponseMetadata": {"HTTPStatusCode": status},
        }


class _Closed(Exception):
    """Raised inside a background drive when the :class:`LocalLambda` is closed."""


class LocalLambda:
    """boto3 ``lambda`` client methods for durable functions, served by :class:`LocalRunner`.

    ``functions`` maps function names to ``@durable_execution`` handlers. A
    ``FunctionName`` may be a bare name or an ARN ending in ``:function:{name}``
    (an optional ``:qualifier`` is ignored). Call :meth:`close` (or use
    ``with``) to stop the background executions.
    """

    def __init__(
        self,
        client: CairnflowDurableClient,
        functions: Mapping[str, Handler],
        *,
        max_invocations: int = 100,
        on_error: Callable[[str, BaseException], None] | None = None,
    ) -> None:
        self.client = client
        self.functions = dict(functions)
        self.max_invocations = max_invocations
        self.on_error = on_error
        self._signals: dict[str, threading.Event] = {}
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._closed = threading.Event()

    def __enter__(self) -> LocalLambda:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self, timeout: float = 5.0) -> None:
        """Stop driving background executions (those waiting stay as they are in the store)."""
        self._closed.set()
        with self._lock:
            signals, threads = list(self._signals.values()), list(self._threads)
        for signal in signals:
            signal.set()
        for thread in threads:
            thread.join(timeout)

    # ------------------------------------------------------------------ invoking

    def _function(self, name: str) -> str:
        base = name.split(":function:", 1)[1] if ":function:" in name else name
        base = base.split(":", 1)[0]
        if base not in self.functions:
            raise LambdaApiError("ResourceNotFoundException", f"Function not found: {name}", 404)
        return base

    def _signal(self, arn: str) -> threading.Event:
        with self._lock:
            return self._signals.setdefault(arn, threading.Event())

    def _wait(self, arn: str, seconds: float) -> bool:
        """Sleep until ``seconds`` pass or a callback of ``arn`` is completed (then True)."""
        signal = self._signal(arn)
        woken = signal.wait(max(seconds, 0.0))
        signal.clear()
        if self._closed.is_set():
            raise _Closed  # stop driving; the execution stays as it is in the store
        return woken

    def _drive(self, function: str, arn: str) -> ExecutionResult:
        """Drive execution ``arn`` of ``function`` as far as it goes now (see :meth:`LocalRunner.drive`)."""
        return self._runner(function).drive(arn)

    def _runner(self, function: str) -> LocalRunner:
        return LocalRunner(
            self.functions[function],
            self.client,
            max_invocations=self.max_invocations,
            function=function,
            functions=self.functions,
            wait=self._wait,
        )

    def invoke(
        self,
        *,
        FunctionName: str,
        InvocationType: str = "RequestResponse",
        Payload: bytes | str = b"",
        Qualifier: str | None = None,
        **_: Any,
    ) -> dict[str, Any]:
        """Start a durable execution of ``FunctionName`` with ``Payload`` as its input."""
        del Qualifier
        function = self._function(FunctionName)
        raw = Payload.decode() if isinstance(Payload, bytes) else Payload
        payload = raw if raw else None
        arn = self.client.start_execution(payload, function=function)
        if InvocationType == "Event":
            thread = threading.Thread(target=self._drive_in_background, args=(function, arn), daemon=True)
            with self._lock:
                self._threads.append(thread)
            thread.start()
            return {"StatusCode": 202, "Payload": io.BytesIO(b""), "DurableExecutionArn": arn}
        outcome = self._drive(function, arn)
        response: dict[str, Any] = {
            "StatusCode": 200,
            "DurableExecutionArn": arn,
            "ExecutedVersion": "$LATEST",
        }
        if outcome.status == "SUCCEEDED":
            response["Payload"] = io.BytesIO((outcome.result or "null").encode())
        else:
            response["FunctionError"] = "Unhandled"
            response["Payload"] = io.BytesIO(json.dumps(outcome.error or {"Status": outcome.status}).encode())
        return response

    def _drive_in_background(self, function: str, arn: str) -> None:
        signal = self._signal(arn)
        try:
            while not self._closed.is_set():
                signal.clear()
                if self._drive(function, arn).status not in ("STARTED", "RUNNING"):
                    return
                signal.wait()  # only a callback can move it on now
        except _Closed:
            return
        except BaseException as exc:
            if self.on_error is not None:
                self.on_error(arn, exc)
            raise

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until every background execution has stopped being driven; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in threads)

    # ------------------------------------------------------------------ reading

    def _view(self, arn: str) -> Any:
        try:
            return self.client.describe(arn)
        except ThreadNotFoundError:
            raise LambdaApiError("ResourceNotFoundException", f"Execution not found: {arn}", 404) from None

    def get_durable_execution(self, *, DurableExecutionArn: str, **_: Any) -> dict[str, Any]:
        """The execution's status, input, result or error, and times."""
        view = self._view(DurableExecutionArn)
        function_arn = DurableExecutionArn.split("/durable-execution/", 1)[0]
        return execution_summary(DurableExecutionArn, view, function_arn)

    def get_durable_execution_history(
        self,
        *,
        DurableExecutionArn: str,
        IncludeExecutionData: bool = True,
        MaxItems: int | None = None,
        Marker: str | None = None,
        ReverseOrder: bool = False,
        **_: Any,
    ) -> dict[str, Any]:
        """The execution's events, oldest first (``ReverseOrder`` newest first), paged by ``Marker``.

        As the API: execution data included unless ``IncludeExecutionData=False``;
        pages of ``MaxItems`` events (default 100, at most 1000, 0 means the default).
        """
        self._view(DurableExecutionArn)
        records = self.client.records(DurableExecutionArn)
        found = events(DurableExecutionArn.rsplit("/", 1)[-1], records, include_data=IncludeExecutionData)
        if ReverseOrder:
            found.reverse()
        try:
            start = int(Marker) if Marker else 0
        except ValueError:
            raise LambdaApiError(
                "InvalidParameterValueException", f"Marker {Marker!r} was not issued here"
            ) from None
        if MaxItems is not None and not 0 <= int(MaxItems) <= _MAX_ITEMS:
            raise LambdaApiError(
                "InvalidParameterValueException", f"MaxItems must be 0..{_MAX_ITEMS}, not {MaxItems}"
            )
        end = start + (int(MaxItems or 0) or _DEFAULT_ITEMS)
        response: dict[str, Any] = {"Events": found[start:end]}
        if end < len(found):
            response["NextMarker"] = str(end)
        return response

    # ------------------------------------------------------------------ callbacks

    def _deliver(self, callback_id: str, send: Callable[[], None], *, wake: bool = True) -> dict[str, Any]:
        try:
            arn, _ = decode_callback_id(callback_id)
            send()
        except InvalidArgumentError as exc:
            raise LambdaApiError("InvalidParameterValueException", str(exc)) from None
        if wake:  # a heartbeat only moves a deadline: the runner recomputes it when it wakes
            self._signal(arn).set()
            # The execution may be the target of another's context.invoke, driven by that
            # caller's thread: wake them all (a driver with nothing unseen invokes nothing).
            with self._lock:
                signals = list(self._signals.values())
            for signal in signals:
                signal.set()
        return {"ResponseMetadata": {"HTTPStatusCode": 200}}

    def send_durable_execution_callback_success(
        self, *, CallbackId: str, Result: bytes | str | None = None, **_: Any
    ) -> dict[str, Any]:
        """Complete a callback with ``Result`` (the serialized payload)."""
        result = Result.decode() if isinstance(Result, bytes) else Result
        return self._deliver(CallbackId, lambda: self.client.send_callback_success(CallbackId, result))

    def send_durable_execution_callback_failure(
        self, *, CallbackId: str, Error: Mapping[str, Any] | None = None, **_: Any
    ) -> dict[str, Any]:
        """Fail a callback with ``Error`` (``ErrorType``, ``ErrorMessage``, ``ErrorData``)."""
        error = dict(Error or {})
        return self._deliver(
            CallbackId,
            lambda: self.client.send_callback_failure(
                CallbackId, error.get("ErrorMessage"), error.get("ErrorType"), error.get("ErrorData")
            ),
        )

    def send_durable_execution_callback_heartbeat(self, *, CallbackId: str, **_: Any) -> dict[str, Any]:
        """Push a callback's heartbeat deadline forward."""
        return self._deliver(CallbackId, lambda: self.client.send_callback_heartbeat(CallbackId), wake=False)
