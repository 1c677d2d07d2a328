"""Waking runs on Azure, against Azurite's queue service."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("azure.storage.queue")

from cairnflow.core.wake import Wakeup
from cairnflow.driver import Driver
from cairnflow.driver.azure import MAX_VISIBILITY, StorageQueueWakeScheduler, drain, handle_message
from cairnflow.savers import open_saver
from tests.driver import flows


@pytest.fixture
def queue(azure_queue_service: Any) -> Any:
    client = azure_queue_service.get_queue_client(f"wake-{uuid.uuid4().hex[:12]}")
    client.create_queue()
    return client


def test_suspended_runs_are_continued_from_the_queue(queue: Any, tmp_path: Path) -> None:
    saver = open_saver(f"file://{tmp_path}/store")
    driver = Driver(saver, StorageQueueWakeScheduler(queue), [flows.five_steps], lease=3600)
    for n in range(3):
        run = driver.start(
            flows.five_steps, f"a-{n}", thread_id=f"a-{n}", deadline=time.time() + 5, reserve=60
        )
        assert run.status == "suspended"
    assert drain(driver, queue) == 3  # the follow-ups are visible now; the leases in an hour
    for n in range(3):
        run = flows.five_steps.get_run(thread_id=f"a-{n}", saver=saver)
        assert run is not None and (run.status, run.result) == ("completed", 30)
    # Left: the hidden leases, one per start and one per continuation (a queue message cannot
    # be cancelled); each finds its run completed when it surfaces and does nothing.
    assert queue.get_queue_properties().approximate_message_count == 6


def test_a_future_wakeup_stays_hidden_and_long_waits_are_chained(queue: Any) -> None:
    sent: list[int] = []
    original = queue.send_message

    def spy(content: str, **kwargs: Any) -> Any:
        sent.append(kwargs["visibility_timeout"])
        return original(content, **kwargs)

    queue.send_message = spy
    now = time.time()
    StorageQueueWakeScheduler(queue, clock=lambda: now).schedule(Wakeup("t", "wf", now + 30 * 86400, "timer"))
    assert sent == [MAX_VISIBILITY]
    assert list(queue.receive_messages()) == []  # hidden until due
    assert queue.get_queue_properties().approximate_message_count == 1


def test_a_queue_trigger_message_continues_the_run(queue: Any, tmp_path: Path) -> None:
    saver = open_saver(f"file://{tmp_path}/store")
    driver = Driver(saver, StorageQueueWakeScheduler(queue), [flows.five_steps], lease=3600)
    driver.start(flows.five_steps, "fn-1", thread_id="fn-1", deadline=time.time() + 5, reserve=60)
    (message,) = list(queue.receive_messages())
    handle_message(driver, message.content)
    run = flows.five_steps.get_run(thread_id="fn-1", saver=saver)
    assert run is not None and run.status == "completed"
