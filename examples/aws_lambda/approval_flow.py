"""Document approval: the workflow and the request handling shared by the serverless examples.

The same file is copied, byte for byte, into ``examples/aws_lambda/``,
``examples/cloud_run/`` and ``examples/azure_functions/`` so that each folder
deploys on its own (``sam build``, ``gcloud run deploy --source .``,
``func azure functionapp publish`` upload one folder); a test keeps the copies
identical. Edit one, then copy it over the other two.

The workflow
------------
``extract`` -> ``check_policy`` -> ``summarize`` -> approval (an interrupt) ->
``publish`` (approved only) -> ``notify``. Each task result is recorded in the
bucket; a later invocation, in any process or region, replays recorded results
and runs only what is missing.

Requests (a JSON object; the same for every platform)
-----------------------------------------------------
* ``{"action": "start", "document": {"id", "title", "author", "body"}}``
  (optional ``"thread_id"``; default ``approval-<document id>``, so a retried
  start event is harmless: it returns the thread's current state);
* ``{"action": "answer", "thread_id", "interrupt_id", "answer"}`` with
  ``"approve"``/``"reject"`` or ``{"decision": ..., "by": ..., "comment": ...}``;
* ``{"action": "continue", "thread_id"}`` after a ``"suspended"`` response;
* ``{"action": "status", "thread_id"}`` looks without running anything.

Every response has ``thread_id``, ``status`` (``interrupted``, ``suspended``
or ``completed``), ``checkpoint_id``, ``question``, ``interrupt_id``,
``review`` (what the approver needs to decide), ``result`` and, when
suspended, ``next_event``: the request to send next.

Deadline and durability
-----------------------
Each platform passes the invocation's deadline (epoch seconds). No task starts
when less than ``CAIRNFLOW_RESERVE_SECONDS`` (default 5) remain: the run stops
with status ``"suspended"``, everything recorded, and ``next_event`` continues
it. The reserve must cover the longest task plus one checkpoint write.
``CAIRNFLOW_DURABILITY`` is ``sync`` by default (see docs/serverless.md for
why); ``async`` is safe too, as ``run()``/``resume()`` return only after every
write is acknowledged.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from cairnflow.core import (
    CheckpointSaver,
    ConflictError,
    Durability,
    NondeterminismError,
    ResumeError,
    RetryPolicy,
    Run,
    ThreadNotFoundError,
    interrupt,
    task,
    workflow,
)

__all__ = [
    "BadRequest",
    "Settings",
    "document_approval",
    "handle",
    "handle_http",
    "on_task_run",
]

log = logging.getLogger("approval")

MAX_BODY_CHARS = 200_000
POLICY_TERMS = ("confidential", "salary", "password", "merger", "lawsuit")
_DURABILITIES: tuple[Durability, ...] = ("sync", "async", "exit")


class BadRequest(ValueError):
    """The request is malformed; nothing was read or written."""


@dataclass(frozen=True)
class Settings:
    """Configuration from the environment, read once per container."""

    url: str
    reserve: float
    durability: Durability
    time_budget: float | None

    @classmethod
    def from_env(cls, *, default_budget: float | None = None) -> Settings:
        url = os.environ.get("CAIRNFLOW_URL", "")
        if not url:
            raise RuntimeError("set CAIRNFLOW_URL, e.g. s3://my-bucket/approvals")
        durability = os.environ.get("CAIRNFLOW_DURABILITY", "sync")
        if durability not in _DURABILITIES:
            raise RuntimeError(f"CAIRNFLOW_DURABILITY must be one of {_DURABILITIES}, not {durability!r}")
        budget = os.environ.get("CAIRNFLOW_TIME_BUDGET_SECONDS")
        return cls(
            url=url,
            reserve=float(os.environ.get("CAIRNFLOW_RESERVE_SECONDS", "5")),
            durability=durability,
            time_budget=float(budget) if budget else default_budget,
        )


# --------------------------------------------------------------------------- tasks


def _log_task_run(name: str, document_id: str) -> None:
    log.info("task %s running for document %s", name, document_id)


#: Called when a task body really runs (never for a replayed result), with the task's
#: name and the document id. The examples log; tests put a side-effect ledger here.
on_task_run: Callable[[str, str], None] = _log_task_run


@task
def extract(document: dict[str, Any]) -> dict[str, Any]:
    on_task_run("extract", document["id"])
    body: str = document["body"]
    return {
        "id": document["id"],
        "title": document["title"],
        "author": document["author"],
        "words": len(body.split()),
        "sha256": hashlib.sha256(body.encode()).hexdigest(),
    }


@task
def check_policy(meta: dict[str, Any], body: str) -> dict[str, Any]:
    on_task_run("check_policy", meta["id"])
    lowered = body.lower()
    flags = [term for term in POLICY_TERMS if term in lowered]
    return {"flags": flags, "risk": "high" if flags else "low"}


@task
def summarize(meta: dict[str, Any], body: str, policy: dict[str, Any]) -> str:
    on_task_run("summarize", meta["id"])
    words = body.split()
    summary = " ".join(words[:30]) + (" ..." if len(words) > 30 else "")
    if policy["flags"]:
        summary += f" [mentions: {', '.join(policy['flags'])}]"
    return summary


@task(retry=RetryPolicy(max_attempts=3, initial_interval=0.5))
def publish(meta: dict[str, Any], approver: str | None) -> dict[str, Any]:
    """Stand-in for the call to a document store; idempotent by (document, content hash)."""
    on_task_run("publish", meta["id"])
    version = meta["sha256"][:12]
    return {"url": f"https://docs.example.com/{meta['id']}/{version}", "version": version, "by": approver}


@task(retry=RetryPolicy(max_attempts=3, initial_interval=0.5))
def notify(meta: dict[str, Any], decision: str, url: str | None) -> str:
    """Stand-in for an e-mail to the author; the message id doubles as an idempotency key."""
    on_task_run("notify", meta["id"])
    digest = hashlib.sha256(f"{meta['id']}:{meta['sha256']}:{decision}:{url}".encode()).hexdigest()
    return f"msg-{digest[:16]}"


@workflow(name="document-approval")
def document_approval(document: dict[str, Any]) -> dict[str, Any]:
    meta = extract(document).result()
    policy = check_policy(meta, document["body"]).result()
    summary = summarize(meta, document["body"], policy).result()
    answer = interrupt(
        {
            "question": f"Approve {meta['title']!r} by {meta['author']} for publication?",
            "summary": summary,
            "risk": policy["risk"],
            "flags": policy["flags"],
            "words": meta["words"],
            "options": ["approve", "reject"],
        }
    )
    approved = answer["decision"] == "approve"
    publication = publish(meta, answer.get("by")).result() if approved else None
    message = notify(meta, answer["decision"], publication["url"] if publication else None).result()
    return {
        "document": meta["id"],
        "decision": "approved" if approved else "rejected",
        "comment": answer.get("comment", ""),
        "risk": policy["risk"],
        "publication": publication,
        "notification": message,
    }


# --------------------------------------------------------------------------- requests


def _text(value: Any, field: str, *, limit: int = 500) -> str:
    if not isinstance(value, str) or not value.strip():
        raise BadRequest(f"{field} must be a non-empty string")
    if len(value) > limit:
        raise BadRequest(f"{field} is longer than {limit} characters")
    return value


def _document(value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise BadRequest("document must be an object with id, title, author and body")
    return {
        "id": _text(value.get("id"), "document.id", limit=100),
        "title": _text(value.get("title"), "document.title"),
        "author": _text(value.get("author"), "document.author"),
        "body": _text(value.get("body"), "document.body", limit=MAX_BODY_CHARS),
    }


def _answer(value: Any) -> dict[str, Any]:
    """``"approve"``, ``"reject"`` or ``{"decision", "by", "comment"}``, checked before resuming."""
    answer: dict[str, Any] = {"decision": value} if isinstance(value, str) else dict(value or {})
    decision = answer.get("decision")
    if decision not in ("approve", "reject"):
        raise BadRequest('answer must be "approve", "reject" or {"decision": "approve"|"reject", ...}')
    by = answer.get("by")
    comment = answer.get("comment", "")
    if by is not None and not isinstance(by, str):
        raise BadRequest("answer.by must be a string")
    if not isinstance(comment, str) or len(comment) > 2000:
        raise BadRequest("answer.comment must be a string of at most 2000 characters")
    return {"decision": decision, "by": by, "comment": comment}


def describe(run: Run) -> dict[str, Any]:
    """The JSON response for a run's outcome."""
    question = review = next_event = None
    if run.status == "interrupted" and isinstance(run.interrupt, dict):
        review = {k: v for k, v in run.interrupt.items() if k != "question"}
        question = run.interrupt.get("question")
    if run.status == "suspended":
        next_event = {"action": "continue", "thread_id": run.thread_id}
    return {
        "thread_id": run.thread_id,
        "status": run.status,
        "checkpoint_id": run.checkpoint_id,
        "question": question,
        "interrupt_id": run.interrupt_id,
        "review": review,
        "result": run.result if run.status == "completed" else None,
        "next_event": next_event,
    }


