"""The AWS Durable Execution SDK's service side, on cairnflow's checkpoint log.

:class:`CairnflowDurableClient` implements the SDK's two-method
``DurableServiceClient`` protocol (``checkpoint`` and ``get_execution_state``,
with the SDK's keyword names) plus the calls the Lambda service makes on its
own: start an execution, begin and finish an invocation, deliver callbacks.

**Layout.** An execution is a cairnflow thread whose id is its ARN, in a log
of its own under the saver's prefix::

    {prefix}durable/v1/threads/{encoded arn}/{inverted seq}

Each object is one record (see :mod:`cairnflow.aws_durable.state`), written
create-only; the log's snapshot + delta scheme keeps reading any state at two
GETs at most, and the saver's serializer (JSON) and cipher apply to every body.

**Fencing.** A checkpoint token names the sequence number of the record its
holder saw (``"{seq}.{arn tag}"``, base64). ``checkpoint`` writes the whole batch of
updates as record ``seq + 1`` with one conditional create: if that record
exists, someone else (another invocation, or the service firing a timer or
delivering a callback) advanced the execution first, and the caller gets the
SDK's retryable ``Invalid checkpoint token`` error with nothing written. A
call retried with the same ``client_token`` finds its own record there and
gets the same answer again. Every invocation starts with a service record,
so each invocation holds a token of its own and a stale one stands down.

**Costs.** ``checkpoint``: one PUT (the state at the token is cached from
the previous call of this process; otherwise 1-2 GETs first).
``get_execution_state``: the state at the token, 1-2 GETs, cached across pages.
"""

from __future__ import annotations

import math
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from aws_durable_execution_sdk_python.exceptions import (
    CheckpointError,
    DurableApiErrorCategory,
    GetExecutionStateError,
)
from aws_durable_execution_sdk_python.lambda_service import (
    CheckpointOutput,
    CheckpointUpdatedExecutionState,
    Operation,
    OperationUpdate,
    StateOutput,
)

from cairnflow.core import keys
from cairnflow.core.checkpoint import Checkpoint, Status
from cairnflow.core.errors import (
    ConflictError,
    InvalidArgumentError,
    MisuseError,
    ThreadNotFoundError,
)
from cairnflow.core.log import CheckpointLog

if TYPE_CHECKING:
    from .boto import Boto3Adapter

from .ids import decode_token, encode_callback_id, encode_token, new_execution_arn
from .outside import OutsideCalls
from .payloads import INLINE_LIMIT, PayloadLog
from .state import (
    ExecutionView,
    apply_record,
    due_updates,
    fold,
    next_due_ms,
    only_invocation_ends,
    public,
)

__all__ = ["CairnflowDurableClient"]

_SERVICE_RETRIES = 20


def _api_error(
    cls: type[CheckpointError] | type[GetExecutionStateError],
    code: str,
    message: str,
    status: int,
    retryable: bool,
) -> Exception:
    category = DurableApiErrorCategory.INVOCATION if retryable else DurableApiErrorCategory.EXECUTION
    return cls(
        message,
        error_category=category,
        error={"Code": code, "Message": message},
        response_metadata={
            "RequestId": None,
            "HostId": None,
            "HTTPStatusCode": status,
            "HTTPHeaders": None,
            "RetryAttempts": None,
        },
    )


def _log_status(view: ExecutionView) -> Status:
    if view.status == "SUCCEEDED":
        return "completed"
    if view.done:
        return "failed"
    return "running"


