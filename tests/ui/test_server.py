"""The web view over a real mixed store, through a plain HTTP client.

Every test reads the module's store through :class:`~tests.ui.conftest.RecordingStore`;
``test_a_full_browse_never_writes`` follows every link the pages offer and
checks that no write-class request reached the store.
"""

from __future__ import annotations

import html
import re
import subprocess
import sys
import time
import urllib.parse

import pytest

from cairnflow import ops
from cairnflow.savers import open_saver
from tests.cli.flows import EXPECTED
from tests.ui.conftest import READ_REQUESTS, Served, serve
from tests.ui.demo import HOSTILE, HOSTILE_ID, HOSTILE_WORKFLOW, LANGGRAPH_THREADS, all_ids

ALL_IDS = all_ids()
ROW = re.compile(r'<tr data-thread="([^"]*)">(.*?)</tr>', re.S)


def rows(body: str) -> dict[str, str]:
    """Thread id -> the row's HTML, from the thread list."""
    return {html.unescape(tid): row for tid, row in ROW.findall(body)}


def link(thread_id: str, **params: str) -> str:
    return "/thread?" + urllib.parse.urlencode({"id": thread_id, **params})


# --------------------------------------------------------------------------- thread list


def test_thread_list_shows_every_thread_with_its_status_and_workflow(served: Served) -> None:
    resp = served.get("/")
    assert resp.status == 200
    listed = rows(resp.body)
    assert set(listed) == ALL_IDS
    for tid, exp in EXPECTED.items():
        assert f"s-{exp.status}" in listed[tid]
        assert f"<td>{exp.workflow}</td>" in listed[tid]
        assert f"<td>{exp.steps}</td>" in listed[tid]
    assert "ValueError: boom 4" in listed["fail-1"]
    assert "ship?" in listed["wait-1"]
    for tid, status in LANGGRAPH_THREADS.items():
        assert "<td>langgraph</td>" in listed[tid]
        assert f"s-{status}" in listed[tid]
    assert "send the refund?" in listed["agent-wait"]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("status=interrupted", {"wait-1", "agent-wait"}),
        (
            "status=completed&status=failed",
            {"done-1", "long-1", "fail-1", "agent-done", "retry-1", HOSTILE_ID},
        ),
        ("workflow=order", {"done-1", "wait-1", "susp-1"}),
        ("workflow=order&status=suspended", {"susp-1"}),
        ("layout=langgraph", set(LANGGRAPH_THREADS)),
        ("layout=executor&workflow=crashy", {"run-1"}),
        ("age=1h", ALL_IDS),
        ("older=1h", set()),
        ("workflow=nothing-like-this", set()),
    ],
)
def test_filters(served: Served, query: str, expected: set[str]) -> None:
    resp = served.get("/?" + query)
    assert resp.status == 200
    assert set(rows(resp.body)) == expected


def test_age_filters_against_the_clock(demo_url: str) -> None:
    """Two days later, nothing was updated within a day and everything is older than one."""
    with serve(demo_url, clock=lambda: time.time() + 2 * 86400) as later:
        assert rows(later.get("/?age=1d").body) == {}
        assert set(rows(later.get("/?older=1d").body)) == ALL_IDS
        assert "2d" in rows(later.get("/").body)["done-1"]


def test_a_full_list_offers_more(served: Served) -> None:
    body = served.get("/?limit=2&workflow=order").body
    assert len(rows(body)) == 2
    more = re.search(r'<a href="([^"]+)" id="more">show more</a>', body)
    assert more is not None
    assert set(rows(served.get(html.unescape(more.group(1))).body)) == {"done-1", "wait-1", "susp-1"}
    assert 'id="more"' not in served.get("/?limit=3&workflow=order&status=failed").body


def test_filter_form_keeps_the_choices(served: Served) -> None:
    body = served.get("/?status=failed&workflow=fragile&age=1d").body
    assert '<input type="checkbox" name="status" value="failed" checked>' in body
    assert '<input type="checkbox" name="status" value="running">' in body
    assert 'name="workflow" value="fragile"' in body
    assert '<option value="1d" selected>1d</option>' in body


