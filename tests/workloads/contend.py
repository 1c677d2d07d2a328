"""A worker that keeps driving one thread to completion while others do the same, under faults.

    python -m tests.workloads.contend --url URL --thread ID --ledger PATH
        [--faults SEED] [--rate 0.1] [--task-ms MS] [--ready PATH --go PATH]

It runs the 10-task ``ten`` workflow of :mod:`tests.workloads.crashpoints`
(``run()`` if the thread does not exist, else ``resume()``) in a loop: on
``ConflictError`` (another worker advanced the thread) or a store error that
survived every retry it simply starts over from the thread's current state,
until the thread is completed. With ``--faults`` the saver's store is wrapped in
:class:`tests.reliability.faults.FaultyStore` (transient errors before and after
requests, writes that land while their answer is lost).

It prints ``OUTCOME {json}`` with the result, the number of conflicts and
escaped store errors it met, and ``wrote``: the sequence number of every
checkpoint this process appended successfully (as ``saver.append`` returned
it). Across all workers of a thread, each checkpoint of the final history must
have been written by exactly one of them.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from cairnflow.core.errors import ConflictError, TransientStoreError
from tests.workloads import crashpoints
from tests.workloads.crashpoints import ten
from tests.workloads.pipeline import wait_for

MAX_ATTEMPTS = 200


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.workloads.contend")
    parser.add_argument("--url", required=True)
    parser.add_argument("--thread", required=True)
    parser.add_argument("--ledger", required=True)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--faults", type=int, default=None, help="seed of the store-seam fault injection")
    parser.add_argument("--rate", type=float, default=0.10)
    parser.add_argument("--task-ms", type=float, default=0.0)
    parser.add_argument("--ready", default=None, help="create this file, then wait for --go to exist")
    parser.add_argument("--go", default=None)
    args = parser.parse_args(argv)

    from cairnflow.savers import open_saver

    crashpoints.CONFIG.ledger = args.ledger
    crashpoints.CONFIG.task_ms = args.task_ms
    saver = open_saver(args.url)
    faulty = None
    if args.faults is not None:
        from tests.reliability.faults import FaultyStore

        faulty = FaultyStore(saver.store, args.faults, rate=args.rate)
        saver.store = faulty
    wrote: list[int] = []
    append = saver.append

    def recording_append(*a: Any, **k: Any) -> Any:
        head = append(*a, **k)
        wrote.append(head.seq)
        return head

    saver.append = recording_append  # type: ignore[method-assign]

    if args.ready:
        Path(args.ready).touch()
        wait_for(Path(args.go or "").exists, "go file")

    conflicts = escaped = 0
    result: Any = None
    for _ in range(MAX_ATTEMPTS):
        try:
            head = saver.latest(args.thread)
            if head is None:
                run = ten.run(args.seed, thread_id=args.thread, saver=saver)
            else:
                run = ten.resume(thread_id=args.thread, saver=saver)
        except ConflictError:
            conflicts += 1
            continue
        except TransientStoreError:
            escaped += 1
            time.sleep(0.01)  # back off a little before looking at the thread again
            continue
        result = run.result
        break
    else:
        print(f"OUTCOME {json.dumps({'status': 'gave-up', 'conflicts': conflicts})}", flush=True)
        return 1
    outcome = {
        "status": "completed",
        "result": result,
        "conflicts": conflicts,
        "escaped": escaped,
        "wrote": wrote,
        "faults": faulty.injected if faulty is not None else 0,
    }
    print(f"OUTCOME {json.dumps(outcome, sort_keys=True)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
