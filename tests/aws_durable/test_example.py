"""examples/aws_durable: one handler file (order.py) run locally, on Lambda with S3, on Cloud Run with GCS.

Local: ``python local.py DIR`` in a child process. Lambda: ``lambda_function.handler``
with its state in S3 (moto), fed the SQS batches moto delivers. Cloud Run:
``cloud_run.app`` served on 127.0.0.1, state in fake-gcs-server, called by the
Cloud Tasks emulator. The handler is invoked only through those entry points.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import threading
import urllib.request
import uuid
import wsgiref.simple_server
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.emulators import StoreLocation, free_port

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "aws_durable"
ORDER = {"order": "o-7", "items": [{"sku": "tea", "price": 4, "qty": 3}], "hold_seconds": 1}


@pytest.fixture
def example_modules(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.syspath_prepend(str(EXAMPLE))
    yield
    for name in ("order", "lambda_function", "cloud_run"):
        sys.modules.pop(name, None)


def fresh(name: str) -> ModuleType:
    sys.modules.pop(name, None)
    return importlib.import_module(name)


def test_local(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "local.py", str(tmp_path / "state")],
        cwd=EXAMPLE,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    assert lines[0].startswith("approve with callback id ")
    report = json.loads(lines[-1])
    assert report["status"] == "SUCCEEDED"
    assert report["result"] == {"order": "o-1001", "status": "charged", "charged": 12}


def test_lambda_with_s3(
    s3_location: StoreLocation,
    s3_server_url: str,
    monkeypatch: pytest.MonkeyPatch,
    example_modules: None,
) -> None:
    pytest.importorskip("boto3")
    from tests.driver.test_aws import as_sqs_event, client, receive

    sqs = client("sqs", s3_server_url)
    queue = sqs.create_queue(QueueName=f"order-{uuid.uuid4().hex[:12]}")["QueueUrl"]
    for key, value in {
        **s3_location.env,
        "CAIRNFLOW_URL": s3_location.url,
        "CAIRNFLOW_WAKE_QUEUE_URL": queue,
        "AWS_ENDPOINT_URL_SQS": s3_server_url,
    }.items():
        monkeypatch.setenv(key, value)
    fn = fresh("lambda_function")

    def deliver() -> None:
        messages = receive(sqs, queue)
        assert messages, "no wake-up arrived"
        assert fn.handler(as_sqs_event(messages)) == {"batchItemFailures": []}
        for m in messages:
            sqs.delete_message(QueueUrl=queue, ReceiptHandle=m["ReceiptHandle"])

    arn = fn.handler({"action": "start", "input": ORDER})["arn"]
    for _ in range(4):  # the first invocation, then the hold's timer (an SQS delay)
        deliver()
        status = fn.handler({"action": "status", "arn": arn})
        if status["callbacks"]:
            break
    (callback_id,) = status["callbacks"]
    assert fn.handler({"action": "callback", "callback_id": callback_id, "result": "approve"}) == {"ok": True}
    deliver()
    status = fn.handler({"action": "status", "arn": arn})
    assert status["status"] == "SUCCEEDED"
    assert status["result"] == {"order": "o-7", "status": "charged", "charged": 12}


def test_cloud_run_with_gcs(
    gcs_location: StoreLocation, cloud_tasks: Any, monkeypatch: pytest.MonkeyPatch, example_modules: None
) -> None:
    pytest.importorskip("google.cloud.tasks_v2")
    tasks = cloud_tasks.client()
    queue = f"projects/test/locations/here/queues/order-{uuid.uuid4().hex[:10]}"
    tasks.create_queue(parent="projects/test/locations/here", queue={"name": queue})
    port = free_port()
    for key, value in {
        **gcs_location.env,
        "CAIRNFLOW_URL": gcs_location.url,
        "CAIRNFLOW_TASKS_QUEUE": queue,
        "CAIRNFLOW_WAKE_URL": f"http://127.0.0.1:{port}/wake",
        "CLOUD_TASKS_EMULATOR_HOST": cloud_tasks.address,
    }.items():
        monkeypatch.setenv(key, value)
    app = fresh("cloud_run").app
    woken = threading.Condition()
    answers: list[str] = []

    def recording(environ: dict[str, Any], start_response: Any) -> Any:
        def start(status: str, headers: Any) -> Any:
            if environ.get("PATH_INFO") == "/wake":
                with woken:
                    answers.append(status)
                    woken.notify_all()
            return start_response(status, headers)

        return app(environ, start)

    class Quiet(wsgiref.simple_server.WSGIRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

    server = wsgiref.simple_server.make_server("127.0.0.1", port, recording, handler_class=Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    def post(path: str, body: Any) -> Any:
        request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode())
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    def wait_for(count: int) -> list[str]:
        with woken:
            woken.wait_for(lambda: len(answers) >= count, timeout=60)
            return list(answers)

    try:
        arn = post("/start", ORDER)["arn"]
        assert wait_for(2) == ["200 OK", "200 OK"]  # the first invocation; the hold's timer
        (callback_id,) = post("/status", {"arn": arn})["callbacks"]
        assert post("/callback", {"callback_id": callback_id, "result": "approve"}) == {"ok": True}
        assert wait_for(3)[-1] == "200 OK"
        status = post("/status", {"arn": arn})
        assert status["status"] == "SUCCEEDED"
        assert status["result"] == {"order": "o-7", "status": "charged", "charged": 12}
    finally:
        server.shutdown()
        tasks.delete_queue(name=queue)
