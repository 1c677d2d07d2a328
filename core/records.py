"""The executor's records: what each one holds, and the one parser that reads a run's history.

A thread's state is a list of small dicts, appended in order:

``start``       ``{op, workflow, input, input_digest}``: the run began (written before
                any task result, so a run killed in its first task can be resumed)
``task``        ``{op, pos, name, args, value}``: a task call at position ``pos`` returned
``task_error``  ``{op, pos, name, args, error}``: it raised (``error``: see :class:`RecordedError`)
``attempt``     ``{op, pos, name, args, attempt, retry_at, error}``: attempt number ``attempt`` of a
                task failed and will be retried (not before ``retry_at``); keeps ``max_attempts``
                across processes
``interrupt``   ``{op, pos, value}``: the body asked a question
``value``       ``{op, pos, name, value}``: a replay-safe helper (``now``, ``random``, ``uuid4``)
                produced ``value``; replay returns it
``resume``      ``{op, pos, value}``: the answer to the interrupt at ``pos``
``suspend``     ``{op}``: the deadline stopped the run; ``resume()`` continues it
``timer``       ``{op, pos, wake_at}``: ``sleep``/``sleep_until`` at ``pos`` ends at ``wake_at``
                (epoch seconds, computed once on the first run)
``callback``    ``{op, pos, secret, timeout_at}``: ``callback()`` at ``pos`` opened a callback;
                its token must carry ``secret``; ``timeout_at`` (epoch seconds) or None
``callback_done`` ``{op, pos, value}``, ``{op, pos, error}`` or ``{op, pos, timeout: true}``: how
                the callback at ``pos`` ended (written by ``complete_callback``/``fail_callback``,
                or by the run when its timeout passed); the first one counts
``child``       ``{op, pos, name, args, thread}``: ``name.start(input)`` at ``pos`` started a
                child workflow on thread ``thread`` (``args``: the input's digest); the
                child's ``start`` record names its ``parent`` (thread_id, workflow, pos);
                ``dispatch: true`` when another invocation runs it (the parent created its thread)
``child_done``  ``{op, pos, value}`` or ``{op, pos, error}``: how that child ended (recorded once)
``wait``        ``{op, wake_at}``: the run stopped with status ``waiting`` until ``wake_at``
                (None: until a callback is completed)
``end``         ``{op, status: "completed", value}`` or ``{op, status: "failed", error}``

Anything after an ``end`` supersedes it: a failed run that was resumed and failed
again, or went on, is judged by its newest records ("a retried failure supersedes its
end"). :func:`parse_records` is the only code that interprets a history; the executor
replays through it and the operator tools (``cairnflow.ops``) describe threads
through it, without running a workflow.
"""

from __future__ import annotations

import builtins
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from cairnflow.core.errors import TaskFailedError

__all__ = [
    "STEP_OPS",
    "Attempt",
    "RecordedError",
    "RunRecords",
    "Step",
    "error_record",
    "parse_records",
]

#: Record kinds that take a position in the body's sequence of calls.
STEP_OPS = ("task", "task_error", "interrupt", "value", "timer", "callback", "child")


def builtin_exception(type_name: str) -> type[Exception] | None:
    """The builtin exception class named ``builtins.Name``, or None."""
    module, _, name = type_name.rpartition(".")
    candidate = getattr(builtins, name, None) if module == "builtins" else None
    if isinstance(candidate, type) and issubclass(candidate, Exception):
        return candidate
    return None


@dataclass(frozen=True)
class RecordedError:
    """A recorded exception: its type (``module.QualName``) and message.

    A task's failure also keeps what is needed to raise the same exception on
    replay: ``args`` for a builtin exception type, or ``exception`` itself when
    the serializer can store it (a type given to ``register_type``). Without
    either, replay raises :class:`TaskFailedError` (and so did the first run).
    """

    type: str
    message: str
    args: tuple[Any, ...] | None = None
    exception: BaseException | None = field(default=None, compare=False)

    @classmethod
    def of(cls, raw: Any) -> RecordedError:
        """Read an ``error`` field; anything malformed becomes an ``unknown`` error."""
        if not isinstance(raw, dict):
            return cls("unknown", "")
        args = raw.get("args")
        exception = raw.get("exception")
        return cls(
            str(raw.get("type", "?")),
            str(raw.get("message", "")),
            tuple(args) if isinstance(args, list) else None,
            exception if isinstance(exception, BaseException) else None,
        )

    def text(self) -> str:
        """``Type: message``, builtin types without their module (``KeyError: 'sku-1'``)."""
        return f"{self.type.removeprefix('builtins.')}: {self.message}"

    def rebuild(self, task_name: str) -> BaseException:
        """The exception a replay raises for this failure of task ``task_name``."""
        if self.exception is not None:
            return self.exception
        builtin = builtin_exception(self.type)
        if builtin is not None:
            with contextlib.suppress(Exception):  # an odd constructor signature: fall back
                return builtin(*self.args) if self.args is not None else builtin(self.message)
        return TaskFailedError(task_name, self.type, self.message)


