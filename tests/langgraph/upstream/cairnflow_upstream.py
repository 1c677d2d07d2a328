"""cairnflow next to LangGraph's own checkpointers, inside LangGraph's own test suite.

``scripts/langgraph-upstream-tests.sh`` unpacks LangGraph's released source (its PyPI
sdist carries ``tests/``), appends one import of this module to LangGraph's
``tests/conftest.py`` and loads it as a pytest plugin (``-p cairnflow_upstream``).
The import rebinds LangGraph's ``sync_checkpointer``/``async_checkpointer`` fixtures to
the ones below, so every test LangGraph parametrizes over checkpointers runs, unchanged,
once per selected checkpointer:

* ``InMemorySaver`` -- LangGraph's own ``MemorySaverAssertImmutable`` (its "memory");
* ``SqliteSaver`` -- ``SqliteSaver`` / ``AsyncSqliteSaver`` on ``:memory:`` ("sqlite",
  "sqlite_aio"); ``SqliteSaverAES`` the same with LangGraph's AES serializer;
* ``cairnflow_memory``, ``cairnflow_file``, ``cairnflow_s3`` -- ``LangGraphSaver`` opened
  the way a user would, with ``from_url`` on ``memory://``, ``file://`` (a fresh temporary
  directory) and ``s3://`` (a fresh bucket on a moto server this plugin starts on
  127.0.0.1, the way ``tests/emulators/s3.py`` does; that module cannot be imported here
  because LangGraph's test package is also called ``tests``); ``cairnflow_memory_aes`` is
  memory:// with LangGraph's AES ``EncryptedSerializer``, as its ``sqlite_aes`` fixture.

``LG_UPSTREAM_CHECKPOINTERS`` (comma separated, the names above) selects them. Tests
that use neither fixture are deselected. Each test's outcome, its checkpointer and the
first line of its error are written as JSON to ``LG_UPSTREAM_RESULTS`` when the session
ends (``summarize.py`` beside this file turns that into counts and failure groups).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

ALL = [
    "InMemorySaver",
    "SqliteSaver",
    "SqliteSaverAES",
    "cairnflow_memory",
    "cairnflow_file",
    "cairnflow_s3",
    "cairnflow_memory_aes",
]
DEFAULT = "InMemorySaver,SqliteSaver,cairnflow_memory,cairnflow_file,cairnflow_s3"
SELECTED = [n.strip() for n in os.environ.get("LG_UPSTREAM_CHECKPOINTERS", DEFAULT).split(",") if n.strip()]
_unknown = sorted(set(SELECTED) - set(ALL))
if _unknown:
    raise ValueError(f"LG_UPSTREAM_CHECKPOINTERS names unknown checkpointers {_unknown}; known: {ALL}")
#: Async tests have no AES variant upstream; everything else runs in both fixtures.
ASYNC_SELECTED = [n for n in SELECTED if n != "SqliteSaverAES"]
#: Test ids stay LangGraph's own ("memory", "sqlite"...): its syrupy snapshots are
#: recorded under ``test_x[memory]`` names and are only compared for InMemorySaver.
SYNC_IDS = {"InMemorySaver": "memory", "SqliteSaver": "sqlite", "SqliteSaverAES": "sqlite_aes"}
ASYNC_IDS = {"InMemorySaver": "memory", "SqliteSaver": "sqlite_aio"}

_MOTO_KEYS = {
    "AWS_ACCESS_KEY_ID": "cairnflow-test",
    "AWS_SECRET_ACCESS_KEY": "cairnflow-test-secret",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
}


# ---------------------------------------------------------------------- moto server


class _Moto:
    """One moto server for the session, started on first use, stopped at exit by its pid."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self.url = ""
        self._client: Any = None

    def _start(self) -> None:
        exe = Path(sys.executable).parent / "moto_server"
        command = [str(exe)] if exe.exists() else [sys.executable, "-m", "moto.server"]
        for _ in range(3):  # a port that was free a moment ago can be taken meanwhile
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.bind(("127.0.0.1", 0))
                port = sock.getsockname()[1]
            log = tempfile.TemporaryFile()  # noqa: SIM115 -- the server writes to it until stop()
            process = subprocess.Popen(
                [*command, "-H", "127.0.0.1", "-p", str(port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and process.poll() is None:
                if _responds(port):
                    self._process, self.url = process, f"http://127.0.0.1:{port}"
                    return
                time.sleep(0.05)  # polling interval while the server boots
            process.kill()
            process.wait(timeout=10)
        raise RuntimeError("moto server did not start on 127.0.0.1")

    def bucket(self) -> str:
        """A fresh, uniquely named bucket (moto keeps every bucket for the server's life)."""
        with self._lock:
            if self._process is None:
                self._start()
                os.environ.update(_MOTO_KEYS)
                import boto3

                self._client = boto3.client("s3", endpoint_url=self.url, region_name="us-east-1")
                # Tests may patch uuid.uuid4 (deterministic_uuids); botocore draws each request's
                # invocation id from it, and creating the test's bucket must not eat their ids.
                self._client.meta.events.register("before-call.s3", _secret_invocation_id)
            client = self._client
        name = f"lgup-{secrets.token_hex(12)}"
        client.create_bucket(Bucket=name)
        return name

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=10)


def _secret_invocation_id(params: dict[str, Any], **_: Any) -> None:
    invocation = str(uuid.UUID(bytes=secrets.token_bytes(16), version=4))
    params["context"].setdefault("retries", {}).setdefault("invocation-id", invocation)


def _responds(port: int) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", "/moto-api/data.json")
        return conn.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


_moto = _Moto()


# ---------------------------------------------------------------------- checkpointers


@contextlib.contextmanager
def _cairnflow(kind: str) -> Iterator[Any]:
    from cairnflow.langgraph import LangGraphSaver

    options: dict[str, Any] = {}
    tmp: str | None = None
    if kind == "cairnflow_memory_aes":
        from langgraph.checkpoint.serde.encrypted import EncryptedSerializer

        options["serde"] = EncryptedSerializer.from_pycryptodome_aes(key=b"1234567890123456")
        url = f"memory://lgup-{secrets.token_hex(16)}/lg"
    elif kind == "cairnflow_memory":
        url = f"memory://lgup-{secrets.token_hex(16)}/lg"
    elif kind == "cairnflow_file":
        tmp = tempfile.mkdtemp(prefix="lgup-")
        url = f"file://{tmp}/store"
    else:
        url = f"s3://{_moto.bucket()}/lg"
        options["endpoint_url"] = _moto.url
    saver = LangGraphSaver.from_url(url, **options)
    try:
        yield saver
    finally:
        saver.close()
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def _sync(name: str) -> Iterator[Any]:
    # LangGraph's own fixtures, imported only here: this module is loaded by LangGraph's
    # conftest, whose directory holds them.
    from tests.conftest_checkpointer import (  # type: ignore[import-not-found]
        _checkpointer_memory,
        _checkpointer_sqlite,
        _checkpointer_sqlite_aes,
    )

    if name == "InMemorySaver":
        with _checkpointer_memory() as saver:
            yield saver
    elif name == "SqliteSaver":
        with _checkpointer_sqlite() as saver:
            yield saver
    elif name == "SqliteSaverAES":
        with _checkpointer_sqlite_aes() as saver:
            yield saver
    else:
        with _cairnflow(name) as saver:
            yield saver


@pytest.fixture(params=[pytest.param(n, id=SYNC_IDS.get(n, n)) for n in SELECTED])
def sync_checkpointer(request: pytest.FixtureRequest) -> Iterator[Any]:
    with _sync(request.param) as saver:
        yield saver


@pytest.fixture(params=[pytest.param(n, id=ASYNC_IDS.get(n, n)) for n in ASYNC_SELECTED])
async def async_checkpointer(request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    from tests.conftest_checkpointer import _checkpointer_sqlite_aio

    if request.param == "SqliteSaver":
        async with _checkpointer_sqlite_aio() as saver:
            yield saver
    else:
        with _sync(request.param) as saver:
            if request.param.startswith("cairnflow"):
                # opened as an asyncio user opens it (as LangGraph's fixture opens
                # AsyncSqliteSaver): the async client is made here, not in the test
                async with saver:
                    yield saver
            else:
                yield saver


# ---------------------------------------------------------------------- selection and results

_FIXTURES = ("sync_checkpointer", "async_checkpointer")


def _checkpointer_of(item: pytest.Item) -> tuple[str, str] | None:
    """(checkpointer name, its part of the test id), or None for a test that uses none."""
    callspec = getattr(item, "callspec", None)
    if callspec is None:
        return None
    for fixture, ids in zip(_FIXTURES, (SYNC_IDS, ASYNC_IDS), strict=True):
        if fixture in callspec.params:
            name = str(callspec.params[fixture])
            return name, ids.get(name, name)
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    keep, drop = [], []
    for item in items:
        found = _checkpointer_of(item)
        if found is None:
            drop.append(item)
        else:
            item.user_properties += [("checkpointer", found[0]), ("checkpointer_id", found[1])]
            keep.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


_results: dict[str, dict[str, Any]] = {}


def _first_line(report: pytest.TestReport) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    message = getattr(crash, "message", None)
    text = str(message) if message else report.longreprtext
    for line in text.splitlines():
        if line.strip():
            return line.strip()[:300]
    return "(no message)"


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    props = dict(report.user_properties)
    name = props.get("checkpointer")
    if name is None:
        return
    entry = _results.setdefault(
        report.nodeid,
        {"checkpointer": str(name), "id": str(props["checkpointer_id"]), "outcome": "passed", "error": ""},
    )
    entry["seconds"] = round(entry.get("seconds", 0.0) + report.duration, 3)
    if hasattr(report, "wasxfail"):
        entry["outcome"] = "xfailed" if report.skipped else "xpassed"
    elif report.failed and entry["outcome"] != "failed":
        entry["outcome"] = "failed" if report.when == "call" else "error"
        entry["error"] = _first_line(report)
    elif report.skipped and entry["outcome"] == "passed":
        entry["outcome"] = "skipped"


def pytest_sessionfinish(session: pytest.Session) -> None:
    _moto.stop()
    path = os.environ.get("LG_UPSTREAM_RESULTS")
    if path and not hasattr(session.config, "workerinput"):  # xdist workers report to the controller
        Path(path).write_text(json.dumps({"selected": SELECTED, "tests": _results}, indent=1))
