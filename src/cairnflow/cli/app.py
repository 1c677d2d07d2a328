"""``main``: parse, run the command, and turn what it raised into one line and an exit code."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from cairnflow.cli.output import Output
from cairnflow.cli.parser import EXIT_OK, EXIT_USAGE, ParseError, build_parser, exit_code_for

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    stdout, stderr = sys.stdout, sys.stderr
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except ParseError as exc:
        stderr.write(exc.usage)
        stderr.write(f"{exc.prog}: error: {exc}\n")
        return EXIT_USAGE
    except SystemExit as exc:  # --help and --version
        return exc.code if isinstance(exc.code, int) else EXIT_OK
    out = Output(stdout, stderr, as_json=args.json)
    handler: Callable[[argparse.Namespace, Output], int] = args.handler
    try:
        return handler(args, out)
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
    except (Exception, KeyboardInterrupt) as exc:
        mapped = exit_code_for(exc)
        if mapped is None:
            raise
        code, hint = mapped
        message = "interrupted" if isinstance(exc, KeyboardInterrupt) else f"{exc}{hint}"
        first = " ".join(message.split())  # one line, whatever the error said
        stderr.write(f"cairnflow {args.command}: error: {first}\n")
        return code
