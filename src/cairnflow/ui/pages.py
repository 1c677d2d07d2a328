"""The web view's pages, rendered on the server from :mod:`cairnflow.ui.model` data.

Pages hold no script: links and plain GET forms do everything, and
``<details>`` folds long values. Every string from the store goes through
:func:`~cairnflow.ui.html.tag`, which escapes it.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from cairnflow import ops
from cairnflow.ui.html import Child, Markup, age_text, join, json_block, json_text, raw, tag, time_text
from cairnflow.ui.model import AGES, LAYOUTS, ExecutorThread, Filters, LangGraphThread, ThreadRow

if TYPE_CHECKING:
    from cairnflow.core.verify import VerifyReport

__all__ = ["error_page", "executor_page", "langgraph_page", "threads_page", "verify_page"]

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
header{background:#1d2330;color:#fff;padding:10px 20px;display:flex;gap:18px;align-items:baseline}
header a{color:#cfe0ff;text-decoration:none}header .store{color:#9aa5b8;font-family:monospace}
header .ro{margin-left:auto;font-size:12px;color:#9aa5b8}
main{padding:16px 20px;max-width:1300px}h1{font-size:20px;margin:4px 0 12px;word-break:break-all}
h2{font-size:16px;margin:22px 0 8px}
table{border-collapse:collapse;width:100%;background:#fff;border:1px solid #dde1e8}
th,td{text-align:left;padding:5px 8px;border-bottom:1px solid #eceef2;vertical-align:top}
th{background:#eef1f5;font-weight:600;font-size:12px;text-transform:uppercase;color:#4a5366}
td.id{font-family:monospace;overflow-wrap:anywhere}td.nw{white-space:nowrap}td.tid{min-width:16ch}
table.values td:nth-child(2),table.writes td:nth-child(3){width:62%}td.meta{font-size:11px}
.badge{display:inline-block;padding:1px 7px;border-radius:9px;font-size:12px;background:#e3e7ee}
.s-completed,.k-end{background:#d6f5dc}.s-failed,.s-corrupt,.k-error{background:#fbd5d5}
.s-interrupted,.k-interrupt{background:#fdeac2}.s-running,.k-task{background:#d8e6fd}
.s-suspended,.k-suspend{background:#e9dcfb}.s-waiting,.k-wait{background:#dff3fb}.s-deleted,.k-deleted{background:#d9d9d9}
.k-answer{background:#cdf3ee}.k-fork{background:#ffe0f0}.k-retry{background:#ffe3cc}.k-value{background:#eef0d0}
form.filters{display:flex;flex-wrap:wrap;gap:14px;align-items:flex-end;background:#fff;
border:1px solid #dde1e8;padding:10px 12px;margin-bottom:12px}
form.filters fieldset{border:0;padding:0;margin:0}form.filters fieldset label{margin-right:10px}
form.filters legend,form.filters .t{font-size:12px;color:#4a5366;display:block;margin-bottom:2px}
pre.value{margin:4px 0;padding:6px 8px;background:#f3f5f8;border:1px solid #e2e6ec;max-height:320px;
overflow:auto;font-size:12px;white-space:pre-wrap;word-break:break-word}
ol.timeline{list-style:none;padding:0;margin:0}ol.timeline li{background:#fff;border:1px solid #dde1e8;
border-left:4px solid #aab4c5;margin:0 0 6px;padding:6px 10px}
.meta{color:#6b7588;font-size:12px}.note{background:#fff6d6;border:1px solid #f0d98a;padding:8px 10px}
details>summary{cursor:pointer}dl.kv{display:grid;grid-template-columns:max-content 1fr;gap:4px 14px}
dl.kv dt{color:#4a5366}dl.kv dd{margin:0}
"""


def _link(path: str, **params: Any) -> str:
    query = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None}, doseq=True)
    return f"{path}?{query}" if query else path


def layout(title: str, store: str, nonce: str, *body: Child) -> str:
    """A whole HTML document; the only style block carries the response's CSP nonce."""
    return "<!DOCTYPE html>\n" + tag(
        "html",
        tag(
            "head",
            tag("meta", charset="utf-8"),
            tag("meta", name="viewport", content="width=device-width, initial-scale=1"),
            tag("title", f"{title} · cairnflow"),
            tag("style", raw(_CSS), nonce=nonce),
        ),
        tag(
            "body",
            tag(
                "header",
                tag("strong", "cairnflow"),
                tag("a", "Threads", href="/"),
                tag("a", "Verify", href="/verify"),
                tag("span", store, class_="store"),
                tag("span", "read-only view", class_="ro"),
            ),
            tag("main", *body),
        ),
        lang="en",
    )


