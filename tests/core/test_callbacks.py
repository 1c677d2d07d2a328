"""Callbacks by token: callback(), Callback.wait(), complete_callback, fail_callback (issue 17).

On the local store and on S3 (moto); time under the test's control.
"""

from __future__ import annotations

from typing import Any

import pytest

from cairnflow.core import (
    CallbackCompletedError,
    CallbackFailedError,
    CallbackTimeoutError,
    CheckpointLog,
    InvalidCallbackTokenError,
    callback,
    complete_callback,
    fail_callback,
    task,
    workflow,
)
from cairnflow.core.wake import Wakeup
from tests.core.test_timers import RAN, Clock, clock, location, note, records, saver

__all__ = ["clock", "location", "saver"]  # fixtures, imported to be shared

TOKENS: dict[str, list[str]] = {}


@task
def hand_out(thread: str, token: str) -> None:
    TOKENS.setdefault(thread, []).append(token)


@workflow
def approval(thread: str) -> Any:
    cb = callback(timeout=3600)
    hand_out(thread, cb.token).result()
    try:
        verdict = cb.wait()
    except CallbackTimeoutError:
        return "no answer"
    except ValueError as exc:
        return f"refused: {exc}"
    except CallbackFailedError as exc:
        return f"failed: {exc.error_type}"
    note(f"{thread}:after").result()
    return verdict


@workflow
def two_at_once(thread: str) -> list[Any]:
    first, second = callback(), callback()
    hand_out(thread, first.token).result()
    hand_out(thread, second.token).result()
    return [first.wait(), second.wait()]


def start(thread: str, saver: CheckpointLog) -> str:
    TOKENS.pop(thread, None)
    run = approval.run(thread, thread_id=thread, saver=saver)
    assert run.status == "waiting"
    return TOKENS[thread][0]


def test_a_completed_callback_returns_its_value_and_replays_it(saver: CheckpointLog, clock: Clock) -> None:
    token = start("a1", saver)
    standing = approval.get_run(thread_id="a1", saver=saver)
    assert standing is not None and (standing.status, standing.wake_at) == ("waiting", clock.now + 3600)
    head = saver.latest("a1")
    assert approval.resume(thread_id="a1", saver=saver).status == "waiting"  # nothing yet
    assert saver.latest("a1") == head  # and nothing written

    complete_callback(token, {"ok": True}, saver=saver)
    run = approval.resume(thread_id="a1", saver=saver)
    assert (run.status, run.result) == ("completed", {"ok": True})
    assert TOKENS["a1"] == [token] and RAN["a1:after"] == 1  # handed out once: recorded
    assert [r["value"] for r in records(saver, "a1", "callback_done")] == [{"ok": True}]


def test_completing_twice_is_idempotent_for_the_same_value_and_refused_for_another(
    saver: CheckpointLog, clock: Clock
) -> None:
    token = start("a2", saver)
    complete_callback(token, "yes", saver=saver)
    head = saver.latest("a2")
    complete_callback(token, "yes", saver=saver)
    with pytest.raises(CallbackCompletedError, match="another value"):
        complete_callback(token, "no", saver=saver)
    with pytest.raises(CallbackCompletedError):
        fail_callback(token, ValueError("no"), saver=saver)
    assert saver.latest("a2") == head
    assert approval.resume(thread_id="a2", saver=saver).result == "yes"


def test_a_token_cannot_complete_another_threads_step(saver: CheckpointLog, clock: Clock) -> None:
    mine, theirs = start("a3", saver), start("a4", saver)
    forged = ".".join([*mine.split(".")[:3], theirs.split(".")[3]])  # my step, their secret
    for bad in (forged, mine[:-2] + "xx", "cb1.junk", "not a token", mine.replace("cb1", "cb2")):
        with pytest.raises(InvalidCallbackTokenError):
            complete_callback(bad, "yes", saver=saver)
    assert records(saver, "a3", "callback_done") == []
    assert records(saver, "a4", "callback_done") == []