class CairnflowDurableClient(OutsideCalls):
    """The durable-execution service on a :class:`~cairnflow.core.log.CheckpointLog`'s store.

    ``saver`` supplies the store, prefix, serializer, cipher and retry policy;
    executions live in a log of their own beside the saver's threads.
    ``clock`` (epoch seconds) stamps every record and decides what is due.
    Strings longer than ``inline_limit`` bytes are stored as objects of their
    own (:mod:`cairnflow.aws_durable.payloads`): no per-operation size limit.
    """

    def __init__(
        self,
        saver: CheckpointLog,
        *,
        clock: Callable[[], float] = time.time,
        inline_limit: int = INLINE_LIMIT,
    ) -> None:
        if not isinstance(saver, CheckpointLog):
            raise MisuseError(
                f"CairnflowDurableClient needs a CheckpointLog (the object-store saver), not "
                f"{type(saver).__name__}"
            )
        self.saver = saver
        self.log = PayloadLog(
            saver.store,
            prefix=keys.durable_prefix(saver.prefix),
            serializer=saver.serializer,
            snapshot_every=saver.snapshot_every,
            snapshot_bytes=saver.snapshot_bytes,
            store_retry=saver.store_retry,
            cipher=saver.cipher,
            require_encryption=saver.require_encryption,
            inline_limit=inline_limit,
        )
        self.clock = clock
        self._lock = threading.Lock()
        # The newest state this process knows of each execution: the next checkpoint
        # of the invocation that holds its token costs one PUT and nothing else.
        self._heads: dict[str, tuple[Checkpoint, ExecutionView]] = {}

    # ------------------------------------------------------------------ tokens

    def token_for(self, arn: str, seq: int) -> str:
        """The checkpoint token naming record ``seq`` of execution ``arn`` (see :mod:`.ids`)."""
        return encode_token(arn, seq)

    def _parse_token(self, arn: str, token: str) -> int | None:
        return decode_token(arn, token)

    # ------------------------------------------------------------------ reading

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    def _remember(self, arn: str, head: Checkpoint, view: ExecutionView) -> None:
        with self._lock:
            known = self._heads.get(arn)
            if known is None or known[0].seq <= head.seq:
                self._heads[arn] = (head, view)

    def _at(self, arn: str, seq: int) -> tuple[Checkpoint, ExecutionView]:
        """The state after record ``seq`` (cached, else 1-2 GETs)."""
        with self._lock:
            known = self._heads.get(arn)
        if known is not None and known[0].seq == seq:
            return known
        head = self.log.get(arn, seq)
        view = self._fold(arn, head.records)
        self._remember(arn, head, view)
        return head, view

    def _latest(self, arn: str) -> tuple[Checkpoint, ExecutionView]:
        """The newest state in the store: 1 LIST + 1-2 GETs."""
        head = self.log.latest(arn)
        if head is None:
            raise ThreadNotFoundError(f"no durable execution {arn!r} in {self.log.store.url}")
        view = self._fold(arn, head.records)
        self._remember(arn, head, view)
        return head, view

    def _fold(self, arn: str, records: Any) -> ExecutionView:
        return fold(_execution_id(arn), self.log.resolve(records))

    def describe(self, arn: str) -> ExecutionView:
        """The newest state of execution ``arn`` (a copy; ``ThreadNotFoundError`` if none)."""
        return self._latest(arn)[1].copy()

    def records(self, arn: str) -> list[dict[str, Any]]:
        """Every record of execution ``arn``, oldest first: who changed what, and when."""
        head = self.log.latest(arn)
        if head is None:
            raise ThreadNotFoundError(f"no durable execution {arn!r} in {self.log.store.url}")
        return [dict(r) for r in self.log.resolve(head.records)]

    # ------------------------------------------------------------------ SDK protocol

    def _state_at_token(
        self, arn: str, token: str, error: type[CheckpointError] | type[GetExecutionStateError]
    ) -> tuple[Checkpoint, ExecutionView]:
        """``(head, state)`` a checkpoint token names, or the SDK's error of type ``error``.

        A token that is not one of ``arn``'s is the retryable ``Invalid checkpoint
        token``; a well-formed token naming no record is, for ``checkpoint``, the same
        (the invocation stands down), and for ``get_execution_state`` a 404.
        """
        seq = self._parse_token(arn, token)
        if seq is None:
            raise _api_error(
                error,
                "InvalidParameterValueException",
                f"Invalid checkpoint token: {token!r} is not a token of {arn!r}",
                400,
                retryable=True,
            )
        try:
            head, view = self._at(arn, seq)
        except ThreadNotFoundError:
            if error is CheckpointError:
                message = f"Invalid checkpoint token: execution {arn!r} has no record {seq}"
                code = "InvalidParameterValueException"
                raise _api_error(error, code, message, 400, retryable=True) from None
            message = f"execution {arn!r} has no record {seq}"
            raise _api_error(error, "ResourceNotFoundException", message, 404, retryable=False) from None
        return head, view

    def checkpoint(
        self,
        durable_execution_arn: str,
        checkpoint_token: str,
        updates: Sequence[OperationUpdate],
        client_token: str | None,
    ) -> CheckpointOutput:
        """Record one batch of operation updates, fenced by ``checkpoint_token`` (one PUT)."""
        arn = durable_execution_arn
        head, view = self._state_at_token(arn, checkpoint_token, CheckpointError)
        record: dict[str, Any] = {
            "n": uuid.uuid4().hex,
            "t": self._now_ms(),
            "by": "sdk",
            "ct": client_token,
            "u": [self._accept(arn, dict(u.to_dict())) for u in updates],
        }
        while True:
            after = view.copy()
            try:
                changed = apply_record(after, record, position=len(head.records))
            except InvalidArgumentError as exc:
                raise _api_error(
                    CheckpointError, "InvalidParameterValueException", str(exc), 400, retryable=False
                ) from None
            try:
                written = self.log.append(arn, head, [record], status=_log_status(after))
            except ConflictError:
                own = self._own(arn, head.seq + 1, client_token)
                moved = None if own is not None else self._past_ends(arn, head)
                if moved is None:
                    return self._recognise(arn, head.seq + 1, own)
                head, view = moved  # only stood-down invocations ended meanwhile: go on top
                continue
            self._remember(arn, written, after)
            return self._output(arn, written.seq, after, changed)

    def _own(self, arn: str, seq: int, client_token: str | None) -> Checkpoint | None:
        """Record ``seq`` if it is this call's own (same client token), landed by an earlier try."""
        if client_token is None:
            return None
        try:
            theirs = self.log.get(arn, seq)
        except ThreadNotFoundError:
            return None
        return theirs if theirs.new and theirs.new[-1].get("ct") == client_token else None

    def _past_ends(self, arn: str, head: Checkpoint) -> tuple[Checkpoint, ExecutionView] | None:
        """The newest state, if all that came after ``head`` only ends invocations (see state.py)."""
        latest, view = self._latest(arn)
        return (latest, view) if only_invocation_ends(latest.records[len(head.records) :]) else None

    def _accept(self, arn: str, update: dict[str, Any]) -> dict[str, Any]:
        """An SDK update as recorded: with what the service assigns on acceptance."""
        if update.get("Type") == "CALLBACK" and update.get("Action") == "START":
            update["CallbackId"] = encode_callback_id(arn, str(update["Id"]))
        elif update.get("Type") == "CHAINED_INVOKE" and update.get("Action") == "START":
            # The invoked execution's ARN is the service's from the start (the history's
            # ChainedInvokeStarted names it), and starting it is idempotent under that ARN.
            function = str((update.get("ChainedInvokeOptions") or {}).get("FunctionName"))
            update["ChildArn"] = self.new_arn(function)
        return update

    def _recognise(self, arn: str, seq: int, own: Checkpoint | None) -> CheckpointOutput:
        """After a lost create: our own earlier call (``own``, same client token), else a stale token."""
        if own is not None:
            view = self._fold(arn, own.records)
            self._remember(arn, own, view)
            before = self._fold(arn, own.records[:-1])
            changed = [op for op in view.operations if view.operations[op] != before.operations.get(op)]
            return self._output(arn, seq, view, changed)
        raise _api_error(
            CheckpointError,
            "InvalidParameterValueException",
            f"Invalid checkpoint token: execution {arn!r} was advanced by another "
            f"invocation (record {seq} exists); this invocation must stand down",
            400,
            retryable=True,
        )

    def _output(self, arn: str, seq: int, view: ExecutionView, changed: list[str]) -> CheckpointOutput:
        operations = [Operation.from_json_dict(public(view.operations[op])) for op in changed]
        return CheckpointOutput(
            checkpoint_token=None if view.done else self.token_for(arn, seq),
            new_execution_state=CheckpointUpdatedExecutionState(operations=operations, next_marker=None),
        )

    def get_execution_state(
        self,
        durable_execution_arn: str,
        checkpoint_token: str,
        next_marker: str,
        max_items: int = 1000,
    ) -> StateOutput:
        """One page of the operations as of ``checkpoint_token``; ``next_marker`` is an offset."""
        _, view = self._state_at_token(durable_execution_arn, checkpoint_token, GetExecutionStateError)
        operations, marker = self.page(view, next_marker, max_items)
        return StateOutput(operations=operations, next_marker=marker)

    @staticmethod
    def page(view: ExecutionView, marker: str | None, max_items: int) -> tuple[list[Operation], str | None]:
        """Operations ``[marker, marker + max_items)`` of ``view`` and the marker of the rest."""
        try:
            start = int(marker) if marker else 0
        except ValueError:
            raise InvalidArgumentError(
                f"next_marker {marker!r} is not a marker this service issued"
            ) from None
        if max_items < 1:
            raise InvalidArgumentError(f"max_items must be at least 1, got {max_items}")
        ops = list(view.operations.values())
        chunk = [Operation.from_json_dict(public(op)) for op in ops[start : start + max_items]]
        rest = start + max_items
        return chunk, (str(rest) if rest < len(ops) else None)

    # ------------------------------------------------------------------ the service's own calls

    def start_execution(
        self,
        input_payload: str | None,
        *,
        function: str = "local",
        name: str | None = None,
        timeout: float | None = None,
        parent: Mapping[str, str] | None = None,
        arn: str | None = None,
    ) -> str:
        """Create an execution with ``input_payload`` (a JSON string); return its ARN.

        ``timeout`` (seconds, the function's execution timeout): past it the
        service ends the execution as ``TIMED_OUT`` at its next invocation.
        ``arn`` (from :meth:`new_arn`, e.g. the one a chained invoke was given
        when the service accepted it) makes the start idempotent: if that
        execution exists already, it is the one returned.
        """
        if timeout is not None and not timeout > 0:
            raise InvalidArgumentError(f"execution timeout must be positive seconds, got {timeout!r}")
        given = arn is not None
        arn = arn or self.new_arn(function, name)
        execution_id = _execution_id(arn)
        update: dict[str, Any] = {
            "Id": execution_id,
            "Type": "EXECUTION",
            "Action": "START",
            "Payload": input_payload,
        }
        if name:
            update["Name"] = name
        if timeout is not None:
            update["ExecutionTimeout"] = max(1, math.ceil(timeout))
        if parent is not None:  # {"arn", "op"}: the chained invoke waiting for this execution
            update["Parent"] = dict(parent)
        record = self._record([update])
        view = ExecutionView(execution_id)
        apply_record(view, record, position=0, check=False)
        try:
            head = self.log.append(arn, None, [record], status="running")
        except ConflictError:
            if not given:
                raise
            return arn  # started already (another runner dispatched the same invoke)
        self._remember(arn, head, view)
        return arn

    new_arn = staticmethod(new_execution_arn)

    def service_update(
        self,
        arn: str,
        make: Callable[[ExecutionView], list[dict[str, Any]] | None],
        *,
        always: bool = False,
        inv: dict[str, Any] | None = None,
    ) -> tuple[str, ExecutionView] | None:
        """Append the updates ``make(latest state)`` returns, as the service, retrying lost races.

        ``make`` returns None to write nothing (then this returns None unless
        ``always``, which writes an empty record: a fresh token). Returns the
        token after the write and the state it produced.
        """
        head, view = self._latest_or_cached(arn)
        for _ in range(_SERVICE_RETRIES):
            updates = make(view.copy())
            if updates is None and not always:
                return None
            record = self._record(updates or [], inv=inv)
            after = view.copy()
            apply_record(after, record, position=len(head.records), check=False)
            try:
                written = self.log.append(arn, head, [record], status=_log_status(after))
            except ConflictError:
                head, view = self._latest(arn)
                continue
            self._remember(arn, written, after)
            return self.token_for(arn, written.seq), after
        raise ConflictError(f"execution {arn!r} kept moving under the service; try again", thread_id=arn)

    def _record(self, updates: list[dict[str, Any]], *, inv: dict[str, Any] | None = None) -> dict[str, Any]:
        """A service record of ``updates`` stamped now (``inv``: it also ends an invocation)."""
        record = {"n": uuid.uuid4().hex, "t": self._now_ms(), "by": "service", "ct": None, "u": updates}
        if inv is not None:
            record["inv"] = inv
        return record

    def _latest_or_cached(self, arn: str) -> tuple[Checkpoint, ExecutionView]:
        with self._lock:
            known = self._heads.get(arn)
        # The cache is only a guess (another process may have written since):
        # a stale guess costs one refused PUT, then the store's latest is read.
        return known if known is not None else self._latest(arn)

    def begin_invocation(self, arn: str) -> tuple[str, ExecutionView]:
        """Fire what is due and issue a fresh token for one invocation (one PUT)."""
        now = self._now_ms()

        def due(view: ExecutionView) -> list[dict[str, Any]]:
            if view.done:
                raise InvalidArgumentError(f"execution {arn!r} is already {view.status}; nothing to invoke")
            return due_updates(view, now)

        begun = self.service_update(arn, due, always=True)
        assert begun is not None  # always=True writes
        return begun

    def end_invocation(
        self,
        arn: str,
        token: str,
        output: Mapping[str, Any],
        *,
        started_ms: int,
        request_id: str,
        begun: str | None = None,
    ) -> bool:
        """Record that an invocation ended (``InvocationCompleted``), with the handler's result.

        A terminal output (``SUCCEEDED``/``FAILED``) is written fenced by the
        invocation's last token, in the same record; if that token is stale
        (another invocation moved on) the output does not count: False, and
        only the invocation's end is recorded. Other outputs record the end alone.
        ``begun`` is the token the invocation began with: the end names that record
        (``from``), so what the service recorded meanwhile is known to be unseen.
        """
        status = output.get("Status")
        inv: dict[str, Any] = {"s": started_ms, "rid": request_id}
        first = None if begun is None else self._parse_token(arn, begun)
        if first is not None:
            inv["from"] = first
        if status == "RETRY" and output.get("Error"):  # the handler itself failed
            inv["err"] = dict(output["Error"])
        seq = self._parse_token(arn, token)
        if status in ("SUCCEEDED", "FAILED") and seq is not None:
            head, view = self._at(arn, seq)
            updates: list[dict[str, Any]] = []
            if not view.done:  # else the SDK checkpointed the result itself (a large one)
                if status == "SUCCEEDED":
                    update = {"Action": "SUCCEED", "Payload": output.get("Result")}
                else:
                    update = {"Action": "FAIL", "Error": dict(output.get("Error") or {})}
                updates.append({"Id": view.execution_id, "Type": "EXECUTION", **update})
            record = self._record(updates, inv=inv)
            while True:
                after = view.copy()
                apply_record(after, record, position=len(head.records), check=False)
                try:
                    written = self.log.append(arn, head, [record], status=_log_status(after))
                except ConflictError:
                    moved = self._past_ends(arn, head)
                    if moved is None:
                        break  # stale: record the end alone, below
                    head, view = moved  # only stood-down invocations ended meanwhile
                    continue
                self._remember(arn, written, after)
                return True
        self.service_update(arn, lambda _view: [], inv=inv)
        return status not in ("SUCCEEDED", "FAILED")

    def known_seq(self, arn: str) -> int:
        """The newest record of ``arn`` this process knows of (reads the store if none)."""
        with self._lock:
            known = self._heads.get(arn)
        return (known if known is not None else self._latest(arn))[0].seq

    def boto3_client(self) -> Boto3Adapter:
        """This service behind boto3's Lambda method names, for ``@durable_execution(boto3_client=...)``."""
        from .boto import Boto3Adapter

        return Boto3Adapter(self)

    def next_due(self, arn: str) -> float | None:
        """When the service next has something to do for ``arn`` (epoch seconds), from the cached state."""
        with self._lock:
            known = self._heads.get(arn)
        view = known[1] if known is not None else self._latest(arn)[1]
        due = next_due_ms(view)
        return None if due is None else due / 1000.0


def _execution_id(arn: str) -> str:
    return arn.rsplit("/", 1)[-1]
