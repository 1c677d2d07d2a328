"""Where a command writes: tables or JSON on stdout; notes and progress on stderr."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import IO, Any

from cairnflow.ops import untag

__all__ = ["Output", "Progress", "ago", "isatty", "pretty", "short", "status_style"]

_STATUS_STYLE = {
    "completed": "green",
    "failed": "red",
    "corrupt": "red",
    "interrupted": "yellow",
    "running": "cyan",
    "suspended": "magenta",
    "deleted": "dim",
}
_ANSI = {"green": "32", "red": "31", "yellow": "33", "cyan": "36", "magenta": "35", "dim": "2", "bold": "1"}


def isatty(stream: IO[str]) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


class Output:
    """Where a command writes: tables or JSON on stdout, notes and progress on stderr."""

    def __init__(self, stdout: IO[str], stderr: IO[str], *, as_json: bool) -> None:
        self.stdout = stdout
        self.stderr = stderr
        self.as_json = as_json
        self.colour = isatty(stdout) and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"
        self.progress_enabled = isatty(stderr)

    def line(self, text: str = "") -> None:
        self.stdout.write(text + "\n")

    def json(self, value: Any) -> None:
        self.stdout.write(json.dumps(value, indent=2, ensure_ascii=False, default=str) + "\n")

    def note(self, text: str) -> None:
        self.stderr.write(text + "\n")

    def paint(self, text: str, style: str | None) -> str:
        if not self.colour or not style or not text:
            return text
        return f"\x1b[{_ANSI[style]}m{text}\x1b[0m"

    def table(
        self,
        headers: Sequence[str],
        rows: Sequence[Sequence[str]],
        styles: dict[int, Callable[[str], str | None]] | None = None,
    ) -> None:
        """Aligned columns; ``styles`` maps a column to a function choosing a cell's colour."""
        widths = [len(h) for h in headers]
        for row in rows:
            for i, cell in enumerate(row):
                widths[i] = max(widths[i], len(cell))
        self.line(self._row([self.paint(h, "bold") for h in headers], list(headers), widths))
        for row in rows:
            painted = [
                self.paint(cell, styles[i](cell) if styles and i in styles else None)
                for i, cell in enumerate(row)
            ]
            self.line(self._row(painted, list(row), widths))

    @staticmethod
    def _row(painted: list[str], plain: list[str], widths: list[int]) -> str:
        cells = [
            p + " " * (w - len(c)) for p, c, w in zip(painted[:-1], plain[:-1], widths[:-1], strict=True)
        ]
        return "  ".join([*cells, painted[-1]]).rstrip()


class Progress:
    """A one-line progress indicator on stderr, drawn only when stderr is a terminal."""

    def __init__(self, out: Output, label: str) -> None:
        self.out = out
        self.label = label
        self.enabled = out.progress_enabled
        self._shown = False
        self._last = 0.0
        self._lock = threading.Lock()

    def update(self, text: str) -> None:
        if not self.enabled:
            return
        with self._lock:
            now = time.monotonic()
            if self._shown and now - self._last < 0.1:
                return
            self._last = now
            self._shown = True
            self.out.stderr.write(f"\r\x1b[K{self.label}: {text}")
            self.out.stderr.flush()

    def close(self) -> None:
        with self._lock:
            if self._shown:
                self.out.stderr.write("\r\x1b[K")
                self.out.stderr.flush()
                self._shown = False

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def ago(epoch: float | None, now: float | None = None) -> str:
    """A relative time: ``just now``, ``42s ago``, ``3m ago``, ``5h ago``, ``12d ago``, or a date."""
    if epoch is None:
        return "-"
    now = time.time() if now is None else now
    delta = now - epoch
    future = delta < 0
    delta = abs(delta)
    if delta < 1:
        return "just now"
    if delta >= 90 * 86400:
        return time.strftime("%Y-%m-%d", time.gmtime(epoch))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if delta >= size:
            amount = f"{int(delta // size)}{unit}"
            return f"in {amount}" if future else f"{amount} ago"
    return "just now"  # pragma: no cover - unreachable


def short(value: Any, width: int = 50) -> str:
    """A value as one line of plain JSON, cut to ``width``."""
    text = json.dumps(untag(value), ensure_ascii=False, sort_keys=True, default=str)
    return text if len(text) <= width else text[: width - 1] + "…"


def pretty(value: Any, indent: str) -> str:
    """A value as indented plain JSON, continuation lines indented by ``indent``."""
    text = json.dumps(untag(value), ensure_ascii=False, sort_keys=True, indent=2, default=str)
    return text.replace("\n", "\n" + indent)


def status_style(cell: str) -> str | None:
    return _STATUS_STYLE.get(cell)
