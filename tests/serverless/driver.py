"""Invoke one serverless example's entry point in this (child) process, as its platform would.

    python tests/serverless/driver.py < spec.json

The spec (JSON on stdin)::

    {"example": "aws_lambda" | "cloud_run" | "azure_functions",
     "calls": [{"request": {...}, "remaining_ms": 900000}, ...],
     "ledger": "/path" | null,          # side-effect ledger: one line per task that really ran
     "task_seconds": 0.0,               # each task takes this long (a known time)
     "put_delay": 0.0,                  # each store write takes this much longer
     "stub_azure_functions": false,     # provide a minimal azure.functions (the Functions host)
     "mailbox": "/path" | null,         # mails the workflow sends: one JSON line each
     "serve": {...} | null,             # after the calls: serve wake-ups, see serve()
     "report_modules": false}

A call may say ``"answer_from_mail": i`` (and ``"answer"``): its request is then the
``answer_with`` of mail ``i`` in the mailbox (``-1``: the newest), with that answer.

* ``aws_lambda``: ``handler.lambda_handler(event, context)`` with a fake context whose
  ``get_remaining_time_in_millis()`` counts down from the call's ``remaining_ms``;
* ``cloud_run``: a real HTTP request to ``main``'s threaded WSGI server on 127.0.0.1;
* ``azure_functions``: ``function_app.approvals(request)`` with a request-like object
  (or, with ``stub_azure_functions``, through the route registered on ``app``).

``serve`` (``{"thread_id", "until_mails": N, "timeout": seconds, "port": P}``) plays the
platform's wake-up delivery until the mailbox holds N mails: ``aws_lambda`` receives from
the SQS queue ``CAIRNFLOW_WAKE_QUEUE_URL`` and invokes ``lambda_handler`` with each batch
(deleting what it did not report failed); ``azure_functions`` receives from the queue
``CAIRNFLOW_WAKE_QUEUE`` and calls the queue-triggered ``wake``; ``cloud_run`` serves
``main.app`` on port P, where the Cloud Tasks emulator POSTs ``/wake``.

The time budget of the HTTP examples comes from ``CAIRNFLOW_TIME_BUDGET_SECONDS`` in
the environment. This file imports only the standard library, so that the modules
the example imports can be reported (``report_modules``).

Prints one line ``DRIVER {json}``: per call the status code, the response (or the
error), the cairnflow threads still alive after the call returned, the store writes
started and finished, and the thread's head in the store right after the call.
"""

from __future__ import annotations

import http.client
import importlib
import json
import os
import sys
import threading
import time
import types
import typing
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
ENTRY_MODULES = {"aws_lambda": "handler", "cloud_run": "main", "azure_functions": "function_app"}


class FakeLambdaContext:
    """The part of Lambda's context object the handler uses, counting down in real time."""

    aws_request_id = "00000000-0000-0000-0000-000000000000"
    function_name = "approvals"
    memory_limit_in_mb = 512

    def __init__(self, remaining_ms: int) -> None:
        self._deadline = time.monotonic() + remaining_ms / 1000

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class FakeHttpRequest:
    """The part of ``azure.functions.HttpRequest`` the function uses."""

    method = "POST"
    url = "http://localhost:7071/api/approvals"
    headers: dict[str, str] = {"content-type": "application/json"}
    params: dict[str, str] = {}
    route_params: dict[str, str] = {}

    def __init__(self, body: bytes) -> None:
        self._body = body

    def get_body(self) -> bytes:
        return self._body


def stub_azure_functions() -> dict[str, Any]:
    """A minimal ``azure.functions`` in sys.modules, recording what the app registers."""
    registry: dict[str, Any] = {"routes": [], "queues": []}
    module = types.ModuleType("azure.functions")

    class HttpRequest(FakeHttpRequest):
        pass

    class HttpResponse:
        def __init__(
            self,
            body: str | bytes | None = None,
            *,
            status_code: int | None = None,
            headers: dict[str, str] | None = None,
            mimetype: str | None = None,
            charset: str | None = None,
        ) -> None:
            self._body = body.encode() if isinstance(body, str) else body or b""
            self.status_code = status_code or 200
            self.mimetype = mimetype

        def get_body(self) -> bytes:
            return self._body

    class AuthLevel:
        ANONYMOUS, FUNCTION, ADMIN = "anonymous", "function", "admin"

    class FunctionApp:
        def __init__(self, http_auth_level: str = AuthLevel.FUNCTION) -> None:
            registry["auth_level"] = http_auth_level

        def route(self, route: str | None = None, methods: Any = None, **kwargs: Any) -> Any:
            def register(fn: Any) -> Any:
                registry["routes"].append({"route": route, "methods": list(methods or []), "fn": fn})
                return fn

            return register

        def queue_trigger(self, arg_name: str, queue_name: str, connection: str, **kwargs: Any) -> Any:
            def register(fn: Any) -> Any:
                registry["queues"].append(
                    {"arg_name": arg_name, "queue_name": queue_name, "connection": connection, "fn": fn}
                )
                return fn

            return register

    class QueueMessage(FakeQueueMessage):
        pass

    for cls in (HttpRequest, HttpResponse, AuthLevel, FunctionApp, QueueMessage):
        setattr(module, cls.__name__, cls)
    sys.modules["azure.functions"] = module
    registry["module"] = module
    return registry


