"""The web view's HTTP server: standard library ``http.server``, GET only, local by default.

Defences, since the view shows everything in a store:

* It binds to 127.0.0.1 unless told otherwise, and answers only requests
  whose ``Host`` header names the address it serves (loopback names, or the
  host it was told to bind): a page on another site that rebinds its DNS
  name to 127.0.0.1 gets 421, not the store's contents.
* Every response carries a strict Content-Security-Policy: no script at all,
  styles only from the page's own ``<style>`` element with a fresh nonce,
  no framing, forms only to itself; plus ``nosniff``, ``no-referrer`` and
  ``no-store``.
* Only GET and HEAD are served; the model it calls only reads.
"""

from __future__ import annotations

import argparse
import http
import http.server
import ipaddress
import secrets
import socket
import sys
import traceback
import urllib.parse
from collections.abc import Sequence
from typing import Any

from cairnflow.core.errors import (
    CairnflowError,
    InvalidArgumentError,
    StoreError,
    ThreadNotFoundError,
    UsageError,
)
from cairnflow.ui import pages
from cairnflow.ui.html import Child
from cairnflow.ui.model import Browser, Filters

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "UIServer", "main", "make_server"]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8470


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def csp(nonce: str) -> str:
    """The Content-Security-Policy sent with every page."""
    return (
        "default-src 'none'; "
        f"style-src 'nonce-{nonce}'; "
        "img-src 'self'; "
        "form-action 'self'; "
        "base-uri 'none'; "
        "frame-ancestors 'none'"
    )


class UIServer(http.server.ThreadingHTTPServer):
    """Serves one :class:`Browser` on ``address``; see :meth:`host_allowed` for whom it answers."""

    daemon_threads = True

    def __init__(self, browser: Browser, address: tuple[str, int], *, quiet: bool = False) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)
        self.browser = browser
        self.quiet = quiet
        self.port = int(self.server_address[1])
        self.names = frozenset({"localhost", address[0].lower().strip("[]")} - {""})

    def host_allowed(self, host: str) -> bool:
        """Whether a request whose ``Host`` header is ``host`` may be answered.

        The port must be ours, and the name ``localhost``, the name we were told to bind,
        or an IP address. A DNS rebinding attack reaches us under the attacker's own DNS
        name, which is none of these; an IP literal cannot be rebound.
        """
        name, sep, port = host.lower().rpartition(":")
        if not sep or port != str(self.port):
            return False
        name = name[1:-1] if name.startswith("[") and name.endswith("]") else name
        if name in self.names:
            return True
        try:
            ipaddress.ip_address(name)
        except ValueError:
            return False
        return True

    @property
    def url(self) -> str:
        """Where the view is served (for the loopback host)."""
        host = str(self.server_address[0])
        if host in ("0.0.0.0", "::", ""):  # noqa: S104 - describing a bind, not making one
            host = "127.0.0.1"
        return f"http://{'[' + host + ']' if ':' in host else host}:{self.server_address[1]}/"