def _badge(text: str | None, prefix: str = "s") -> Markup:
    return tag("span", text or "—", class_=f"badge {prefix}-{text}")


def _short(checkpoint_id: str | None) -> str:
    """A checkpoint id short enough for a table cell (LangGraph's are 36-character UUIDs)."""
    if checkpoint_id is None:
        return "—"
    return checkpoint_id if len(checkpoint_id) <= 14 else checkpoint_id[:8] + "…" + checkpoint_id[-4:]


def _compact(value: Any, width: int = 80) -> str:
    text = json_text(value, limit=width * 4).replace("\n", " ")
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


# --------------------------------------------------------------------------- thread list


def _filter_form(filters: Filters, workflows: Sequence[str]) -> Markup:
    status_boxes = [
        tag(
            "label",
            tag("input", type="checkbox", name="status", value=s, checked=s in filters.statuses),
            " ",
            s,
        )
        for s in ops.STATUSES
    ]

    def select(name: str, label: str, current: str | None, choices: Sequence[tuple[str, str]]) -> Markup:
        options = [
            tag("option", text, value=value, selected=value == (current or "")) for value, text in choices
        ]
        return tag("label", tag("span", label, class_="t"), tag("select", options, name=name))

    def age_value(seconds: float | None) -> str | None:
        if seconds is None:
            return None
        return next((a for a in AGES if ops.parse_duration(a) == seconds), f"{seconds:g}s")

    newer, older = age_value(filters.newer_than), age_value(filters.older_than)
    age_choices = [(a, a) for a in AGES]
    return tag(
        "form",
        tag("fieldset", tag("legend", "Status (none: all but deleted)"), status_boxes),
        tag(
            "label",
            tag("span", "Workflow", class_="t"),
            tag(
                "input", type="text", name="workflow", value=filters.workflow or "", list="workflows", size=16
            ),
            tag("datalist", [tag("option", value=w) for w in workflows], id="workflows"),
        ),
        select("age", "Updated within", newer, [("", "any time"), *age_choices]),
        select("older", "Not updated for", older, [("", "—"), *age_choices]),
        select("layout", "Layout", filters.layout, [("", "all"), *((x, x) for x in LAYOUTS)]),
        tag("button", "Filter", type="submit", id="apply"),
        tag("a", "clear", href="/"),
        method="get",
        action="/",
        class_="filters",
    )


def _thread_row(row: ThreadRow, now: float) -> Markup:
    detail: Child = None
    if row.error:
        detail = tag("span", row.error, class_="err")
    elif row.waiting_for is not None:
        detail = join("waiting for ", tag("code", _compact(row.waiting_for)))
    return tag(
        "tr",
        tag("td", tag("a", row.thread_id, href=row.link), class_="id tid"),
        tag("td", row.layout),
        tag("td", _badge(row.status)),
        tag("td", row.workflow or "—"),
        tag("td", "—" if row.steps is None else row.steps),
        tag("td", _short(row.checkpoint_id), class_="id nw", title=row.checkpoint_id),
        tag("td", age_text(row.updated_at, now), title=time_text(row.updated_at)),
        tag("td", detail),
        data_thread=row.thread_id,
    )


def threads_page(
    rows: Sequence[ThreadRow], filters: Filters, workflows: Sequence[str], now: float
) -> list[Child]:
    """The thread list with its filter form."""
    table = tag(
        "table",
        tag(
            "tr",
            [tag("th", h) for h in ("Thread", "Layout", "Status", "Workflow", "Steps", "Head", "Age", "")],
        ),
        [_thread_row(r, now) for r in rows],
        id="threads",
    )
    count: list[Child] = [f"{len(rows)} thread(s)"]
    if len(rows) >= filters.limit:
        more = _link("/", **{**filters.to_params(), "limit": str(filters.limit * 2)})
        count += [
            " — the newest ",
            str(filters.limit),
            " shown; ",
            tag("a", "show more", href=more, id="more"),
        ]
    return [tag("h1", "Threads"), _filter_form(filters, workflows), tag("p", count, class_="meta"), table]


