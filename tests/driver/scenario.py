"""Issue 17's end-to-end scenario: the workflow, and the processes that drive it.

``journey`` sleeps, then waits for a callback completed from another process, then
fans out 20 ``leaf`` children (inline, or dispatched to other workers); ``ajourney``
and ``aleaf`` are the same as ``async def`` workflows (``--flavour async``); nothing but
workers (or a cloud queue feeding the cloud entry points) continues it. Each process
role is started by the tests as::

    python -m tests.driver.scenario start URL THREAD FOLDER NAP PACE DISPATCH [--flavour async] [options]
    python -m tests.driver.scenario worker URL [options]
    python -m tests.driver.scenario complete URL TOKEN_FILE VALUE [options]

``worker`` serves the store's due index (``Worker``) or, with ``--via`` naming a cloud
queue, that queue through the cloud's entry point (:func:`serve`).
``--kill K --side before|after`` makes the process SIGKILL itself just before (or
just after) its K-th write to the store (a PUT or a DELETE, counted from 1): a
crash at a reproducible point, chosen by the tests from a seed. ``--lease``
sets the driver's lease (and the worker's claim time): how soon a dead run is
continued elsewhere. ``--via`` names what carries the wake-ups (see
:func:`scheduler_from`); the default is the store's own due index.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from cairnflow.core import callback, complete_callback, sleep, task, workflow
from cairnflow.core.log import AsyncCheckpointLog, CheckpointLog
from cairnflow.core.store import CREATE, AsyncObjectStore, ObjectInfo, ObjectStore, PutMode
from cairnflow.core.wake import WakeScheduler
from tests.support.forwarding import AsyncForwardingStore, ForwardingStore

#: How many children ``journey`` fans out to.
CHILDREN = 20


def leaf_value(n: int) -> int:
    """What ``leaf(n)`` returns (the tests compare the records with it)."""
    return (n * n + 7) * 3


@task
def square(n: int, pace: float) -> int:
    if pace:
        time.sleep(pace)  # the task's work: keeps a run busy past a short lease
    return n * n + 7


@task
def triple(v: int) -> int:
    return v * 3


@workflow
def leaf(job: dict[str, Any]) -> int:
    """A child: two tasks."""
    return triple(square(job["n"], job["pace"]).result()).result()


@task
def publish(path: str, token: str) -> None:
    # Hands the callback token to "the outside world": a file the test's completer reads.
    # Written whole, then renamed, so a reader never sees half a token.
    tmp = f"{path}.{os.getpid()}.tmp"
    Path(tmp).write_text(token)
    os.replace(tmp, path)


@workflow
def journey(plan: dict[str, Any]) -> dict[str, Any]:
    """Sleep ``plan["nap"]`` seconds, wait for a callback, then fan out ``CHILDREN`` children.

    ``plan["pace"]``: seconds each child's first task works (0: none); ``plan["dispatch"]``:
    hand each child to the driver's scheduler (other workers or invocations run it) instead of
    running it inline.
    """
    sleep(float(plan["nap"]))
    cb = callback(timeout=3600)
    publish(plan["token_file"], cb.token).result()
    approval = cb.wait()
    dispatch = bool(plan.get("dispatch"))
    futures = [leaf.start({"n": n, "pace": plan["pace"]}, dispatch=dispatch) for n in range(CHILDREN)]
    return {"approval": approval, "total": sum(f.result() for f in futures)}


@workflow
async def aleaf(job: dict[str, Any]) -> int:
    """``leaf`` as an ``async def`` child: the same two (plain) tasks, awaited."""
    return await triple(await square(job["n"], job["pace"]))


@workflow
async def ajourney(plan: dict[str, Any]) -> dict[str, Any]:
    """``journey`` as an ``async def`` workflow: the same records, its children gathered."""
    await sleep(float(plan["nap"]))
    cb = callback(timeout=3600)
    await publish(plan["token_file"], cb.token)
    approval = await cb.wait()
    dispatch = bool(plan.get("dispatch"))
    futures = [aleaf.start({"n": n, "pace": plan["pace"]}, dispatch=dispatch) for n in range(CHILDREN)]
    return {"approval": approval, "total": sum(await asyncio.gather(*futures))}


#: The scenario's workflows by flavour: (parent, child).
FLAVOURS = {"sync": (journey, leaf), "async": (ajourney, aleaf)}


def expected_result(approval: object) -> dict[str, Any]:
    return {"approval": approval, "total": sum(leaf_value(n) for n in range(CHILDREN))}


# --------------------------------------------------------------------------- crashes


class KillStore(ForwardingStore):
    """SIGKILLs the process just before or after its ``kill_at``-th write (PUT or DELETE)."""

    def __init__(self, inner: ObjectStore, kill_at: int | None, side: str) -> None:
        super().__init__(inner)
        self.kill_at = kill_at
        self.side = side
        self.writes = 0
        self._lock = threading.Lock()

    def _count(self) -> int:
        with self._lock:
            self.writes += 1
            n = self.writes
        if n == self.kill_at and self.side == "before":
            self._die()
        return n

    def _after(self, n: int) -> None:
        if n == self.kill_at and self.side == "after":
            self._die()

    @staticmethod
    def _die() -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGKILL)

    def put(self, key: str, data: bytes, mode: PutMode = CREATE) -> str:
        n = self._count()
        etag = self.inner.put(key, data, mode)
        self._after(n)
        return etag

    def delete(self, key: str) -> None:
        n = self._count()
        self.inner.delete(key)
        self._after(n)

    def list(
        self, prefix: str, *, start_after: str | None = None, limit: int | None = None
    ) -> Iterator[ObjectInfo]:
        return self.inner.list(prefix, start_after=start_after, limit=limit)


class AsyncKillStore(AsyncForwardingStore):
    """:class:`KillStore` for the async saver of ``async def`` runs: the same count of writes."""

    def __init__(self, inner: AsyncObjectStore, killer: KillStore) -> None:
        super().__init__(inner)
        self.killer = killer

    async def put(self, key: str, data: bytes, mode: PutMode = CREATE) -> str:
        n = self.killer._count()
        etag = await self.inner.put(key, data, mode)
        self.killer._after(n)
        return etag

    async def delete(self, key: str) -> None:
        n = self.killer._count()
        await self.inner.delete(key)
        self.killer._after(n)


def open_killable(
    url: str, kill_at: int | None, side: str
) -> tuple[CheckpointLog, Callable[[], AsyncCheckpointLog]]:
    """The process's saver, and a factory of async savers (one per event loop) counted with it."""
    from cairnflow.savers import open_async_store, open_store

    store, prefix = open_store(url)
    killer = KillStore(store, kill_at, side)

    def async_saver() -> AsyncCheckpointLog:
        return AsyncCheckpointLog(AsyncKillStore(open_async_store(url)[0], killer), prefix=prefix)

    return CheckpointLog(killer, prefix=prefix), async_saver


