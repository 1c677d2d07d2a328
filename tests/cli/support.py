"""Helpers: run the CLI in-process and capture what it printed."""

from __future__ import annotations

import datetime as dt
import io
import json
import time
from dataclasses import dataclass
from typing import Any

import pytest

from cairnflow.cli import main


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> Result:
    capsys.readouterr()  # drop anything printed before
    code = main(list(argv))
    captured = capsys.readouterr()
    return Result(code, captured.out, captured.err)


def parse_time(text: str) -> float:
    assert text.endswith("Z"), text
    return dt.datetime.fromisoformat(text[:-1] + "+00:00").timestamp()


def recent(text: str, within: float = 600.0) -> bool:
    """An ISO time from the last ``within`` seconds (the test wrote it)."""
    return 0 <= time.time() - parse_time(text) < within


def one_line_error(result: Result, code: int) -> str:
    """Assert a failure with exit ``code``, one line on stderr, no traceback; return the line."""
    assert result.code == code, (result.code, result.out, result.err)
    assert "Traceback" not in result.err
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert lines[0].startswith("cairnflow "), lines
    return lines[0]


class FakeTTY(io.StringIO):
    """A text stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True
