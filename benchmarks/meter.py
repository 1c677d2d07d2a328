"""The benchmarks' request meter: the tests' FaultProxy, counting and delaying, in its own process.

Run one per emulator, as its own process, so that neither the workload nor a
child process it starts shares a GIL with it::

    python -m benchmarks.meter --upstream http://127.0.0.1:5000 --cloud s3 --port-file p.txt

It is :class:`tests.support.faultproxy.FaultProxy` (the proxy the backend tests put
in front of the emulators) on a free 127.0.0.1 port, written to ``--port-file``,
with a fault function that injects the round-trip delay and answers the control
API, and an observer that counts. For every request it records:

* its **kind**, by cloud (see :func:`classify`): ``PUT`` (an object write:
  S3 PutObject/UploadPart, a GCS upload -- a POST on the wire --, an Azure Put
  Blob/Block/Block List), ``GET`` (an object read), ``LIST``, ``HEAD`` (object
  or bucket metadata: S3/Azure HEAD, a GCS metadata GET), ``DELETE``, ``POST``
  (any other POST: multipart create/complete, batch delete...);
* the bytes of the request body (``bytes_in``: what the client sent, i.e.
  written) and of the response body (``bytes_out``: what it read), bodies only
  (S3 aws-chunked framing and checksum trailers included);
* when it arrived and when its answer was ready, and how many requests were in
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
one's answer was ready), computed by the greedy earliest-end rule over the
request intervals. Requests sent in parallel count once; a LIST followed by two
GETs in parallel counts 2; the same three one after another count 3.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import threading
import time
import urllib.parse
from collections import Counter

from tests.support.faultproxy import Exchange, Fault, FaultProxy, Request, Respond

__all__ = ["KINDS", "Meter", "classify", "max_in_flight", "sequential_round_trips"]

KINDS = ("PUT", "GET", "LIST", "HEAD", "DELETE", "POST")
CONTROL = "/__bench/"


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


class Meter:
    """The counters of one meter process; the fault function and observer of its FaultProxy."""

    def __init__(self, cloud: str) -> None:
        self.cloud = cloud
        self.rtt = 0.0
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.counts: Counter[str] = Counter()
            self.bytes_in: Counter[str] = Counter()
            self.bytes_out: Counter[str] = Counter()
            self.statuses: Counter[str] = Counter()
            self.intervals: list[tuple[float, float]] = []
            self.requests: list[tuple[str, str, int | None]] = []
            self.delays: list[float] = []

    def fault(self, request: Request) -> Fault | None:
        """Answer a control request; delay any other one by the round-trip time, then forward it."""
        if request.path.startswith(CONTROL):
            return self._control(request.path[len(CONTROL) :], request.query)
        if self.rtt:
            start = time.monotonic()
            time.sleep(self.rtt)  # one sleep per request (two half-delays would oversleep twice)
            with self.lock:
                self.delays.append(time.monotonic() - start)
        return None

    def observe(self, exchange: Exchange) -> None:
        request = exchange.request
        if request.path.startswith(CONTROL):
            return
        kind = classify(self.cloud, request.method, request.path, request.query)
        line = f"{request.method} {request.path}" + (f"?{request.query}" if request.query else "")
        with self.lock:
            if len(self.requests) < 1000:
                self.requests.append((kind, line, exchange.status))
            self.counts[kind] += 1
            self.bytes_in[kind] += len(request.body)
            self.bytes_out[kind] += exchange.response_bytes
            self.statuses[str(exchange.status)] += 1
            self.intervals.append((exchange.started, exchange.ended))

    def _control(self, action: str, query: str) -> Respond:
        params = urllib.parse.parse_qs(query)
        if action == "reset":
            self.reset()
            payload: object = {"ok": True}
        elif action == "config":
            if "rtt_ms" in params:
                self.rtt = float(params["rtt_ms"][0]) / 1000.0
            payload = {"rtt_ms": self.rtt * 1000}
        elif action == "stats":
            payload = self.stats(with_log="log" in params)
        else:
            return Respond(404, b"unknown control action")
        return Respond(200, json.dumps(payload).encode(), {"Content-Type": "application/json"})

    def stats(self, with_log: bool = False) -> dict[str, object]:
        with self.lock:
            intervals = list(self.intervals)
            out: dict[str, object] = {
                "cloud": self.cloud,
                "rtt_ms": self.rtt * 1000,
                "counts": dict(self.counts),
                "bytes_in": dict(self.bytes_in),
                "bytes_out": dict(self.bytes_out),
                "statuses": dict(self.statuses),
                "max_in_flight": max_in_flight(intervals),
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


def max_in_flight(intervals: list[tuple[float, float]]) -> int:
    """The most requests whose intervals overlap at one moment."""
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    most = current = 0
    for _, step in events:  # at equal times an end (-1) sorts before a start (+1)
        current += step
        most = max(most, current)
    return most


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--upstream", required=True, help="http://127.0.0.1:PORT of the emulator")
    parser.add_argument("--cloud", required=True, choices=("s3", "gcs", "azure"))
    parser.add_argument("--port-file", required=True, help="the chosen port is written here")
    parser.add_argument("--rtt-ms", type=float, default=0.0)
    args = parser.parse_args(argv)
    meter = Meter(args.cloud)
    meter.rtt = args.rtt_ms / 1000.0
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    proxy = FaultProxy(args.upstream, keep_log=False, observer=meter.observe, upstream_timeout=300)
    proxy.set_fault(meter.fault)
    with proxy:
        tmp = f"{args.port_file}.tmp"
        with open(tmp, "w") as fh:
            fh.write(proxy.url.rsplit(":", 1)[1])
        os.replace(tmp, args.port_file)
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