def test_the_timeout_is_recorded_and_a_late_completion_refused(saver: CheckpointLog, clock: Clock) -> None:
    token = start("a5", saver)
    clock.now += 3601
    run = approval.resume(thread_id="a5", saver=saver)
    assert (run.status, run.result) == ("completed", "no answer")
    assert records(saver, "a5", "callback_done") == [{"op": "callback_done", "pos": 0, "timeout": True}]
    with pytest.raises(CallbackCompletedError, match="timed out"):
        complete_callback(token, "too late", saver=saver)


def test_fail_callback_raises_the_error_sent(saver: CheckpointLog, clock: Clock) -> None:
    fail_callback(start("a6", saver), ValueError("over budget"), saver=saver)
    assert approval.resume(thread_id="a6", saver=saver).result == "refused: over budget"
    fail_callback(start("a7", saver), "vendor said no", saver=saver)
    assert approval.resume(thread_id="a7", saver=saver).result == "failed: callback"


def test_several_callbacks_open_at_once_complete_in_any_order(saver: CheckpointLog, clock: Clock) -> None:
    TOKENS.pop("m1", None)
    assert two_at_once.run("m1", thread_id="m1", saver=saver).status == "waiting"
    first, second = TOKENS["m1"]
    complete_callback(second, 2, saver=saver)
    run = two_at_once.resume(thread_id="m1", saver=saver)
    assert (run.status, run.wake_at) == ("waiting", None)  # still waiting for the first
    complete_callback(first, 1, saver=saver)
    assert two_at_once.resume(thread_id="m1", saver=saver).result == [1, 2]
    assert TOKENS["m1"] == [first, second]


def test_complete_callback_can_schedule_the_runs_continuation(saver: CheckpointLog, clock: Clock) -> None:
    scheduled: list[Wakeup] = []

    class Recorder:
        def schedule(self, wakeup: Wakeup) -> None:
            scheduled.append(wakeup)

    complete_callback(start("a8", saver), "yes", saver=saver, scheduler=Recorder())
    assert [(w.thread_id, w.workflow, w.at, w.reason) for w in scheduled] == [
        ("a8", "approval", clock.now, "callback")
    ]


def test_a_callback_outside_a_workflow_body_is_a_misuse() -> None:
    from cairnflow.core.errors import MisuseError

    with pytest.raises(MisuseError, match="callback"):
        callback()


def test_operator_views_show_callback_steps_without_the_secret(saver: CheckpointLog, clock: Clock) -> None:
    from cairnflow import ops

    token = start("o1", saver)
    secret = token.rsplit(".", 1)[1]
    waiting = ops.show_state(saver, "o1")
    assert [(s.type, s.status) for s in waiting.steps] == [("callback", "waiting"), ("task", "done")]
    complete_callback(token, "fine", saver=saver)
    approval.resume(thread_id="o1", saver=saver)
    done = ops.show_state(saver, "o1")
    first = done.steps[0]
    assert (first.type, first.status, first.value) == ("callback", "done", "fine")
    assert secret not in repr(done.steps) and secret not in repr(waiting.steps)


@task
def answered_at_once(thread: str, token: str, location_url: str) -> None:
    # The outside system completes the callback before this task's result is stored.
    from cairnflow.savers import open_saver

    TOKENS.setdefault(thread, []).append(token)
    complete_callback(token, "instant", saver=open_saver(location_url))


@pytest.mark.parametrize("durability", ["sync", "async"])
def test_a_completion_written_while_the_run_executes_does_not_stop_it(
    saver: CheckpointLog, clock: Clock, location: Any, durability: str
) -> None:
    @workflow(name="instant")
    def instant(thread: str) -> Any:
        cb = callback()
        answered_at_once(thread, cb.token, location.url).result()
        return cb.wait()

    thread = f"i-{durability}"
    TOKENS.pop(thread, None)
    run = instant.run(thread, thread_id=thread, saver=saver, durability=durability)  # type: ignore[arg-type]
    if durability == "async":
        # The body reached wait() before the background write met the completion: it stops
        # as waiting (no ConflictError), and the next resume finds the completion.
        assert run.status == "waiting"
        run = instant.resume(thread_id=thread, saver=saver)
    assert (run.status, run.result) == ("completed", "instant")
    assert len(TOKENS[f"i-{durability}"]) == 1  # the task ran once: no ConflictError, no rerun
    assert len(records(saver, f"i-{durability}", "callback_done")) == 1
