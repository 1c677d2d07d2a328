"""Waking runs on Google Cloud: Cloud Tasks with a schedule time, calling the Cloud Run service.

:class:`CloudTasksWakeScheduler` creates an HTTP task that POSTs the
:class:`Wakeup` to your service's URL at the wake time; :func:`wsgi_app`
is a standard WSGI application that continues the run it names (mount it
at that URL in Flask, Django or any WSGI server, or serve it alone).

Cloud Tasks accepts schedule times at most 30 days ahead: longer waits are
chained (the task arrives early and is created again for the rest). Task
names are derived from the wake-up, so scheduling the same one twice is one
task. Give the queue's service account ``roles/run.invoker`` and pass it as
``oidc_service_account`` so the call is authenticated.

Requires ``pip install google-cloud-tasks``, imported when used.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import time
from collections.abc import Callable, Iterable
from typing import Any

from cairnflow.core.errors import MissingDependencyError, SerializationError
from cairnflow.core.wake import Wakeup
from cairnflow.driver.driver import WakeHandler

__all__ = ["CloudTasksWakeScheduler", "wsgi_app"]

#: Cloud Tasks' limit on how far ahead a task may be scheduled, less a margin.
MAX_AHEAD = 30 * 86400 - 3600


class CloudTasksWakeScheduler:
    """Wake-ups as Cloud Tasks HTTP tasks on ``queue`` (``projects/P/locations/L/queues/Q``)."""

    def __init__(
        self,
        queue: str,
        url: str,
        *,
        client: Any = None,
        oidc_service_account: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if client is None:
            try:
                from google.cloud import tasks_v2
            except ImportError as exc:  # pragma: no cover - installed with the test extras
                raise MissingDependencyError(
                    "waking runs through Cloud Tasks needs google-cloud-tasks: pip install google-cloud-tasks"
                ) from exc
            client = tasks_v2.CloudTasksClient()
        self.client = client
        self.queue = queue
        self.url = url
        self.oidc_service_account = oidc_service_account
        self.clock = clock

    def schedule(self, wakeup: Wakeup) -> None:
        from google.api_core.exceptions import AlreadyExists
        from google.protobuf import timestamp_pb2

        at = min(wakeup.at, self.clock() + MAX_AHEAD)  # the last hop of a chain is exact
        when = timestamp_pb2.Timestamp()
        when.FromDatetime(dt.datetime.fromtimestamp(at, tz=dt.timezone.utc))
        request: dict[str, Any] = {
            "http_method": "POST",
            "url": self.url,
            "headers": {"Content-Type": "application/json"},
            "body": wakeup.to_json().encode(),
        }
        if self.oidc_service_account:
            request["oidc_token"] = {"service_account_email": self.oidc_service_account}
        # One name per (wake-up, hop): a retried create is refused as AlreadyExists, i.e. done.
        digest = hashlib.sha256(f"{wakeup.to_json()}\0{round(at)}".encode()).hexdigest()[:40]
        task = {
            "name": f"{self.queue}/tasks/cairnflow-{digest}",
            "schedule_time": when,
            "http_request": request,
        }
        with contextlib.suppress(AlreadyExists):
            self.client.create_task(parent=self.queue, task=task)


def wsgi_app(driver: WakeHandler) -> Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]:
    """A WSGI application continuing the run each POSTed wake-up names.

    Answers 200 when the wake-up was handled (or needs nothing), 500 when the
    store failed (Cloud Tasks retries the task), 400 when the body is not a
    cairnflow wake-up.
    """

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") != "POST":
            start_response("405 Method Not Allowed", [("Content-Type", "text/plain"), ("Allow", "POST")])
            return [b"POST a cairnflow wake-up\n"]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length)
        try:
            wakeup = Wakeup.from_json(body)
        except SerializationError as exc:
            start_response("400 Bad Request", [("Content-Type", "text/plain")])
            return [f"{exc}\n".encode()]
        if driver.deliver(wakeup):
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"ok\n"]
        start_response("500 Internal Server Error", [("Content-Type", "text/plain")])
        return [b"store unavailable; retry\n"]

    return app
