"""Azure Functions (Python v2 programming model) for the document-approval workflow; state in Blob Storage.

    POST /api/approvals   body: a request of approval_flow.py, e.g. {"action": "start", ...}
    queue CAIRNFLOW_WAKE_QUEUE  wake-ups: continue suspended and waiting runs (``wake``)

The driver sends a Storage Queue message (hidden until due) whenever a run stops
before its end; the queue-triggered ``wake`` continues the run, so no client ever
has to. Without ``CAIRNFLOW_WAKE_QUEUE`` the wake-ups go to the store's due index,
for ``cairnflow worker URL --import approval_flow``.

A thin layer: the workflow and the request handling are in ``approval_flow.py``.
On the Functions host (``azure-functions`` installed) this module defines
``app = func.FunctionApp(...)`` with one HTTP route, and ``approvals`` takes a
``func.HttpRequest`` and returns a ``func.HttpResponse``. Without
``azure-functions`` (tests, scripts) it still imports, and ``approvals`` takes
any object with ``get_body()`` and returns a small stand-in response with the
same ``status_code``/``get_body()``/``mimetype``.

The saver (and its ``BlobServiceClient``) is built once per worker, at import.
Functions do not tell a request how long it has left; an HTTP-triggered
function must answer within 230 s (the front end's limit, whatever
``functionTimeout`` says), so the deadline is the request's arrival plus
``CAIRNFLOW_TIME_BUDGET_SECONDS`` (default 230). No task starts when less than
``CAIRNFLOW_RESERVE_SECONDS`` remain; the response then says ``"suspended"``.

Environment (app settings): ``CAIRNFLOW_URL`` (``az://container/prefix``) and
``AZURE_STORAGE_ACCOUNT_URL`` (managed identity, via azure-identity) or
``AZURE_STORAGE_CONNECTION_STRING``; ``CAIRNFLOW_WAKE_QUEUE`` (a queue name) and
``CAIRNFLOW_WAKE_QUEUE_CONNECTION`` (the storage account holding it: a connection
string, or ``CAIRNFLOW_WAKE_QUEUE_CONNECTION__queueServiceUri`` for managed identity,
the same setting the queue trigger reads). host.json sets ``messageEncoding`` to
``none``: the driver sends plain JSON.
"""

from __future__ import annotations

import importlib
import json
import os
import time
from typing import TYPE_CHECKING, Any, Protocol

import approval_flow

from cairnflow.core import CheckpointLog
from cairnflow.driver import DueIndex, WakeScheduler
from cairnflow.driver.azure import StorageQueueWakeScheduler, handle_message
from cairnflow.savers import open_saver

#: Azure's HTTP front end drops a request after 230 seconds.
DEFAULT_TIME_BUDGET = 230.0

try:
    func: Any = importlib.import_module("azure.functions")
except ModuleNotFoundError:  # not on the Functions host
    func = None


class RequestLike(Protocol):
    def get_body(self) -> bytes: ...


class MessageLike(Protocol):
    def get_body(self) -> bytes: ...


class LocalHttpResponse:
    """What ``approvals`` returns where ``azure.functions`` is not installed."""

    def __init__(
        self, body: str | bytes, *, status_code: int = 200, mimetype: str = "application/json"
    ) -> None:
        self._body = body.encode() if isinstance(body, str) else body
        self.status_code = status_code
        self.mimetype = mimetype

    def get_body(self) -> bytes:
        return self._body


# The names in the handler's signature: on the host, the real func.HttpRequest and
# func.HttpResponse (the worker reads them with typing.get_type_hints); elsewhere the
# stand-ins. Type checkers see the stand-ins.
if TYPE_CHECKING or func is None:
    HttpRequest = RequestLike
    HttpResponse = LocalHttpResponse
    QueueMessage = MessageLike
else:
    HttpRequest = func.HttpRequest
    HttpResponse = func.HttpResponse
    QueueMessage = func.QueueMessage

WAKE_CONNECTION = "CAIRNFLOW_WAKE_QUEUE_CONNECTION"


def _wake_scheduler(saver: CheckpointLog) -> WakeScheduler:
    queue = os.environ.get("CAIRNFLOW_WAKE_QUEUE")
    if not queue:
        return DueIndex(saver)  # `cairnflow worker URL --import approval_flow` serves these
    from azure.storage.queue import QueueClient

    connection = os.environ.get(WAKE_CONNECTION)
    if connection:
        return StorageQueueWakeScheduler(QueueClient.from_connection_string(connection, queue))
    from azure.identity import DefaultAzureCredential

    account = os.environ[f"{WAKE_CONNECTION}__queueServiceUri"]
    return StorageQueueWakeScheduler(QueueClient(account, queue, credential=DefaultAzureCredential()))


SETTINGS = approval_flow.Settings.from_env(default_budget=DEFAULT_TIME_BUDGET)
SAVER = open_saver(SETTINGS.url)
DRIVER = approval_flow.make_driver(SAVER, _wake_scheduler(SAVER), SETTINGS)


def approvals(req: HttpRequest) -> HttpResponse:
    arrived = time.time()
    deadline = arrived + SETTINGS.time_budget if SETTINGS.time_budget else None
    status, payload = approval_flow.handle_http(
        req.get_body(), driver=DRIVER, deadline=deadline, settings=SETTINGS
    )
    return HttpResponse(json.dumps(payload), status_code=status, mimetype="application/json")


def wake(msg: QueueMessage) -> None:
    """Continue the run a wake-up names; raising (the store failed) makes the host retry it."""
    handle_message(DRIVER, msg.get_body())


if func is not None:
    app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
    # Same as decorating ``approvals`` with @app.route(...): the v2 model's indexer finds it on app.
    app.route(route="approvals", methods=["POST"])(approvals)
    app.queue_trigger(arg_name="msg", queue_name="%CAIRNFLOW_WAKE_QUEUE%", connection=WAKE_CONNECTION)(wake)
