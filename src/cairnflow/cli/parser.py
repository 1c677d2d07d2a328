"""The command line: one registration function per subcommand, and the exit-code table.

Exit codes (:data:`EXIT_CODES` maps exception types to them, in one place):

====  ======================================================================
code  meaning
====  ======================================================================
0     ok
1     problems found (verify, copy conflicts, prune skips), nothing matched,
      or a delete was declined (returned by the command itself)
2     usage error or bad URL (:class:`UsageError` and its subclasses)
3     store, access or data error, or a missing SDK extra
4     thread or checkpoint not found
130   interrupted
====  ======================================================================

To add a subcommand, write ``add_NAME(sub, common)`` that registers it and
sets ``handler``, and append it to :data:`COMMANDS`.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from cairnflow import __version__, ops
from cairnflow.cli import commands
from cairnflow.cli.durable import add_durable
from cairnflow.core.errors import (
    CairnflowError,
    CorruptCheckpointError,
    MissingDependencyError,
    StoreError,
    ThreadNotFoundError,
    UsageError,
)

__all__ = [
    "COMMANDS",
    "EXIT_CODES",
    "EXIT_INTERRUPTED",
    "EXIT_NOT_FOUND",
    "EXIT_OK",
    "EXIT_PROBLEMS",
    "EXIT_STORE",
    "EXIT_USAGE",
    "ParseError",
    "build_parser",
    "exit_code_for",
]

EXIT_OK = commands.EXIT_OK
EXIT_PROBLEMS = commands.EXIT_PROBLEMS
EXIT_USAGE = 2
EXIT_STORE = 3
EXIT_NOT_FOUND = 4
EXIT_INTERRUPTED = 130

#: Exception type -> (exit code, hint appended to the message). The first entry the error is an
#: instance of wins, so the more specific types come first. Anything not listed is a bug and
#: propagates with its traceback.
EXIT_CODES: tuple[tuple[type[BaseException], int, str], ...] = (
    (UsageError, EXIT_USAGE, ""),  # InvalidArgumentError, InvalidURLError, InvalidThreadIdError, Misuse
    (ThreadNotFoundError, EXIT_NOT_FOUND, ""),
    (CorruptCheckpointError, EXIT_STORE, "; run `cairnflow verify` for a full report"),
    (MissingDependencyError, EXIT_STORE, ""),
    (StoreError, EXIT_STORE, ""),  # access, credentials, missing bucket, transient after retries
    (CairnflowError, EXIT_STORE, ""),  # any other data error (serialization, conflict, ...)
    (KeyboardInterrupt, EXIT_INTERRUPTED, ""),
)


def exit_code_for(exc: BaseException) -> tuple[int, str] | None:
    """(exit code, hint) for an error raised by a command, or None when it is not expected."""
    for kind, code, hint in EXIT_CODES:
        if isinstance(exc, kind):
            return code, hint
    return None


class ParseError(Exception):
    """The command line does not parse (exit code 2, with the usage)."""

    def __init__(self, usage: str, message: str, prog: str) -> None:
        super().__init__(message)
        self.usage = usage
        self.prog = prog


class _Parser(argparse.ArgumentParser):
    """argparse, but raising instead of exiting so that ``main`` returns the code."""

    def error(self, message: str) -> Any:
        raise ParseError(self.format_usage(), message, self.prog)


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text!r}")
    return value


def duration(text: str) -> float:
    try:
        return ops.parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


Sub = Any  # argparse's _SubParsersAction (private type)


def layout_option(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--layout", choices=ops.LAYOUTS, help=what)


def add_threads(sub: Sub, common: argparse.ArgumentParser) -> None:
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
    p.add_argument("--older-than", type=duration, metavar="DURATION", help="last update before (e.g. 7d)")
    p.add_argument("--newer-than", type=duration, metavar="DURATION", help="last update within (e.g. 1h)")
    p.add_argument(
        "--sort", choices=("id", "updated"), default="id", help="thread id (default) or newest first"
    )
    p.add_argument("--limit", type=positive_int, metavar="N", help="at most N threads")
    p.add_argument(
        "--brief",
        action="store_true",
        help="status as of each thread's last run stop, from the status index alone: "
        "no STEPS or DETAIL, a few requests for any number of threads",
    )
    layout_option(p, "only threads of this layout (default: both)")
    p.set_defaults(handler=commands.cmd_threads)


def add_history(sub: Sub, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("history", parents=[common], help="a thread's checkpoints, newest first")
    p.add_argument("url")
    p.add_argument("thread")
    p.add_argument("--limit", type=positive_int, metavar="N", help="only the newest N checkpoints")
    layout_option(p, "the thread's layout, when both layouts hold its id")
    p.set_defaults(handler=commands.cmd_history)


def add_show(sub: Sub, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("show", parents=[common], help="the state at a checkpoint (default: the latest)")
    p.add_argument("url")
    p.add_argument("thread")
    p.add_argument("checkpoint", nargs="?")
    layout_option(p, "the thread's layout, when both layouts hold its id")
    p.set_defaults(handler=commands.cmd_show)


def add_delete(sub: Sub, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("delete", parents=[common], help="delete a thread (a tombstone fences stale writers)")
    p.add_argument("url")
    p.add_argument("thread")
    p.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    p.add_argument("--dry-run", action="store_true", help="say what would be deleted; change nothing")
    p.add_argument("--purge", action="store_true", help="remove the tombstone too")
    layout_option(p, "the thread's layout, when both layouts hold its id")
    p.set_defaults(handler=commands.cmd_delete)


def add_prune(sub: Sub, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("prune", parents=[common], help="trim old checkpoints or delete stale threads")
    p.add_argument("url")
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument(
        "--keep-last",
        type=positive_int,
        metavar="N",
        help="keep each thread's newest N checkpoints (and their base)",
    )
    mode.add_argument(
        "--older-than", type=duration, metavar="DURATION", help="delete threads not updated for DURATION"
    )
    p.add_argument(
        "--status",
        action="append",
        metavar="S",
        help="only threads with these statuses (default: all with --keep-last, completed with --older-than)",
    )
    p.add_argument("--dry-run", action="store_true", help="say what would be deleted; change nothing")
    p.add_argument("--purge", action="store_true", help="with --older-than: remove tombstones too")
    p.set_defaults(handler=commands.cmd_prune)


def add_copy(sub: Sub, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("copy", parents=[common], help="copy threads with their history to another store")
    p.add_argument("src", metavar="SRC_URL")
    p.add_argument("dst", metavar="DST_URL")
    p.add_argument("--thread", metavar="T", help="only this thread")
    p.add_argument("--dry-run", action="store_true", help="say what would be copied; write nothing")
    layout_option(p, "only threads of this layout (default: both)")
    p.set_defaults(handler=commands.cmd_copy)


def add_verify(sub: Sub, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("verify", parents=[common], help="check checksums and linear histories")
    p.add_argument("url")
    p.add_argument("thread", nargs="?")
    layout_option(p, "the thread's layout, when both layouts hold its id")
    p.set_defaults(handler=commands.cmd_verify)


def add_worker(sub: Sub, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "worker", parents=[common], help="continue due runs (suspended, timers, dead processes)"
    )
    p.add_argument("url")
    p.add_argument(
        "--import",
        dest="modules",
        action="append",
        required=True,
        metavar="MODULE",
        help="a module defining workflows (repeatable)",
    )
    p.add_argument("--interval", type=float, default=1.0, help="seconds between idle polls (default 1)")
    p.add_argument("--lease", type=float, default=900.0, help="seconds before a silent run is presumed dead")
    p.add_argument("--once", action="store_true", help="handle what is due now, then exit")
    p.set_defaults(handler=commands.cmd_worker)


def add_ui(sub: Sub, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("ui", help="serve a local, read-only web view of the store (127.0.0.1:8470)")
    p.add_argument("url")
    p.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)"
    )
    p.add_argument("--port", type=int, default=8470, help="port (default 8470; 0 picks a free one)")
    p.set_defaults(handler=_run_ui, json=False)


def add_reindex(sub: Sub, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "reindex", parents=[common], help="build the status index that makes `threads` fast (old stores)"
    )
    p.add_argument("url")
    p.set_defaults(handler=commands.cmd_reindex)


def _run_ui(args: argparse.Namespace, out: Any) -> int:
    from cairnflow.ui import main as ui_main  # the web view loads only when asked for

    return ui_main([args.url, "--host", args.host, "--port", str(args.port)])


#: Every subcommand's registration function, in the order ``--help`` lists them.
COMMANDS: list[Callable[[Sub, argparse.ArgumentParser], None]] = [
    add_threads,
    add_history,
    add_show,
    add_delete,
    add_prune,
    add_copy,
    add_verify,
    add_reindex,
    add_worker,
    add_durable,
    add_ui,
]


def build_parser() -> argparse.ArgumentParser:
    """The ``cairnflow`` parser with every subcommand of :data:`COMMANDS`."""
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
    for register in COMMANDS:
        register(sub, common)
    return parser