# --------------------------------------------------------------------------- executor thread


def _state_section(view: ExecutorThread) -> list[Child]:
    state = view.state
    if state is None:
        return [tag("p", view.note or "no state", class_="note")]
    latest = " (latest)" if state.is_latest else f" (latest is {state.latest_checkpoint_id})"
    facts = tag(
        "dl",
        tag("dt", "Status"),
        tag("dd", _badge(state.status)),
        tag("dt", "Workflow"),
        tag("dd", state.workflow or "—"),
        tag("dt", "Written"),
        tag("dd", time_text(state.created_at)),
        tag("dt", "Records"),
        tag("dd", state.total_records),
        class_="kv",
    )
    out: list[Child] = [tag("h2", f"State at checkpoint {state.checkpoint_id}{latest}"), facts]
    if not state.values_readable:
        out.append(tag("p", "Values not readable (another serializer, or encrypted).", class_="note"))
        return out
    out.append(tag("h2", "Input"))
    out.append(json_block(state.input))
    if state.interrupt is not None:
        out += [tag("h2", f"Waiting for an answer to interrupt #{state.interrupt['id']}")]
        out.append(json_block(ops.untag(state.interrupt["value"])))
    if state.error is not None:
        out += [tag("h2", "Error"), tag("pre", state.error, class_="value")]
    if state.status == "completed":
        out += [tag("h2", "Result"), json_block(ops.untag(state.result))]
    steps = [
        tag(
            "tr",
            tag("td", s.pos),
            tag("td", s.type),
            tag("td", s.name or "—"),
            tag("td", _badge(s.status)),
            tag(
                "td",
                json_block(ops.untag(s.value)) if s.error is None else tag("pre", s.error, class_="value"),
            ),
            tag("td", json_block(ops.untag(s.answer)) if s.type == "interrupt" else None),
        )
        for s in state.steps
    ]
    out.append(tag("h2", f"Steps ({len(state.steps)})"))
    out.append(
        tag(
            "table",
            tag("tr", [tag("th", h) for h in ("#", "Type", "Name", "Status", "Value", "Answer")]),
            steps,
            id="steps",
        )
    )
    return out


def executor_page(view: ExecutorThread, now: float) -> list[Child]:
    """One executor thread: state at a checkpoint, timeline, checkpoints."""
    tid = view.thread_id
    events = [
        tag(
            "li",
            _badge(e.kind, "k"),
            " ",
            tag("strong", e.title),
            " ",
            tag(
                "span",
                "checkpoint ",
                tag(
                    "a",
                    e.checkpoint_id,
                    href=_link("/thread", id=tid, layout="executor", checkpoint=e.checkpoint_id),
                ),
                " · ",
                time_text(e.at),
                class_="meta",
            ),
            json_block(e.value) if e.has_value else None,
            class_=f"ev k-{e.kind}",
        )
        for e in view.events
    ]
    checkpoints = [
        tag(
            "tr",
            tag(
                "td",
                tag(
                    "a",
                    h.checkpoint_id,
                    href=_link("/thread", id=tid, layout="executor", checkpoint=h.checkpoint_id),
                ),
            ),
            tag("td", h.kind),
            tag("td", _badge(h.status)),
            tag("td", time_text(h.created_at)),
            tag("td", f"{h.new_records} / {h.total_records}"),
            tag("td", "—" if h.base is None else h.base),
            tag("td", "—" if h.parent is None else h.parent),
        )
        for h in reversed(view.history)
    ]
    more = tag("p", "Older checkpoints are not shown.", class_="note") if view.truncated else None
    return [
        tag("h1", "Thread ", tag("span", tid, id="thread-id")),
        tag(
            "p",
            "executor thread · ",
            tag("a", "verify this thread", href=_link("/verify", thread=tid, layout="executor")),
            class_="meta",
        ),
        *_state_section(view),
        tag("h2", f"Timeline ({len(view.events)} events)"),
        more,
        tag("ol", events, class_="timeline", id="timeline"),
        tag("h2", f"Checkpoints ({len(view.history)})"),
        tag(
            "table",
            tag(
                "tr",
                [tag("th", h) for h in ("Id", "Kind", "Status", "Written", "New / total", "Base", "Parent")],
            ),
            checkpoints,
            id="checkpoints",
        ),
    ]