def handle(
    request: Mapping[str, Any],
    *,
    saver: CheckpointSaver,
    deadline: float | None,
    settings: Settings,
) -> dict[str, Any]:
    """Run one request to its next stop (interrupted, suspended or completed).

    Raises :class:`BadRequest` for a malformed request, ``ThreadNotFoundError``,
    ``ResumeError`` (the answer does not fit the thread's state),
    ``NondeterminismError`` (a thread id reused for another document) and
    ``ConflictError`` (another invocation advanced the thread meanwhile).
    """
    if not isinstance(request, Mapping):
        raise BadRequest("the request must be a JSON object")
    action = request.get("action")
    options: dict[str, Any] = {
        "saver": saver,
        "durability": settings.durability,
        "deadline": deadline,
        "reserve": settings.reserve,
    }
    if action == "start":
        document = _document(request.get("document"))
        thread_id = request.get("thread_id") or f"approval-{document['id']}"
        return describe(document_approval.run(document, thread_id=_text(thread_id, "thread_id"), **options))
    thread_id = _text(request.get("thread_id"), "thread_id")
    if action == "answer":
        answer = _answer(request.get("answer"))
        interrupt_id = request.get("interrupt_id")
        if interrupt_id is not None and not isinstance(interrupt_id, str):
            raise BadRequest("interrupt_id must be a string")
        return describe(
            document_approval.resume(answer, thread_id=thread_id, interrupt_id=interrupt_id, **options)
        )
    if action == "continue":
        try:
            return describe(document_approval.resume(thread_id=thread_id, **options))
        except ResumeError:  # waiting for an answer: a repeated "continue" just reports that
            pass
    if action in ("continue", "status"):
        run = document_approval.get_run(thread_id=thread_id, saver=saver)
        if run is None:
            raise ThreadNotFoundError(f"no thread {thread_id!r}")
        return describe(run)
    raise BadRequest('action must be "start", "answer", "continue" or "status"')


def handle_http(
    body: bytes, *, saver: CheckpointSaver, deadline: float | None, settings: Settings
) -> tuple[int, dict[str, Any]]:
    """:func:`handle` for an HTTP request body: (status code, JSON response).

    400 malformed request, 404 unknown thread, 409 the request does not fit the
    thread's state (answered already, another document, lost a race); any other
    error propagates (the platform answers 500 and logs it).
    """
    try:
        request = json.loads(body or b"null")
    except (ValueError, UnicodeDecodeError):
        return 400, {"error": "the body must be JSON"}
    try:
        return 200, handle(request, saver=saver, deadline=deadline, settings=settings)
    except BadRequest as exc:
        return 400, {"error": str(exc)}
    except ThreadNotFoundError as exc:
        return 404, {"error": str(exc)}
    except (ResumeError, NondeterminismError, ConflictError) as exc:
        return 409, {"error": str(exc), "type": type(exc).__name__}
