"""The three serverless examples, each driven through its own entry point against its emulator.

Every invocation is a fresh child process (tests/serverless/driver.py), so state crosses
from one invocation to the next only through the bucket. Tasks record each real
execution in a side-effect ledger file (pid, document, task), which shows which
invocation ran what and that nothing ran twice.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.emulators import StoreLocation
from tests.serverless.conftest import EXAMPLES, run_driver

pytestmark = pytest.mark.slow  # each test runs the examples in fresh child processes

DOCUMENT = {
    "id": "q3-report",
    "title": "Q3 report",
    "author": "Ann Lee",
    "body": "Revenue grew 12 percent. The merger terms stay confidential until the board meets. " * 3,
}
ANSWER = {"decision": "approve", "by": "bea@example.com", "comment": "fine"}
TASKS = ["extract", "check_policy", "summarize", "publish", "notify"]


def ledger_entries(path: Path) -> list[tuple[int, str]]:
    """(pid, task) per real task execution, in the order they finished."""
    if not path.exists():
        return []
    return [(int(pid), task) for pid, _doc, task in (line.split() for line in path.read_text().splitlines())]


def only_call(report: dict[str, Any]) -> dict[str, Any]:
    [call] = report["calls"]
    assert call["status"] == 200, call
    response: dict[str, Any] = call["response"]
    return response


@pytest.mark.parametrize("example", list(EXAMPLES))
def test_start_in_one_process_finish_in_another(
    example: str, example_location: StoreLocation, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger"
    first = run_driver(
        example,
        example_location,
        [{"request": {"action": "start", "document": DOCUMENT}}],
        region="eu-west-1",
        ledger=str(ledger),
    )
    started = only_call(first)
    assert started["status"] == "interrupted", started
    assert started["thread_id"] == "approval-q3-report"
    assert started["question"] == "Approve 'Q3 report' by Ann Lee for publication?"
    assert started["interrupt_id"]
    assert started["review"]["risk"] == "high"
    assert started["review"]["flags"] == ["confidential", "merger"]
    assert first["calls"][0]["head"] == {"checkpoint_id": started["checkpoint_id"], "status": "interrupted"}
    assert ledger_entries(ledger) == [(first["pid"], t) for t in TASKS[:3]]

    answer = {
        "action": "answer",
        "thread_id": started["thread_id"],
        "interrupt_id": started["interrupt_id"],
        "answer": ANSWER,
    }
    second = run_driver(
        example,
        example_location,
        [{"request": answer}, {"request": answer}],  # the answer, then a duplicate delivery of it
        region="us-east-1",
        ledger=str(ledger),
    )
    assert second["pid"] != first["pid"]
    done, duplicate = second["calls"]
    assert done["status"] == 200, done
    result = done["response"]["result"]
    assert done["response"]["status"] == "completed"
    assert result["decision"] == "approved"
    assert result["comment"] == "fine"
    assert result["publication"]["by"] == "bea@example.com"
    assert result["publication"]["url"].startswith("https://docs.example.com/q3-report/")
    assert result["notification"].startswith("msg-")
    assert duplicate["response"] == done["response"]
    # Only the tasks after the approval ran in the second process, each once.
    assert ledger_entries(ledger) == [(first["pid"], t) for t in TASKS[:3]] + [
        (second["pid"], t) for t in TASKS[3:]
    ]


# Each task takes TASK_SECONDS. An invocation with RESERVE + WINDOW seconds left starts
# one task (at once) but not a second (TASK_SECONDS > WINDOW later).
TASK_SECONDS = 0.5
RESERVE = 1.0
WINDOW = 0.4


def invoke_once(
    example: str,
    location: StoreLocation,
    request: dict[str, Any],
    ledger: Path,
    *,
    seconds_left: float,
    region: str,
) -> tuple[int, dict[str, Any]]:
    """One invocation in a fresh process that has ``seconds_left`` before its platform's limit."""
    env = {"CAIRNFLOW_RESERVE_SECONDS": str(RESERVE)}
    call: dict[str, Any] = {"request": request}
    if example == "aws_lambda":
        call["remaining_ms"] = int(seconds_left * 1000)
    else:
        env["CAIRNFLOW_TIME_BUDGET_SECONDS"] = str(seconds_left)
    report = run_driver(
        example,
        location,
        [call],
        region=region,
        env=env,
        ledger=str(ledger),
        task_seconds=TASK_SECONDS,
    )
    return report["pid"], only_call(report)