@pytest.mark.parametrize(
    ("path", "status", "says"),
    [
        ("/?status=bogus", 400, "unknown status &#x27;bogus&#x27;"),
        ("/?age=soon", 400, "age: not a duration"),
        ("/?limit=0", 400, "limit: must be between"),
        ("/?layout=sql", 400, "layout: must be one of"),
        ("/thread", 400, "id: name the thread"),
        ("/thread?id=no-such-thread", 404, "no thread &#x27;no-such-thread&#x27;"),
        ("/thread?id=no-such-thread&layout=executor", 404, "no thread"),
        ("/thread?id=done-1&checkpoint=99", 404, "has no checkpoint 99"),
        ("/thread?id=done-1&layout=other", 400, "layout: must be executor or langgraph"),
        ("/nowhere", 404, "no page"),
    ],
)
def test_bad_requests_get_a_clear_page(served: Served, path: str, status: int, says: str) -> None:
    resp = served.get(path)
    assert resp.status == status
    assert says in resp.body
    assert "Traceback" not in resp.body


# --------------------------------------------------------------------------- thread pages


def test_executor_thread_shows_state_and_timeline_with_values(served: Served) -> None:
    body = served.get(link("done-1")).body
    head = EXPECTED["done-1"].head
    assert f"State at checkpoint {head} (latest)" in body
    assert "s-completed" in body
    # input, result (bytes and tuples shown as JSON), the answer to the interrupt
    assert "&quot;a&quot;: 1" in body
    assert "&quot;answer&quot;: &quot;yes&quot;" in body
    assert "&quot;$bytes&quot;: &quot;b2s=&quot;" in body
    timeline = body[body.index('id="timeline"') :]
    kinds = re.findall(r'class="ev k-([a-z_]+)"', timeline)
    assert kinds == ["start", "task", "interrupt", "answer", "end"]
    assert "task #0 add" in timeline
    assert "&quot;question&quot;: &quot;ship?&quot;" in timeline
    checkpoints = body[body.index('id="checkpoints"') :]
    assert [int(c) for c in re.findall(r"checkpoint=(\d+)", checkpoints)] == list(range(head, -1, -1))


def test_executor_thread_at_an_older_checkpoint(served: Served, demo_url: str) -> None:
    saver = open_saver(demo_url, create=False)  # ops, not the view, says which checkpoint it was
    asked = next(e.checkpoint_id for e in ops.thread_history(saver, "done-1") if e.status == "interrupted")
    body = served.get(link("done-1", checkpoint=asked)).body
    assert f"State at checkpoint {asked} (latest is {EXPECTED['done-1'].head})" in body
    assert "Waiting for an answer to interrupt #1" in body
    assert "s-interrupted" in body


def test_failed_thread_shows_its_error(served: Served) -> None:
    body = served.get(link("fail-1", layout="executor")).body
    assert "ValueError: boom 4" in body
    assert re.findall(r'class="ev k-([a-z_]+)"', body) == ["start", "task", "error", "error"]


def test_retried_attempt_shows_in_the_timeline(served: Served) -> None:
    body = served.get(link("retry-1")).body
    kinds = re.findall(r'class="ev k-([a-z_]+)"', body)
    assert kinds == ["start", "retry", "task", "end"]
    assert "task #0 flaky attempt 1 failed, retry at 20" in body
    assert "&quot;message&quot;: &quot;upstream reset&quot;" in body
    assert "&quot;type&quot;: &quot;builtins.ConnectionError&quot;" in body


def test_long_thread_lists_every_checkpoint(served: Served) -> None:
    body = served.get(link("long-1")).body
    assert f"Timeline ({EXPECTED['long-1'].records} events)" in body
    assert f"Checkpoints ({EXPECTED['long-1'].head + 1})" in body


def test_langgraph_thread_shows_checkpoints_channel_values_and_pending_writes(served: Served) -> None:
    body = served.get(link("agent-wait", layout="langgraph")).body
    assert "LangGraph thread" in body
    assert body.count('class="checkpoint"') == 3  # input, draft, and the step waiting in review
    newest = body[: body.index('class="checkpoint"', body.index('class="checkpoint"') + 1)]
    assert "draft: refund order 1182" in newest
    assert "__interrupt__" in newest
    assert "send the refund?" in newest
    assert "s-interrupted" in newest
    done = served.get(link("agent-done")).body  # no layout: found as a LangGraph thread
    assert "review: approved" in done