# --------------------------------------------------------------------------- wake-ups


def scheduler_from(via: str, saver: CheckpointLog) -> WakeScheduler:
    """What carries wake-ups: ``due`` (the store's due index), or a cloud queue (see the tests)."""
    from cairnflow.driver import DueIndex

    kind, _, where = via.partition(":")
    if kind == "due":
        return DueIndex(saver)
    if kind == "sqs":
        import boto3

        from cairnflow.driver.aws import SqsWakeScheduler

        return SqsWakeScheduler(where, client=boto3.client("sqs", endpoint_url=os.environ["SQS_ENDPOINT"]))
    if kind == "eventbridge":
        import boto3

        from cairnflow.driver.aws import EventBridgeWakeScheduler

        client = boto3.client("scheduler", endpoint_url=os.environ["SQS_ENDPOINT"])
        target, _, group = where.partition("|")
        return EventBridgeWakeScheduler(target, os.environ["SCHEDULER_ROLE"], group=group, client=client)
    if kind == "azq":
        from azure.storage.queue import QueueClient

        from cairnflow.driver.azure import StorageQueueWakeScheduler

        conn = os.environ["AZURE_QUEUE_CONNECTION_STRING"]
        return StorageQueueWakeScheduler(QueueClient.from_connection_string(conn, where))
    if kind == "tasks":
        import grpc
        from google.cloud.tasks_v2 import CloudTasksClient
        from google.cloud.tasks_v2.services.cloud_tasks.transports import CloudTasksGrpcTransport

        from cairnflow.driver.gcp import CloudTasksWakeScheduler

        queue, _, service = where.partition("|")
        channel = grpc.insecure_channel(os.environ["CLOUD_TASKS_EMULATOR"])
        client = CloudTasksClient(transport=CloudTasksGrpcTransport(channel=channel))
        return CloudTasksWakeScheduler(queue, service, client=client)
    raise SystemExit(f"unknown --via {via!r}")


# --------------------------------------------------------------------------- cloud entry points


class LambdaContext:
    """What ``lambda_handler`` reads from Lambda's context: the invocation's remaining time."""

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


