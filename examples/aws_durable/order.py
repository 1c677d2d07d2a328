"""An order, written for AWS Lambda durable functions (``aws-durable-execution-sdk-python``).

Nothing here knows about cairnflow: this is the handler you would deploy to
AWS's managed durable functions. ``local.py``, ``lambda_function.py`` and
``cloud_run.py`` run this same file with its state in a local directory, in
S3, and in GCS.

The order: reserve the items (a step), wait ``hold_seconds`` before charging
(a durable wait: no process sleeps through it), ask a person to approve (a
callback: the id goes to whoever must answer), then charge (a step).
"""

from __future__ import annotations

from typing import Any

from aws_durable_execution_sdk_python import DurableContext, durable_execution
from aws_durable_execution_sdk_python.config import Duration


def reserve(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"reserved": [item["sku"] for item in items], "total": sum(i["price"] * i["qty"] for i in items)}


@durable_execution
def handler(event: dict[str, Any], context: DurableContext) -> dict[str, Any]:
    reservation = context.step(lambda _: reserve(event["items"]), name="reserve")
    context.wait(Duration.from_seconds(int(event.get("hold_seconds", 1))), name="hold")
    decision = context.wait_for_callback(
        lambda callback_id, _ctx: print(f"approve with callback id {callback_id}", flush=True),
        name="approval",
    )
    if decision != "approve":
        return {"order": event["order"], "status": "cancelled", "decision": decision}
    charged = context.step(lambda _: {"charged": reservation["total"]}, name="charge")
    return {"order": event["order"], "status": "charged", **charged}