#: Names of the cairnflow threads alive while some task ran (e.g. "cairnflow-writer" in async mode).
THREADS_SEEN_DURING_TASKS: set[str] = set()


def install_ledger(flow: Any, ledger: str, task_seconds: float) -> None:
    def record(name: str, document_id: str) -> None:
        THREADS_SEEN_DURING_TASKS.update(
            t.name.rstrip("_0123456789") for t in threading.enumerate() if t.name.startswith("cairnflow")
        )
        time.sleep(task_seconds)  # the task's work takes a known time
        line = f"{os.getpid()} {document_id} {name}\n".encode()
        fd = os.open(ledger, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)

    flow.on_task_run = record


def install_slow_puts(store: Any, delay: float) -> dict[str, int]:
    counts = {"started": 0, "finished": 0}
    lock = threading.Lock()
    original = store.put

    def slow_put(*args: Any, **kwargs: Any) -> Any:
        with lock:
            counts["started"] += 1
        try:
            time.sleep(delay)  # a slow network: the write is in flight for this long
            return original(*args, **kwargs)
        finally:
            with lock:
                counts["finished"] += 1

    setattr(store, "put", slow_put)  # noqa: B010 - instance attribute shadows the method
    return counts


def install_mailbox(flow: Any, mailbox: str) -> None:
    def deliver(mail: dict[str, Any]) -> None:
        fd = os.open(mailbox, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (json.dumps(mail) + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)

    flow.on_mail = deliver


def read_mailbox(mailbox: str | None) -> list[dict[str, Any]]:
    if not mailbox or not os.path.exists(mailbox):
        return []
    with open(mailbox) as f:
        return [json.loads(line) for line in f if line.strip()]


class FakeQueueMessage:
    """The part of ``azure.functions.QueueMessage`` the function uses."""

    def __init__(self, body: str) -> None:
        self._body = body.encode()

    def get_body(self) -> bytes:
        return self._body


def serve(example: str, entry: Any, spec: dict[str, Any], mailbox: str | None) -> dict[str, Any]:
    """Deliver wake-ups as the platform would until ``until_mails`` mails were sent."""
    flow = sys.modules["approval_flow"]
    deadline = time.monotonic() + float(spec.get("timeout", 90))
    delivered = 0
    stop = threading.Event()

    def done() -> bool:
        return len(read_mailbox(mailbox)) >= int(spec["until_mails"]) or time.monotonic() > deadline

    if example == "cloud_run":
        server = entry.serve("127.0.0.1", int(spec["port"]))
        serving = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        serving.start()
        while not done():
            stop.wait(0.1)  # the Cloud Tasks emulator calls the server; watch the mailbox
        server.shutdown()
        server.server_close()
    elif example == "aws_lambda":
        import boto3

        sqs = boto3.client("sqs")
        queue = os.environ["CAIRNFLOW_WAKE_QUEUE_URL"]
        while not done():
            got = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1).get(
                "Messages", []
            )
            if not got:
                continue
            event = {"Records": [{"messageId": m["MessageId"], "body": m["Body"]} for m in got]}
            failed = {
                f["itemIdentifier"]
                for f in entry.lambda_handler(event, FakeLambdaContext(60_000))["batchItemFailures"]
            }
            for m in got:
                if m["MessageId"] not in failed:
                    sqs.delete_message(QueueUrl=queue, ReceiptHandle=m["ReceiptHandle"])
                    delivered += 1
    else:
        from azure.storage.queue import QueueClient

        queue = QueueClient.from_connection_string(
            os.environ["CAIRNFLOW_WAKE_QUEUE_CONNECTION"], os.environ["CAIRNFLOW_WAKE_QUEUE"]
        )
        while not done():
            got = list(queue.receive_messages(max_messages=16, visibility_timeout=30))
            for message in got:
                entry.wake(FakeQueueMessage(message.content))  # raising: the host would retry it
                queue.delete_message(message)
                delivered += 1
            if not got:
                stop.wait(0.1)  # messages stay hidden until due: poll the queue
    run = flow.document_approval.get_run(thread_id=spec["thread_id"], saver=entry.SAVER)
    return {"status": run and run.status, "mails": len(read_mailbox(mailbox)), "delivered": delivered}


