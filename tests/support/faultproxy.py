"""A small HTTP fault-injection proxy for the backend suites.

Put it between a cloud SDK and its emulator to see every request and to make
chosen requests fail in the ways real networks and real clouds fail::

    with FaultProxy("http://127.0.0.1:5000") as proxy:
        client = make_client(endpoint=proxy.url)
        proxy.set_fault(lambda req: Respond(503) if req.method == "PUT" else None)
        ...
        assert [status for _, status in proxy.log] == [503, 503, 503]

For every request the proxy reads the whole request (body included), calls
the fault function set with :meth:`FaultProxy.set_fault`, and then:

* ``None`` -- forwards it to the upstream and copies the answer back;
* :class:`Respond` -- answers itself; the upstream never sees the request;
* :class:`DropBeforeForward` -- closes the client's connection without an
  answer; the upstream never sees the request;
* :class:`DropAfterForward` -- forwards the request (the upstream applies it),
  then closes the client's connection without an answer;
* :class:`Delay` -- waits, then forwards normally;
* :class:`StripHeaders` -- forwards without the named request headers
  (case-insensitive), e.g. to imitate a gateway that drops ``If-None-Match``.

:attr:`FaultProxy.log` records every request and the status the client got
(``None`` when the connection was dropped); an ``observer`` (see :class:`Exchange`)
is also told the answer's size and when the request came and went, which is what
the benchmarks' request meter (``benchmarks/meter.py``) counts. The proxy speaks HTTP/1.1 with
keep-alive to the client (answering ``Expect: 100-continue`` itself), opens a
fresh upstream connection per request, keeps the client's ``Host`` header
(so signed requests stay valid), decodes chunked request bodies, and listens
on 127.0.0.1 only. The fault function runs on the proxy's handler threads, so
it must be thread-safe if it keeps state.
"""

from __future__ import annotations

import contextlib
import dataclasses
import http.client
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

__all__ = [
    "Delay",
    "DropAfterForward",
    "DropBeforeForward",
    "Exchange",
    "Fault",
    "FaultProxy",
    "Request",
    "Respond",
    "StripHeaders",
    "StripQueryParams",
]

# Headers that describe one connection, not the message: never copied across.
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "expect",
        "content-length",
    }
)


@dataclass
class Request:
    """What the proxy saw of one request (the body fully read, chunked encoding removed)."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes

    def header(self, name: str) -> str | None:
        """The value of header ``name`` (case-insensitive), or None."""
        lowered = name.lower()
        for key, value in self.headers.items():
            if key.lower() == lowered:
                return value
        return None

    @property
    def query_params(self) -> dict[str, str]:
        """The query string as a dict (a key without value maps to ``""``)."""
        return dict(urllib.parse.parse_qsl(self.query, keep_blank_values=True))


@dataclass
class Respond:
    """Answer with this response; the request never reaches the upstream."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


class DropBeforeForward:
    """Close the client's connection without forwarding or answering."""

    def __repr__(self) -> str:
        return "DropBeforeForward()"


class DropAfterForward:
    """Forward the request (the upstream applies it), then close without answering."""

    def __repr__(self) -> str:
        return "DropAfterForward()"


@dataclass
class Delay:
    """Wait ``seconds``, then forward normally (cut short when the proxy stops)."""

    seconds: float


@dataclass
class StripHeaders:
    """Forward the request without these headers (names compared case-insensitively)."""

    names: tuple[str, ...]


@dataclass
class StripQueryParams:
    """Forward the request without these query parameters (e.g. GCS's ``ifGenerationMatch``)."""

    names: tuple[str, ...]


@dataclass(frozen=True)
class Exchange:
    """One request as the observer sees it, once its answer is ready (before it is sent).

    ``status`` is None when the connection was dropped instead; ``response_bytes`` is the
    answer's body size; ``started`` and ``ended`` (``time.monotonic()``) bracket the
    fault function (an injected delay included) and the upstream's answer.
    """

    request: Request
    status: int | None
    response_bytes: int
    started: float
    ended: float


