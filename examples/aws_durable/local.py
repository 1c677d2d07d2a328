"""Run ``order.handler`` on this machine, its state in a local directory.

    python local.py [STATE_DIR]

The runner plays the Lambda service in this process: it invokes the handler,
sleeps through the durable wait, and stops when the execution waits for the
approval callback; the callback is then sent as an approver would (here: at
once) and the execution driven to its end. ``cairnflow durable status
file://STATE_DIR ARN`` and ``cairnflow durable history ...`` show it afterwards.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import order

from cairnflow.aws_durable import CairnflowDurableClient, LocalRunner
from cairnflow.savers import open_saver

ORDER = {"order": "o-1001", "items": [{"sku": "tea", "price": 4, "qty": 3}], "hold_seconds": 1}


def main(state: str) -> dict[str, object]:
    Path(state).mkdir(parents=True, exist_ok=True)
    client = CairnflowDurableClient(open_saver(f"file://{Path(state).resolve()}"))  # type: ignore[arg-type]
    runner = LocalRunner(order.handler, client, function="order")
    waiting = runner.run(ORDER)  # reserve, the wait (slept through), then it asks for approval
    (callback_id,) = runner.callback_ids(waiting.arn)
    runner.send_callback_success(callback_id, "approve")  # what the approver's click would send
    done = runner.drive(waiting.arn)
    return {"arn": done.arn, "status": done.status, "result": done.value}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1] if len(sys.argv) > 1 else "state")))
