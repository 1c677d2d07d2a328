"""Seeded fault injection for the reliability suite: over HTTP and at the store seam.

HTTP level
----------
:class:`FaultPolicy` is a fault function for :class:`~tests.support.faultproxy.FaultProxy`:
each request draws from one seeded ``random.Random`` and, with probability
``rate``, gets one fault:

* ``error`` -- an answer the cloud gives when it is busy or broken, chosen per
  backend: S3 ``503 SlowDown`` and ``500 InternalError``; GCS ``503`` and
  ``429`` (and ``500``); Azure ``503 ServerBusy`` and ``500 InternalError``;
  the upstream never sees the request;
* ``drop-after`` -- :class:`DropAfterForward`: the write lands, the answer is lost
  (a timeout after the write);
* ``drop-before`` -- :class:`DropBeforeForward`: the request never lands;
* ``delay`` -- :class:`Delay` of ``delay`` seconds (a slow answer);
* ``timeout`` -- :class:`Delay` of ``hang`` seconds, longer than the client's read
  timeout: the client gives up (and its SDK or the core retries) while the
  request is still held; it is forwarded afterwards and may land *after* the
  retry (a real timeout, with a late write);
* ``mid-body`` -- :class:`DropMidBody`: the request is forwarded (and lands), the
  answer's status line, headers and *half* of its body are sent, then the
  connection is closed. This needs :class:`SoakProxy` (the base proxy can only
  drop a connection before the answer starts). An answer with an empty body
  cannot be cut in the middle; it is dropped whole (counted as
  ``mid-body-empty``).

Which requests get which fault depends on the order in which concurrent
requests reach the policy, so a seed reproduces the fault *sequence*, not the
exact pairing; every failure message carries it.

Store seam
----------
:class:`FaultyStore` wraps any :class:`~cairnflow.core.store.ObjectStore` (the
memory and local stores have no HTTP) and raises
:class:`~cairnflow.core.errors.TransientStoreError` at ``rate``: before a request
is applied (``ambiguous=False`` -- a refused request -- or ``ambiguous=True`` -- a
timeout that happened not to land), after a write was applied (``ambiguous=True``:
the write landed, the answer was lost), after a read, or in the middle of a
listing.
"""

from __future__ import annotations

import json
import random
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

from cairnflow.core.errors import TransientStoreError
from cairnflow.core.store import CREATE, ObjectInfo, ObjectStore, PutMode, StoredObject
from tests.support.faultproxy import (
    _HOP_BY_HOP,
    Delay,
    DropAfterForward,
    DropBeforeForward,
    Fault,
    FaultProxy,
    Request,
    Respond,
    _Handler,
)
from tests.support.forwarding import ForwardingStore

__all__ = [
    "HTTP_FAULT_KINDS",
    "DropMidBody",
    "FaultPolicy",
    "FaultyStore",
    "SoakProxy",
    "error_answers",
]

#: Relative weights of the HTTP fault kinds among faulted requests.
HTTP_FAULT_KINDS: dict[str, float] = {
    "error": 0.30,
    "drop-after": 0.20,
    "drop-before": 0.20,
    "delay": 0.10,
    "mid-body": 0.15,
    "timeout": 0.05,
}

_local = threading.local()


@dataclass
class DropMidBody:
    """Forward the request, send the answer's head and half its body, then close the connection."""


class _MidBodyHandler(_Handler):
    """The base handler, plus :class:`DropMidBody` (decided by the fault function on this thread)."""

    def _handle(self) -> None:
        _local.fault = None
        try:
            super()._handle()
        finally:
            _local.fault = None

    def _reply(
        self,
        status: int,
        reason: str | None,
        headers: list[tuple[str, str]],
        body: bytes,
        head_length: str | None,
    ) -> None:
        fault = getattr(_local, "fault", None)
        _local.fault = None
        if not isinstance(fault, DropMidBody):
            super()._reply(status, reason, headers, body, head_length)
            return
        proxy = self.server.proxy
        assert isinstance(proxy, SoakProxy)
        self.close_connection = True
        if self.command == "HEAD" or len(body) < 2:
            proxy.count("mid-body-empty")  # nothing to cut: the whole answer is lost
            return
        proxy.count("mid-body-cut")
        self.send_response_only(status, reason)
        for name, value in headers:
            if name.lower() not in _HOP_BY_HOP:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body[: len(body) // 2])
        self.wfile.flush()


class SoakProxy(FaultProxy):
    """A :class:`FaultProxy` that can also cut an answer in the middle of its body."""

    def __init__(self, upstream: str, **options: object) -> None:
        # A soak sends thousands of requests: keep no log (the policy counts faults).
        super().__init__(upstream, keep_log=False, **options)  # type: ignore[arg-type]
        self.effects: Counter[str] = Counter()
        self._effects_lock = threading.Lock()

    def count(self, effect: str) -> None:
        with self._effects_lock:
            self.effects[effect] += 1

    def start(self) -> SoakProxy:
        super().start()
        server = self._server
        assert server is not None
        server.RequestHandlerClass = _MidBodyHandler

        def handle_error(request: object, client_address: object) -> None:
            # A client that gave up on a cut or delayed answer resets its connection: expected here.
            self.count("connection-reset-by-client")

        server.handle_error = handle_error  # type: ignore[method-assign]
        return self


# --------------------------------------------------------------------------- answers


def _s3_error(status: int, code: str) -> Respond:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f"<Error><Code>{code}</Code><Message>injected by the soak</Message>"
        "<RequestId>soak</RequestId></Error>"
    ).encode()
    return Respond(status, body, {"Content-Type": "application/xml"})


def _gcs_error(status: int) -> Respond:
    body = json.dumps({"error": {"code": status, "message": "injected by the soak", "errors": []}})
    return Respond(status, body.encode(), {"Content-Type": "application/json"})


