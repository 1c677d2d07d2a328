"""``cairnflow durable``: AWS durable-function executions on your own store, from the command line.

::

    cairnflow durable start    URL MODULE:HANDLER [--input JSON] [--name N] [--timeout S] [--subprocess]
    cairnflow durable resume   URL MODULE:HANDLER (ARN ... | --all) [--subprocess]
    cairnflow durable list     URL
    cairnflow durable status   URL ARN
    cairnflow durable history  URL ARN
    cairnflow durable callback URL CALLBACK_ID (--success [VALUE] | --failure MESSAGE | --heartbeat)
    cairnflow durable stop     URL ARN [--reason MESSAGE]
    cairnflow durable delete   URL ARN
    cairnflow durable prune    URL --older-than AGE

``start`` and ``resume`` play the Lambda service in this process: they invoke
the ``@durable_execution`` handler (in this process, or one child process per
invocation with ``--subprocess``) until the execution ends or waits for a
callback. Exit codes follow :data:`cairnflow.cli.parser.EXIT_CODES` (2 bad
arguments or callback id, 3 store error, 4 no such execution); ``start``,
``resume`` and ``status`` also exit 1 when an execution ended other than
``SUCCEEDED`` (failed, timed out, stopped).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from cairnflow.cli.commands import EXIT_OK, EXIT_PROBLEMS, open_log
from cairnflow.cli.output import Output
from cairnflow.core.errors import InvalidArgumentError

__all__ = ["add_durable"]

Sub = Any


def add_durable(sub: Sub, common: argparse.ArgumentParser) -> None:
    """Register ``cairnflow durable`` and its subcommands."""
    # --json belongs to the actions: a value given on the group would be reset by theirs.
    p = sub.add_parser("durable", help="run and operate AWS durable-function executions (aws-durable extra)")
    cmds = p.add_subparsers(dest="durable_command", metavar="ACTION", parser_class=type(p))
    cmds.required = True

    start = cmds.add_parser("start", parents=[common], help="start an execution and drive it here")
    _store_and_handler(start)
    start.add_argument("--input", default="null", help="the event, as JSON (default null)")
    start.add_argument("--name", default=None, help="the execution's name")
    start.add_argument("--timeout", type=float, default=None, help="execution timeout in seconds")
    start.add_argument("--no-drive", action="store_true", help="only create it (resume drives it)")
    start.set_defaults(handler=_start)

    resume = cmds.add_parser(
        "resume", parents=[common], help="drive executions on (after a callback, a crash)"
    )
    _store_and_handler(resume)
    resume.add_argument("arns", nargs="*", metavar="ARN")
    resume.add_argument("--all", action="store_true", help="every unfinished execution of the handler")
    resume.set_defaults(handler=_resume)

    listing = cmds.add_parser("list", parents=[common], help="executions in the store, with status")
    listing.add_argument("url")
    listing.set_defaults(handler=_list)

    for name, what, handler in (
        ("status", "where an execution stands: status, result, waiting callbacks", _status),
        ("history", "every record of an execution: who changed which operations, when", _history),
    ):
        q = cmds.add_parser(name, parents=[common], help=what)
        q.add_argument("url")
        q.add_argument("arn")
        q.set_defaults(handler=handler)

    cb = cmds.add_parser("callback", parents=[common], help="complete, fail or heartbeat a callback")
    cb.add_argument("url")
    cb.add_argument("callback_id")
    which = cb.add_mutually_exclusive_group(required=True)
    which.add_argument("--success", nargs="?", const="", default=None, metavar="VALUE")
    which.add_argument("--failure", default=None, metavar="MESSAGE")
    which.add_argument("--heartbeat", action="store_true")
    cb.add_argument("--error-type", default=None, help="with --failure: the error's type")
    cb.set_defaults(handler=_callback)

    delete = cmds.add_parser("delete", parents=[common], help="delete a finished execution and its values")
    delete.add_argument("url")
    delete.add_argument("arn")
    delete.set_defaults(handler=_delete)

    prune = cmds.add_parser("prune", parents=[common], help="delete finished executions by age (retention)")
    prune.add_argument("url")
    prune.add_argument(
        "--older-than", required=True, type=duration, metavar="AGE", help="e.g. 30d, 12h, 90m, 3600"
    )
    prune.set_defaults(handler=_prune)

    stop = cmds.add_parser("stop", parents=[common], help="stop an execution (STOPPED)")
    stop.add_argument("url")
    stop.add_argument("arn")
    stop.add_argument("--reason", default=None, help="recorded as the execution's error message")
    stop.set_defaults(handler=_stop)


def duration(text: str) -> float:
    """``30d``, ``12h``, ``90m``, ``3600``: seconds (as ``cairnflow prune`` reads them)."""
    from cairnflow import ops

    try:
        return ops.parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _store_and_handler(p: argparse.ArgumentParser) -> None:
    p.add_argument("url")
    p.add_argument("handler_ref", metavar="MODULE:HANDLER", help="the @durable_execution handler")
    p.add_argument("--subprocess", action="store_true", help="one child process per invocation")


def _client(url: str) -> Any:
    from cairnflow.aws_durable import CairnflowDurableClient  # the extra loads only when asked for

    return CairnflowDurableClient(open_log(url))


def _runner(args: argparse.Namespace, client: Any, timeout: float | None = None) -> Any:
    from cairnflow.aws_durable import LocalRunner
    from cairnflow.aws_durable.processes import SubprocessRunner, load_handler

    if args.subprocess:
        return SubprocessRunner(args.handler_ref, client, args.url, execution_timeout=timeout)
    function = args.handler_ref.rpartition(":")[2]
    return LocalRunner(load_handler(args.handler_ref), client, function=function, execution_timeout=timeout)


def _report(out: Output, client: Any, arn: str) -> int:
    view = client.describe(arn)
    callbacks = [
        op["CallbackDetails"]["CallbackId"]
        for op in view.operations.values()
        if op["Type"] == "CALLBACK" and op["Status"] == "STARTED" and not view.done
    ]
    due = None if view.done else client.next_due(arn)
    doc = {
        "arn": arn,
        "status": view.status,
        "result": None if view.result is None else _parsed(view.result),
        "error": view.error,
        "waiting_callbacks": callbacks,
        "next_due": due,
        "operations": len(view.operations),
    }
    if out.as_json:
        out.json(doc)
    else:
        out.line(f"{arn}  {view.status}")
        if view.result is not None:
            out.line(f"  result    {view.result}")
        if view.error:
            out.line(f"  error     {json.dumps(view.error)}")
        for callback_id in callbacks:
            out.line(f"  callback  {callback_id}")
        if due is not None:
            out.line(f"  next due  {due:.3f} (epoch seconds)")
    return EXIT_PROBLEMS if view.done and view.status != "SUCCEEDED" else EXIT_OK


def _parsed(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _start(args: argparse.Namespace, out: Output) -> int:
    try:
        event = json.loads(args.input)
    except ValueError as exc:
        raise InvalidArgumentError(f"--input is not JSON ({exc}): {args.input[:80]!r}") from None
    client = _client(args.url)
    runner = _runner(args, client, args.timeout)
    arn = runner.start(event, name=args.name)
    if not args.no_drive:
        runner.drive(arn)
    return _report(out, client, arn)


def _resume(args: argparse.Namespace, out: Output) -> int:
    if bool(args.arns) == bool(args.all):
        raise InvalidArgumentError("name the executions to resume, or pass --all (not both)")
    client = _client(args.url)
    runner = _runner(args, client)
    arns = list(args.arns) or [arn for arn in client.log.threads() if _of(arn, runner.function)]
    code = EXIT_OK
    for arn in arns:
        if not client.describe(arn).done:
            runner.drive(arn)
        code = max(code, _report(out, client, arn))
    return code


def _of(arn: str, function: str) -> bool:
    return f":function:{function}/" in arn


def _list(args: argparse.Namespace, out: Output) -> int:
    client = _client(args.url)
    rows = [[arn, client.describe(arn).status] for arn in client.log.threads()]
    if out.as_json:
        out.json([{"arn": arn, "status": status} for arn, status in rows])
    else:
        out.table(["ARN", "STATUS"], rows)
    return EXIT_OK


def _status(args: argparse.Namespace, out: Output) -> int:
    return _report(out, _client(args.url), args.arn)


def _history(args: argparse.Namespace, out: Output) -> int:
    records = _client(args.url).records(args.arn)
    if out.as_json:
        out.json(records)
        return EXIT_OK
    for n, record in enumerate(records):
        changes = ", ".join(f"{u['Type']} {u['Action']} {u.get('Name') or u['Id']}" for u in record["u"])
        out.line(f"{n:>4}  {record['t']}  {record['by']:<7}  {changes or '(invocation begins)'}")
    return EXIT_OK


def _callback(args: argparse.Namespace, out: Output) -> int:
    client = _client(args.url)
    if args.heartbeat:
        client.send_callback_heartbeat(args.callback_id)
        what = "heartbeat recorded"
    elif args.failure is not None:
        client.send_callback_failure(args.callback_id, args.failure, args.error_type)
        what = "callback failed"
    else:
        client.send_callback_success(args.callback_id, args.success or None)
        what = "callback completed"
    if out.as_json:
        out.json({"callback_id": args.callback_id, "done": what})
    else:
        out.line(f"{what}; `cairnflow durable resume` (or the scheduler) continues the execution")
    return EXIT_OK


def _stop(args: argparse.Namespace, out: Output) -> int:
    client = _client(args.url)
    client.stop_execution(args.arn, {"ErrorMessage": args.reason} if args.reason else None)
    _report(out, client, args.arn)
    return EXIT_OK


def _delete(args: argparse.Namespace, out: Output) -> int:
    from cairnflow.aws_durable.retention import delete_execution

    payloads = delete_execution(_client(args.url), args.arn)
    if out.as_json:
        out.json({"arn": args.arn, "deleted": True, "payload_objects": payloads})
    else:
        out.line(f"deleted {args.arn} ({payloads} large value object(s))")
    return EXIT_OK


def _prune(args: argparse.Namespace, out: Output) -> int:
    from cairnflow.aws_durable.retention import prune_executions

    deleted = prune_executions(_client(args.url), older_than=args.older_than)
    if out.as_json:
        out.json({"deleted": deleted})
    else:
        for arn in deleted:
            out.line(f"deleted {arn}")
        out.line(f"{len(deleted)} finished execution(s) deleted")
    return EXIT_OK
