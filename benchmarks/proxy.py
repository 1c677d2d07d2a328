"""A request-counting, latency-injecting HTTP proxy for the benchmarks.

Run one per emulator, as its own process, so that neither the workload nor a
child process it starts shares a GIL with it::

    python benchmarks/proxy.py --upstream http://127.0.0.1:5000 --cloud s3 --port-file p.txt

It listens on 127.0.0.1 (a free port, written to ``--port-file``), forwards
every request to the upstream emulator and copies the answer back. For every
request it records:

* its **kind**, by cloud (see :func:`classify`): ``PUT`` (an object write:
  S3 PutObject/UploadPart, a GCS upload -- a POST on the wire --, an Azure Put
  Blob/Block/Block List), ``GET`` (an object read), ``LIST``, ``HEAD`` (object
  or bucket metadata: S3/Azure HEAD, a GCS metadata GET), ``DELETE``, ``POST``
  (any other POST: multipart create/complete, batch delete...);
* the bytes of the request body (``bytes_in``: what the client sent, i.e.
  written) and of the response body (``bytes_out``: what it read), bodies only,
  on the wire (S3 aws-chunked framing and checksum trailers included);
* when it arrived and when its answer was sent, and how many requests were in
  flight at once.

**Injected latency.** With ``rtt_ms`` set, every request waits ``rtt_ms``
before it is forwarded, so each request costs one round trip of ``rtt_ms`` on
top of the emulator's own time, as if the store were that far away (connection
set-up is free: clients keep connections alive). ``mean_delay_ms`` in the stats
is the delay actually slept (a loaded machine oversleeps a little).

**Control API** (same port, never counted, never delayed):

* ``POST /__bench/reset`` -- clear counters and the request log;
* ``POST /__bench/config?rtt_ms=20`` -- set the injected round-trip time;
* ``GET /__bench/stats`` -- JSON: counts by kind, bytes by kind, status codes,
  ``max_in_flight``, ``chain`` (sequential round trips, below), ``n``, and the
  time span of the requests since the last reset; ``?log=1`` adds the first
  1000 requests (kind, method and path, status).

**Sequential round trips** (``chain``): the largest number of logged requests
that happened strictly one after another (each starting after the previous
one's answer was sent), computed by the greedy earliest-end rule over the
request intervals. Requests sent in parallel count once; a LIST followed by two
GETs in parallel counts 2; the same three one after another count 3.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import socket
import sys
import threading
import time
import urllib.parse
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__all__ = ["KINDS", "classify", "sequential_round_trips"]

KINDS = ("PUT", "GET", "LIST", "HEAD", "DELETE", "POST")
CONTROL = "/__bench/"

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


def classify(cloud: str, method: str, path: str, query: str) -> str:
    """The billing kind of one request to ``cloud`` (``s3``, ``gcs`` or ``azure``)."""
    params = urllib.parse.parse_qs(query, keep_blank_values=True)
    method = method.upper()
    if cloud == "s3":
        # Path-style addressing: /bucket[/key]
        parts = path.lstrip("/").split("/", 1)
        has_key = len(parts) == 2 and parts[1] != ""
        if method == "GET":
            if "list-type" in params or "uploads" in params or not has_key:
                return "LIST"
            return "GET"
        return method if method in KINDS else "POST"
    if cloud == "gcs":
        # JSON API: /storage/v1/b/{bucket}/o[/{object}], /upload/storage/v1/..., /download/storage/v1/...
        if path.startswith("/upload/"):
            return "PUT"  # media, multipart or resumable upload: an object write
        segments = [s for s in path.split("/") if s]
        if method == "GET":
            if segments[:1] == ["download"]:
                return "GET"
            try:
                o = segments.index("o")
            except ValueError:
                # /storage/v1/b (bucket list) or /storage/v1/b/{bucket} (bucket metadata)
                return "LIST" if segments[-1:] == ["b"] else "HEAD"
            if o == len(segments) - 1:
                return "LIST"
            return "GET" if params.get("alt") == ["media"] else "HEAD"
        if method == "DELETE":
            return "DELETE"
        if method == "PUT":
            return "PUT"
        return "POST" if method == "POST" else method
    if cloud == "azure":
        if method == "GET":
            if params.get("comp") == ["list"]:
                return "LIST"
            if "comp" in params or "restype" in params:
                return "HEAD"  # properties, metadata, block list: metadata reads
            return "GET"
        return method if method in KINDS else "POST"
    raise ValueError(f"unknown cloud {cloud!r}")


def sequential_round_trips(intervals: list[tuple[float, float]]) -> int:
    """The most requests that ran strictly one after another (greedy by earliest end)."""
    chain = 0
    last_end = float("-inf")
    for start, end in sorted(intervals, key=lambda iv: iv[1]):
        if start >= last_end:
            chain += 1
            last_end = end
    return chain


class _State:
    def __init__(self, upstream: str, cloud: str) -> None:
        parts = urllib.parse.urlsplit(upstream)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"upstream must be an http:// URL, not {upstream!r}")
        self.up_host = parts.hostname
        self.up_port = parts.port or 80
        self.cloud = cloud
        self.rtt = 0.0
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.counts: Counter[str] = Counter()
            self.bytes_in: Counter[str] = Counter()
            self.bytes_out: Counter[str] = Counter()
            self.statuses: Counter[str] = Counter()
            self.intervals: list[tuple[float, float]] = []
            self.requests: list[tuple[str, str, int | None]] = []
            self.in_flight = 0
            self.max_in_flight = 0
            self.delays: list[float] = []

    def slept(self, seconds: float) -> None:
        with self.lock:
            self.delays.append(seconds)

    def begin(self) -> None:
        with self.lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def end(self, kind: str, start: float, n_in: int, n_out: int, status: int | None, line: str = "") -> None:
        with self.lock:
            if len(self.requests) < 1000:
                self.requests.append((kind, line, status))
            self.in_flight -= 1
            self.counts[kind] += 1
            self.bytes_in[kind] += n_in
            self.bytes_out[kind] += n_out
            self.statuses[str(status)] += 1
            self.intervals.append((start, time.monotonic()))

    def stats(self, with_log: bool = False) -> dict[str, object]:
        with self.lock:
            intervals = list(self.intervals)
            out = {
                "cloud": self.cloud,
                "rtt_ms": self.rtt * 1000,
                "counts": dict(self.counts),
                "bytes_in": dict(self.bytes_in),
                "bytes_out": dict(self.bytes_out),
                "statuses": dict(self.statuses),
                "max_in_flight": self.max_in_flight,
                "n": len(intervals),
                **({"log": list(self.requests)} if with_log else {}),
                "mean_delay_ms": (sum(self.delays) / len(self.delays) * 1000) if self.delays else 0.0,
                "mean_request_ms": (
                    sum(e - s for s, e in intervals) / len(intervals) * 1000 if intervals else 0.0
                ),
            }
        out["chain"] = sequential_round_trips(intervals)
        out["span_s"] = (max(e for _, e in intervals) - min(s for s, _ in intervals)) if intervals else 0.0
        return out


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, state: _State) -> None:
        self.state = state
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 300
    server: _Server

    def setup(self) -> None:
        super().setup()
        # Without this, a response written as headers then body waits for the client's
        # delayed ACK (Nagle): about 40 ms per request on loopback.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _control(self, path: str, query: str, body: bytes) -> None:
        state = self.server.state
        action = path[len(CONTROL) :]
        if action == "reset":
            state.reset()
            payload: object = {"ok": True}
        elif action == "config":
            params = urllib.parse.parse_qs(query)
            if "rtt_ms" in params:
                state.rtt = float(params["rtt_ms"][0]) / 1000.0
            payload = {"rtt_ms": state.rtt * 1000}
        elif action == "stats":
            payload = state.stats(with_log="log" in urllib.parse.parse_qs(query))
        else:
            self._reply(404, None, [], b"unknown control action")
            return
        data = json.dumps(payload).encode()
        self._reply(200, None, [("Content-Type", "application/json")], data)

    def _handle(self) -> None:
        state = self.server.state
        body = self._read_body()
        path, _, query = self.path.partition("?")
        if path.startswith(CONTROL):
            self._control(path, query, body)
            return
        kind = classify(state.cloud, self.command, path, query)
        start = time.monotonic()
        state.begin()
        recorded = False
        try:
            rtt = state.rtt
            if rtt:
                # One sleep per request (two half-delays would oversleep twice).
                time.sleep(rtt)
                state.slept(time.monotonic() - start)
            status, reason, headers, resp_body = self._forward(body)
            # Recorded before the client sees the answer, so that a client that has its
            # response can rely on the counters holding its request.
            state.end(kind, start, len(body), len(resp_body), status, f"{self.command} {self.path}")
            recorded = True
            self._reply(status, reason, headers, resp_body, _content_length(headers))
        except OSError:
            self.close_connection = True
        finally:
            if not recorded:
                state.end(kind, start, len(body), 0, None, f"{self.command} {self.path}")

    def _forward(self, body: bytes) -> tuple[int, str, list[tuple[str, str]], bytes]:
        state = self.server.state
        conn = http.client.HTTPConnection(state.up_host, state.up_port, timeout=300)
        try:
            conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            has_body = (
                bool(body)
                or "Content-Length" in self.headers
                or "chunked" in (self.headers.get("Transfer-Encoding") or "").lower()
            )
            for name, value in self.headers.items():
                if name.lower() not in _HOP_BY_HOP:
                    conn.putheader(name, value)
            if has_body:
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body if body else None)
            response = conn.getresponse()
            data = response.read()
            return response.status, response.reason, response.getheaders(), data
        finally:
            conn.close()

    def _reply(
        self,
        status: int,
        reason: str | None,
        headers: list[tuple[str, str]],
        body: bytes,
        head_length: str | None = None,
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", required=True, help="http://127.0.0.1:PORT of the emulator")
    parser.add_argument("--cloud", required=True, choices=("s3", "gcs", "azure"))
    parser.add_argument("--port-file", required=True, help="the chosen port is written here")
    parser.add_argument("--rtt-ms", type=float, default=0.0)
    args = parser.parse_args(argv)
    state = _State(args.upstream, args.cloud)
    state.rtt = args.rtt_ms / 1000.0
    server = _Server(state)
    port = server.server_address[1]
    tmp = f"{args.port_file}.tmp"
    with open(tmp, "w") as fh:
        fh.write(str(port))
    os.replace(tmp, args.port_file)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        state.stopping.set()
        with contextlib.suppress(OSError):
            server.socket.shutdown(socket.SHUT_RDWR)
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
