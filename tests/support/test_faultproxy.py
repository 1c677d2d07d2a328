"""The fault-injection proxy itself, against a tiny in-process upstream."""

from __future__ import annotations

import http.client
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.support.faultproxy import (
    Delay,
    DropAfterForward,
    DropBeforeForward,
    Exchange,
    FaultProxy,
    Request,
    Respond,
    StripHeaders,
)


class _Upstream(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, dict[str, str], bytes]] = []
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _UpstreamHandler)


class _UpstreamHandler(BaseHTTPRequestHandler):
    """Records each request; answers with the body echoed and one custom header."""

    protocol_version = "HTTP/1.1"
    server: _Upstream

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        with self.server.lock:
            self.server.seen.append((self.command, self.path, dict(self.headers.items()), body))
        reply = b"echo:" + body
        self.send_response(201 if self.command == "PUT" else 200)
        self.send_header("X-Upstream", "yes")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(reply)

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _handle


@pytest.fixture
def upstream() -> Iterator[_Upstream]:
    server = _Upstream()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def proxy(upstream: _Upstream) -> Iterator[FaultProxy]:
    with FaultProxy(f"http://127.0.0.1:{upstream.server_address[1]}") as p:
        yield p


def _conn(proxy: FaultProxy) -> http.client.HTTPConnection:
    host, port = proxy.url.removeprefix("http://").split(":")
    return http.client.HTTPConnection(host, int(port), timeout=10)


def test_forwards_and_logs_with_keep_alive(proxy: FaultProxy, upstream: _Upstream) -> None:
    conn = _conn(proxy)
    for n in range(3):  # one client connection, three requests
        conn.request("PUT", f"/obj/{n}?x=1", body=f"body{n}".encode(), headers={"If-None-Match": "*"})
        resp = conn.getresponse()
        assert (resp.status, resp.read(), resp.getheader("X-Upstream")) == (
            201,
            f"echo:body{n}".encode(),
            "yes",
        )
    conn.request("HEAD", "/obj/0")
    head = conn.getresponse()
    assert (head.status, head.read(), head.getheader("Content-Length")) == (200, b"", "5")
    conn.close()
    assert [(m, p) for m, p, _, _ in upstream.seen] == [
        ("PUT", "/obj/0?x=1"),
        ("PUT", "/obj/1?x=1"),
        ("PUT", "/obj/2?x=1"),
        ("HEAD", "/obj/0"),
    ]
    assert upstream.seen[0][2]["If-None-Match"] == "*"
    assert [(r.method, r.path, r.query, r.body, s) for r, s in proxy.log][:2] == [
        ("PUT", "/obj/0", "x=1", b"body0", 201),
        ("PUT", "/obj/1", "x=1", b"body1", 201),
    ]
    assert proxy.log[0][0].header("if-none-match") == "*"
    assert proxy.log[0][0].query_params == {"x": "1"}


def test_chunked_request_body_is_decoded(proxy: FaultProxy, upstream: _Upstream) -> None:
    conn = _conn(proxy)
    conn.request("PUT", "/c", body=iter([b"ab", b"cde"]), encode_chunked=True)
    resp = conn.getresponse()
    assert (resp.status, resp.read()) == (201, b"echo:abcde")
    assert upstream.seen[0][3] == b"abcde"
    assert proxy.log[0][0].body == b"abcde"


def test_respond_answers_without_forwarding(proxy: FaultProxy, upstream: _Upstream) -> None:
    proxy.set_fault(lambda req: Respond(503, b"<Error/>", {"X-Fake": "1"}) if req.method == "PUT" else None)
    conn = _conn(proxy)
    conn.request("PUT", "/k", body=b"x")
    resp = conn.getresponse()
    assert (resp.status, resp.read(), resp.getheader("X-Fake")) == (503, b"<Error/>", "1")
    conn.request("GET", "/k")  # same connection still usable; GET is forwarded
    assert conn.getresponse().status == 200
    assert [m for m, _, _, _ in upstream.seen] == ["GET"]
    assert [s for _, s in proxy.log] == [503, 200]