class _Handler(http.server.BaseHTTPRequestHandler):
    server: UIServer
    server_version = "cairnflow-ui"
    sys_version = ""

    # ------------------------------------------------------------------ plumbing

    def log_message(self, format: str, *args: Any) -> None:
        if not self.server.quiet:
            sys.stderr.write(f"cairnflow ui: {self.address_string()} {format % args}\n")

    def _send(self, status: int, body: bytes, *, nonce: str | None = None, head: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Security-Policy", csp(nonce or secrets.token_urlsafe(16)))
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("X-Frame-Options", "DENY")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _page(self, status: int, title: str, body: Sequence[Child], *, head: bool) -> None:
        nonce = secrets.token_urlsafe(16)
        document = pages.layout(title, self.server.browser.url, nonce, *body)
        self._send(status, document.encode("utf-8"), nonce=nonce, head=head)

    def _error(self, status: int, message: str, *, head: bool) -> None:
        self._page(status, str(status), pages.error_page(status, message), head=head)

    # ------------------------------------------------------------------ requests

    def do_GET(self) -> None:
        self._serve(head=False)

    def do_HEAD(self) -> None:
        self._serve(head=True)

    def _refuse_method(self) -> None:
        self.send_response(http.HTTPStatus.METHOD_NOT_ALLOWED)
        self.send_header("Allow", "GET, HEAD")
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _refuse_method

    def _serve(self, *, head: bool) -> None:
        if not self.server.host_allowed(self.headers.get("Host") or ""):
            self._error(421, "This view answers only requests addressed to the host it serves.", head=head)
            return
        parts = urllib.parse.urlsplit(self.path)
        params = urllib.parse.parse_qs(parts.query, keep_blank_values=True)
        try:
            self._route(parts.path, params, head=head)
        except InvalidArgumentError as exc:
            self._error(400, str(exc), head=head)
        except ThreadNotFoundError as exc:
            self._error(404, str(exc), head=head)
        except StoreError as exc:
            self._error(502, f"the store failed: {exc}", head=head)
        except CairnflowError as exc:
            self._error(500, f"{type(exc).__name__}: {exc}", head=head)
        except Exception as exc:  # noqa: BLE001 - one bad page must not stop the server
            traceback.print_exc(file=sys.stderr)
            self._error(500, f"internal error ({type(exc).__name__}); see the server's output", head=head)

    def _route(self, path: str, params: dict[str, list[str]], *, head: bool) -> None:
        browser = self.server.browser
        if path == "/":
            filters = Filters.from_query(params)
            rows = browser.threads(filters)
            body = pages.threads_page(rows, filters, browser.workflows(rows), browser.clock())
            self._page(200, "Threads", body, head=head)
        elif path == "/thread":
            self._thread(params, head=head)
        elif path == "/verify":
            report = browser.verify(_param(params, "thread"), _param(params, "layout"))
            self._page(200, "Verify", pages.verify_page(report), head=head)
        elif path == "/favicon.ico":
            self.send_response(http.HTTPStatus.NO_CONTENT)
            self.end_headers()
        else:
            self._error(404, f"no page {path!r}", head=head)

    def _thread(self, params: dict[str, list[str]], *, head: bool) -> None:
        browser = self.server.browser
        thread_id = _param(params, "id")
        if thread_id is None:
            raise InvalidArgumentError("id: name the thread (/thread?id=...)")
        layout = _param(params, "layout")
        if layout not in (None, "executor", "langgraph"):
            raise InvalidArgumentError(f"layout: must be executor or langgraph, not {layout!r}")
        title = f"Thread {thread_id}"
        if browser.layout_of(thread_id, layout) == "executor":
            view = browser.executor_thread(thread_id, _param(params, "checkpoint"))
            self._page(200, title, pages.executor_page(view, browser.clock()), head=head)
        else:
            lg_view = browser.langgraph_thread(thread_id)
            self._page(200, title, pages.langgraph_page(lg_view), head=head)


def _param(params: dict[str, list[str]], name: str) -> str | None:
    values = params.get(name)
    return values[-1] if values else None


def make_server(
    browser: Browser, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, *, quiet: bool = False
) -> UIServer:
    """A server for ``browser`` bound to ``host:port`` (port 0: any free port); call ``serve_forever``."""
    return UIServer(browser, (host, port), quiet=quiet)


def main(argv: Sequence[str] | None = None) -> int:
    """``cairnflow ui URL [--host H] [--port P]``: serve the read-only view until interrupted."""
    parser = argparse.ArgumentParser(
        prog="cairnflow ui",
        description="A local, read-only web view of a store: threads, timelines, LangGraph, verify.",
    )
    parser.add_argument("url", help="the store, e.g. file://./.cairnflow or s3://bucket/prefix")
    parser.add_argument("--host", default=DEFAULT_HOST, help=f"address to bind (default {DEFAULT_HOST})")
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0: any)"
    )
    parser.add_argument("--quiet", action="store_true", help="do not log requests")
    args = parser.parse_args(argv)
    # Opened as every operator command opens a store (CAIRNFLOW_ENCRYPTION_KEYS included).
    from cairnflow.cli.commands import open_log

    try:
        saver = open_log(args.url, create=False)
    except CairnflowError as exc:
        print(f"cairnflow ui: error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, UsageError) else 3
    try:
        server = make_server(Browser(saver), args.host, args.port, quiet=args.quiet)
    except OSError as exc:
        print(
            f"cairnflow ui: error: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}",
            file=sys.stderr,
        )
        return 2
    if not _is_loopback(args.host):
        print(
            f"cairnflow ui: warning: listening on {args.host}, not loopback: anyone who can reach it "
            "can read every value in this store",
            file=sys.stderr,
        )
    print(f"cairnflow ui: {server.url} shows {args.url} (read-only; Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
