"""An invocation child (``cairnflow.aws_durable.processes``) that SIGKILLs itself once, at a chosen request.

``CAIRNFLOW_TEST_KILL_AT=K`` and ``CAIRNFLOW_TEST_KILL_ONCE=PATH``: the first
child (the one that creates PATH) dies right after its store request K
returned (a write has landed, its answer never reaches the code); later
children run normally.
"""

from __future__ import annotations

import os
import sys

from cairnflow.aws_durable.processes import main
from cairnflow.core.log import CheckpointLog
from tests.workloads.crashpoints import CrashStore


def wrap(saver: CheckpointLog) -> CheckpointLog:
    marker = os.environ["CAIRNFLOW_TEST_KILL_ONCE"]
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return saver  # not the first child
    store = CrashStore(saver.store, int(os.environ["CAIRNFLOW_TEST_KILL_AT"]), "after")
    return CheckpointLog(store, prefix=saver.prefix, serializer=saver.serializer, cipher=saver.cipher)


if __name__ == "__main__":
    sys.exit(main(wrap=wrap))