@pytest.mark.parametrize("example", list(EXAMPLES))
def test_deadline_spreads_a_run_over_invocations(
    example: str, example_location: StoreLocation, tmp_path: Path
) -> None:
    """Three invocations up to the approval, two after it; same result as one long run, no task twice."""
    long_ledger = tmp_path / "long"
    _, paused = invoke_once(
        example,
        example_location,
        {"action": "start", "document": DOCUMENT, "thread_id": "long-run"},
        long_ledger,
        seconds_left=900,
        region="eu-west-1",
    )
    assert paused["status"] == "interrupted", paused
    _, long_run = invoke_once(
        example,
        example_location,
        {
            "action": "answer",
            "thread_id": "long-run",
            "interrupt_id": paused["interrupt_id"],
            "answer": ANSWER,
        },
        long_ledger,
        seconds_left=900,
        region="us-east-1",
    )
    assert long_run["status"] == "completed", long_run
    assert [task for _, task in ledger_entries(long_ledger)] == TASKS

    ledger = tmp_path / "short"
    request: dict[str, Any] = {"action": "start", "document": DOCUMENT, "thread_id": "short-runs"}
    statuses: list[str] = []
    pids: list[int] = []
    for attempt in range(8):  # bounded: 5 are expected
        pid, response = invoke_once(
            example,
            example_location,
            request,
            ledger,
            seconds_left=RESERVE + WINDOW,
            region=("eu-west-1", "us-east-1")[attempt % 2],
        )
        statuses.append(response["status"])
        pids.append(pid)
        if response["status"] == "completed":
            break
        if response["status"] == "interrupted":
            request = {
                "action": "answer",
                "thread_id": "short-runs",
                "interrupt_id": response["interrupt_id"],
                "answer": ANSWER,
            }
        else:
            assert response["next_event"] == {"action": "continue", "thread_id": "short-runs"}
            request = response["next_event"]
    entries = ledger_entries(ledger)
    assert statuses == ["suspended", "suspended", "interrupted", "suspended", "completed"], entries
    assert response["result"] == long_run["result"]
    # Every task ran exactly once, each in its own invocation, in order.
    assert [task for _, task in entries] == TASKS
    assert [pid for pid, _ in entries] == pids


@pytest.mark.parametrize("example", list(EXAMPLES))
def test_async_durability_leaves_nothing_in_flight(
    example: str, example_location: StoreLocation, tmp_path: Path
) -> None:
    """With durability "async" and slow writes, the entry point returns with every write
    acknowledged, the store's head equal to what it returned, and no cairnflow thread alive."""
    calls: list[dict[str, Any]] = [
        {"request": {"action": "start", "document": DOCUMENT}},
        {"request": {"action": "answer", "thread_id": "approval-q3-report", "answer": "approve"}},
    ]
    report = run_driver(
        example,
        example_location,
        calls,
        env={"CAIRNFLOW_DURABILITY": "async"},
        ledger=str(tmp_path / "ledger"),
        put_delay=0.2,
    )
    # The writer thread did exist while tasks ran (so this is really the async mode) ...
    assert "cairnflow-writer" in report["threads_seen_during_tasks"]
    previous_puts = 0
    for call, expected in zip(report["calls"], ["interrupted", "completed"], strict=True):
        response = call["response"]
        assert response["status"] == expected, call
        # ... and is gone, with nothing in flight, when the entry point has returned.
        assert call["threads"] == []
        assert call["puts"]["started"] == call["puts"]["finished"] > previous_puts
        assert call["head"] == {"checkpoint_id": response["checkpoint_id"], "status": expected}
        previous_puts = call["puts"]["finished"]


#: What each example must not import: the other clouds' SDKs and LangGraph.
_AWS = ("boto3", "botocore", "s3transfer")
_LANGGRAPH = ("langgraph", "langchain_core", "cairnflow.langgraph")
FORBIDDEN = {
    "aws_lambda": ("google", "azure", *_LANGGRAPH),
    "cloud_run": (*_AWS, "azure", *_LANGGRAPH),
    "azure_functions": (*_AWS, "google", *_LANGGRAPH),
}
#: ... and what it must import (so that an empty module list cannot pass).
REQUIRED = {
    "aws_lambda": "boto3",
    "cloud_run": "google.cloud.storage",
    "azure_functions": "azure.storage.blob",
}


