"""The three serverless examples, each driven through its own entry point against its emulator.

Every invocation is a fresh child process (tests/serverless/driver.py), so state crosses
from one invocation to the next only through the bucket. Tasks record each real
execution in a side-effect ledger file (pid, document, task), which shows which
invocation ran what and that nothing ran twice; the mails the workflow sends (the
approver's links) land in a mailbox file.
"""

from __future__ import annotations

import json
import time
import uuid
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
TASKS = ["extract", "check_policy", "summarize", "request_approval", "publish", "notify"]


def ledger_entries(path: Path) -> list[tuple[int, str]]:
    """(pid, task) per real task execution, in the order they finished."""
    if not path.exists():
        return []
    return [(int(pid), task) for pid, _doc, task in (line.split() for line in path.read_text().splitlines())]


def mails(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def only_call(report: dict[str, Any]) -> dict[str, Any]:
    [call] = report["calls"]
    assert call["status"] == 200, call
    response: dict[str, Any] = call["response"]
    return response


@pytest.mark.parametrize("example", list(EXAMPLES))
def test_start_in_one_process_finish_in_another(
    example: str, example_location: StoreLocation, tmp_path: Path
) -> None:
    ledger, mailbox = tmp_path / "ledger", tmp_path / "mailbox"
    first = run_driver(
        example,
        example_location,
        [{"request": {"action": "start", "document": DOCUMENT, "approver": "bea@example.com"}}],
        region="eu-west-1",
        ledger=str(ledger),
        mailbox=str(mailbox),
    )
    started = only_call(first)
    assert started["status"] == "waiting", started
    assert started["thread_id"] == "approval-q3-report"
    assert started["wake_at"] == pytest.approx(time.time() + 24 * 3600, abs=120)  # the reminder
    assert first["calls"][0]["head"] == {"checkpoint_id": started["checkpoint_id"], "status": "waiting"}
    assert ledger_entries(ledger) == [(first["pid"], t) for t in TASKS[:4]]
    [mail] = mails(mailbox)
    assert mail["to"] == "bea@example.com" and mail["reminder"] == 0
    assert mail["subject"] == "Approve 'Q3 report' by Ann Lee for publication?"
    assert mail["review"]["risk"] == "high"
    assert mail["review"]["flags"] == ["confidential", "merger"]
    assert mail["answer_with"]["thread_id"] == "approval-q3-report"
    assert mail["answer_with"]["token"].startswith("cb1.")

    # The approver's link, then a duplicate delivery of it, from another process and region.
    answer: dict[str, Any] = {"answer_from_mail": 0, "answer": ANSWER}
    second = run_driver(
        example,
        example_location,
        [answer, answer],
        region="us-east-1",
        ledger=str(ledger),
        mailbox=str(mailbox),
    )
    assert second["pid"] != first["pid"]
    done, duplicate = second["calls"]
    assert done["status"] == 200, done
    result = done["response"]["result"]
    assert done["response"]["status"] == "completed"
    assert result["decision"] == "approved"
    assert result["comment"] == "fine"
    assert result["reminders"] == 0
    assert result["publication"]["by"] == "bea@example.com"
    assert result["publication"]["url"].startswith("https://docs.example.com/q3-report/")
    assert result["notification"].startswith("msg-")
    assert duplicate["response"] == done["response"]
    # Only the tasks after the approval ran in the second process, each once.
    assert ledger_entries(ledger) == [(first["pid"], t) for t in TASKS[:4]] + [
        (second["pid"], t) for t in TASKS[4:]
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
    call: dict[str, Any] = dict(request) if "answer_from_mail" in request else {"request": request}
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
        mailbox=str(ledger.with_suffix(".mail")),
        task_seconds=TASK_SECONDS,
    )
    return report["pid"], only_call(report)


@pytest.mark.parametrize("example", list(EXAMPLES))
def test_deadline_spreads_a_run_over_invocations(
    example: str, example_location: StoreLocation, tmp_path: Path
) -> None:
    """Invocations with time for one task each: same result as one long run, no task twice."""
    long_ledger = tmp_path / "long"
    _, paused = invoke_once(
        example,
        example_location,
        {"action": "start", "document": DOCUMENT, "thread_id": "long-run"},
        long_ledger,
        seconds_left=900,
        region="eu-west-1",
    )
    assert paused["status"] == "waiting", paused
    _, long_run = invoke_once(
        example,
        example_location,
        {"answer_from_mail": -1, "answer": ANSWER},
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
    for attempt in range(10):  # bounded: 6 are expected
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
        if response["status"] == "waiting":
            request = {"answer_from_mail": -1, "answer": ANSWER}
        else:
            request = {"action": "continue", "thread_id": "short-runs"}
    entries = ledger_entries(ledger)
    # Nobody sends "continue" in production (the driver's wake-ups do); here the test does, so
    # that each invocation has time for one task only. Opening the approval's callback is a
    # write before its mail task: on a slow store it takes the invocation's window, one more
    # "suspended" before "waiting".
    assert statuses[-3:] == ["waiting", "suspended", "completed"], (statuses, entries)
    assert set(statuses[:-3]) == {"suspended"} and len(statuses) in (6, 7), (statuses, entries)
    assert {**response["result"], "comment": ""} == {**long_run["result"], "comment": ""}
    # Every task ran exactly once, each in its own invocation, in order.
    assert [task for _, task in entries] == TASKS
    task_pids = [pid for pid, _ in entries]
    assert len(set(task_pids)) == len(TASKS) and task_pids == [pid for pid in pids if pid in task_pids]


@pytest.mark.parametrize("example", list(EXAMPLES))
def test_async_durability_leaves_nothing_in_flight(
    example: str, example_location: StoreLocation, tmp_path: Path
) -> None:
    """With durability "async" and slow writes, the entry point returns with every write
    acknowledged, the store's head equal to what it returned, and no cairnflow thread alive."""
    calls: list[dict[str, Any]] = [
        {"request": {"action": "start", "document": DOCUMENT}},
        {"answer_from_mail": -1, "answer": "approve"},
    ]
    report = run_driver(
        example,
        example_location,
        calls,
        env={"CAIRNFLOW_DURABILITY": "async"},
        ledger=str(tmp_path / "ledger"),
        mailbox=str(tmp_path / "mailbox"),
        put_delay=0.2,
    )
    # The writer thread did exist while tasks ran (so this is really the async mode) ...
    assert "cairnflow-writer" in report["threads_seen_during_tasks"]
    previous_puts = 0
    for call, expected in zip(report["calls"], ["waiting", "completed"], strict=True):
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
def test_imports_only_what_it_needs(example: str, example_location: StoreLocation, tmp_path: Path) -> None:
    calls: list[dict[str, Any]] = [
        {"request": {"action": "start", "document": DOCUMENT}},
        {"answer_from_mail": -1, "answer": "reject"},
    ]
    report = run_driver(example, example_location, calls, report_modules=True, mailbox=str(tmp_path / "m"))
    assert [c["response"]["status"] for c in report["calls"]] == ["waiting", "completed"]
    modules = set(report["modules"])
    assert REQUIRED[example] in modules
    unwanted = sorted(m for m in modules for bad in FORBIDDEN[example] if m == bad or m.startswith(bad + "."))
    assert unwanted == []


@pytest.mark.parametrize("example", list(EXAMPLES))
def test_requests_that_do_not_fit(example: str, local_location: StoreLocation, tmp_path: Path) -> None:
    """Malformed requests, unknown threads and answers that do not fit, in one process."""
    thread = "approval-q3-report"
    foreign = "cb1.bm9wZQ.3.c2VjcmV0"  # names thread "nope", which does not exist
    calls: list[dict[str, Any]] = [
        {"request": {"action": "bogus"}},
        {"request": {"action": "start", "document": {"id": "x"}}},
        {"request": {"action": "status", "thread_id": "nope"}},
        {"request": {"action": "start", "document": DOCUMENT, "remind_after": -1}},
        {"request": {"action": "start", "document": DOCUMENT}},
        {"answer_from_mail": -1, "answer": "maybe"},
        {"request": {"action": "answer", "thread_id": thread, "token": "not-a-token", "answer": "approve"}},
        {"request": {"action": "answer", "thread_id": "nope", "token": foreign, "answer": "approve"}},
        {"request": {"action": "status", "thread_id": thread}},
        {"request": {"action": "continue", "thread_id": thread}},  # before the reminder: still waiting
        {"answer_from_mail": -1, "answer": {"decision": "reject", "comment": "no"}},
        {"answer_from_mail": -1, "answer": {"decision": "reject", "comment": "no"}},  # a duplicate click
        {"answer_from_mail": -1, "answer": "approve"},  # the same link, another answer
        {"request": {"action": "start", "document": DOCUMENT}},
        {"request": {"action": "start", "document": {**DOCUMENT, "body": "another text"}}},
    ]
    report = run_driver(example, local_location, calls, mailbox=str(tmp_path / "mailbox"))
    got = [(c["status"], c["response"].get("status") or c["response"].get("type")) for c in report["calls"]]
    bad: tuple[int, str | None]
    missing: tuple[int, str | None]
    if example == "aws_lambda":  # Lambda: errors are raised (the invocation fails)
        bad, forged, missing, answered, nondeterminism = (
            (0, "BadRequest"),
            (0, "InvalidCallbackTokenError"),
            (0, "ThreadNotFoundError"),
            (0, "CallbackCompletedError"),
            (0, "NondeterminismError"),
        )
    else:
        bad, forged, missing, answered, nondeterminism = (
            (400, "BadRequest"),
            (400, "InvalidCallbackTokenError"),
            (404, None),
            (409, "CallbackCompletedError"),
            (409, "NondeterminismError"),
        )
    assert got == [
        bad,
        bad,
        missing,
        bad,  # remind_after must be positive
        (200, "waiting"),
        bad,
        forged,
        missing,  # a token for a thread that does not exist
        (200, "waiting"),  # status
        (200, "waiting"),
        (200, "completed"),
        (200, "completed"),  # a repeated answer returns the stored result
        answered,
        (200, "completed"),  # a repeated start returns the stored result
        nondeterminism,  # the same thread id for another document
    ]
    rejected = report["calls"][10]["response"]["result"]
    assert rejected["decision"] == "rejected"
    assert rejected["publication"] is None
    assert rejected["comment"] == "no"


def test_cloud_run_http_routes(local_location: StoreLocation) -> None:
    calls = [
        {"path": "/healthz", "method": "GET", "raw_body": ""},
        {"path": "/nowhere", "raw_body": "{}"},
        {"path": "/approvals", "method": "GET", "raw_body": ""},
        {"path": "/approvals", "raw_body": "not json"},
        {"path": "/wake", "method": "GET", "raw_body": ""},
        {"path": "/wake", "raw_body": "{}"},
    ]
    report = run_driver("cloud_run", local_location, calls)
    assert [c["status"] for c in report["calls"]] == [200, 404, 405, 400, 405, 400]
    assert report["calls"][0]["response"] == {"ok": True}


def test_azure_function_registers_on_the_functions_host(local_location: StoreLocation) -> None:
    """With azure.functions importable (a stand-in here), function_app defines ``app`` with one
    POST route whose handler is annotated with the host's HttpRequest/HttpResponse types, and
    the wake-up queue's trigger."""
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
        "queues": [
            {
                "arg_name": "msg",
                "queue_name": "%CAIRNFLOW_WAKE_QUEUE%",
                "connection": "CAIRNFLOW_WAKE_QUEUE_CONNECTION",
            }
        ],
        "wake_hints_are_host_types": True,
    }
    assert only_call(report)["status"] == "waiting"


EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "examples"


def test_each_example_carries_the_same_workflow() -> None:
    copies = {name: (EXAMPLES_DIR / name / "approval_flow.py").read_bytes() for name in EXAMPLES}
    assert len(set(copies.values())) == 1, "examples/*/approval_flow.py differ: copy one over the others"


def wake_queue(example: str, request: pytest.FixtureRequest) -> tuple[dict[str, str], dict[str, Any]]:
    """A fresh wake-up queue on the example's cloud emulator: the app settings, and serve options."""
    if example == "aws_lambda":
        from tests.driver.test_aws import client
        from tests.emulators.s3 import REGION

        endpoint: str = request.getfixturevalue("s3_server_url")
        queue = client("sqs", endpoint).create_queue(QueueName=f"wake-{uuid.uuid4().hex[:12]}")["QueueUrl"]
        env = {"CAIRNFLOW_WAKE_QUEUE_URL": queue, "AWS_ENDPOINT_URL_SQS": endpoint}
        return env, {"region": REGION}
    if example == "azure_functions":
        from tests.emulators.azure_queue import connection_string

        service = request.getfixturevalue("azure_queue_service")
        name = f"wake-{uuid.uuid4().hex[:12]}"
        service.get_queue_client(name).create_queue()
        env = {
            "CAIRNFLOW_WAKE_QUEUE": name,
            "CAIRNFLOW_WAKE_QUEUE_CONNECTION": connection_string(service.url.rstrip("/")),
        }
        return env, {}
    from tests.emulators import free_port

    emulator = request.getfixturevalue("cloud_tasks")
    tasks = emulator.client()
    queue = f"projects/test/locations/here/queues/wake-{uuid.uuid4().hex[:10]}"
    tasks.create_queue(parent="projects/test/locations/here", queue={"name": queue})
    request.addfinalizer(lambda: tasks.delete_queue(name=queue))  # its leases would call a closed port
    port = free_port()
    env = {
        "CAIRNFLOW_TASKS_QUEUE": queue,
        "CAIRNFLOW_WAKE_URL": f"http://127.0.0.1:{port}/wake",
        "CLOUD_TASKS_EMULATOR_HOST": emulator.address,
    }
    return env, {"port": port}


@pytest.mark.parametrize("example", list(EXAMPLES))
def test_runs_continue_through_the_platforms_queue_and_the_approver_is_reminded(
    example: str, example_location: StoreLocation, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """No client continues anything: a suspended run and a waiting one are woken through the
    platform's queue (SQS into lambda_handler, Cloud Tasks into /wake, a Storage Queue into the
    queue-triggered function); the unanswered approval times out into a reminder with a fresh
    link; the approver answers it; the stale first link is refused."""
    env, options = wake_queue(example, request)
    region = options.pop("region", "eu-west-1")
    ledger, mailbox = tmp_path / "ledger", tmp_path / "mailbox"
    spec: dict[str, Any] = {"ledger": str(ledger), "mailbox": str(mailbox), "region": region}
    start = {"action": "start", "document": DOCUMENT, "remind_after": 2}
    budget = {"remaining_ms": int((RESERVE + WINDOW) * 1000)}
    first = run_driver(
        example,
        example_location,
        [{"request": start, **budget}],
        env={
            **env,
            "CAIRNFLOW_RESERVE_SECONDS": str(RESERVE),
            "CAIRNFLOW_TIME_BUDGET_SECONDS": str(RESERVE + WINDOW),
        },
        task_seconds=TASK_SECONDS,
        **spec,
    )
    assert only_call(first)["status"] == "suspended"  # time for one task; the client walks away

    # The platform alone: wake-ups arrive, run the rest up to the approval, then the reminder.
    served = run_driver(
        example,
        example_location,
        [],
        env=env,
        serve={"thread_id": "approval-q3-report", "until_mails": 2, "timeout": 90, **options},
        **spec,
    )
    assert served["served"]["mails"] == 2, served["served"]
    assert served["served"]["status"] == "waiting"
    first_mail, reminder = mails(mailbox)
    assert (first_mail["reminder"], reminder["reminder"]) == (0, 1)
    assert reminder["subject"].startswith("Reminder 1: Approve 'Q3 report'")
    assert reminder["answer_with"]["token"] != first_mail["answer_with"]["token"]
    assert [t for _, t in ledger_entries(ledger)] == [*TASKS[:4], "send_reminder"]
    assert {pid for pid, _ in ledger_entries(ledger)[1:]} == {served["pid"]}

    answers = run_driver(
        example,
        example_location,
        [{"answer_from_mail": 0, "answer": ANSWER}, {"answer_from_mail": 1, "answer": ANSWER}],
        env=env,
        **spec,
    )
    stale, fresh = answers["calls"]
    assert stale["response"]["type"] == "CallbackCompletedError"  # that link's wait timed out
    assert fresh["status"] == 200 and fresh["response"]["status"] == "completed", fresh
    assert fresh["response"]["result"]["reminders"] == 1
    assert fresh["response"]["result"]["decision"] == "approved"
    # Every task ran once, in the process that reached it.
    assert [t for _, t in ledger_entries(ledger)] == [*TASKS[:4], "send_reminder", *TASKS[4:]]
