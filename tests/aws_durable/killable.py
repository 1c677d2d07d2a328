"""A runner process that SIGKILLs itself at a chosen store request, for the kill-and-restart test.

    python -m tests.aws_durable.killable URL [--crash-at K --crash-side before|after]

Drives every unfinished execution in the store (``tests.aws_durable.flows:chain``)
with :class:`~cairnflow.aws_durable.LocalRunner`, its store wrapped in
:class:`tests.workloads.crashpoints.CrashStore`: with ``--crash-at K`` the
process dies (SIGKILL) just before or just after its store request K.
"""

from __future__ import annotations

import argparse
import sys

from cairnflow.aws_durable import CairnflowDurableClient, LocalRunner
from cairnflow.core.log import CheckpointLog
from cairnflow.savers import open_saver
from tests.aws_durable import flows
from tests.workloads.crashpoints import CrashStore


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.aws_durable.killable")
    parser.add_argument("url")
    parser.add_argument("--crash-at", type=int, default=None)
    parser.add_argument("--crash-side", choices=["before", "after"], default="after")
    args = parser.parse_args(argv)
    saver = open_saver(args.url)
    assert isinstance(saver, CheckpointLog)
    store = CrashStore(saver.store, args.crash_at, args.crash_side)
    client = CairnflowDurableClient(CheckpointLog(store, prefix=saver.prefix))
    runner = LocalRunner(flows.chain, client, function="chain")
    for arn in sorted(client.log.threads()):
        if not client.describe(arn).done:
            runner.drive(arn)
    print(f"DONE requests={len(store.ops)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
