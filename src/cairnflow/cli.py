"""The ``cairnflow`` command: inspect, prune, copy and verify the threads in a store.

A thin layer over :mod:`cairnflow.ops`; see ``docs/operations.md``. Stores are
named by URL (``file://``, ``s3://``, ``gs://``, ``az://``); cloud credentials
and endpoints come from the environment exactly as
:func:`cairnflow.savers.open_store` builds its clients.

Exit codes: 0 ok; 1 problems found (verify, copy conflicts, prune skips) or
nothing matched (``threads``) or a delete was declined; 2 usage error or bad
URL; 3 store, access or data error (including a missing SDK extra); 4 thread
or checkpoint not found; 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import IO, Any

from cairnflow import __version__, ops
from cairnflow.core.errors import (
    CairnflowError,
    CorruptCheckpointError,
    InvalidThreadIdError,
    StoreError,
    ThreadNotFoundError,
)

__all__ = [
    "EXIT_NOT_FOUND",
    "EXIT_OK",
    "EXIT_PROBLEMS",
    "EXIT_STORE",
    "EXIT_USAGE",
    "main",
]

EXIT_OK = 0
EXIT_PROBLEMS = 1
EXIT_USAGE = 2
EXIT_STORE = 3
EXIT_NOT_FOUND = 4
EXIT_INTERRUPTED = 130

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


class UsageError(Exception):
    """A command line that parses but cannot be carried out as given."""


# --------------------------------------------------------------------------- output


class Output:
    """Where a command writes: tables or JSON on stdout, notes and progress on stderr."""

    def __init__(self, stdout: IO[str], stderr: IO[str], *, as_json: bool) -> None:
        self.stdout = stdout
        self.stderr = stderr
        self.as_json = as_json
        self.colour = _isatty(stdout) and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"
        self.progress_enabled = _isatty(stderr)

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


def _isatty(stream: IO[str]) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


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


def _short(value: Any, width: int = 50) -> str:
    text = json.dumps(ops.untag(value), ensure_ascii=False, sort_keys=True, default=str)
    return text if len(text) <= width else text[: width - 1] + "…"


def _pretty(value: Any, indent: str) -> str:
    text = json.dumps(ops.untag(value), ensure_ascii=False, sort_keys=True, indent=2, default=str)
    return text.replace("\n", "\n" + indent)


def _status_style(cell: str) -> str | None:
    return _STATUS_STYLE.get(cell)


# --------------------------------------------------------------------------- argument helpers


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text!r}")
    return value


def _duration(text: str) -> float:
    try:
        return ops.parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _statuses(values: list[str] | None) -> set[str] | None:
    if not values:
        return None
    out: set[str] = set()
    for value in values:
        for part in value.split(","):
            name = part.strip().lower()
            if name == "all":
                out.update(ops.STATUSES)
            elif name in ops.STATUSES:
                out.add(name)
            else:
                raise UsageError(f"unknown status {part!r}; known: {', '.join(ops.STATUSES)}, all")
    return out


# --------------------------------------------------------------------------- commands


def cmd_threads(args: argparse.Namespace, out: Output) -> int:
    saver = ops.open_saver(args.url)
    now = time.time()
    with Progress(out, "threads") as progress:
        found = ops.list_threads(
            saver,
            statuses=_statuses(args.status),
            workflow=args.workflow,
            updated_before=None if args.older_than is None else now - args.older_than,
            updated_after=None if args.newer_than is None else now - args.newer_than,
            limit=args.limit,
            sort=args.sort,
            progress=lambda n: progress.update(f"{n} threads examined"),
        )
    if out.as_json:
        out.json({"store": args.url, "count": len(found), "threads": [t.to_dict() for t in found]})
    elif found:
        rows = []
        for t in found:
            detail = t.error or (f"waiting: {_short(t.waiting_for)}" if t.status == "interrupted" else "")
            rows.append(
                [
                    t.thread_id,
                    t.status,
                    t.workflow or "-",
                    "-" if t.steps is None else str(t.steps),
                    t.checkpoint_id or "-",
                    ago(t.updated_at, now),
                    detail,
                ]
            )
        out.table(
            ["THREAD", "STATUS", "WORKFLOW", "STEPS", "CHECKPOINT", "UPDATED", "DETAIL"],
            rows,
            {1: _status_style},
        )
    if not found:
        if not out.as_json:
            out.note("no threads match")
        return EXIT_PROBLEMS
    return EXIT_OK


def cmd_history(args: argparse.Namespace, out: Output) -> int:
    saver = ops.open_saver(args.url)
    entries = ops.thread_history(saver, args.thread, limit=args.limit)
    if out.as_json:
        out.json({"thread_id": args.thread, "checkpoints": [e.to_dict() for e in entries]})
        return EXIT_OK
    now = time.time()
    rows = []
    for e in entries:
        summary = e.summary or [""]
        records = f"+{e.new_records} ={e.total_records}"
        rows.append([e.checkpoint_id, e.kind, e.status, ago(e.created_at, now), records, summary[0]])
        rows.extend(["", "", "", "", "", more] for more in summary[1:])
    out.table(["CHECKPOINT", "KIND", "STATUS", "WRITTEN", "RECORDS", "RECORDED"], rows, {2: _status_style})
    return EXIT_OK


def cmd_show(args: argparse.Namespace, out: Output) -> int:
    saver = ops.open_saver(args.url)
    state = ops.show_state(saver, args.thread, args.checkpoint)
    if out.as_json:
        out.json(state.to_dict())
        return EXIT_OK
    pad = " " * 13

    def field(name: str, value: str) -> None:
        out.line(f"{name:<12} {value}")

    field("thread", state.thread_id)
    field("workflow", state.workflow or "-")
    field("status", out.paint(state.status, _status_style(state.status)))
    latest = "latest" if state.is_latest else f"latest is {state.latest_checkpoint_id}"
    field("checkpoint", f"{state.checkpoint_id} ({state.kind}, {latest})")
    field("written", f"{ago(state.created_at)} ({ops.iso_time(state.created_at)})")
    field("records", str(state.total_records))
    if not state.values_readable:
        out.line("")
        out.line("values not shown: written with a serializer other than JSON (never loaded by this tool)")
        return EXIT_OK
    field("input", _pretty(state.input, pad))
    if state.interrupt is not None:
        field("waiting for", f"interrupt {state.interrupt['id']}: {_pretty(state.interrupt['value'], pad)}")
    if state.status == "completed":
        field("result", _pretty(state.result, pad))
    if state.error is not None:
        field("error", out.paint(state.error, "red"))
    if state.steps:
        out.line("")
        rows = []
        for s in state.steps:
            if s.type == "interrupt":
                shown = _short(s.value) + (f" -> answer {_short(s.answer)}" if s.status == "answered" else "")
            else:
                shown = (s.error or "") if s.status == "failed" else _short(s.value)
            rows.append([str(s.pos), s.type, s.name or "-", s.status, shown or ""])
        styles: dict[int, Callable[[str], str | None]] = {
            3: lambda c: {"done": "green", "failed": "red", "waiting": "yellow"}.get(c)
        }
        out.table(["POS", "TYPE", "NAME", "STATUS", "VALUE"], rows, styles)
    return EXIT_OK


def cmd_delete(args: argparse.Namespace, out: Output) -> int:
    saver = ops.open_saver(args.url)
    plan = ops.delete_thread(saver, args.thread, dry_run=True, purge=args.purge)
    if args.dry_run:
        _print_delete(out, plan)
        return EXIT_OK
    if not args.yes:
        if not _isatty(sys.stdin):
            raise UsageError("refusing to delete without --yes (stdin is not a terminal)")
        out.stderr.write(
            f"delete thread {plan.thread_id!r} ({plan.status}, {len(plan.deleted)} checkpoint(s))? [y/N] "
        )
        out.stderr.flush()
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            out.note("not deleted")
            return EXIT_PROBLEMS
    result = ops.delete_thread(saver, args.thread, purge=args.purge)
    _print_delete(out, result)
    return EXIT_OK


def _print_delete(out: Output, result: ops.DeleteResult) -> None:
    if out.as_json:
        out.json(result.to_dict())
        return
    verb = "would delete" if result.dry_run else "deleted"
    ids = _ids(result.deleted)
    where = f" ({ids})" if ids else ""
    tail = (
        "; the tombstone is removed too (purge)"
        if result.purged
        else f"; tombstone at checkpoint {result.tombstone} fences stale writers"
    )
    count = len(result.deleted)
    out.line(f"{verb} thread {result.thread_id!r} ({result.status}): {count} checkpoint(s){where}{tail}")


def _ids(ids: Sequence[str]) -> str:
    if not ids:
        return ""
    numbers = [int(i) for i in ids]
    if numbers == list(range(numbers[0], numbers[0] + len(numbers))) and len(numbers) > 2:
        return f"{numbers[0]}..{numbers[-1]}"
    return ", ".join(ids)


def cmd_prune(args: argparse.Namespace, out: Output) -> int:
    saver = ops.open_saver(args.url)
    with Progress(out, "prune") as progress:
        result = ops.prune(
            saver,
            keep_last=args.keep_last,
            older_than=args.older_than,
            statuses=_statuses(args.status),
            dry_run=args.dry_run,
            purge=args.purge,
            progress=lambda n, d: progress.update(f"{n} threads examined, {d} checkpoints"),
        )
    if out.as_json:
        out.json(result.to_dict())
    else:
        now = time.time()
        if result.threads:
            rows = [
                [
                    t.thread_id,
                    t.status,
                    ago(t.updated_at, now),
                    t.action,
                    str(len(t.deleted)),
                    t.keep_from or "-",
                    t.reason or "",
                ]
                for t in result.threads
            ]
            out.table(
                ["THREAD", "STATUS", "UPDATED", "ACTION", "CHECKPOINTS", "KEEP-FROM", "NOTE"],
                rows,
                {1: _status_style, 3: lambda c: "red" if c == "skip" else None},
            )
        verb = "would delete" if result.dry_run else "deleted"
        affected = sum(1 for t in result.threads if t.action != "skip")
        out.line(
            f"{verb} {result.objects} checkpoint(s) from {affected} thread(s); "
            f"{result.threads_examined} thread(s) examined"
        )
    corrupt = [t for t in result.skipped if t.status == "corrupt"]
    return EXIT_PROBLEMS if corrupt else EXIT_OK


def cmd_copy(args: argparse.Namespace, out: Output) -> int:
    src = ops.open_saver(args.src)
    dst = ops.open_saver(args.dst, create=True)
    with Progress(out, "copy") as progress:
        result = ops.copy_threads(
            src,
            dst,
            thread_id=args.thread,
            progress=lambda n, c: progress.update(f"{n} threads, {c} checkpoints copied"),
        )
    if out.as_json:
        out.json(result.to_dict())
    else:
        if result.threads:
            rows = [
                [t.thread_id, t.result, str(t.copied), str(t.skipped), t.head or "-", t.error or ""]
                for t in result.threads
            ]
            out.table(
                ["THREAD", "RESULT", "COPIED", "SKIPPED", "HEAD", "ERROR"],
                rows,
                {1: lambda c: "red" if c in ("conflict", "corrupt") else "green"},
            )
        summary = result.to_dict()
        out.line(
            f"copied {summary['checkpoints_copied']} checkpoint(s), skipped {summary['checkpoints_skipped']} "
            f"already there, {len(result.threads)} thread(s), {summary['problems']} problem(s)"
        )
    return EXIT_PROBLEMS if result.problems else EXIT_OK


def cmd_verify(args: argparse.Namespace, out: Output) -> int:
    saver = ops.open_saver(args.url)
    with Progress(out, "verify") as progress:
        report = ops.verify(
            saver,
            args.thread,
            progress=lambda o, t: progress.update(f"{o} objects, {t} threads checked"),
        )
    if out.as_json:
        out.json({**report.to_dict(), "url": args.url})
        return EXIT_OK if report.ok else EXIT_PROBLEMS
    if report.problems:
        rows = [
            [
                p.severity,
                p.code,
                p.thread_id or "-",
                "-" if p.seq is None else str(p.seq),
                p.message + (f" ({p.key})" if p.key and p.seq is None else ""),
            ]
            for p in report.problems
        ]
        out.table(
            ["SEVERITY", "PROBLEM", "THREAD", "CHECKPOINT", "DETAIL"],
            rows,
            {0: lambda c: "red" if c == "error" else "yellow"},
        )
    verdict = out.paint("ok", "green") if report.ok else out.paint("PROBLEMS FOUND", "red")
    out.line(
        f"{verdict}: {report.objects_checked} object(s) in {report.threads_checked} thread(s) checked, "
        f"{len(report.errors)} error(s), {len(report.warnings)} warning(s)"
    )
    return EXIT_OK if report.ok else EXIT_PROBLEMS


# --------------------------------------------------------------------------- parser


class _Parser(argparse.ArgumentParser):
    """argparse, but raising instead of exiting so that ``main`` returns the code."""

    def error(self, message: str) -> Any:
        raise _ParseError(self.format_usage(), message, self.prog)


class _ParseError(Exception):
    def __init__(self, usage: str, message: str, prog: str) -> None:
        super().__init__(message)
        self.usage = usage
        self.prog = prog


def build_parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    common.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    parser = _Parser(
        prog="cairnflow",
        description="Inspect, prune, copy and verify cairnflow threads in a store "
        "(file://DIR, s3://BUCKET/PREFIX, gs://BUCKET/PREFIX, az://CONTAINER/PREFIX).",
        epilog="Exit codes: 0 ok, 1 problems found or nothing matched, 2 usage error or bad URL, "
        "3 store/access/data error, 4 not found. See docs/operations.md.",
    )
    parser.add_argument("--version", action="version", version=f"cairnflow {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    p = sub.add_parser("threads", parents=[common], help="list threads with status, steps and last update")
    p.add_argument("url")
    p.add_argument(
        "--status",
        action="append",
        metavar="S",
        help=f"only these statuses (repeat or comma-separate; {', '.join(ops.STATUSES)}, all); "
        "default: all but deleted",
    )
    p.add_argument("--workflow", metavar="NAME", help="only threads of this workflow")
    p.add_argument("--older-than", type=_duration, metavar="DURATION", help="last update before (e.g. 7d)")
    p.add_argument("--newer-than", type=_duration, metavar="DURATION", help="last update within (e.g. 1h)")
    p.add_argument(
        "--sort", choices=("id", "updated"), default="id", help="thread id (default) or newest first"
    )
    p.add_argument("--limit", type=_positive_int, metavar="N", help="at most N threads")
    p.set_defaults(handler=cmd_threads)

    p = sub.add_parser("history", parents=[common], help="a thread's checkpoints, newest first")
    p.add_argument("url")
    p.add_argument("thread")
    p.add_argument("--limit", type=_positive_int, metavar="N", help="only the newest N checkpoints")
    p.set_defaults(handler=cmd_history)

    p = sub.add_parser("show", parents=[common], help="the state at a checkpoint (default: the latest)")
    p.add_argument("url")
    p.add_argument("thread")
    p.add_argument("checkpoint", nargs="?")
    p.set_defaults(handler=cmd_show)

    p = sub.add_parser("delete", parents=[common], help="delete a thread (a tombstone fences stale writers)")
    p.add_argument("url")
    p.add_argument("thread")
    p.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    p.add_argument("--dry-run", action="store_true", help="say what would be deleted; change nothing")
    p.add_argument("--purge", action="store_true", help="remove the tombstone too")
    p.set_defaults(handler=cmd_delete)

    p = sub.add_parser("prune", parents=[common], help="trim old checkpoints or delete stale threads")
    p.add_argument("url")
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument(
        "--keep-last",
        type=_positive_int,
        metavar="N",
        help="keep each thread's newest N checkpoints (and their base)",
    )
    mode.add_argument(
        "--older-than", type=_duration, metavar="DURATION", help="delete threads not updated for DURATION"
    )
    p.add_argument(
        "--status",
        action="append",
        metavar="S",
        help="only threads with these statuses (default: all with --keep-last, completed with --older-than)",
    )
    p.add_argument("--dry-run", action="store_true", help="say what would be deleted; change nothing")
    p.add_argument("--purge", action="store_true", help="with --older-than: remove tombstones too")
    p.set_defaults(handler=cmd_prune)

    p = sub.add_parser("copy", parents=[common], help="copy threads with their history to another store")
    p.add_argument("src", metavar="SRC_URL")
    p.add_argument("dst", metavar="DST_URL")
    p.add_argument("--thread", metavar="T", help="only this thread")
    p.set_defaults(handler=cmd_copy)

    p = sub.add_parser("verify", parents=[common], help="check checksums and linear histories")
    p.add_argument("url")
    p.add_argument("thread", nargs="?")
    p.set_defaults(handler=cmd_verify)
    return parser


# --------------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    stdout, stderr = sys.stdout, sys.stderr
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except _ParseError as exc:
        stderr.write(exc.usage)
        stderr.write(f"{exc.prog}: error: {exc}\n")
        return EXIT_USAGE
    except SystemExit as exc:  # --help and --version
        return exc.code if isinstance(exc.code, int) else EXIT_OK
    out = Output(stdout, stderr, as_json=args.json)

    def fail(code: int, message: str) -> int:
        first = " ".join(str(message).split())  # one line, whatever the error said
        stderr.write(f"cairnflow {args.command}: error: {first}\n")
        return code

    handler: Callable[[argparse.Namespace, Output], int] = args.handler
    try:
        return handler(args, out)
    except KeyboardInterrupt:
        return fail(EXIT_INTERRUPTED, "interrupted")
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): stop quietly, like other Unix tools.
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, stdout.fileno())
        except (AttributeError, OSError, ValueError):
            pass
        finally:
            os.close(devnull)
        return EXIT_OK
    except (UsageError, ops.InvalidURLError, InvalidThreadIdError) as exc:
        return fail(EXIT_USAGE, str(exc))
    except ValueError as exc:  # e.g. copying a store onto itself
        return fail(EXIT_USAGE, str(exc))
    except ThreadNotFoundError as exc:
        return fail(EXIT_NOT_FOUND, str(exc))
    except CorruptCheckpointError as exc:
        return fail(EXIT_STORE, f"{exc}; run `cairnflow verify` for a full report")
    except (StoreError, CairnflowError, ImportError) as exc:
        # StoreAccessError (credentials, permissions, missing bucket), TransientStoreError after
        # retries, MissingDependencyError (an SDK extra is not installed).
        return fail(EXIT_STORE, str(exc))
