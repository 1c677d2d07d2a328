"""Document approval: the workflow and the request handling shared by the serverless examples.

The same file is copied, byte for byte, into ``examples/aws_lambda/``,
``examples/cloud_run/`` and ``examples/azure_functions/`` so that each folder
deploys on its own (``sam build``, ``gcloud run deploy --source .``,
``func azure functionapp publish`` upload one folder); a test keeps the copies
identical. Edit one, then copy it over the other two.

The workflow
------------
``extract`` -> ``check_policy`` -> ``summarize`` -> ``request_approval`` (mails the
approver a link carrying a callback token) -> wait for the answer -> ``publish``
(approved only) -> ``notify``. Each task result is recorded in the bucket; a later
invocation, in any process or region, replays recorded results and runs only what is
missing.

The wait is a callback with a timeout (``remind_after``, default one day): when it
passes with no answer, ``send_reminder`` mails a fresh link and the run waits again;
after ``MAX_REMINDERS`` reminders the document is rejected as unanswered. A link whose
wait has timed out is refused (409): answer the newest one.

Nobody has to continue a run: a :class:`cairnflow.driver.Driver` schedules a wake-up on
the platform's own queue whenever a run stops before its end (``"suspended"`` near the
deadline: continue now; ``"waiting"``: continue at ``wake_at``, the reminder time), and
a lease in case the invocation dies. The queue invokes the same function, whose entry
point hands the wake-up to the driver. Without a queue configured the wake-ups go to
the store's own due index, served by ``cairnflow worker URL --import approval_flow``.

Requests (a JSON object; the same for every platform)
-----------------------------------------------------
* ``{"action": "start", "document": {"id", "title", "author", "body"}}`` (optional
  ``"approver"`` e-mail, ``"remind_after"`` seconds, ``"thread_id"``; default
  ``approval-<document id>``, so a retried start event is harmless: it returns the
  thread's current state);
* ``{"action": "answer", "thread_id", "token", "answer"}``: what the approver's link
  sends (``"approve"``/``"reject"`` or ``{"decision": ..., "by": ..., "comment": ...}``);
  the run continues in the same invocation;
* ``{"action": "continue", "thread_id"}`` nudges a run (the driver does this by itself);
* ``{"action": "status", "thread_id"}`` looks without running anything.

Every response has ``thread_id``, ``status`` (``waiting``, ``suspended`` or
``completed``), ``checkpoint_id``, ``wake_at`` (when a waiting run continues by itself:
the next reminder) and ``result``.

Deadline and durability
-----------------------
Each platform passes the invocation's deadline (epoch seconds). No task starts
when less than ``CAIRNFLOW_RESERVE_SECONDS`` (default 5) remain: the run stops
with status ``"suspended"``, everything recorded, and the driver continues it in
another invocation. The reserve must cover the longest task plus one checkpoint
write. ``CAIRNFLOW_DURABILITY`` is ``sync`` by default (see docs/serverless.md for
why); ``async`` is safe too, as ``run()``/``resume()`` return only after every
write is acknowledged. ``CAIRNFLOW_LEASE_SECONDS`` (default 900) is how long a run
may go silent before it is presumed dead and continued elsewhere: make it longer
than the function's timeout.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from cairnflow.core import (
    CallbackCompletedError,
    CallbackTimeoutError,
    CheckpointSaver,
    ConflictError,
    Durability,
    InvalidCallbackTokenError,
    NondeterminismError,
    ResumeError,
    RetryPolicy,
    Run,
    ThreadNotFoundError,
    callback,
    complete_callback,
    task,
    workflow,
)
from cairnflow.core.wake import Wakeup
from cairnflow.driver import Driver, WakeScheduler

__all__ = [
    "BadRequest",
    "Settings",
    "document_approval",
    "handle",
    "handle_http",
    "make_driver",
    "on_mail",
    "on_task_run",
]

log = logging.getLogger("approval")

MAX_BODY_CHARS = 200_000
#: How long the approver has before a reminder, unless the start request says otherwise.
DEFAULT_REMIND_AFTER = 24 * 3600.0
#: Reminders sent before the document is rejected as unanswered.
MAX_REMINDERS = 3
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
    lease: float

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
            lease=float(os.environ.get("CAIRNFLOW_LEASE_SECONDS", "900")),
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


def _log_mail(mail: dict[str, Any]) -> None:
    log.info("mail to %s: %s; answer with %s", mail["to"], mail["subject"], json.dumps(mail["answer_with"]))


#: Sends a mail (a stand-in: the examples log it; tests collect it). ``mail["answer_with"]``
#: is the request the approver's "approve" link sends.
on_mail: Callable[[dict[str, Any]], None] = _log_mail


def _mail(kind: str, envelope: dict[str, Any], review: dict[str, Any], token: str, reminder: int) -> str:
    meta = envelope["document"]
    on_task_run(kind, meta["id"])
    subject = f"Approve {meta['title']!r} by {meta['author']} for publication?"
    on_mail(
        {
            "to": envelope["to"],
            "subject": subject if not reminder else f"Reminder {reminder}: {subject}",
            "reminder": reminder,
            "review": review,
            "answer_with": {
                "action": "answer",
                "thread_id": envelope["thread_id"],
                "token": token,
                "answer": "approve",
            },
        }
    )
    return f"mail-{hashlib.sha256(token.encode()).hexdigest()[:16]}"


@task(retry=RetryPolicy(max_attempts=3, initial_interval=0.5))
def request_approval(envelope: dict[str, Any], review: dict[str, Any], token: str) -> str:
    """Mail the approver the review and a link that answers the callback ``token``."""
    return _mail("request_approval", envelope, review, token, 0)


@task(retry=RetryPolicy(max_attempts=3, initial_interval=0.5))
def send_reminder(envelope: dict[str, Any], review: dict[str, Any], token: str, reminder: int) -> str:
    """The approver did not answer in time: mail again, with a fresh link."""
    return _mail("send_reminder", envelope, review, token, reminder)


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
def document_approval(request: dict[str, Any]) -> dict[str, Any]:
    document = request["document"]
    meta = extract(document).result()
    policy = check_policy(meta, document["body"]).result()
    summary = summarize(meta, document["body"], policy).result()
    review = {"summary": summary, "risk": policy["risk"], "flags": policy["flags"], "words": meta["words"]}
    envelope = {"to": request["approver"], "thread_id": request["thread_id"], "document": meta}
    reminders = 0
    while True:
        # A sleep racing the answer: the callback's timeout is when to remind.
        approval = callback(timeout=request["remind_after"])
        if reminders == 0:
            request_approval(envelope, review, approval.token).result()
        else:
            send_reminder(envelope, review, approval.token, reminders).result()
        try:
            answer = approval.wait()
            break
        except CallbackTimeoutError:
            if reminders == MAX_REMINDERS:
                unanswered = f"no answer after {reminders} reminders"
                answer = {"decision": "reject", "by": None, "comment": unanswered}
                break
            reminders += 1
    approved = answer["decision"] == "approve"
    publication = publish(meta, answer.get("by")).result() if approved else None
    message = notify(meta, answer["decision"], publication["url"] if publication else None).result()
    return {
        "document": meta["id"],
        "decision": "approved" if approved else "rejected",
        "comment": answer.get("comment", ""),
        "risk": policy["risk"],
        "reminders": reminders,
        "publication": publication,
        "notification": message,
    }


def make_driver(saver: CheckpointSaver, scheduler: WakeScheduler, settings: Settings) -> Driver:
    """The driver that keeps approvals moving through ``scheduler`` (the platform's queue)."""
    return Driver(saver, scheduler, [document_approval], lease=settings.lease)


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


def _remind_after(value: Any) -> float:
    if value is None:
        return DEFAULT_REMIND_AFTER
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 30 * 86400:
        raise BadRequest("remind_after must be a number of seconds, more than 0 and at most 30 days")
    return float(value)


def describe(run: Run) -> dict[str, Any]:
    """The JSON response for a run's outcome."""
    return {
        "thread_id": run.thread_id,
        "status": run.status,
        "checkpoint_id": run.checkpoint_id,
        "wake_at": run.wake_at,
        "result": run.result if run.status == "completed" else None,
    }


def _standing(driver: Driver, thread_id: str) -> dict[str, Any]:
    run = document_approval.get_run(thread_id=thread_id, saver=driver.saver)
    if run is None:
        raise ThreadNotFoundError(f"no thread {thread_id!r}")
    return describe(run)


def handle(
    request: Mapping[str, Any],
    *,
    driver: Driver,
    deadline: float | None,
    settings: Settings,
) -> dict[str, Any]:
    """Run one request to its next stop (waiting, suspended or completed).

    Raises :class:`BadRequest` for a malformed request, ``ThreadNotFoundError``,
    ``InvalidCallbackTokenError`` (a link that is not this thread's),
    ``CallbackCompletedError`` (a link already answered otherwise, or timed out),
    ``NondeterminismError`` (a thread id reused for another document) and
    ``ConflictError`` (another invocation advanced the thread meanwhile).
    """
    if not isinstance(request, Mapping):
        raise BadRequest("the request must be a JSON object")
    action = request.get("action")
    options: dict[str, Any] = {
        "durability": settings.durability,
        "deadline": deadline,
        "reserve": settings.reserve,
    }
    if action == "start":
        document = _document(request.get("document"))
        thread_id = _text(request.get("thread_id") or f"approval-{document['id']}", "thread_id")
        approver = _text(request.get("approver") or "approver@example.com", "approver")
        flow_input = {
            "document": document,
            "thread_id": thread_id,
            "approver": approver,
            "remind_after": _remind_after(request.get("remind_after")),
        }
        return describe(driver.start(document_approval, flow_input, thread_id=thread_id, **options))
    thread_id = _text(request.get("thread_id"), "thread_id")
    if action == "answer":
        answer = _answer(request.get("answer"))
        token = _text(request.get("token"), "token", limit=1000)
        complete_callback(token, answer, saver=driver.saver, scheduler=driver.scheduler)
        action = "continue"  # the approver waits for the outcome: continue here, not later
    if action == "continue":
        reason = "callback" if "token" in request else "suspended"
        driver.handle(Wakeup(thread_id, document_approval.name, time.time(), reason), **options)
        return _standing(driver, thread_id)
    if action == "status":
        return _standing(driver, thread_id)
    raise BadRequest('action must be "start", "answer", "continue" or "status"')


def handle_http(
    body: bytes, *, driver: Driver, deadline: float | None, settings: Settings
) -> tuple[int, dict[str, Any]]:
    """:func:`handle` for an HTTP request body: (status code, JSON response).

    400 malformed request (or a link that is not a callback token), 404 unknown
    thread, 409 the request does not fit the thread's state (a link already
    answered otherwise or timed out, another document, lost a race); any other
    error propagates (the platform answers 500 and logs it).
    """
    try:
        request = json.loads(body or b"null")
    except (ValueError, UnicodeDecodeError):
        return 400, {"error": "the body must be JSON"}
    try:
        return 200, handle(request, driver=driver, deadline=deadline, settings=settings)
    except (BadRequest, InvalidCallbackTokenError) as exc:
        return 400, {"error": str(exc), "type": type(exc).__name__}
    except ThreadNotFoundError as exc:
        return 404, {"error": str(exc)}
    except (CallbackCompletedError, ResumeError, NondeterminismError, ConflictError) as exc:
        return 409, {"error": str(exc), "type": type(exc).__name__}