@pytest.mark.parametrize(
    ("fault", "reaches_upstream"), [(DropBeforeForward(), False), (DropAfterForward(), True)]
)
def test_drops_close_the_connection_without_answer(
    proxy: FaultProxy,
    upstream: _Upstream,
    fault: DropBeforeForward | DropAfterForward,
    reaches_upstream: bool,
) -> None:
    proxy.set_fault(lambda req: fault)
    conn = _conn(proxy)
    conn.request("PUT", "/k", body=b"payload")
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        conn.getresponse()
    conn.close()
    assert [(m, b) for m, _, _, b in upstream.seen] == ([("PUT", b"payload")] if reaches_upstream else [])
    assert [(r.method, s) for r, s in proxy.log] == [("PUT", None)]


def test_strip_headers_is_case_insensitive(proxy: FaultProxy, upstream: _Upstream) -> None:
    proxy.set_fault(lambda req: StripHeaders(("if-none-match", "X-Other")))
    conn = _conn(proxy)
    conn.request("PUT", "/k", body=b"x", headers={"If-None-Match": "*", "X-Other": "1", "X-Kept": "2"})
    assert conn.getresponse().status == 201
    sent = {k.lower() for k in upstream.seen[0][2]}
    assert "if-none-match" not in sent
    assert "x-other" not in sent
    assert "x-kept" in sent
    assert proxy.log[0][0].header("If-None-Match") == "*"  # the log shows what the client sent


def test_delay_forwards_after_waiting(proxy: FaultProxy, upstream: _Upstream) -> None:
    proxy.set_fault(lambda req: Delay(0.2))
    conn = _conn(proxy)
    conn.request("GET", "/slow")
    resp = conn.getresponse()
    assert (resp.status, resp.read()) == (200, b"echo:")
    assert len(upstream.seen) == 1


def test_fault_fn_sees_full_request_and_log_bodies_off(upstream: _Upstream) -> None:
    seen: list[Request] = []

    def fn(req: Request) -> None:
        seen.append(req)

    with FaultProxy(f"http://127.0.0.1:{upstream.server_address[1]}", log_bodies=False) as proxy:
        proxy.set_fault(fn)
        conn = _conn(proxy)
        conn.request("POST", "/p?uploads", body=b"z" * 1000)
        assert conn.getresponse().status == 200
        conn.close()
    assert seen[0].body == b"z" * 1000
    assert seen[0].query == "uploads"
    assert proxy.log[0][0].body == b""


def test_stop_closes_idle_keep_alive_connections(upstream: _Upstream) -> None:
    proxy = FaultProxy(f"http://127.0.0.1:{upstream.server_address[1]}").start()
    conn = _conn(proxy)
    conn.request("GET", "/")
    assert conn.getresponse().read() == b"echo:"
    proxy.stop()  # must return promptly although the client keeps its connection open

    def again() -> None:
        conn.request("GET", "/")
        conn.getresponse()

    with pytest.raises((ConnectionError, http.client.HTTPException, OSError)):
        again()
    conn.close()


def test_observer_sees_every_exchange_and_keep_log_false_keeps_none(upstream: _Upstream) -> None:
    seen: list[Exchange] = []
    url = f"http://127.0.0.1:{upstream.server_address[1]}"
    with FaultProxy(url, keep_log=False, observer=seen.append) as proxy:
        proxy.set_fault(lambda req: Respond(404, b"nope") if req.path == "/missing" else None)
        conn = _conn(proxy)
        for method, path, body in [("PUT", "/a", b"abc"), ("GET", "/a", b""), ("GET", "/missing", b"")]:
            conn.request(method, path, body=body or None)
            conn.getresponse().read()
        conn.close()
        assert proxy.log == []
    assert [(e.request.method, e.request.path, e.status, e.response_bytes) for e in seen] == [
        ("PUT", "/a", 201, len(b"echo:abc")),
        ("GET", "/a", 200, len(b"echo:")),
        ("GET", "/missing", 404, len(b"nope")),
    ]
    assert [e.request.body for e in seen] == [b"abc", b"", b""]
    assert all(e.started <= e.ended for e in seen)
    assert [m for m, _, _, _ in upstream.seen] == ["PUT", "GET"]
