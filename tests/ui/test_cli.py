"""``cairnflow ui``: the subcommand starts the view, and refuses what it cannot serve."""

from __future__ import annotations

import http.client
import re
import subprocess
import sys
from pathlib import Path

import pytest

from cairnflow.cli import main


def test_cairnflow_ui_serves_the_store_on_loopback(demo_url: str) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "cairnflow.cli", "ui", demo_url, "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        found = re.match(r"cairnflow ui: http://127\.0\.0\.1:(\d+)/ shows (\S+) \(read-only", first)
        assert found, first
        assert found.group(2) == demo_url
        conn = http.client.HTTPConnection("127.0.0.1", int(found.group(1)), timeout=30)
        conn.request("GET", "/?status=failed")
        resp = conn.getresponse()
        body = resp.read().decode()
        conn.close()
        assert resp.status == 200
        assert 'data-thread="fail-1"' in body
        assert 'data-thread="done-1"' not in body
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if proc.stdout is not None:
            proc.stdout.close()
        if proc.stderr is not None:
            proc.stderr.close()


def test_missing_store_directory_is_an_error_not_a_new_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["ui", f"file://{tmp_path}/nothing-here", "--port", "0"])
    assert code == 3
    assert "no store directory" in capsys.readouterr().err
    assert not (tmp_path / "nothing-here").exists()


def test_bad_url_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ui", "ftp://somewhere/x"]) == 2
    assert "unknown store URL scheme" in capsys.readouterr().err


def test_port_in_use_is_reported(empty_store: str, capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["ui", empty_store, "--port", str(port)]) == 2
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err


def test_ui_is_listed_in_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    assert re.search(r"\bui\b.*read-only web view", capsys.readouterr().out)
