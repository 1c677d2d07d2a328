"""Cloud Run service for the document-approval workflow; all state in Google Cloud Storage.

A WSGI app on the standard library only (``wsgiref``, threaded), no web framework:

    POST /approvals   body: a request of approval_flow.py, e.g. {"action": "start", ...}
    POST /wake        a wake-up from Cloud Tasks: continues a suspended or waiting run
    GET  /healthz     200 {"ok": true}

The driver creates a Cloud Tasks task (``CAIRNFLOW_TASKS_QUEUE``) that POSTs to
``CAIRNFLOW_WAKE_URL`` (this service's ``/wake``) whenever a run stops before its
end, so no client ever continues a run. Without a queue configured the wake-ups go
to the store's due index, for ``cairnflow worker URL --import approval_flow``.

The GCS client and the saver are built once per instance, at import. Cloud Run
does not tell a request how long it has left, so the deadline is the request's
arrival plus ``CAIRNFLOW_TIME_BUDGET_SECONDS``: set it to the service's
``--timeout`` (default 300). No task starts when less than
``CAIRNFLOW_RESERVE_SECONDS`` remain; the response then says
``"suspended"`` and carries the ``next_event`` to send.

Environment: ``CAIRNFLOW_URL`` (``gs://bucket/prefix``), ``PORT`` (set by Cloud Run),
``CAIRNFLOW_TASKS_QUEUE`` (``projects/P/locations/L/queues/Q``), ``CAIRNFLOW_WAKE_URL``,
``CAIRNFLOW_TASKS_SERVICE_ACCOUNT`` (the OIDC identity tasks call with), optional
``CAIRNFLOW_TIME_BUDGET_SECONDS``, ``CAIRNFLOW_RESERVE_SECONDS``, ``CAIRNFLOW_DURABILITY``,
``CAIRNFLOW_LEASE_SECONDS``; ``CLOUD_TASKS_EMULATOR_HOST`` points the Cloud Tasks client
at gcloud-tasks-emulator (local tests).
"""

from __future__ import annotations

import json
import logging
import os
import socketserver
import time
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import approval_flow

from cairnflow.core import CheckpointLog
from cairnflow.driver import DueIndex, WakeScheduler
from cairnflow.driver.gcp import CloudTasksWakeScheduler, wsgi_app
from cairnflow.savers import open_saver

log = logging.getLogger("approval.http")

#: Cloud Run's default request timeout; set CAIRNFLOW_TIME_BUDGET_SECONDS to your --timeout.
DEFAULT_TIME_BUDGET = 300.0
MAX_REQUEST_BYTES = 1 << 20


def _wake_scheduler(saver: CheckpointLog) -> WakeScheduler:
    queue, url = os.environ.get("CAIRNFLOW_TASKS_QUEUE"), os.environ.get("CAIRNFLOW_WAKE_URL")
    if not (queue and url):
        return DueIndex(saver)  # `cairnflow worker URL --import approval_flow` serves these
    client = None
    emulator = os.environ.get("CLOUD_TASKS_EMULATOR_HOST")
    if emulator:
        import grpc  # type: ignore[import-untyped]
        from google.cloud.tasks_v2 import CloudTasksClient
        from google.cloud.tasks_v2.services.cloud_tasks.transports import CloudTasksGrpcTransport

        client = CloudTasksClient(transport=CloudTasksGrpcTransport(channel=grpc.insecure_channel(emulator)))
    account = os.environ.get("CAIRNFLOW_TASKS_SERVICE_ACCOUNT")
    return CloudTasksWakeScheduler(queue, url, client=client, oidc_service_account=account)


SETTINGS = approval_flow.Settings.from_env(default_budget=DEFAULT_TIME_BUDGET)
SAVER = open_saver(SETTINGS.url)
DRIVER = approval_flow.make_driver(SAVER, _wake_scheduler(SAVER), SETTINGS)
WAKE = wsgi_app(DRIVER)

StartResponse = Callable[[str, list[tuple[str, str]]], Any]


def _reply(start_response: StartResponse, status: int, payload: dict[str, Any]) -> list[bytes]:
    data = json.dumps(payload).encode()
    headers = [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
    start_response(f"{status} {HTTPStatus(status).phrase}", headers)
    return [data]


def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """The WSGI application (also runs under any WSGI server, e.g. gunicorn ``main:app``)."""
    arrived = time.time()
    method, path = environ.get("REQUEST_METHOD", "GET"), environ.get("PATH_INFO", "/")
    if path == "/healthz":
        return _reply(start_response, 200, {"ok": True})
    if path == "/wake":  # Cloud Tasks: 200 handled, 500 retry (the store failed), 400 not a wake-up
        return WAKE(environ, start_response)
    if path not in ("/", "/approvals"):
        return _reply(start_response, 404, {"error": f"no route {path}"})
    if method != "POST":
        return _reply(start_response, 405, {"error": "use POST with a JSON body"})
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = -1
    if not 0 <= length <= MAX_REQUEST_BYTES:
        return _reply(start_response, 413, {"error": f"the body must be at most {MAX_REQUEST_BYTES} bytes"})
    body = environ["wsgi.input"].read(length)
    deadline = arrived + SETTINGS.time_budget if SETTINGS.time_budget else None
    try:
        status, payload = approval_flow.handle_http(body, driver=DRIVER, deadline=deadline, settings=SETTINGS)
    except Exception:
        log.exception("request failed")
        return _reply(start_response, 500, {"error": "internal error (see the service's logs)"})
    return _reply(start_response, status, payload)


class ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Handler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        log.info("%s %s", self.address_string(), format % args)


def serve(host: str, port: int) -> WSGIServer:
    """A threaded server for :func:`app` on (host, port); port 0 picks a free one."""
    return make_server(host, port, app, server_class=ThreadingWSGIServer, handler_class=_Handler)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s %(message)s")
    server = serve("0.0.0.0", int(os.environ.get("PORT", "8080")))
    log.info("listening on port %s", server.server_port)
    server.serve_forever()


if __name__ == "__main__":
    main()
