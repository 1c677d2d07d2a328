"""Where a command writes: tables or JSON on stdout; notes and progress on stderr."""

from __future__ import annotations

import json
import os
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
    "waiting": "cyan",
    "deleted": "dim",
}
_ANSI = {"green": "32", "red": "31", "yellow": "33", "cyan": "36", "magenta": "35", "dim": "2", "bold": "1"}


def isatty(stream: IO[str]) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


class Output:
    """Where a command writes: tables or JSON on stdout, notes and progress on stderr.

    On a terminal, tables are drawn by ``rich`` to fit its width (the last
    column is cut with an ellipsis) and statuses are coloured (never with
    ``NO_COLOR`` or ``TERM=dumb``). Piped, tables are plain aligned columns,
    never cut, with no escape codes: what a script reads is every character.
    """

    def __init__(self, stdout: IO[str], stderr: IO[str], *, as_json: bool) -> None:
        self.stdout = stdout
        self.stderr = stderr
        self.as_json = as_json
        self.terminal = isatty(stdout)
        self.colour = self.terminal and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"
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
        if self.terminal:
            self._rich_table(headers, rows, styles or {})
            return
        widths = [len(h) for h in headers]
        for row in rows:
            for i, cell in enumerate(row):
                widths[i] = max(widths[i], len(cell))
        for row in [list(headers), *rows]:
            cells = [c + " " * (w - len(c)) for c, w in zip(row[:-1], widths[:-1], strict=True)]
            self.line("  ".join([*cells, row[-1]]).rstrip())

    def _rich_table(
        self,
        headers: Sequence[str],
        rows: Sequence[Sequence[str]],
        styles: dict[int, Callable[[str], str | None]],
    ) -> None:
        from rich.console import Console  # the CLI's only heavy import, and only on a terminal
        from rich.table import Table
        from rich.text import Text

        console = Console(file=self.stdout, no_color=not self.colour, highlight=False, soft_wrap=False)
        table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold" if self.colour else "")
        for i, header in enumerate(headers):
            if i == len(headers) - 1:  # the free-text column takes what is left, cut with an ellipsis
                table.add_column(header, no_wrap=True, overflow="ellipsis")
            else:  # the others keep their width (up to a point), so ids and statuses stay whole
                width = max([len(header), *(len(row[i]) for row in rows)])
                table.add_column(header, no_wrap=True, overflow="ellipsis", min_width=min(width, 40))
        for row in rows:
            table.add_row(
                *(
                    Text(cell, style=(styles[i](cell) if i in styles else None) or "")
                    for i, cell in enumerate(row)
                )
            )
        console.print(table)


class Progress:
    """Progress on stderr, drawn by ``rich`` only when stderr is a terminal: done/total, rate, ETA.

    Piped (or with no terminal), nothing is written. ``set_total`` may come
    later than the first update (the total is unknown until a listing ends);
    ``update`` may be called from several threads.
    """

    def __init__(self, out: Output, label: str, *, unit: str = "items", total: int | None = None) -> None:
        self.enabled = out.progress_enabled
        self._bar: Any = None
        self._task: Any = None
        if self.enabled:
            self._bar = _rich_progress(out.stderr, colour=out.colour or out.progress_enabled)
            self._task = self._bar.add_task(label, total=total, unit=unit, note="")

    def set_total(self, total: int) -> None:
        if self._bar is not None:
            self._bar.update(self._task, total=total)

    def update(self, done: int, note: str = "") -> None:
        if self._bar is not None:
            self._bar.update(self._task, completed=done, note=note)

    def advance(self, amount: int) -> None:
        if self._bar is not None:
            self._bar.update(self._task, advance=amount)

    def __enter__(self) -> Progress:
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()  # transient: the bar is erased, the terminal is left as it was


def _rich_progress(stream: IO[str], *, colour: bool) -> Any:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        ProgressColumn,
        Task,
        TextColumn,
        TimeRemainingColumn,
    )
    from rich.progress import Progress as RichProgress
    from rich.text import Text

    class RateColumn(ProgressColumn):
        """Items per second (rich's own speed column counts bytes)."""

        def render(self, task: Task) -> Text:
            speed = task.finished_speed or task.speed
            return Text("?/s" if speed is None else f"{speed:,.1f}/s")

    console = Console(file=stream, no_color=not colour, highlight=False)
    return RichProgress(
        TextColumn("{task.description}:"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[unit]}"),
        RateColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[note]}"),
        console=console,
        transient=True,
        refresh_per_second=8,
    )


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