def _azure_error(status: int, code: str) -> Respond:
    body = (
        '<?xml version="1.0" encoding="utf-8"?>'
        f"<Error><Code>{code}</Code><Message>injected by the soak</Message></Error>"
    ).encode()
    return Respond(status, body, {"x-ms-error-code": code, "Content-Type": "application/xml"})


def error_answers(backend: str) -> list[tuple[str, Respond]]:
    """The busy/broken answers injected for ``backend``, with a label each."""
    if backend == "s3":
        return [
            ("503 SlowDown", _s3_error(503, "SlowDown")),
            ("500 InternalError", _s3_error(500, "InternalError")),
        ]
    if backend == "gcs":
        return [("503", _gcs_error(503)), ("429", _gcs_error(429)), ("500", _gcs_error(500))]
    if backend == "azure":
        return [
            ("503 ServerBusy", _azure_error(503, "ServerBusy")),
            ("500 InternalError", _azure_error(500, "InternalError")),
        ]
    raise ValueError(f"no HTTP answers for backend {backend!r}")


class FaultPolicy:
    """A seeded fault function: each request is faulted with probability ``rate``."""

    def __init__(
        self, backend: str, seed: int, *, rate: float = 0.10, delay: float = 0.05, hang: float = 1.5
    ) -> None:
        self.backend = backend
        self.seed = seed
        self.rate = rate
        self.delay = delay
        self.hang = hang
        self.enabled = True
        self.requests = 0
        self.faults: Counter[str] = Counter()
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._answers = error_answers(backend)
        self._kinds = list(HTTP_FAULT_KINDS)
        self._weights = [HTTP_FAULT_KINDS[k] for k in self._kinds]

    @property
    def injected(self) -> int:
        return sum(self.faults.values())

    def __call__(self, request: Request) -> Fault | DropMidBody | None:
        with self._lock:
            if not self.enabled:
                return None
            self.requests += 1
            if self._rng.random() >= self.rate:
                return None
            kind = self._rng.choices(self._kinds, self._weights)[0]
            label, answer = self._answers[self._rng.randrange(len(self._answers))]
            self.faults[f"error {label}" if kind == "error" else kind] += 1
        if kind == "error":
            return answer
        if kind == "drop-after":
            return DropAfterForward()
        if kind == "drop-before":
            return DropBeforeForward()
        if kind == "delay":
            return Delay(self.delay)
        if kind == "timeout":
            return Delay(self.hang)
        fault = DropMidBody()
        _local.fault = fault  # read by _MidBodyHandler._reply on this same handler thread
        return fault


# --------------------------------------------------------------------------- store seam


class FaultyStore(ForwardingStore):
    """Raises TransientStoreError at ``rate`` of requests, before or after applying them."""

    def __init__(self, inner: ObjectStore, seed: int, *, rate: float = 0.10) -> None:
        super().__init__(inner)
        self.seed = seed
        self.rate = rate
        self.enabled = True
        self.requests = 0
        self.faults: Counter[str] = Counter()
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    @property
    def injected(self) -> int:
        return sum(self.faults.values())

    def _draw(self, op: str, kinds: list[str]) -> str | None:
        with self._lock:
            if not self.enabled:
                return None
            self.requests += 1
            if self._rng.random() >= self.rate:
                return None
            kind = kinds[self._rng.randrange(len(kinds))]
            self.faults[f"{op} {kind}"] += 1
            return kind

    def put(self, key: str, data: bytes, mode: PutMode = CREATE) -> str:
        kind = self._draw("PUT", ["refused", "lost", "landed"])
        if kind == "refused":
            raise TransientStoreError("injected: refused", key=key, store=self.url, ambiguous=False)
        if kind == "lost":
            raise TransientStoreError("injected: timed out, not applied", key=key, store=self.url)
        etag = self.inner.put(key, data, mode)
        if kind == "landed":
            raise TransientStoreError("injected: timed out after the write landed", key=key, store=self.url)
        return etag

    def get(self, key: str) -> StoredObject:
        kind = self._draw("GET", ["refused", "after"])
        if kind == "refused":
            raise TransientStoreError("injected: refused", key=key, store=self.url, ambiguous=False)
        obj = self.inner.get(key)
        if kind == "after":
            raise TransientStoreError("injected: answer lost", key=key, store=self.url, ambiguous=False)
        return obj

    def list(
        self, prefix: str, *, start_after: str | None = None, limit: int | None = None
    ) -> Iterator[ObjectInfo]:
        kind = self._draw("LIST", ["refused", "mid-listing"])
        return self._list(prefix, start_after, limit, kind)

    def _list(
        self, prefix: str, start_after: str | None, limit: int | None, kind: str | None
    ) -> Iterator[ObjectInfo]:
        if kind == "refused":
            raise TransientStoreError("injected: refused", key=prefix, store=self.url, ambiguous=False)
        for n, info in enumerate(self.inner.list(prefix, start_after=start_after, limit=limit)):
            if kind == "mid-listing" and n == 1:
                raise TransientStoreError(
                    "injected: listing cut", key=prefix, store=self.url, ambiguous=False
                )
            yield info
        if kind == "mid-listing":  # fewer than two entries: the connection broke at the end
            raise TransientStoreError("injected: listing cut", key=prefix, store=self.url, ambiguous=False)

    def delete(self, key: str) -> None:
        kind = self._draw("DELETE", ["refused", "landed"])
        if kind == "refused":
            raise TransientStoreError("injected: refused", key=key, store=self.url, ambiguous=False)
        self.inner.delete(key)
        if kind == "landed":
            raise TransientStoreError("injected: answer lost", key=key, store=self.url)
