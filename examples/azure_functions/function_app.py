"""Azure Functions (Python v2 programming model) for the document-approval workflow; state in Blob Storage.

    POST /api/approvals   body: a request of approval_flow.py, e.g. {"action": "start", ...}

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
``AZURE_STORAGE_CONNECTION_STRING``.
"""

from __future__ import annotations

import importlib
import json
import time
from typing import TYPE_CHECKING, Any, Protocol

import approval_flow

from cairnflow.savers import open_saver

#: Azure's HTTP front end drops a request after 230 seconds.
DEFAULT_TIME_BUDGET = 230.0

try:
    func: Any = importlib.import_module("azure.functions")
except ModuleNotFoundError:  # not on the Functions host
    func = None


class RequestLike(Protocol):
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
else:
    HttpRequest = func.HttpRequest
    HttpResponse = func.HttpResponse

SETTINGS = approval_flow.Settings.from_env(default_budget=DEFAULT_TIME_BUDGET)
SAVER = open_saver(SETTINGS.url)


def approvals(req: HttpRequest) -> HttpResponse:
    arrived = time.time()
    deadline = arrived + SETTINGS.time_budget if SETTINGS.time_budget else None
    status, payload = approval_flow.handle_http(
        req.get_body(), saver=SAVER, deadline=deadline, settings=SETTINGS
    )
    return HttpResponse(json.dumps(payload), status_code=status, mimetype="application/json")


if func is not None:
    app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
    # Same as decorating ``approvals`` with @app.route(...): the v2 model's indexer finds it on app.
    app.route(route="approvals", methods=["POST"])(approvals)
