"""The one parser of executor records (core/records.py), as the operator tools use it."""

from __future__ import annotations

from cairnflow.core.records import RecordedError, error_record, parse_records

START = {"op": "start", "workflow": "checkout", "input": {"id": 1}, "input_digest": "d"}


def test_steps_answers_and_pending_interrupt() -> None:
    runs = parse_records(
        [
            START,
            {"op": "task", "pos": 0, "name": "charge", "args": "a0", "value": "rcpt"},
            {"op": "interrupt", "pos": 1, "value": "ship?"},
            {"op": "resume", "pos": 1, "value": "yes"},
            {"op": "interrupt", "pos": 2, "value": "gift wrap?"},
        ]
    )
    assert runs.workflow == "checkout"
    assert sorted(runs.steps) == [0, 1, 2]
    assert runs.steps[0].value == "rcpt" and runs.steps[0].name == "charge" and runs.steps[0].args == "a0"
    assert runs.answers == {1: "yes"}
    pending = runs.pending_interrupt()
    assert pending is not None and pending.pos == 2 and pending.value == "gift wrap?"
    assert runs.end is None and runs.failure() is None


def test_completed_run_has_a_result() -> None:
    runs = parse_records([START, {"op": "end", "status": "completed", "value": 42}])
    assert runs.result() == 42 and runs.failure() is None


def test_failed_run_names_its_error() -> None:
    runs = parse_records([START, {"op": "end", "status": "failed", "error": error_record(KeyError("sku-1"))}])
    failure = runs.failure()
    assert failure == RecordedError("builtins.KeyError", "'sku-1'")
    assert failure.text() == "KeyError: 'sku-1'"
    assert runs.result() is None


def test_a_retried_failure_supersedes_its_end() -> None:
    failed = {"op": "end", "status": "failed", "error": {"type": "builtins.ValueError", "message": "x"}}
    runs = parse_records(
        [
            START,
            {"op": "task_error", "pos": 0, "name": "charge", "args": "a0", "error": failed["error"]},
            failed,
            {"op": "task", "pos": 0, "name": "charge", "args": "a0", "value": "ok"},
        ]
    )
    assert runs.end is None and runs.failure() is None
    assert runs.steps[0].op == "task" and runs.steps[0].value == "ok"  # the newer record wins


def test_malformed_records_are_skipped_not_fatal() -> None:
    runs = parse_records(
        [
            "not a dict",
            {"op": "task", "pos": "0", "name": "x"},  # position is not an int
            {"op": "task_error", "pos": 3, "name": "y", "error": "not a dict"},
            {"no": "op"},
        ]
    )
    assert list(runs.steps) == [3]
    assert runs.steps[3].error == RecordedError("unknown", "")
    assert runs.start is None and runs.workflow is None