# --------------------------------------------------------------------------- verify


def test_verify_page_reports_what_verify_finds(served: Served) -> None:
    resp = served.get("/verify?thread=done-1")
    assert resp.status == 200
    objects = EXPECTED["done-1"].head + 1
    assert f"Checked thread done-1: 1 thread(s), {objects} object(s): no errors, 0 warning(s)." in resp.body


def test_verify_page_lists_problems() -> None:
    from cairnflow.savers import open_saver, open_store
    from tests.cli.flows import order

    url = "memory://ui-verify/app"  # a memory store takes any key, HTML included
    order.run({"a": 1, "b": 2}, thread_id="t<1>", saver=open_saver(url))
    store, prefix = open_store(url)
    store.put(f"{prefix}v1/threads/stray<obj>", b"not a checkpoint")
    with serve(url) as running:
        body = running.get("/verify").body
    assert "1 error(s)" in body
    assert "foreign_object" in body
    assert "stray&lt;obj&gt;" in body
    assert "<obj>" not in body


# --------------------------------------------------------------------------- security


def test_every_stored_value_is_escaped(served: Served) -> None:
    pages = [
        "/",
        link(HOSTILE_ID),
        link(HOSTILE_ID, checkpoint="0"),
        "/?" + urllib.parse.urlencode({"workflow": HOSTILE_WORKFLOW}),
        "/verify?" + urllib.parse.urlencode({"thread": HOSTILE_ID}),
        "/thread?" + urllib.parse.urlencode({"id": HOSTILE}),  # not found: the id is echoed in the error
    ]
    for path in pages:
        body = served.get(path).body
        assert "<script" not in body, path
        assert "<img" not in body, path
        assert "<b onmouseover" not in body, path
        assert "onerror=alert(1)>" not in body, path
    listed = rows(served.get("/").body)
    assert HOSTILE_ID in listed
    thread = served.get(link(HOSTILE_ID)).body
    assert html.escape(HOSTILE_ID, quote=True) in thread
    assert html.escape(HOSTILE_WORKFLOW, quote=True) in thread
    filtered = served.get("/?" + urllib.parse.urlencode({"workflow": HOSTILE_WORKFLOW})).body
    assert set(rows(filtered)) == {HOSTILE_ID}


def test_pages_carry_a_strict_csp_with_a_fresh_nonce(served: Served) -> None:
    seen = set()
    for path in ("/", link("done-1"), "/verify?thread=done-1", "/nowhere"):
        resp = served.get(path)
        policy = resp.headers["content-security-policy"]
        assert "default-src 'none'" in policy
        assert "script-src" not in policy  # no script at all: default-src 'none' covers it
        assert "frame-ancestors 'none'" in policy
        nonce = re.search(r"style-src 'nonce-([A-Za-z0-9_-]+)'", policy)
        assert nonce is not None
        assert f'<style nonce="{nonce.group(1)}">' in resp.body
        assert resp.body.count("<style") == 1
        assert "<script" not in resp.body
        assert ' style="' not in resp.body  # inline style attributes would be blocked
        assert resp.headers["x-content-type-options"] == "nosniff"
        assert resp.headers["cache-control"] == "no-store"
        seen.add(nonce.group(1))
    assert len(seen) == 4


@pytest.mark.parametrize(
    "host",
    [
        "evil.example:{port}",
        "127.0.0.1",
        "127.0.0.1:1",
        "localhost.evil.example:{port}",
        "127.0.0.1.evil.example:{port}",
        "",
        ":{port}",
        "[::1]x:{port}",
    ],
)
def test_requests_for_another_host_are_refused(served: Served, host: str) -> None:
    resp = served.request("/", host=host.format(port=served.port))
    assert resp.status == 421
    assert "done-1" not in resp.body


