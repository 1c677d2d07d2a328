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


def visible_lines(text: str) -> list[str]:
    return [line.rstrip() for line in ANSI.sub("", text).splitlines()]


def test_colour_and_fitted_tables_only_on_a_terminal_and_never_with_no_color(
    local_location: StoreLocation, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    populate(local_location.url)
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("TERM", raising=False)
    plain = cli(capsys, "threads", local_location.url).out
    assert not ANSI.search(plain)  # piped: plain columns, never cut
    ids = sorted(line.split()[0] for line in plain.splitlines()[1:])
    assert 'waiting: {"question": "ship?", "x": 7}' in plain

    for width in (100, 72):
        monkeypatch.setenv("COLUMNS", str(width))
        tty = FakeTTY()
        monkeypatch.setattr(sys, "stdout", tty)
        assert cli(capsys, "threads", local_location.url).code == 0
        drawn = tty.getvalue()
        assert re.search(r"\x1b\[31mfailed", drawn) and re.search(r"\x1b\[32mcompleted", drawn)
        lines = visible_lines(drawn)
        assert lines[0].split()[:3] == ["THREAD", "LAYOUT", "STATUS"]
        assert max(len(line) for line in lines) <= width  # the table fits the terminal
        assert sorted(line.split()[0] for line in lines[1:]) == ids  # ids are never cut

    monkeypatch.setenv("NO_COLOR", "1")
    tty = FakeTTY()
    monkeypatch.setattr(sys, "stdout", tty)
    assert cli(capsys, "threads", local_location.url).code == 0
    assert not ANSI.search(tty.getvalue()) and "\x1b" not in tty.getvalue()


@pytest.mark.parametrize(
    ("argv", "total"),
    [
        (["verify", "{url}"], True),
        (["prune", "{url}", "--keep-last", "1", "--dry-run"], True),
        (["copy", "{url}", "{url}-copy"], True),
        (["threads", "{url}"], False),
    ],
)
def test_progress_on_a_terminal_only(
    local_location: StoreLocation,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    total: bool,
) -> None:
    populate(local_location.url)
    args = [a.replace("{url}", local_location.url) for a in argv]
    quiet = cli(capsys, *args)
    assert quiet.code == 0 and quiet.err == ""  # not a terminal: no progress
    tty = FakeTTY()
    monkeypatch.setattr(sys, "stderr", tty)
    cli(capsys, *args)
    drawn = ANSI.sub("", tty.getvalue())
    assert f"{argv[0]}:" in drawn
    assert "/s" in drawn and "ETA" in drawn  # rate and time remaining
    if total:
        done = re.findall(r" (\d+)/(\d+) ", drawn)
        assert done and done[-1][0] == done[-1][1] and int(done[-1][1]) > 0  # done/total, finished
    else:
        assert re.search(r" \d+/\? ", drawn)  # a listing's total is not known in advance
    assert tty.getvalue().endswith("\x1b[2K")  # the bar is erased at the end


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


def test_rich_and_langgraph_are_imported_only_when_needed() -> None:
    """The core, ops and the CLI module never import rich; piped output never needs it."""
    code = (
        "import sys, cairnflow.core, cairnflow.ops, cairnflow.cli\n"
        "assert 'rich' not in sys.modules, 'rich imported'\n"
        "assert 'langgraph' not in sys.modules, 'langgraph imported'\n"
        "from cairnflow.cli import main\n"
        "import tempfile; d = tempfile.mkdtemp()\n"
        "code = main(['verify', 'file://' + d])\n"
        "sys.exit(code or ('rich' in sys.modules) or ('langgraph' in sys.modules))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