Fault = Respond | DropBeforeForward | DropAfterForward | Delay | StripHeaders | StripQueryParams
FaultFn = Callable[[Request], Fault | None]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # a benchmark opens many connections at once

    def __init__(self, proxy: FaultProxy) -> None:
        self.proxy = proxy
        self.open_sockets: set[socket.socket] = set()
        self.sockets_lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)

    def get_request(self) -> tuple[socket.socket, tuple[str, int]]:
        sock, addr = super().get_request()
        with self.sockets_lock:
            self.open_sockets.add(sock)
        return sock, addr

    def shutdown_request(self, request: socket.socket) -> None:  # type: ignore[override]
        with self.sockets_lock:
            self.open_sockets.discard(request)
        super().shutdown_request(request)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 120  # idle keep-alive connections are closed after this
    server: _Server

    def setup(self) -> None:
        super().setup()
        # Without this, an answer written as headers then body waits for the client's
        # delayed ACK (Nagle): about 40 ms per request on loopback.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: object) -> None:
        pass  # quiet: the proxy's own log is FaultProxy.log

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks: list[bytes] = []
            while True:
                size_line = self.rfile.readline()
                size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()  # CRLF after each chunk
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _handle(self) -> None:
        proxy = self.server.proxy
        body = self._read_body()
        path, _, query = self.path.partition("?")
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        request = Request(self.command, path, query, headers, body)
        started = time.monotonic()
        fn = proxy._fault_fn
        fault = fn(request) if fn is not None else None
        # The log entry is written before the client sees the answer, so a test
        # that has its response can rely on the log holding the request.
        recorded = False
        try:
            if isinstance(fault, Respond):
                proxy._record(request, fault.status, len(fault.body), started)
                recorded = True
                self._reply(fault.status, None, list(fault.headers.items()), fault.body, None)
            elif isinstance(fault, DropBeforeForward):
                self.close_connection = True
            elif isinstance(fault, DropAfterForward):
                try:
                    self._forward(request, ())
                finally:
                    self.close_connection = True
            else:
                if isinstance(fault, Delay):
                    proxy._stopping.wait(fault.seconds)
                strip = fault.names if isinstance(fault, StripHeaders) else ()
                if isinstance(fault, StripQueryParams):
                    kept = [
                        (k, v)
                        for k, v in urllib.parse.parse_qsl(request.query, keep_blank_values=True)
                        if k not in fault.names
                    ]
                    request = dataclasses.replace(request, query=urllib.parse.urlencode(kept))
                status, reason, resp_headers, resp_body = self._forward(request, strip)
                proxy._record(request, status, len(resp_body), started)
                recorded = True
                self._reply(status, reason, resp_headers, resp_body, _content_length(resp_headers))
        except OSError:
            # The upstream is unreachable or the client went away: drop the connection.
            self.close_connection = True
        finally:
            if not recorded:
                proxy._record(request, None, 0, started)

    def _forward(
        self, request: Request, strip: tuple[str, ...]
    ) -> tuple[int, str, list[tuple[str, str]], bytes]:
        proxy = self.server.proxy
        stripped = {name.lower() for name in strip}
        conn = http.client.HTTPConnection(proxy._up_host, proxy._up_port, timeout=proxy.upstream_timeout)
        try:
            target = request.path + (f"?{request.query}" if request.query else "")
            conn.putrequest(request.method, target, skip_host=True, skip_accept_encoding=True)
            has_body = (
                bool(request.body)
                or "Content-Length" in self.headers
                or ("chunked" in (self.headers.get("Transfer-Encoding") or "").lower())
            )
            for name, value in self.headers.items():
                lowered = name.lower()
                if lowered in _HOP_BY_HOP or lowered in stripped:
                    continue
                conn.putheader(name, value)
            if has_body:
                conn.putheader("Content-Length", str(len(request.body)))
            conn.endheaders(request.body if request.body else None)
            response = conn.getresponse()
            resp_body = response.read()
            return response.status, response.reason, response.getheaders(), resp_body
        finally:
            conn.close()

    def _reply(
        self,
        status: int,
        reason: str | None,
        headers: list[tuple[str, str]],
        body: bytes,
        head_length: str | None,
    ) -> None:
        self.send_response_only(status, reason)
        for name, value in headers:
            if name.lower() not in _HOP_BY_HOP:
                self.send_header(name, value)
        no_body = self.command == "HEAD" or status in (204, 304) or 100 <= status < 200
        if self.command == "HEAD":
            if head_length is not None:
                self.send_header("Content-Length", head_length)
        elif not no_body:
            self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        # Headers and body in one write (see setup()).
        self._headers_buffer.append(b"\r\n")
        if not no_body and body:
            self._headers_buffer.append(body)
        self.wfile.write(b"".join(self._headers_buffer))
        self._headers_buffer = []
        self.wfile.flush()

    do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = do_PATCH = do_OPTIONS = _handle


def _content_length(headers: list[tuple[str, str]]) -> str | None:
    for name, value in headers:
        if name.lower() == "content-length":
            return value
    return None


class FaultProxy:
    """A threaded HTTP/1.1 proxy on 127.0.0.1 that forwards to ``upstream`` and injects faults.

    ``log_bodies=False`` keeps request bodies out of :attr:`log` (the fault
    function still sees them), for tests that push large objects through;
    ``keep_log=False`` keeps no log at all (a long benchmark), and ``observer`` is
    called with an :class:`Exchange` for every request, on the handler's thread.
    """

    def __init__(
        self,
        upstream: str,
        *,
        log_bodies: bool = True,
        keep_log: bool = True,
        observer: Callable[[Exchange], None] | None = None,
        upstream_timeout: float = 120.0,
    ) -> None:
        parts = urllib.parse.urlsplit(upstream)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"upstream must be an http:// URL, not {upstream!r}")
        self.upstream = upstream
        self._up_host = parts.hostname
        self._up_port = parts.port or 80
        self.upstream_timeout = upstream_timeout
        self.log_bodies = log_bodies
        self.keep_log = keep_log
        self.observer = observer
        self.log: list[tuple[Request, int | None]] = []
        self.url = ""
        self._log_lock = threading.Lock()
        self._fault_fn: FaultFn | None = None
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def set_fault(self, fn: FaultFn | None) -> None:
        """Call ``fn`` for every request from now on; ``None`` forwards everything."""
        self._fault_fn = fn

    def clear_log(self) -> None:
        with self._log_lock:
            self.log.clear()

    def _record(self, request: Request, status: int | None, response_bytes: int, started: float) -> None:
        if self.observer is not None:
            self.observer(Exchange(request, status, response_bytes, started, time.monotonic()))
        if not self.keep_log:
            return
        if not self.log_bodies:
            request = Request(request.method, request.path, request.query, request.headers, b"")
        with self._log_lock:
            self.log.append((request, status))

    def start(self) -> FaultProxy:
        if self._server is not None:
            raise RuntimeError("proxy already started")
        self._stopping.clear()
        server = _Server(self)
        port = server.server_address[1]
        self.url = f"http://127.0.0.1:{port}"
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="faultproxy",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        with server.sockets_lock:
            sockets = list(server.open_sockets)
        for sock in sockets:  # wake handler threads blocked on idle keep-alive connections
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        server.server_close()
        if thread is not None:
            thread.join(timeout=10)
        self._server = self._thread = None

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
