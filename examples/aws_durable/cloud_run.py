"""``order.handler`` on Google Cloud Run with its state in GCS, continued by Cloud Tasks.

Settings: ``CAIRNFLOW_URL`` (``gs://bucket/prefix``), ``CAIRNFLOW_TASKS_QUEUE``
(``projects/P/locations/L/queues/Q``), ``CAIRNFLOW_WAKE_URL`` (this service's
``/wake`` URL). Serve ``cloud_run:app`` with any WSGI server (gunicorn).

* ``POST /start`` (body: the input) -> ``{"arn": ...}``;
* ``POST /callback`` (``{"callback_id", "result"}``): the approver's answer;
* ``POST /status`` (``{"arn"}``);
* ``POST /wake``: Cloud Tasks delivering a wake-up (one invocation of ``order.handler``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from typing import Any

import order

from cairnflow.aws_durable import CairnflowDurableClient, DurableDriver
from cairnflow.driver.gcp import CloudTasksWakeScheduler, wsgi_app
from cairnflow.savers import open_saver


def _tasks_client() -> Any:
    """Cloud Tasks' client; ``CLOUD_TASKS_EMULATOR_HOST`` points it at gcloud-tasks-emulator (tests)."""
    emulator = os.environ.get("CLOUD_TASKS_EMULATOR_HOST")
    if not emulator:
        return None  # the scheduler makes the default client
    import grpc  # type: ignore[import-untyped]
    from google.cloud.tasks_v2 import CloudTasksClient
    from google.cloud.tasks_v2.services.cloud_tasks.transports import CloudTasksGrpcTransport

    return CloudTasksClient(transport=CloudTasksGrpcTransport(channel=grpc.insecure_channel(emulator)))


_client = CairnflowDurableClient(open_saver(os.environ["CAIRNFLOW_URL"]))  # type: ignore[arg-type]
_queue, _url = os.environ["CAIRNFLOW_TASKS_QUEUE"], os.environ["CAIRNFLOW_WAKE_URL"]
driver = DurableDriver(
    _client, CloudTasksWakeScheduler(_queue, _url, client=_tasks_client()), {"order": order.handler}
)
_wake = wsgi_app(driver)


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    path = environ.get("PATH_INFO", "")
    if path == "/wake":
        return _wake(environ, start_response)
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = json.loads(environ["wsgi.input"].read(length) or b"null")
    if path == "/start":
        answer: dict[str, Any] = {"arn": driver.start("order", body)}
    elif path == "/callback":
        driver.send_callback_success(body["callback_id"], body.get("result"))
        answer = {"ok": True}
    elif path == "/status":
        standing = driver.result(body["arn"])
        callbacks = list(driver.runner("order").callback_ids(body["arn"]))
        answer = {"status": standing.status, "result": standing.value, "callbacks": callbacks}
    else:
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"POST /start, /callback, /status or /wake\n"]
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(answer).encode()]