@pytest.mark.parametrize("example", list(EXAMPLES))
def test_imports_only_what_it_needs(example: str, example_location: StoreLocation) -> None:
    calls: list[dict[str, Any]] = [
        {"request": {"action": "start", "document": DOCUMENT}},
        {"request": {"action": "answer", "thread_id": "approval-q3-report", "answer": "reject"}},
    ]
    report = run_driver(example, example_location, calls, report_modules=True)
    assert [c["response"]["status"] for c in report["calls"]] == ["interrupted", "completed"]
    modules = set(report["modules"])
    assert REQUIRED[example] in modules
    unwanted = sorted(m for m in modules for bad in FORBIDDEN[example] if m == bad or m.startswith(bad + "."))
    assert unwanted == []


@pytest.mark.parametrize("example", list(EXAMPLES))
def test_requests_that_do_not_fit(example: str, local_location: StoreLocation) -> None:
    """Malformed requests, unknown threads and answers that do not fit, in one process."""
    thread = "approval-q3-report"
    calls: list[dict[str, Any]] = [
        {"request": {"action": "bogus"}},
        {"request": {"action": "start", "document": {"id": "x"}}},
        {"request": {"action": "answer", "thread_id": "nope", "answer": "approve"}},
        {"request": {"action": "start", "document": DOCUMENT}},
        {"request": {"action": "answer", "thread_id": thread, "answer": "maybe"}},
        {"request": {"action": "answer", "thread_id": thread, "interrupt_id": "99", "answer": "approve"}},
        {"request": {"action": "status", "thread_id": thread}},
        {"request": {"action": "continue", "thread_id": thread}},
        {
            "request": {
                "action": "answer",
                "thread_id": thread,
                "answer": {"decision": "reject", "comment": "no"},
            }
        },
        {"request": {"action": "start", "document": DOCUMENT}},
        {"request": {"action": "start", "document": {**DOCUMENT, "body": "another text"}}},
    ]
    report = run_driver(example, local_location, calls)
    got = [(c["status"], c["response"].get("status") or c["response"].get("type")) for c in report["calls"]]
    bad: tuple[int, str | None]
    missing: tuple[int, str | None]
    if example == "aws_lambda":  # Lambda: errors are raised (the invocation fails)
        bad, missing, conflict, nondeterminism = (
            (0, "BadRequest"),
            (0, "ThreadNotFoundError"),
            (0, "ResumeError"),
            (0, "NondeterminismError"),
        )
    else:
        bad, missing, conflict, nondeterminism = (
            (400, None),
            (404, None),
            (409, "ResumeError"),
            (409, "NondeterminismError"),
        )
    assert got == [
        bad,
        bad,
        missing,
        (200, "interrupted"),
        bad,
        conflict,
        (200, "interrupted"),  # status
        (200, "interrupted"),  # a "continue" while waiting for an answer just reports it
        (200, "completed"),
        (200, "completed"),  # a repeated start returns the stored result
        nondeterminism,  # the same thread id for another document
    ]
    rejected = report["calls"][8]["response"]["result"]
    assert rejected["decision"] == "rejected"
    assert rejected["publication"] is None
    assert rejected["comment"] == "no"


def test_cloud_run_http_routes(local_location: StoreLocation) -> None:
    calls = [
        {"path": "/healthz", "method": "GET", "raw_body": ""},
        {"path": "/nowhere", "raw_body": "{}"},
        {"path": "/approvals", "method": "GET", "raw_body": ""},
        {"path": "/approvals", "raw_body": "not json"},
    ]
    report = run_driver("cloud_run", local_location, calls)
    assert [c["status"] for c in report["calls"]] == [200, 404, 405, 400]
    assert report["calls"][0]["response"] == {"ok": True}


def test_azure_function_registers_on_the_functions_host(local_location: StoreLocation) -> None:
    """With azure.functions importable (a stand-in here), function_app defines ``app`` with one
    POST route whose handler is annotated with the host's HttpRequest/HttpResponse types."""
    report = run_driver(
        "azure_functions",
        local_location,
        [{"request": {"action": "start", "document": DOCUMENT}}],
        stub_azure_functions=True,
    )
    assert report["registry"] == {
        "auth_level": "function",
        "routes": [{"route": "approvals", "methods": ["POST"]}],
        "hints_are_host_types": True,
    }
    assert only_call(report)["status"] == "interrupted"


EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "examples"


def test_each_example_carries_the_same_workflow() -> None:
    copies = {name: (EXAMPLES_DIR / name / "approval_flow.py").read_bytes() for name in EXAMPLES}
    assert len(set(copies.values())) == 1, "examples/*/approval_flow.py differ: copy one over the others"
