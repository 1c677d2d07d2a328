"""Clear, one-line errors with meaningful exit codes: bad URLs, missing threads, credentials, SDKs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.flows import Expected, populate
from tests.cli.support import Result, cli, one_line_error
from tests.emulators import StoreLocation

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("ftp://host/dir", "unknown store URL scheme"),
        ("nonsense", "unknown store URL scheme"),
        ("s3://", "names no bucket"),
        ("gs:///prefix", "names no bucket"),
        ("file://", "names no directory"),
        ("s3://bucket/prefix?region=x", "no query or fragment"),
    ],
)
@pytest.mark.parametrize(("command", "extra"), [("threads", []), ("history", ["t"]), ("verify", [])])
def test_bad_url_is_a_usage_error(
    url: str, says: str, command: str, extra: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    line = one_line_error(cli(capsys, command, url, *extra), 2)
    assert says in line


def test_missing_threads_and_checkpoints(
    location: StoreLocation, populated: dict[str, Expected], capsys: pytest.CaptureFixture[str]
) -> None:
    url = location.url
    for argv in (
        ["history", url, "nope"],
        ["show", url, "nope"],
        ["delete", url, "nope", "--yes"],
        ["delete", url, "nope", "--dry-run"],
        ["verify", url, "nope"],
        ["copy", url, "memory://elsewhere", "--thread", "nope"],
    ):
        assert "'nope'" in one_line_error(cli(capsys, *argv), 4), argv
    assert "no checkpoint 99" in one_line_error(cli(capsys, "show", url, "done-1", "99"), 4)
    assert "not a checkpoint id" in one_line_error(cli(capsys, "show", url, "done-1", "latest"), 4)
    # The JSON mode fails the same way: nothing on stdout, the line on stderr.
    result = cli(capsys, "show", url, "nope", "--json")
    one_line_error(result, 4)
    assert result.out == ""


@pytest.mark.parametrize("thread_id", ["", "x" * 241, "\udc80"])
def test_invalid_thread_ids_are_usage_errors(
    local_location: StoreLocation, thread_id: str, capsys: pytest.CaptureFixture[str]
) -> None:
    populate(local_location.url)
    assert "thread id" in one_line_error(cli(capsys, "history", local_location.url, thread_id), 2)


def test_missing_local_directory_is_a_store_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"file://{tmp_path}/typo"
    assert "no store directory" in one_line_error(cli(capsys, "threads", url), 3)
    assert not (tmp_path / "typo").exists()  # looking did not create it


def test_missing_s3_credentials(
    s3_location: StoreLocation,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_location.env["AWS_ENDPOINT_URL_S3"])
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    line = one_line_error(cli(capsys, "threads", s3_location.url), 3)
    assert "credentials" in line and "NoCredentialsError" in line


def test_missing_bucket(
    s3_location: StoreLocation, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for key, value in s3_location.env.items():
        monkeypatch.setenv(key, value)
    bucket = s3_location.url.split("/")[2]
    line = one_line_error(cli(capsys, "verify", f"s3://{bucket}-missing/wf"), 3)
    assert "-missing" in line


def test_missing_azure_account(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_ACCOUNT_URL", "AZURE_STORAGE_ACCOUNT"):
        monkeypatch.delenv(name, raising=False)
    line = one_line_error(cli(capsys, "threads", "az://container/wf"), 3)
    assert "AZURE_STORAGE_CONNECTION_STRING" in line


def test_missing_sdk_extra_names_the_extra() -> None:
    """In a fresh process where boto3 cannot be imported, as after ``pip install cairnflow``."""
    code = (
        "import sys; sys.modules['boto3'] = None\n"
        "from cairnflow.cli import main\n"
        "sys.exit(main(['threads', 's3://bucket/wf']))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO, check=False
    )
    line = one_line_error(Result(proc.returncode, proc.stdout, proc.stderr), 3)
    assert "pip install 'cairnflow[s3]'" in line


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        ([], "required: COMMAND"),
        (["frobnicate", "file:///x"], "invalid choice"),
        (["prune", "file:///x"], "one of the arguments --keep-last --older-than is required"),
        (["prune", "file:///x", "--keep-last", "2", "--older-than", "1d"], "not allowed with"),
        (["prune", "file:///x", "--keep-last", "0"], "must be at least 1"),
        (["prune", "file:///x", "--older-than", "soon"], "not a duration"),
        (["threads", "file:///x", "--limit", "many"], "not a whole number"),
        (["show"], "required"),
    ],
)
def test_usage_errors(argv: list[str], says: str, capsys: pytest.CaptureFixture[str]) -> None:
    result = cli(capsys, *argv)
    assert result.code == 2
    assert says in result.err and "Traceback" not in result.err
    assert result.err.splitlines()[0].startswith("usage: cairnflow")


def test_unknown_status_is_a_usage_error(
    local_location: StoreLocation, capsys: pytest.CaptureFixture[str]
) -> None:
    populate(local_location.url)
    line = one_line_error(cli(capsys, "threads", local_location.url, "--status", "stuck"), 2)
    assert "unknown status 'stuck'" in line


def test_help_and_version(capsys: pytest.CaptureFixture[str]) -> None:
    result = cli(capsys, "--help")
    assert result.code == 0 and "Exit codes" in result.out
    for command in ("threads", "history", "show", "delete", "prune", "copy", "verify"):
        assert command in result.out
    result = cli(capsys, "--version")
    assert (result.code, result.out.strip()) == (0, "cairnflow 0.1.0")
