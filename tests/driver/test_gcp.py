"""Waking runs on Google Cloud, against the Cloud Tasks emulator calling a local WSGI service."""

from __future__ import annotations

import threading
import time
import uuid
import wsgiref.simple_server
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("google.cloud.tasks_v2")

from cairnflow.core.wake import Wakeup
from cairnflow.driver import Driver
from cairnflow.driver.gcp import MAX_AHEAD, CloudTasksWakeScheduler, wsgi_app
from cairnflow.savers import open_saver
from tests.driver import flows
from tests.emulators.cloudtasks import CloudTasksEmulator


class Service:
    """A local 'Cloud Run service' serving the driver's WSGI app; records each answer."""

    def __init__(self, driver: Driver) -> None:
        self.answers: list[str] = []
        self.done = threading.Condition()
        app = wsgi_app(driver)

        def recording(environ: dict[str, Any], start_response: Any) -> Any:
            def start(status: str, headers: Any) -> Any:
                with self.done:
                    self.answers.append(status)
                    self.done.notify_all()
                return start_response(status, headers)

            return app(environ, start)

        class Quiet(wsgiref.simple_server.WSGIRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

        self.server = wsgiref.simple_server.make_server("127.0.0.1", 0, recording, handler_class=Quiet)
        self.url = f"http://127.0.0.1:{self.server.server_port}/wake"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, count: int, timeout: float = 60) -> list[str]:
        with self.done:
            self.done.wait_for(lambda: len(self.answers) >= count, timeout=timeout)
            return list(self.answers)


@pytest.fixture
def queue(cloud_tasks: CloudTasksEmulator) -> Iterator[tuple[Any, str]]:
    client = cloud_tasks.client()
    name = f"projects/test/locations/here/queues/wake-{uuid.uuid4().hex[:10]}"
    client.create_queue(parent="projects/test/locations/here", queue={"name": name})
    yield client, name
    client.delete_queue(name=name)


def test_suspended_runs_are_continued_by_tasks_the_emulator_delivers(
    queue: tuple[Any, str], tmp_path: Path
) -> None:
    client, name = queue
    saver = open_saver(f"file://{tmp_path}/store")
    driver = Driver(saver, None, [flows.five_steps], lease=3600)  # type: ignore[arg-type]
    service = Service(driver)
    driver.scheduler = CloudTasksWakeScheduler(name, service.url, client=client)
    for n in range(2):
        run = driver.start(
            flows.five_steps, f"g-{n}", thread_id=f"g-{n}", deadline=time.time() + 5, reserve=60
        )
        assert run.status == "suspended"
    assert service.wait_for(2) == ["200 OK", "200 OK"]  # the follow-ups; the leases are an hour away
    for n in range(2):
        run = flows.five_steps.get_run(thread_id=f"g-{n}", saver=saver)
        assert run is not None and (run.status, run.result) == ("completed", 30)


def test_the_same_wakeup_twice_names_the_same_task(queue: tuple[Any, str]) -> None:
    client, name = queue
    wakeups = CloudTasksWakeScheduler(name, "http://127.0.0.1:9/never", client=client)
    wakeup = Wakeup("t", "wf", time.time() + 3600, "timer")
    wakeups.schedule(wakeup)
    wakeups.schedule(wakeup)  # Cloud Tasks refuses the second as ALREADY_EXISTS: one task
    names = {task.name for task in client.list_tasks(parent=name)}
    assert len(names) == 1
    assert all(Wakeup.from_json(task.http_request.body) == wakeup for task in client.list_tasks(parent=name))


@pytest.mark.xfail(strict=True, reason="gcloud-tasks-emulator accepts a second task with an existing name")
def test_the_same_wakeup_twice_is_one_task(queue: tuple[Any, str]) -> None:
    client, name = queue
    wakeups = CloudTasksWakeScheduler(name, "http://127.0.0.1:9/never", client=client)
    wakeup = Wakeup("t", "wf", time.time() + 3600, "timer")
    wakeups.schedule(wakeup)
    wakeups.schedule(wakeup)
    assert len(list(client.list_tasks(parent=name))) == 1


def test_waits_past_thirty_days_are_chained(queue: tuple[Any, str]) -> None:
    client, name = queue
    now = 1_900_000_000.0
    wakeups = CloudTasksWakeScheduler(name, "http://127.0.0.1:9/never", client=client, clock=lambda: now)
    wakeups.schedule(Wakeup("t", "wf", now + 90 * 86400, "timer"))
    (task,) = client.list_tasks(parent=name)
    assert task.schedule_time.timestamp() == pytest.approx(now + MAX_AHEAD)


def test_a_body_that_is_not_a_wakeup_gets_400(tmp_path: Path) -> None:
    driver = Driver(open_saver(f"file://{tmp_path}/s"), None, [])  # type: ignore[arg-type]
    statuses: list[str] = []
    environ = {"REQUEST_METHOD": "POST", "CONTENT_LENGTH": "2", "wsgi.input": __import__("io").BytesIO(b"{}")}
    body = b"".join(wsgi_app(driver)(environ, lambda status, headers: statuses.append(status)))
    assert statuses == ["400 Bad Request"] and b"not a cairnflow wake-up" in body