def invoke(example: str, entry: Any, call: dict[str, Any], stub: dict[str, Any] | None) -> tuple[int, Any]:
    request = call.get("request")
    body = call["raw_body"].encode() if "raw_body" in call else json.dumps(request).encode()
    if example == "aws_lambda":
        try:
            return 200, entry.lambda_handler(request, FakeLambdaContext(call.get("remaining_ms", 900_000)))
        except Exception as exc:
            return 0, {"error": str(exc), "type": type(exc).__name__}
    if example == "cloud_run":
        server = entry.serve("127.0.0.1", 0)
        serving = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.02}, name="test-http-server", daemon=True
        )
        serving.start()
        try:
            conn = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=120)
            conn.request(
                call.get("method", "POST"),
                call.get("path", "/approvals"),
                body=body,
                headers={"Content-Type": "application/json"},
            )
            response = conn.getresponse()
            status, data = response.status, response.read()
            conn.close()
        finally:
            server.shutdown()
            server.server_close()
            serving.join()
        try:
            return status, json.loads(data)
        except ValueError:
            return status, {"text": data.decode(errors="replace")}  # /wake answers in plain text
    if stub is not None:
        [route] = stub["routes"]
        reply = route["fn"](stub["module"].HttpRequest(body))
    else:
        reply = entry.approvals(FakeHttpRequest(body))
    return int(reply.status_code), json.loads(reply.get_body())


def main() -> None:
    spec = json.load(sys.stdin)
    example: str = spec["example"]
    sys.path.insert(0, str(ROOT / "examples" / example))
    stub = stub_azure_functions() if spec.get("stub_azure_functions") else None
    entry = importlib.import_module(ENTRY_MODULES[example])
    flow = sys.modules["approval_flow"]
    if spec.get("ledger"):
        install_ledger(flow, spec["ledger"], float(spec.get("task_seconds", 0.0)))
    puts = install_slow_puts(entry.SAVER.store, float(spec.get("put_delay", 0.0)))
    mailbox = spec.get("mailbox")
    if mailbox:
        install_mailbox(flow, mailbox)

    out: dict[str, Any] = {"pid": os.getpid(), "calls": []}
    for call in spec["calls"]:
        if "answer_from_mail" in call:
            mail = read_mailbox(mailbox)[call["answer_from_mail"]]
            call = {**call, "request": {**mail["answer_with"], "answer": call["answer"]}}
        status, response = invoke(example, entry, call, stub)
        # Observed right after the entry point returned, before anything else runs here.
        threads = sorted(t.name for t in threading.enumerate() if t.name.startswith("cairnflow"))
        in_flight = dict(puts)
        head = None
        thread_id = response.get("thread_id") if isinstance(response, dict) else None
        if thread_id:
            checkpoint = entry.SAVER.latest(thread_id)
            head = checkpoint and {"checkpoint_id": checkpoint.checkpoint_id, "status": checkpoint.status}
        out["calls"].append(
            {"status": status, "response": response, "threads": threads, "puts": in_flight, "head": head}
        )
    if spec.get("serve"):
        out["served"] = serve(example, entry, spec["serve"], mailbox)
    out["threads_seen_during_tasks"] = sorted(THREADS_SEEN_DURING_TASKS)
    if stub is not None:
        out["registry"] = {
            "auth_level": stub["auth_level"],
            "routes": [{"route": r["route"], "methods": r["methods"]} for r in stub["routes"]],
            "queues": [
                {"arg_name": q["arg_name"], "queue_name": q["queue_name"], "connection": q["connection"]}
                for q in stub["queues"]
            ],
            "wake_hints_are_host_types": typing.get_type_hints(entry.wake)
            == {"msg": stub["module"].QueueMessage, "return": type(None)},
            # What the Functions worker reads (typing.get_type_hints) must be the host's types.
            "hints_are_host_types": typing.get_type_hints(entry.approvals)
            == {"req": stub["module"].HttpRequest, "return": stub["module"].HttpResponse},
        }
    if spec.get("report_modules"):
        out["modules"] = sorted(sys.modules)
    print("DRIVER " + json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