def error_record(exc: BaseException) -> dict[str, Any]:
    """The ``error`` field recorded for ``exc``."""
    kind = type(exc)
    return {"type": f"{kind.__module__}.{kind.__qualname__}", "message": str(exc)}


@dataclass(frozen=True)
class Step:
    """One recorded call of the body: a task result, a task failure or an interrupt."""

    pos: int
    op: str
    """``"task"``, ``"task_error"`` or ``"interrupt"``."""
    name: str | None
    """The task's name (None for an interrupt)."""
    args: str | None
    """The digest of the task's arguments."""
    value: Any = None
    """The task's result, or the interrupt's question."""
    error: RecordedError | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def describe(self) -> str:
        """How a nondeterminism message names this call."""
        if self.op == "interrupt":
            return "interrupt()"
        if self.op == "value":
            return f"{self.name}()"
        if self.op == "timer":
            return "sleep()"
        if self.op == "callback":
            return "callback()"
        if self.op == "child":
            return f"{self.name}.start()"
        return f"task {self.name!r}"


@dataclass(frozen=True)
class Attempt:
    """The newest failed attempt of a task that has neither succeeded nor finally failed."""

    name: str | None
    number: int
    retry_at: float | None


@dataclass
class RunRecords:
    """A thread's history, indexed for replay (what :func:`parse_records` returns)."""

    start: dict[str, Any] | None = None
    steps: dict[int, Step] = field(default_factory=dict)
    answers: dict[int, Any] = field(default_factory=dict)
    attempts: dict[int, Attempt] = field(default_factory=dict)
    end: dict[str, Any] | None = None
    callbacks: dict[int, dict[str, Any]] = field(default_factory=dict)
    """How each ended callback ended, by position (its first ``callback_done`` record)."""
    children: dict[int, dict[str, Any]] = field(default_factory=dict)
    """How each ended child workflow ended, by position (its ``child_done`` record)."""
    wake_at: float | None = None
    """When the newest ``wait`` record said the run should be continued (None: on a callback)."""

    @property
    def workflow(self) -> str | None:
        """The workflow name the thread was started with."""
        return self.start.get("workflow") if self.start else None

    def pending_interrupt(self) -> Step | None:
        """The newest interrupt that has no answer yet."""
        waiting = [s for p, s in self.steps.items() if s.op == "interrupt" and p not in self.answers]
        return max(waiting, key=lambda s: s.pos) if waiting else None

    def failure(self) -> RecordedError | None:
        """Why the run failed, if its newest ``end`` says it did."""
        if self.end is not None and self.end.get("status") == "failed":
            return RecordedError.of(self.end.get("error"))
        return None

    def result(self) -> Any:
        """The completed run's return value (None unless its newest ``end`` completed)."""
        if self.end is not None and self.end.get("status") == "completed":
            return self.end.get("value")
        return None


def _step(rec: dict[str, Any], pos: int) -> Step:
    op = str(rec["op"])
    name = rec.get("name")
    args = rec.get("args")
    return Step(
        pos=pos,
        op=op,
        name=name if isinstance(name, str) else None,
        args=args if isinstance(args, str) else None,
        value=rec.get("value"),
        error=RecordedError.of(rec.get("error")) if op == "task_error" else None,
        raw=rec,
    )


def parse_records(records: Sequence[Any]) -> RunRecords:
    """Index a thread's records (in log order). Unknown or malformed records are skipped.

    A later record at the same position replaces an earlier one (a failed task
    that was run again on resume); anything after an ``end`` clears it.
    """
    out = RunRecords()
    for rec in records:
        op = rec.get("op") if isinstance(rec, dict) else None
        pos = rec.get("pos") if isinstance(rec, dict) else None
        if op == "start":
            out.start = rec
        elif op in STEP_OPS and type(pos) is int:
            out.steps[pos] = _step(rec, pos)
            out.attempts.pop(pos, None)  # settled: a later retry of a failed run starts afresh
        elif op == "attempt" and type(pos) is int and type(rec.get("attempt")) is int:
            retry_at = rec.get("retry_at")
            name = rec.get("name")
            out.attempts[pos] = Attempt(
                name if isinstance(name, str) else None,
                rec["attempt"],
                float(retry_at) if isinstance(retry_at, (int, float)) else None,
            )
        elif op == "resume" and type(pos) is int:
            out.answers[pos] = rec.get("value")
        elif op == "callback_done" and type(pos) is int:
            out.callbacks.setdefault(pos, rec)
            continue  # an outside completion does not supersede the run's end
        elif op == "child_done" and type(pos) is int:
            out.children.setdefault(pos, rec)
        elif op == "wait":
            wake_at = rec.get("wake_at")
            out.wake_at = float(wake_at) if isinstance(wake_at, (int, float)) else None
        if op == "end":
            out.end = rec
        elif op is not None and op != "start":
            out.end = None  # anything after an end supersedes it (a retried failure)
    return out
