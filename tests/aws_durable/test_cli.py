"""``cairnflow durable``: start, status, history, callback, stop, resume; one process per invocation."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from cairnflow.aws_durable import CairnflowDurableClient
from cairnflow.aws_durable.processes import SubprocessRunner, load_handler
from cairnflow.cli import main
from cairnflow.cli.parser import EXIT_NOT_FOUND, EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE
from cairnflow.core.errors import InvalidArgumentError
from cairnflow.savers import open_saver
from tests.aws_durable import flows

HANDLER = "tests.aws_durable.flows:approval"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any]:
    code = main(["durable", *argv])
    captured = capsys.readouterr()
    out = captured.out
    try:
        return code, json.loads(out)
    except ValueError:
        return code, out + captured.err


def test_start_callback_resume_status_history(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    url = f"file://{tmp_path}/store"
    open_saver(url)  # create the directory
    code, started = run(capsys, "start", "--json", url, HANDLER, "--input", '{"items": [1, 2, 3]}')
    assert code == EXIT_OK
    assert started["status"] == "STARTED" and len(started["waiting_callbacks"]) == 1
    arn, (callback_id,) = started["arn"], started["waiting_callbacks"]

    code, done = run(capsys, "callback", "--json", url, callback_id, "--success", "yes")
    assert code == EXIT_OK and done["done"] == "callback completed"
    code, again = run(capsys, "callback", url, callback_id, "--success", "no")
    assert code == EXIT_USAGE and "already SUCCEEDED" in again

    code, finished = run(capsys, "resume", "--json", "--subprocess", url, HANDLER, arn)
    assert code == EXIT_OK
    assert finished["status"] == "SUCCEEDED"
    assert {k: finished["result"][k] for k in ("total", "verdict")} == {"total": 6, "verdict": "yes"}
    assert finished["result"]["pid"] != os.getpid()  # --subprocess: the invocation ran in a child

    code, history = run(capsys, "history", "--json", url, arn)
    assert code == EXIT_OK
    shape = [(r["by"], [(u["Type"], u["Action"]) for u in r["u"]]) for r in history]
    assert shape[0] == ("service", [("EXECUTION", "START")])
    assert ("service", [("CALLBACK", "SUCCEED")]) in shape
    assert shape[-1] == ("service", [("EXECUTION", "SUCCEED")])
    code, text = run(capsys, "history", url, arn)
    assert "CALLBACK SUCCEED" in text and "(invocation begins)" in text
    code, listed = run(capsys, "list", "--json", url)
    assert listed == [{"arn": arn, "status": "SUCCEEDED"}]


def test_stop_and_the_exit_codes(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    url = f"file://{tmp_path}/store"
    open_saver(url)
    _, started = run(capsys, "start", "--json", url, HANDLER, "--input", '{"items": [1]}')
    code, stopped = run(capsys, "stop", "--json", url, started["arn"], "--reason", "not needed")
    assert code == EXIT_OK and stopped["status"] == "STOPPED"
    assert stopped["error"] == {"ErrorMessage": "not needed"}
    code, status = run(capsys, "status", "--json", url, started["arn"])
    assert code == EXIT_PROBLEMS and status["status"] == "STOPPED"  # ended, not succeeded
    code, message = run(capsys, "status", url, started["arn"] + "x")
    assert code == EXIT_NOT_FOUND and "no durable execution" in message
    code, message = run(capsys, "callback", url, "not-an-id", "--heartbeat")
    assert code == EXIT_USAGE and "not a callback id" in message
    code, message = run(capsys, "start", url, "tests.aws_durable.flows", "--input", "{}")
    assert code == EXIT_USAGE and "MODULE:ATTRIBUTE" in message
    code, message = run(capsys, "start", url, HANDLER, "--input", "{nope")
    assert code == EXIT_USAGE and "--input is not JSON" in message
    code, message = run(capsys, "resume", url, HANDLER)
    assert code == EXIT_USAGE and "--all" in message

    _, waiting = run(capsys, "start", "--json", url, HANDLER, "--input", '{"items": [2]}')
    code, message = run(capsys, "delete", url, waiting["arn"])
    assert code == EXIT_USAGE and "stop it first" in message
    code, pruned = run(capsys, "prune", "--json", url, "--older-than", "1d")
    assert code == EXIT_OK and pruned == {"deleted": []}  # the stopped one ended just now
    code, deleted = run(capsys, "delete", "--json", url, started["arn"])
    assert code == EXIT_OK and deleted["deleted"] is True
    code, _ = run(capsys, "status", url, started["arn"])
    assert code == EXIT_NOT_FOUND
    code, message = run(capsys, "prune", url, "--older-than", "soon")
    assert code == EXIT_USAGE


def test_each_invocation_runs_in_a_process_of_its_own(tmp_path: Path) -> None:
    url = f"file://{tmp_path}/store"
    client = CairnflowDurableClient(open_saver(url))  # type: ignore[arg-type]
    runner = SubprocessRunner(HANDLER, client, url)
    waiting = runner.run({"items": [4, 5]})
    assert waiting.status == "STARTED" and waiting.invocations == 1
    (callback_id,) = runner.callback_ids(waiting.arn)
    runner.send_callback_success(callback_id, "ok")
    done = runner.drive(waiting.arn)
    assert done.status == "SUCCEEDED" and done.value["total"] == 9
    assert len(runner.children) == 2 and len(set(runner.children)) == 2
    assert done.value["pid"] == runner.children[-1] != os.getpid()


def test_a_killed_invocation_process_is_invoked_again_and_records_each_step_once(tmp_path: Path) -> None:
    url = f"file://{tmp_path}/store"
    ledger = tmp_path / "ledger"
    client = CairnflowDurableClient(open_saver(url))  # type: ignore[arg-type]
    # The first child kills itself with SIGKILL after its fourth store request (a PUT has landed).
    env = {"CAIRNFLOW_TEST_KILL_AT": "3", "CAIRNFLOW_TEST_KILL_ONCE": str(tmp_path / "killed")}
    runner = SubprocessRunner(
        "tests.aws_durable.flows:chain", client, url, env=env, child_module="tests.aws_durable.crashing_child"
    )
    result = runner.run({"steps": 4, "ledger": str(ledger)})
    assert result.status == "SUCCEEDED" and result.value == flows.expected_chain(4)
    assert len(runner.children) >= 2  # the killed one, and the one that finished
    succeeded = [
        u["Id"]
        for r in client.records(result.arn)
        for u in r["u"]
        if u["Type"] == "STEP" and u["Action"] == "SUCCEED"
    ]
    assert len(succeeded) == len(set(succeeded)) == 4


def test_load_handler_names_what_is_wrong() -> None:
    assert load_handler(HANDLER) is flows.approval
    with pytest.raises(InvalidArgumentError, match="cannot import"):
        load_handler("tests.aws_durable.nothing_here:handler")
    with pytest.raises(InvalidArgumentError, match="no callable"):
        load_handler("tests.aws_durable.flows:missing")