# --------------------------------------------------------------------------- LangGraph thread


def langgraph_page(view: LangGraphThread) -> list[Child]:
    """One LangGraph thread: each checkpoint with metadata, channel values and pending writes."""
    items: list[Child] = []
    for n, cp in enumerate(view.checkpoints):
        meta = cp.metadata if isinstance(cp.metadata, dict) else {}
        flags = join(
            [join(" ", tag("span", "interrupt", class_="badge s-interrupted")) for _ in cp.interrupts[:1]],
            [join(" ", tag("span", "error", class_="badge s-failed")) for _ in cp.errors[:1]],
        )
        values = [
            tag(
                "tr",
                tag("td", ch, class_="id"),
                tag("td", json_block(v)),
                tag("td", str(cp.channel_versions.get(ch, "—")), class_="id meta"),
            )
            for ch, v in sorted(cp.channel_values.items())
        ]
        writes = [
            tag("tr", tag("td", task, class_="id"), tag("td", ch, class_="id"), tag("td", json_block(v)))
            for task, ch, v in cp.pending_writes
        ]
        items.append(
            tag(
                "details",
                tag(
                    "summary",
                    tag("strong", cp.checkpoint_id, class_="id"),
                    f"  ns={cp.namespace or '(root)'}  step={meta.get('step', '—')}"
                    f"  source={meta.get('source', '—')}  ",
                    tag("span", cp.ts or "", class_="meta"),
                    flags,
                ),
                tag("p", "parent: ", cp.parent_id or "—", class_="meta"),
                tag("h2", "Channel values"),
                tag(
                    "table",
                    tag("tr", tag("th", "Channel"), tag("th", "Value"), tag("th", "Version")),
                    values,
                    class_="values",
                ),
                tag("h2", f"Pending writes ({len(cp.pending_writes)})"),
                tag(
                    "table",
                    tag("tr", tag("th", "Task"), tag("th", "Channel"), tag("th", "Value")),
                    writes,
                    class_="writes",
                )
                if writes
                else tag("p", "none", class_="meta"),
                tag("h2", "Metadata"),
                json_block(cp.metadata),
                open=n == 0,
                class_="checkpoint",
            )
        )
    more = tag("p", "Older checkpoints are not shown.", class_="note") if view.truncated else None
    return [
        tag("h1", "Thread ", tag("span", view.thread_id, id="thread-id")),
        tag(
            "p",
            f"LangGraph thread · {len(view.checkpoints)} checkpoint(s), newest first · ",
            tag("a", "verify this thread", href=_link("/verify", thread=view.thread_id, layout="langgraph")),
            class_="meta",
        ),
        more,
        *items,
    ]


# --------------------------------------------------------------------------- verify and errors


def verify_page(report: VerifyReport) -> list[Child]:
    """What :func:`cairnflow.ops.verify` found."""
    verdict = "no errors" if report.ok else f"{len(report.errors)} error(s)"
    rows = [
        tag(
            "tr",
            tag("td", _badge(p.severity, "k")),
            tag("td", p.code),
            tag(
                "td",
                tag("a", p.thread_id, href=_link("/thread", id=p.thread_id)) if p.thread_id else "—",
                class_="id",
            ),
            tag("td", "—" if p.seq is None else p.seq),
            tag("td", p.key or "—", class_="id"),
            tag("td", p.message),
        )
        for p in report.problems
    ]
    scope = f"thread {report.thread_id}" if report.thread_id is not None else "the whole prefix"
    return [
        tag("h1", "Verify"),
        tag(
            "p",
            f"Checked {scope}: {report.threads_checked} thread(s), {report.objects_checked} object(s): "
            f"{verdict}, {len(report.warnings)} warning(s).",
            id="verdict",
        ),
        tag(
            "table",
            tag("tr", [tag("th", h) for h in ("Severity", "Code", "Thread", "Checkpoint", "Key", "Message")]),
            rows,
            id="problems",
        )
        if rows
        else tag("p", "Nothing to report.", class_="meta"),
    ]


def error_page(status: int, message: str) -> list[Child]:
    return [
        tag("h1", f"{status}"),
        tag("p", message, class_="note"),
        tag("p", tag("a", "back to the threads", href="/")),
    ]
