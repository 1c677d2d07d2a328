"""One operating-system process per invocation: the handler never shares memory with the runner.

:class:`SubprocessRunner` is a :class:`~cairnflow.aws_durable.LocalRunner`
whose invocations each run in a fresh Python process
(``python -m cairnflow.aws_durable.processes URL MODULE:HANDLER ARN``), the
way Lambda runs each invocation in a sandbox that may be gone by the next.
The child opens the store by URL, replays the execution from its records,
runs the handler once, and prints its output (one JSON line). A child that
dies (killed, out of memory, a crash in native code) is an invocation that
failed: the runner invokes again, and the log's fencing keeps whatever the
dead child recorded.

The store is opened as the command line opens it (``CAIRNFLOW_ENCRYPTION_KEYS``
for the cipher), so the child needs only the URL and the handler's name.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import subprocess
import sys
from collections.abc import Callable, MutableMapping
from typing import Any

from cairnflow.core.errors import InvalidArgumentError, MisuseError
from cairnflow.core.log import CheckpointLog

from .client import CairnflowDurableClient
from .runner import Handler, LocalRunner

__all__ = ["SubprocessRunner", "load_handler", "main"]


def load_handler(ref: str) -> Handler:
    """The handler named ``"package.module:attribute"`` (the working directory is importable)."""
    module_name, colon, attribute = ref.partition(":")
    if not colon or not module_name or not attribute:
        raise InvalidArgumentError(
            f"handler {ref!r} must be MODULE:ATTRIBUTE, e.g. 'orders.handlers:handler'"
        )
    if "" not in sys.path:
        sys.path.insert(0, "")  # like `python -m`: modules in the working directory import
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise InvalidArgumentError(f"handler {ref!r}: cannot import {module_name!r} ({exc})") from None
    handler = getattr(module, attribute, None)
    if not callable(handler):
        raise InvalidArgumentError(f"handler {ref!r}: {module_name!r} has no callable {attribute!r}")
    result: Handler = handler
    return result


class SubprocessRunner(LocalRunner):
    """A :class:`LocalRunner` that runs every invocation in a child process.

    ``handler_ref`` is ``"module:attribute"`` (importable in the child, whose
    working directory is this process's); ``store_url`` the store's URL with
    its prefix, as ``cairnflow`` commands take it. ``env`` adds to the child's
    environment. ``function`` defaults to the attribute's name.
    ``child_module`` is the module the child runs with ``python -m`` (one
    that calls :func:`main`, e.g. to wrap the store for fault injection).
    """

    def __init__(
        self,
        handler_ref: str,
        client: CairnflowDurableClient,
        store_url: str,
        *,
        python: str = sys.executable,
        env: MutableMapping[str, str] | None = None,
        invocation_timeout: float | None = 900.0,
        child_module: str = "cairnflow.aws_durable.processes",
        **options: Any,
    ) -> None:
        if options.get("json_events"):
            raise MisuseError(
                "SubprocessRunner passes the client in the invocation input; json_events is not used"
            )
        options.setdefault("function", handler_ref.rpartition(":")[2])
        super().__init__(load_handler(handler_ref), client, **options)
        self.handler_ref = handler_ref
        self.store_url = store_url
        self.python = python
        self.env = dict(env or {})
        self.invocation_timeout = invocation_timeout
        self.child_module = child_module
        self.children: list[int] = []
        """The process ids of the invocations run so far (the tests kill them)."""

    def invoke(self, arn: str) -> MutableMapping[str, Any]:
        """One invocation in a child process; a child that died is a ``RETRY``."""
        command = [
            self.python,
            "-m",
            self.child_module,
            self.store_url,
            self.handler_ref,
            arn,
        ]
        command += ["--function", self.function]
        try:
            proc = subprocess.Popen(
                command,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env={**os.environ, **self.env},
            )
            self.children.append(proc.pid)
            stdout, stderr = proc.communicate(timeout=self.invocation_timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            stdout, stderr = "", "invocation timed out"
        # The child wrote records this process has not seen: read the newest state again.
        self.client.describe(arn)
        lines = stdout.strip().splitlines()
        if proc.returncode != 0 or not lines:
            detail = (stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
            return {"Status": "RETRY", "Error": {"ErrorType": "Invocation.Died", "ErrorMessage": detail}}
        output: MutableMapping[str, Any] = json.loads(lines[-1])
        return output


def main(
    argv: list[str] | None = None, *, wrap: Callable[[CheckpointLog], CheckpointLog] | None = None
) -> int:
    """The child: one invocation of ``HANDLER`` for execution ``ARN`` in the store at ``URL``.

    ``wrap`` replaces the opened saver (a test wraps its store to count or fail requests).
    """
    parser = argparse.ArgumentParser(prog="python -m cairnflow.aws_durable.processes")
    parser.add_argument("url")
    parser.add_argument("handler", help="MODULE:ATTRIBUTE")
    parser.add_argument("arn")
    parser.add_argument("--function", default=None)
    args = parser.parse_args(argv)
    from cairnflow.cli.commands import open_log  # the store as `cairnflow` commands open it

    saver = open_log(args.url)
    client = CairnflowDurableClient(saver if wrap is None else wrap(saver))
    runner = LocalRunner(load_handler(args.handler), client, function=args.function)
    output = runner.invoke(args.arn)
    sys.stdout.write(json.dumps(dict(output), default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
