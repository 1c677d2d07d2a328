"""Fixtures for the web view's tests: a populated mixed store and a server on a free loopback port.

The server reads the store through :class:`RecordingStore`, which records
every request by kind, so a test can prove that browsing never writes.
"""

from __future__ import annotations

import contextlib
import http.client
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from cairnflow.core.log import CheckpointLog
from cairnflow.core.store import CREATE, ObjectInfo, ObjectStore, PutMode, StoredObject
from cairnflow.savers import open_store
from cairnflow.ui.model import Browser
from cairnflow.ui.server import UIServer, make_server
from tests.ui.demo import populate_demo

READ_REQUESTS = frozenset({"get", "list", "list_prefixes"})


class RecordingStore(ObjectStore):
    """Passes every request on and records its kind (method name); thread-safe."""

    def __init__(self, inner: ObjectStore) -> None:
        self.inner = inner
        self.url = inner.url
        self.calls: list[str] = []
        self._lock = threading.Lock()

    def _record(self, kind: str) -> None:
        with self._lock:
            self.calls.append(kind)

    def put(self, key: str, data: bytes, mode: PutMode = CREATE) -> str:
        self._record("put")
        return self.inner.put(key, data, mode)

    def get(self, key: str) -> StoredObject:
        self._record("get")
        return self.inner.get(key)

    def list(
        self, prefix: str, *, start_after: str | None = None, limit: int | None = None
    ) -> Iterator[ObjectInfo]:
        self._record("list")
        return self.inner.list(prefix, start_after=start_after, limit=limit)

    def list_prefixes(self, prefix: str) -> Iterator[str]:
        self._record("list_prefixes")
        return self.inner.list_prefixes(prefix)

    def delete(self, key: str) -> None:
        self._record("delete")
        self.inner.delete(key)

    def close(self) -> None:
        self._record("close")
        self.inner.close()


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: str


@dataclass
class Served:
    """A running view: its server, the recording store under it, and a client for it."""

    server: UIServer
    store: RecordingStore
    browser: Browser
    pages: list[str] = field(default_factory=list)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def request(self, path: str, *, method: str = "GET", host: str | None = None) -> Response:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
            if host != "":
                conn.putheader("Host", host or f"127.0.0.1:{self.port}")
            conn.endheaders()
            resp = conn.getresponse()
            body = resp.read().decode("utf-8")
            return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, body)
        finally:
            conn.close()

    def get(self, path: str) -> Response:
        resp = self.request(path)
        self.pages.append(path)
        return resp


@pytest.fixture(scope="module")
def demo_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"file://{tmp_path_factory.mktemp('ui')}/store"
    populate_demo(url)
    return url


@contextlib.contextmanager
def serve(url: str, clock: Callable[[], float] = time.time) -> Iterator[Served]:
    """Serve ``url`` read through a :class:`RecordingStore`, on a free port, until the block ends."""
    inner, prefix = open_store(url)
    store = RecordingStore(inner)
    browser = Browser(CheckpointLog(store, prefix=prefix), clock=clock)
    server = make_server(browser, "127.0.0.1", 0, quiet=True)
    thread = threading.Thread(target=server.serve_forever, name="ui-test-server", daemon=True)
    thread.start()
    try:
        yield Served(server, store, browser)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def served(demo_url: str) -> Iterator[Served]:
    with serve(demo_url) as running:
        yield running


@pytest.fixture
def empty_store(tmp_path: Path) -> str:
    (tmp_path / "empty").mkdir()
    return f"file://{tmp_path}/empty"
