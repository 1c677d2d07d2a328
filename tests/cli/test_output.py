"""Terminal behaviour (colour, progress), formatting helpers, and the installed console script."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from cairnflow import ops
from cairnflow.cli import ago
from tests.cli.flows import Expected, populate
from tests.cli.support import FakeTTY, cli
from tests.emulators import StoreLocation

ANSI = re.compile(r"\x1b\[[0-9;]*m")
SCRIPT = Path(sys.executable).parent / "cairnflow"


def test_colour_only_on_a_terminal_and_never_with_no_color(
    local_location: StoreLocation, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    populate(local_location.url)
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("TERM", raising=False)
    plain = cli(capsys, "threads", local_location.url).out
    assert not ANSI.search(plain)

    tty = FakeTTY()
    monkeypatch.setattr(sys, "stdout", tty)
    assert cli(capsys, "threads", local_location.url).code == 0
    coloured = tty.getvalue()
    assert "\x1b[31mfailed\x1b[0m" in coloured and "\x1b[32mcompleted\x1b[0m" in coloured
    assert ANSI.sub("", coloured) == plain  # colour never shifts the columns

    monkeypatch.setenv("NO_COLOR", "1")
    tty = FakeTTY()
    monkeypatch.setattr(sys, "stdout", tty)
    assert cli(capsys, "threads", local_location.url).code == 0
    assert tty.getvalue() == plain


@pytest.mark.parametrize(
    "argv",
    [
        ["verify", "{url}"],
        ["prune", "{url}", "--keep-last", "1", "--dry-run"],
        ["copy", "{url}", "{url}-copy"],
        ["threads", "{url}"],
    ],
)
def test_progress_on_a_terminal_only(
    local_location: StoreLocation,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
) -> None:
    populate(local_location.url)
    args = [a.replace("{url}", local_location.url) for a in argv]
    quiet = cli(capsys, *args)
    assert quiet.code == 0 and quiet.err == ""  # not a terminal: no progress
    tty = FakeTTY()
    monkeypatch.setattr(sys, "stderr", tty)
    cli(capsys, *args)
    drawn = tty.getvalue()
    assert drawn.startswith(f"\r\x1b[K{argv[0]}: ")
    assert drawn.endswith("\r\x1b[K")  # the line is cleared at the end


def test_relative_times() -> None:
    now = 1_700_000_000.0
    assert ago(now, now) == "just now"
    assert ago(now - 42, now) == "42s ago"
    assert ago(now - 180, now) == "3m ago"
    assert ago(now - 5 * 3600 - 10, now) == "5h ago"
    assert ago(now - 12 * 86400, now) == "12d ago"
    assert ago(now + 120, now) == "in 2m"  # a writer's clock ahead of ours
    assert ago(now - 200 * 86400, now) == "2023-04-28"  # older than 90 days: the date (UTC)
    assert ago(None, now) == "-"


def test_durations() -> None:
    assert ops.parse_duration("90s") == 90
    assert ops.parse_duration("15m") == 900
    assert ops.parse_duration("1d12h") == 129600
    assert ops.parse_duration("2w") == 14 * 86400
    assert ops.parse_duration("1.5h") == 5400
    assert ops.parse_duration("0s") == 0
    for bad in ("", "5", "1x", "-1d", "d", "1d 2h", "1dh"):
        with pytest.raises(ValueError, match="not a duration"):
            ops.parse_duration(bad)


def test_untag_shows_stored_values_as_plain_json() -> None:
    tagged = {
        "t": {"$cf": "tuple", "v": [1, 2]},
        "b": {"$cf": "bytes", "v": "b2s="},
        "s": {"$cf": "set", "v": [1]},
        "when": {"$cf": "datetime", "v": "2025-01-02T03:04:05"},
        "u": {"$cf": "uuid", "v": "12345678-1234-5678-1234-567812345678"},
        "d": {"$cf": "decimal", "v": "1.10"},
        "td": {"$cf": "timedelta", "v": [1, 30, 500000]},
        "k": {"$cf": "dict", "v": [[1, "one"], ["two", 2]]},
        "m": {"$cf": "type", "n": "app.Money", "v": {"amount": 5}},
    }
    assert ops.untag(tagged) == {
        "t": [1, 2],
        "b": {"$bytes": "b2s="},
        "s": [1],
        "when": "2025-01-02T03:04:05",
        "u": "12345678-1234-5678-1234-567812345678",
        "d": "1.10",
        "td": {"$timedelta": 86430.5},
        "k": {"1": "one", "two": 2},
        "m": {"$type": "app.Money", "value": {"amount": 5}},
    }


# --------------------------------------------------------------------------- the console script


def run_script(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    if not SCRIPT.exists():
        pytest.fail(f"{SCRIPT} is missing: install the package (pip install -e .)")
    return subprocess.run(
        [str(SCRIPT), *args], capture_output=True, text=True, timeout=120, env=env, check=False
    )


def test_installed_console_script(location: StoreLocation, populated: dict[str, Expected]) -> None:
    env = {**os.environ, **location.env}
    env.pop("NO_COLOR", None)
    proc = run_script("threads", location.url, "--status", "interrupted", "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert [(t["thread_id"], t["status"], t["waiting_for"]) for t in doc["threads"]] == [
        ("wait-1", "interrupted", {"question": "ship?", "x": 7})
    ]
    proc = run_script("show", location.url, "done-1", env=env)
    assert proc.returncode == 0 and "status       completed" in proc.stdout
    assert not ANSI.search(proc.stdout)  # a pipe, not a terminal
    proc = run_script("verify", location.url, env=env)
    assert proc.returncode == 0 and proc.stdout.startswith("ok: ")
    proc = run_script("history", location.url, "nope", env=env)
    assert proc.returncode == 4
    assert proc.stderr.strip().splitlines() == ["cairnflow history: error: no thread 'nope'"]
    proc = run_script("threads", "ftp://nowhere", env=env)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
