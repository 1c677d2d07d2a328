"""The commands: each takes the parsed arguments and an :class:`Output`, and returns an exit code.

Errors are raised, not printed: :func:`cairnflow.cli.app.main` turns them
into one line and an exit code through :data:`cairnflow.cli.parser.EXIT_CODES`.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Sequence

from cairnflow import ops
from cairnflow.cli import graph_views
from cairnflow.cli.output import Output, Progress, ago, isatty, pretty, short, status_style
from cairnflow.core.errors import InvalidArgumentError, MissingDependencyError, UsageError
from cairnflow.core.log import CheckpointLog
from cairnflow.savers import open_saver

__all__ = [
    "EXIT_OK",
    "EXIT_PROBLEMS",
    "cmd_copy",
    "cmd_delete",
    "cmd_history",
    "cmd_prune",
    "cmd_show",
    "cmd_threads",
    "cmd_verify",
    "open_log",
    "statuses",
]

EXIT_OK = 0
EXIT_PROBLEMS = 1
_KEYS_VAR = "CAIRNFLOW_ENCRYPTION_KEYS"


def open_log(url: str, *, create: bool = False) -> CheckpointLog:
    """Open the store at ``url`` for a command; with ``CAIRNFLOW_ENCRYPTION_KEYS`` set, its cipher too.

    A ``file://`` directory must exist unless ``create``, so that a mistyped
    path is an error rather than a new, empty store.
    """
    cipher = None
    if os.environ.get(_KEYS_VAR):
        try:
            from cairnflow.encryption import AesGcmCipher
        except ImportError as exc:
            raise MissingDependencyError(
                f"{_KEYS_VAR} is set but the cryptography package is missing: "
                "pip install 'cairnflow[encryption]'"
            ) from exc
        try:
            cipher = AesGcmCipher.from_env()
        except ValueError as exc:
            raise InvalidArgumentError(str(exc)) from None
    return open_saver(url, create=create, cipher=cipher)


def statuses(values: list[str] | None) -> set[str] | None:
    """``--status`` values (repeated or comma-separated, or ``all``) as a set; None if not given."""
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
                raise InvalidArgumentError(f"unknown status {part!r}; known: {', '.join(ops.STATUSES)}, all")
    return out


def cmd_threads(args: argparse.Namespace, out: Output) -> int:
    saver = open_log(args.url)
    now = time.time()
    with Progress(out, "threads", unit="threads") as progress:
        found = ops.list_threads(
            saver,
            statuses=statuses(args.status),
            workflow=args.workflow,
            updated_before=None if args.older_than is None else now - args.older_than,
            updated_after=None if args.newer_than is None else now - args.newer_than,
            limit=args.limit,
            sort=args.sort,
            progress=lambda n: progress.update(n),
            layouts=None if args.layout is None else [args.layout],
            details=not args.brief,
        )
    if out.as_json:
        out.json({"store": args.url, "count": len(found), "threads": [t.to_dict() for t in found]})
    elif found:
        rows = []
        for t in found:
            detail = t.error or (f"waiting: {short(t.waiting_for)}" if t.status == "interrupted" else "")
            steps = "-" if t.steps is None else str(t.steps)
            updated = ago(t.updated_at, now)
            checkpoint = t.checkpoint_id or "-"
            rows.append(
                [t.thread_id, t.layout, t.status, t.workflow or "-", steps, checkpoint, updated, detail]
            )
        out.table(
            ["THREAD", "LAYOUT", "STATUS", "WORKFLOW", "STEPS", "CHECKPOINT", "UPDATED", "DETAIL"],
            rows,
            {2: status_style},
        )
    if not found:
        if not out.as_json:
            out.note("no threads match")
        return EXIT_PROBLEMS
    return EXIT_OK


def cmd_history(args: argparse.Namespace, out: Output) -> int:
    saver = open_log(args.url)
    if ops.thread_layout(saver, args.thread, args.layout) == "langgraph":
        return graph_views.history(args.thread, out, ops.graph_history(saver, args.thread, limit=args.limit))
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
    out.table(["CHECKPOINT", "KIND", "STATUS", "WRITTEN", "RECORDS", "RECORDED"], rows, {2: status_style})
    return EXIT_OK


def cmd_show(args: argparse.Namespace, out: Output) -> int:
    saver = open_log(args.url)
    if ops.thread_layout(saver, args.thread, args.layout) == "langgraph":
        return graph_views.show(out, ops.graph_state(saver, args.thread, args.checkpoint))
    state = ops.show_state(saver, args.thread, args.checkpoint)
    if out.as_json:
        out.json(state.to_dict())
        return EXIT_OK
    pad = " " * 13

    def field(name: str, value: str) -> None:
        out.line(f"{name:<12} {value}")

    field("thread", state.thread_id)
    field("workflow", state.workflow or "-")
    field("status", out.paint(state.status, status_style(state.status)))
    latest = "latest" if state.is_latest else f"latest is {state.latest_checkpoint_id}"
    field("checkpoint", f"{state.checkpoint_id} ({state.kind}, {latest})")
    field("written", f"{ago(state.created_at)} ({ops.iso_time(state.created_at)})")
    field("records", str(state.total_records))
    if not state.values_readable:
        out.line("")
        out.line(f"values not shown: {state.unreadable}")
        return EXIT_OK
    field("input", pretty(state.input, pad))
    if state.interrupt is not None:
        field("waiting for", f"interrupt {state.interrupt['id']}: {pretty(state.interrupt['value'], pad)}")
    if state.status == "completed":
        field("result", pretty(state.result, pad))
    if state.error is not None:
        field("error", out.paint(state.error, "red"))
    if state.steps:
        out.line("")
        rows = []
        for s in state.steps:
            if s.type == "interrupt":
                shown = short(s.value) + (f" -> answer {short(s.answer)}" if s.status == "answered" else "")
            else:
                shown = (s.error or "") if s.status == "failed" else short(s.value)
            rows.append([str(s.pos), s.type, s.name or "-", s.status, shown or ""])
        styles: dict[int, Callable[[str], str | None]] = {
            3: lambda c: {"done": "green", "failed": "red", "waiting": "yellow"}.get(c)
        }
        out.table(["POS", "TYPE", "NAME", "STATUS", "VALUE"], rows, styles)
    return EXIT_OK


def cmd_delete(args: argparse.Namespace, out: Output) -> int:
    saver = open_log(args.url)
    plan = ops.delete_thread(saver, args.thread, dry_run=True, purge=args.purge, layout=args.layout)
    if args.dry_run:
        _print_delete(out, plan)
        return EXIT_OK
    if not args.yes:
        if not isatty(sys.stdin):
            raise UsageError("refusing to delete without --yes (stdin is not a terminal)")
        out.stderr.write(
            f"delete thread {plan.thread_id!r} ({plan.status}, {len(plan.deleted)} checkpoint(s))? [y/N] "
        )
        out.stderr.flush()
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            out.note("not deleted")
            return EXIT_PROBLEMS
    with Progress(out, "delete", total=len(plan.deleted)) as progress:
        result = ops.delete_thread(saver, args.thread, purge=args.purge, layout=plan.layout)
        progress.advance(len(result.deleted))
    _print_delete(out, result)
    return EXIT_OK


def _print_delete(out: Output, result: ops.DeleteResult) -> None:
    if out.as_json:
        out.json(result.to_dict())
        return
    verb = "would delete" if result.dry_run else "deleted"
    ids = _ids(result.deleted)
    where = f" ({ids})" if ids else ""
    if result.purged:
        tail = "; the tombstone is removed too (purge)"
    elif result.layout == "langgraph":
        tail = "; a tombstone in each namespace fences stale writers"
        where = ""
    else:
        tail = f"; tombstone at checkpoint {result.tombstone} fences stale writers"
    count = len(result.deleted)
    kind = "LangGraph thread" if result.layout == "langgraph" else "thread"
    out.line(f"{verb} {kind} {result.thread_id!r} ({result.status}): {count} checkpoint(s){where}{tail}")


def _ids(ids: Sequence[str]) -> str:
    if not ids:
        return ""
    if not all(i.isdigit() for i in ids):
        return ", ".join(ids)
    numbers = [int(i) for i in ids]
    if numbers == list(range(numbers[0], numbers[0] + len(numbers))) and len(numbers) > 2:
        return f"{numbers[0]}..{numbers[-1]}"
    return ", ".join(ids)


def cmd_prune(args: argparse.Namespace, out: Output) -> int:
    saver = open_log(args.url)
    with Progress(out, "prune", unit="threads") as progress:
        result = ops.prune(
            saver,
            keep_last=args.keep_last,
            older_than=args.older_than,
            statuses=statuses(args.status),
            dry_run=args.dry_run,
            purge=args.purge,
            progress=lambda n, d: progress.update(n, f"{d} checkpoints"),
            total=progress.set_total,
        )
    if out.as_json:
        out.json(result.to_dict())
    else:
        now = time.time()
        if result.threads:
            rows = [
                [
                    t.thread_id,
                    t.layout,
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
                ["THREAD", "LAYOUT", "STATUS", "UPDATED", "ACTION", "CHECKPOINTS", "KEEP-FROM", "NOTE"],
                rows,
                {2: status_style, 4: lambda c: "red" if c == "skip" else None},
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
    src = open_log(args.src)
    dst = open_log(args.dst, create=True)
    with Progress(out, "copy", unit="threads") as progress:
        result = ops.copy_threads(
            src,
            dst,
            thread_id=args.thread,
            progress=lambda n, c: progress.update(n, f"{c} checkpoints"),
            total=progress.set_total,
            dry_run=args.dry_run,
            layout=args.layout,
        )
    if out.as_json:
        out.json(result.to_dict())
    else:
        if result.threads:
            rows = [
                [t.thread_id, t.layout, t.result, str(t.copied), str(t.skipped), t.head or "-", t.error or ""]
                for t in result.threads
            ]
            out.table(
                ["THREAD", "LAYOUT", "RESULT", "COPIED", "SKIPPED", "HEAD", "ERROR"],
                rows,
                {2: lambda c: "red" if c in ("conflict", "corrupt") else "green"},
            )
        summary = result.to_dict()
        verb = "would copy" if result.dry_run else "copied"
        out.line(
            f"{verb} {summary['checkpoints_copied']} checkpoint(s), skipped {summary['checkpoints_skipped']} "
            f"already there, {len(result.threads)} thread(s), {summary['problems']} problem(s)"
        )
    if not result.threads:
        out.note(f"cairnflow copy: nothing copied: no threads under {args.src}")
        return EXIT_PROBLEMS
    if result.problems:
        failed = ", ".join(repr(t.thread_id) for t in result.problems)
        out.note(
            f"cairnflow copy: the copy is partial: {len(result.problems)} thread(s) not copied ({failed})"
        )
        return EXIT_PROBLEMS
    return EXIT_OK


def cmd_reindex(args: argparse.Namespace, out: Output) -> int:
    saver = open_log(args.url)
    with Progress(out, "reindex", unit="threads") as progress:
        threads, removed = ops.reindex(saver, progress=lambda n: progress.update(n))
    if out.as_json:
        out.json({"store": args.url, "threads": threads, "removed": removed})
    else:
        out.line(
            f"indexed {threads} thread(s); removed {removed} superseded entr{'y' if removed == 1 else 'ies'}"
        )
    return EXIT_OK


def cmd_verify(args: argparse.Namespace, out: Output) -> int:
    saver = open_log(args.url)
    with Progress(out, "verify", unit="objects") as progress:
        report = ops.verify(
            saver,
            args.thread,
            progress=lambda o, t: progress.update(o, f"{t} threads"),
            total=progress.set_total,
            layout=args.layout,
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


def cmd_worker(args: argparse.Namespace, out: Output) -> int:
    from cairnflow.driver.worker import main as serve

    result = serve(args.url, args.modules, interval=args.interval, lease=args.lease, once=args.once)
    if args.once:
        summary = {"due": result.due, "handled": result.handled, "skipped": result.skipped}
        if out.as_json:
            out.json(summary)
        else:
            out.line(
                f"handled {result.handled} of {result.due} due wake-up(s); {result.skipped} held by others"
            )
    return EXIT_OK
