"""Callbacks by token: a step that an outside system completes.

Inside a workflow body::

    cb = callback(timeout=3600)
    ask_for_approval(cb.token).result()   # hand the token to the outside world
    verdict = cb.wait()                   # the value sent with complete_callback

``callback()`` takes a position and records a ``callback`` record holding a
128-bit random secret (stored before the body goes on, so a token handed out
is never forgotten). The token names the thread, the position and the secret:
``cb1.<thread id, base64url>.<position>.<secret>``. Anyone holding it can end
that one step, nothing else: the secret is checked against the record.

``complete_callback(token, value, saver=...)`` and ``fail_callback(token,
error, saver=...)`` (``await acomplete_callback``/``afail_callback`` on an
``AsyncCheckpointSaver``: the same steps, :func:`_end_steps`, awaited) append
a ``callback_done`` record to the thread, with a conditional write like
every other (a concurrent writer makes it read the head again and re-check).
The first ending counts: sending the same ending again is accepted and
changes nothing; a different one raises
:class:`CallbackCompletedError`. The run must then be continued:
``resume()`` (no value), or pass ``scheduler=`` to have a wake-up scheduled
for now (what :class:`cairnflow.driver.Driver` and ``cairnflow worker`` do).

``cb.wait()`` returns the value, raises the error sent (a builtin exception
type comes back as itself, anything else as :class:`CallbackFailedError`),
or :class:`CallbackTimeoutError` once ``timeout`` has passed (the timeout is
recorded first, so it is final: a late completion is refused). While there is
no ending the run stops with status ``"waiting"`` and ``Run.wake_at`` = the
timeout (None without one). Several callbacks may be open at once.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import math
import os
import time
from collections.abc import Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cairnflow.core.errors import (
    CallbackCompletedError,
    CallbackFailedError,
    CallbackTimeoutError,
    ConflictError,
    InvalidArgumentError,
    InvalidCallbackTokenError,
    ResumeError,
    SerializationError,
    ThreadNotFoundError,
)
from cairnflow.core.records import RecordedError, builtin_exception, error_record, parse_records
from cairnflow.core.stepper import Stepper
from cairnflow.core.timers import Waiting, current_context
from cairnflow.core.wake import WakeScheduler, Wakeup

if TYPE_CHECKING:
    from cairnflow.core.checkpoint import AsyncCheckpointSaver, CheckpointSaver
    from cairnflow.core.replay import RunContext

__all__ = [
    "Callback",
    "acomplete_callback",
    "afail_callback",
    "callback",
    "complete_callback",
    "fail_callback",
]

_PREFIX = "cb1"
#: How often a completion re-reads the head after losing a race with another writer.
_ATTEMPTS = 10


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class Callback:
    """An open callback (from :func:`callback`): hand out ``token``, then ``wait()``."""

    token: str
    pos: int
    timeout_at: float | None
    """When ``wait()`` gives up (epoch seconds), or None."""

    def wait(self) -> Any:
        """The value sent with ``complete_callback``; raises what ``fail_callback`` sent, or
        :class:`CallbackTimeoutError`. Stops the run as ``"waiting"`` while neither came.

        In an async workflow: ``await cb.wait()``."""
        ctx = current_context("Callback.wait()")
        return ctx.settle(lambda: _wait(ctx, self))


def callback(timeout: float | None = None) -> Callback:
    """Open a callback: a step that ``complete_callback(cb.token, value)`` ends.

    ``timeout`` (seconds, or None for none): after it, ``wait()`` raises
    :class:`CallbackTimeoutError`. The deadline is computed once and recorded.
    """
    if timeout is not None and (
        not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or not math.isfinite(timeout)
    ):
        raise InvalidArgumentError(f"callback(timeout=) takes seconds or None, not {timeout!r}")
    ctx = current_context("callback()")
    pos = ctx.next_pos()
    recorded = ctx.replay.steps.get(pos)
    if recorded is not None:
        if recorded.op != "callback" or not isinstance(recorded.raw.get("secret"), str):
            raise ctx._mismatch(pos, "callback()", recorded.describe())
        secret = recorded.raw["secret"]
        at = recorded.raw.get("timeout_at")
        timeout_at = float(at) if isinstance(at, (int, float)) else None
    else:
        ctx.ensure_fence()
        secret = _b64(os.urandom(16))
        timeout_at = None if timeout is None else time.time() + max(0.0, float(timeout))
        ctx.before_task()
        # Stored before the body goes on (except in exit mode, which stores nothing before
        # the end; an async workflow stores it before its next task or wait): the token may
        # leave the process in the very next task.
        ctx.write_now([{"op": "callback", "pos": pos, "secret": secret, "timeout_at": timeout_at}])
    token = f"{_PREFIX}.{_b64(ctx.committer.thread_id.encode())}.{pos}.{secret}"
    return Callback(token, pos, timeout_at)


def _wait(ctx: RunContext, cb: Callback) -> Any:
    done = ctx.replay.callbacks.get(cb.pos)
    if done is None:
        if cb.timeout_at is None or time.time() < cb.timeout_at:
            raise Waiting(cb.timeout_at)
        ctx.ensure_fence()
        # Recorded before the body sees it: a completion arriving later is refused, so every
        # replay takes the same branch. A completion written meanwhile makes this write fail
        # with ConflictError; the next resume then sees the completion instead.
        done = {"op": "callback_done", "pos": cb.pos, "timeout": True}
        ctx.write_now([done])
        ctx.replay.callbacks[cb.pos] = done
    if done.get("timeout"):
        raise CallbackTimeoutError(f"callback at position {cb.pos} timed out before anyone completed it")
    if "error" in done:
        error = RecordedError.of(done["error"])
        builtin = builtin_exception(error.type)
        if builtin is not None:
            try:
                return_error = builtin(*error.args) if error.args is not None else builtin(error.message)
            except Exception:  # noqa: BLE001 - an odd constructor: fall back to the typed error
                return_error = CallbackFailedError(error.type, error.message)
            raise return_error
        raise CallbackFailedError(error.type, error.message)
    return done.get("value")


# --------------------------------------------------------------------------- completing


def _parse_token(token: Any) -> tuple[str, int, str]:
    parts = token.split(".") if isinstance(token, str) else []
    try:
        if len(parts) != 4 or parts[0] != _PREFIX or not parts[2].isdigit() or not parts[3]:
            raise ValueError("wrong shape")
        return _unb64(parts[1]).decode(), int(parts[2]), parts[3]
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidCallbackTokenError(
            f"not a callback token: {str(token)[:80]!r}; pass the Callback.token string unchanged"
        ) from None


def _digest(saver: CheckpointSaver, value: Any) -> str:
    serializer = getattr(saver, "serializer", None)
    try:
        data = serializer.dumps(value) if serializer is not None else repr(value).encode()
    except SerializationError:
        data = repr(value).encode()
    return hashlib.sha256(data).hexdigest()


def _same(saver: CheckpointSaver, done: dict[str, Any], ending: dict[str, Any]) -> bool:
    if bool(done.get("timeout")) or ("error" in done) != ("error" in ending):
        return False
    if "error" in ending:
        old, new = RecordedError.of(done["error"]), RecordedError.of(ending["error"])
        return (old.type, old.message) == (new.type, new.message)
    return _digest(saver, done.get("value")) == _digest(saver, ending.get("value"))


#: What :func:`_end_steps` asks its driver for: ``("latest", thread_id)`` (the head), or
#: ``("append", (thread_id, head, records, status, workflow))`` (ConflictError thrown back in).
_Effect = tuple[str, Any]


def _end_steps(
    token: str, ending: dict[str, Any], saver: Any
) -> Generator[_Effect, Any, tuple[str, str] | None]:
    """Record ``ending`` for the callback ``token`` names, as steps a sync or an async driver
    performs; returns the (thread, workflow) to wake, or None if nothing was written."""
    thread_id, pos, secret = _parse_token(token)
    for _ in range(_ATTEMPTS):
        head = yield ("latest", thread_id)
        if head is None or head.info.kind == "tombstone":
            raise ThreadNotFoundError(f"callback token names thread {thread_id!r}, which does not exist")
        replay = parse_records(head.records)
        step = replay.steps.get(pos)
        known = step.raw.get("secret") if step is not None and step.op == "callback" else None
        if not isinstance(known, str) or not hmac.compare_digest(known.encode(), secret.encode()):
            raise InvalidCallbackTokenError(
                f"the token names no callback of thread {thread_id!r} at position {pos} "
                "(a wrong or forged secret); nothing was written"
            )
        done = replay.callbacks.get(pos)
        if done is not None:
            if _same(saver, done, ending):
                return None  # a retried completion: already recorded
            how = "timed out" if done.get("timeout") else "ended with another value or error"
            raise CallbackCompletedError(
                f"the callback at position {pos} of thread {thread_id!r} already {how}; nothing was written"
            )
        if head.status == "completed":
            raise ResumeError(f"thread {thread_id!r} has completed: its callbacks take nothing more")
        record = {"op": "callback_done", "pos": pos, **ending}
        try:
            yield ("append", (thread_id, head, [record], head.status, replay.workflow))
        except ConflictError:
            continue  # another writer moved the head: read it again and re-check
        return None if replay.workflow is None else (thread_id, replay.workflow)
    raise ConflictError(f"thread {thread_id!r} kept moving while the callback was completed; try again")


def _wake(scheduler: WakeScheduler | None, woken: tuple[str, str] | None) -> None:
    if scheduler is not None and woken is not None:
        scheduler.schedule(Wakeup(woken[0], woken[1], time.time(), "callback"))


def _end(token: str, ending: dict[str, Any], saver: CheckpointSaver, scheduler: WakeScheduler | None) -> None:
    feed = Stepper(_end_steps(token, ending, saver))
    while (effect := feed.next()) is not None:
        kind, arg = effect
        try:
            feed.reply = (
                saver.latest(arg)
                if kind == "latest"
                else saver.append(*arg[:3], status=arg[3], workflow=arg[4])
            )
        except ConflictError as exc:
            feed.error = exc
    _wake(scheduler, feed.result)


async def _aend(
    token: str, ending: dict[str, Any], saver: AsyncCheckpointSaver, scheduler: WakeScheduler | None
) -> None:
    """:func:`_end` on an ``AsyncCheckpointSaver``: the same steps, awaited."""
    feed = Stepper(_end_steps(token, ending, saver))
    while (effect := feed.next()) is not None:
        kind, arg = effect
        try:
            if kind == "latest":
                feed.reply = await saver.latest(arg)
            else:
                feed.reply = await saver.append(*arg[:3], status=arg[3], workflow=arg[4])
        except ConflictError as exc:
            feed.error = exc
    _wake(scheduler, feed.result)


def complete_callback(
    token: str, value: Any = None, *, saver: CheckpointSaver, scheduler: WakeScheduler | None = None
) -> None:
    """End the callback ``token`` names with ``value`` (what its ``wait()`` returns).

    Idempotent for the same value; :class:`CallbackCompletedError` if it already
    ended otherwise; :class:`InvalidCallbackTokenError` for a malformed or foreign
    token. ``scheduler``: also schedule a wake-up for now to continue the run
    (else call ``resume()``).
    """
    _end(token, {"value": value}, saver, scheduler)


def fail_callback(
    token: str,
    error: BaseException | str,
    *,
    saver: CheckpointSaver,
    scheduler: WakeScheduler | None = None,
) -> None:
    """End the callback ``token`` names with ``error``: its ``wait()`` raises it.

    A builtin exception (``ValueError("no")``) is raised as itself; any other
    exception, or a message string, as :class:`CallbackFailedError`. Same
    rules as :func:`complete_callback` otherwise.
    """
    _end(token, {"error": _failure(error)}, saver, scheduler)


def _failure(error: Any) -> dict[str, Any]:
    """The ``error`` field ``fail_callback`` records for ``error`` (an exception or a message)."""
    if isinstance(error, str):
        return {"type": "callback", "message": error}
    if isinstance(error, BaseException):
        recorded = error_record(error)
        if builtin_exception(recorded["type"]) is type(error):
            recorded["args"] = [a if isinstance(a, (str, int, float, bool)) else repr(a) for a in error.args]
        return recorded
    raise InvalidArgumentError(f"fail_callback() takes an exception or a message, not {error!r}")


async def acomplete_callback(
    token: str, value: Any = None, *, saver: AsyncCheckpointSaver, scheduler: WakeScheduler | None = None
) -> None:
    """:func:`complete_callback` on an ``AsyncCheckpointSaver`` (same rules, same record)."""
    await _aend(token, {"value": value}, saver, scheduler)


async def afail_callback(
    token: str,
    error: BaseException | str,
    *,
    saver: AsyncCheckpointSaver,
    scheduler: WakeScheduler | None = None,
) -> None:
    """:func:`fail_callback` on an ``AsyncCheckpointSaver`` (same rules, same record)."""
    await _aend(token, {"error": _failure(error)}, saver, scheduler)