def serve(via: str, driver: Any, *, lease: float, interval: float, stop: threading.Event) -> None:
    """Deliver wake-ups from a cloud queue to the cloud entry point, as the cloud would.

    ``sqs``: receive, call ``lambda_handler`` with the SQS batch, delete what it did not
    report as failed (Lambda's event source mapping). ``eventbridge``: moto stores
    schedules but never fires them; fire each due schedule's input at ``lambda_handler``,
    then delete it (``ActionAfterCompletion=DELETE``). ``azq``: receive, call
    ``handle_message`` (the Functions queue trigger), delete. A message in flight when
    the process dies reappears after ``lease`` seconds (the queue's visibility timeout).
    """
    kind, _, where = via.partition(":")
    visibility = max(1, math.ceil(lease))
    if kind in ("sqs", "eventbridge"):
        import boto3

        from cairnflow.driver.aws import lambda_handler

        handler = lambda_handler(driver)
        if kind == "sqs":
            sqs = boto3.client("sqs", endpoint_url=os.environ["SQS_ENDPOINT"])
            while not stop.is_set():
                got = sqs.receive_message(
                    QueueUrl=where, MaxNumberOfMessages=10, WaitTimeSeconds=1, VisibilityTimeout=visibility
                ).get("Messages", [])
                if not got:
                    continue
                event = {"Records": [{"messageId": m["MessageId"], "body": m["Body"]} for m in got]}
                failed = {f["itemIdentifier"] for f in handler(event, LambdaContext())["batchItemFailures"]}
                for m in got:
                    if m["MessageId"] not in failed:
                        sqs.delete_message(QueueUrl=where, ReceiptHandle=m["ReceiptHandle"])
            return
        scheduler = boto3.client("scheduler", endpoint_url=os.environ["SQS_ENDPOINT"])
        group = where.partition("|")[2]
        while not stop.is_set():
            fired = 0
            for entry in scheduler.list_schedules(GroupName=group)["Schedules"]:
                try:
                    got = scheduler.get_schedule(Name=entry["Name"], GroupName=group)
                except scheduler.exceptions.ResourceNotFoundException:
                    continue  # cancelled (a lease that ended cleanly), or fired by the other pump
                at = dt.datetime.strptime(got["ScheduleExpression"], "at(%Y-%m-%dT%H:%M:%S)")
                if at.replace(tzinfo=dt.timezone.utc).timestamp() > time.time():
                    continue
                handler(json.loads(got["Target"]["Input"]), LambdaContext())
                with contextlib.suppress(scheduler.exceptions.ResourceNotFoundException):
                    scheduler.delete_schedule(Name=entry["Name"], GroupName=group)
                fired += 1
            if not fired:
                stop.wait(interval)
        return
    if kind == "azq":
        from azure.storage.queue import QueueClient

        from cairnflow.driver.azure import handle_message

        queue = QueueClient.from_connection_string(os.environ["AZURE_QUEUE_CONNECTION_STRING"], where)
        while not stop.is_set():
            got = list(queue.receive_messages(max_messages=16, visibility_timeout=visibility))
            for message in got:
                handle_message(driver, message.content)
                queue.delete_message(message)
            if not got:
                stop.wait(interval)
        return
    if kind == "tasks":
        import wsgiref.simple_server

        from cairnflow.driver.gcp import wsgi_app

        class Quiet(wsgiref.simple_server.WSGIRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

        port = int(where.rsplit(":", 1)[1].split("/", 1)[0])
        server = wsgiref.simple_server.make_server("127.0.0.1", port, wsgi_app(driver), handler_class=Quiet)
        server.timeout = interval
        while not stop.is_set():
            server.handle_request()
        return
    raise SystemExit(f"unknown --via {via!r}")


# --------------------------------------------------------------------------- roles


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.driver.scenario")
    parser.add_argument("role", choices=["start", "worker", "complete"])
    parser.add_argument("url")
    parser.add_argument("rest", nargs="*")
    parser.add_argument("--kill", type=int, default=None)
    parser.add_argument("--side", choices=["before", "after"], default="before")
    parser.add_argument("--lease", type=float, default=5.0)
    parser.add_argument("--interval", type=float, default=0.1)
    parser.add_argument("--via", default="due")
    parser.add_argument("--id", default=None)
    parser.add_argument("--flavour", choices=sorted(FLAVOURS), default="sync")
    args = parser.parse_args(argv)

    from cairnflow.core.errors import ConflictError
    from cairnflow.driver import Driver, Worker

    saver, async_saver = open_killable(args.url, args.kill, args.side)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    workflows = [wf for pair in FLAVOURS.values() for wf in pair]
    if args.role == "worker" and args.via == "due":
        worker = Worker(saver, workflows, lease=args.lease, worker_id=args.id, async_saver=async_saver)
        worker.run(interval=args.interval, stop=stop)
        return 0
    scheduler = scheduler_from(args.via, saver)
    driver = Driver(saver, scheduler, workflows, lease=args.lease, async_saver=async_saver)
    if args.role == "worker":
        serve(args.via, driver, lease=args.lease, interval=args.interval, stop=stop)
        return 0
    if args.role == "start":
        thread, folder, nap, pace, dispatch = args.rest
        plan = {
            "token_file": f"{folder}/{thread}.token",
            "nap": float(nap),
            "pace": float(pace),
            "dispatch": dispatch == "1",
        }
        try:
            run = driver.start(FLAVOURS[args.flavour][0], plan, thread_id=thread)
        except ConflictError:
            # A retried start found a worker continuing the run (its first start died):
            # the run is in hand; what the client does is nothing.
            print("STARTED elsewhere", flush=True)
            return 0
        print("STARTED", run.status, flush=True)
        return 0
    token_file, value = args.rest
    complete_callback(Path(token_file).read_text(), value, saver=saver, scheduler=driver.scheduler)
    print("COMPLETED", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