@pytest.mark.parametrize(
    "host", ["127.0.0.1:{port}", "localhost:{port}", "LOCALHOST:{port}", "[::1]:{port}", "192.0.2.7:{port}"]
)
def test_loopback_names_and_ip_literals_are_served(served: Served, host: str) -> None:
    assert served.request("/", host=host.format(port=served.port)).status == 200


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_only_get_and_head(served: Served, method: str) -> None:
    resp = served.request("/", method=method)
    assert resp.status == 405
    assert resp.headers["allow"] == "GET, HEAD"
    head = served.request("/", method="HEAD")
    assert head.status == 200
    assert head.body == ""


def test_a_full_browse_never_writes(demo_url: str) -> None:
    """Follow every link from the front page (and the filters); the store sees reads only."""
    with serve(demo_url) as running:
        queue = ["/", "/verify", "/?status=interrupted", "/?layout=langgraph", "/?age=1d&workflow=order"]
        seen: set[str] = set()
        while queue and len(seen) < 400:
            path = queue.pop()
            if path in seen:
                continue
            seen.add(path)
            resp = running.get(path)
            assert resp.status == 200, path
            for href in re.findall(r'href="([^"]+)"', resp.body):
                target = html.unescape(href)
                if target.startswith("/") and target not in seen:
                    queue.append(target)
        calls = set(running.store.calls)
    thread_pages = [p for p in seen if p.startswith("/thread?")]
    assert len(thread_pages) > len(EXPECTED) + len(LANGGRAPH_THREADS)  # threads and their checkpoints
    assert any("checkpoint=" in p for p in thread_pages)
    assert calls, "the store saw no request at all"
    assert calls <= READ_REQUESTS, f"write-class requests: {calls - READ_REQUESTS}"


def test_importing_cairnflow_ui_loads_no_server() -> None:
    code = (
        "import sys, cairnflow, cairnflow.ui; "
        "heavy = ('http.server', 'cairnflow.ui.server', 'cairnflow.ops', 'langgraph'); "
        "bad = [m for m in heavy if m in sys.modules]; "
        "print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_serves_on_ipv6_loopback(demo_url: str) -> None:
    import http.client

    from cairnflow.savers import open_saver
    from cairnflow.ui.model import Browser
    from cairnflow.ui.server import make_server

    try:
        server = make_server(Browser(open_saver(demo_url, create=False)), "::1", 0, quiet=True)
    except OSError as exc:  # a machine with IPv6 switched off
        pytest.skip(f"no IPv6 loopback here: {exc}")
    import threading

    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        assert server.url == f"http://[::1]:{server.port}/"
        conn = http.client.HTTPConnection("::1", server.port, timeout=30)
        conn.request("GET", "/?status=failed")
        resp = conn.getresponse()
        body = resp.read().decode()
        conn.close()
        assert resp.status == 200
        assert set(rows(body)) == {"fail-1"}
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_forks_and_deleted_threads() -> None:
    from cairnflow.savers import open_saver
    from tests.cli.flows import order

    url = "memory://ui-forks/app"
    saver = open_saver(url)
    order.run({"a": 1, "b": 2}, thread_id="f", saver=saver)
    waiting = max(int(e.checkpoint_id) for e in ops.thread_history(saver, "f"))
    order.resume("no", thread_id="f", saver=saver)
    saver.fork("f", waiting)  # time travel: the state at the question, as a new head
    order.run({"a": 0, "b": 1}, thread_id="d", saver=saver)
    ops.delete_thread(saver, "d")
    with serve(url) as running:
        fork_page = running.get(link("f")).body
        kinds = re.findall(r'class="ev k-([a-z_]+)"', fork_page)
        assert kinds == ["start", "task", "interrupt", "answer", "end", "fork"]
        assert f"fork: state of checkpoint {waiting}" in fork_page
        assert "Waiting for an answer to interrupt" in fork_page  # the fork's state is the question again
        assert set(rows(running.get("/").body)) == {"f"}
        assert set(rows(running.get("/?status=deleted").body)) == {"d"}
        deleted = running.get(link("d"))
        assert deleted.status == 200
        assert "was deleted" in deleted.body
        assert re.findall(r'class="ev k-([a-z_]+)"', deleted.body)[-1] == "deleted"
        assert set(running.store.calls) <= READ_REQUESTS
