"""LangGraph threads for the operator tools, read and written only through the LangGraph saver.

A prefix can hold executor threads (``v1/threads/``) and LangGraph threads
(the layout of :mod:`cairnflow.langgraph`) side by side. Nothing here knows
the LangGraph key layout: threads are found with the saver's own reader,
checkpoints read with ``list``/``get_tuple``, and written (``copy``) with
``put``/``put_writes``, so whatever format the saver writes is what is
copied. LangGraph is imported only when the store holds something besides
executor threads (one delimiter LIST of ``{prefix}v1/`` tells).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from cairnflow.core import keys, status_index
from cairnflow.core.errors import (
    CairnflowError,
    ConflictError,
    DecryptionError,
    MissingDependencyError,
    ThreadNotFoundError,
)
from cairnflow.core.log import CheckpointLog
from cairnflow.core.verify import Problem
from cairnflow.ops import objects
from cairnflow.ops.display import plain
from cairnflow.ops.graph_results import GraphCheckpoint, GraphState
from cairnflow.ops.results import CopiedThread, DeleteResult, PrunedThread, ThreadSummary

if TYPE_CHECKING:
    from langgraph.checkpoint.base import CheckpointTuple

    from cairnflow.langgraph import LangGraphSaver

__all__ = [
    "copy_thread",
    "delete",
    "graph_saver",
    "has_thread",
    "history",
    "key_filter",
    "prune_thread",
    "state",
    "summaries",
    "thread_ids",
    "verify_threads",
]

LAYOUT = "langgraph"
_BRANCH = "branch:to:"
_SPECIAL = ("__error__", "__scheduled__", "__interrupt__", "__resume__")
_cache: weakref.WeakKeyDictionary[CheckpointLog, LangGraphSaver | None] = weakref.WeakKeyDictionary()


def graph_saver(saver: CheckpointLog) -> LangGraphSaver | None:
    """A LangGraph saver on the same store and prefix, or None when the prefix holds only executor threads.

    :class:`MissingDependencyError` when it holds LangGraph objects but LangGraph is not installed.
    """
    if saver in _cache:
        return _cache[saver]
    base = saver.prefix + keys.FORMAT_PREFIX
    folders = objects.retry(saver, lambda: list(saver.store.list_prefixes(base)))
    found: LangGraphSaver | None = None
    executor = (keys.threads_prefix(saver.prefix), status_index.index_prefix(saver.prefix))
    if any(folder not in executor for folder in folders):
        try:
            from cairnflow.langgraph import LangGraphSaver
        except ImportError as exc:
            raise MissingDependencyError(
                f"{saver.store.url}/{saver.prefix} holds LangGraph threads; "
                "pip install 'cairnflow[langgraph]' to read them"
            ) from exc
        found = LangGraphSaver(
            saver.store, prefix=saver.prefix, serde=graph_serde(), store_retry=saver.store_retry
        )
    _cache[saver] = found
    return found


def graph_serde() -> Any:
    """The serializer LangGraph's own encryption setting asks for, else LangGraph's default.

    LangGraph encrypts checkpoints with ``EncryptedSerializer.from_pycryptodome_aes()``,
    which reads ``LANGGRAPH_AES_KEY``; with that variable set, the commands read such
    threads as the application does (unencrypted values still read as they are).
    """
    if os.environ.get("LANGGRAPH_AES_KEY"):
        from langgraph.checkpoint.serde.encrypted import EncryptedSerializer

        return EncryptedSerializer.from_pycryptodome_aes()
    from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

    class _NamesMissingKey(JsonPlusSerializer):
        # Without the key an encrypted value would fail as an "unknown serialization type":
        # say what it is and what to set instead.
        def loads_typed(self, data: tuple[str, bytes]) -> Any:
            if data[0].endswith("+aes"):
                raise DecryptionError(
                    "this LangGraph thread is encrypted with LangGraph's EncryptedSerializer: "
                    "set LANGGRAPH_AES_KEY to read its values"
                )
            return super().loads_typed(data)

    return _NamesMissingKey()


def key_filter(saver: CheckpointLog) -> Callable[[str], bool] | None:
    """``key -> True`` for the LangGraph saver's keys (so that ``verify`` leaves them to it)."""
    if graph_saver(saver) is None:
        return None
    from cairnflow.langgraph import _layout

    root = _layout.lg_prefix(saver.prefix)
    return lambda key: key.startswith(root)


def _cfg(thread_id: str, ns: str | None = "", checkpoint_id: str | None = None) -> Any:
    conf: dict[str, Any] = {"thread_id": thread_id}
    if ns is not None:
        conf["checkpoint_ns"] = ns
    if checkpoint_id is not None:
        conf["checkpoint_id"] = checkpoint_id
    return {"configurable": conf}


def thread_ids(lg: LangGraphSaver) -> Iterator[str]:
    """Every LangGraph thread id under the prefix, in key order (the saver's own skip-scan)."""
    return lg._threads()


def has_thread(lg: LangGraphSaver, thread_id: str) -> bool:
    return any(True for _ in lg._namespaces(thread_id))


def _time(ts: Any) -> float | None:
    try:
        return dt.datetime.fromisoformat(str(ts)).timestamp()
    except ValueError:
        return None


def _checkpoint(thread_id: str, tup: CheckpointTuple) -> GraphCheckpoint:
    conf = tup.config["configurable"]
    parent = tup.parent_config["configurable"].get("checkpoint_id") if tup.parent_config else None
    values = tup.checkpoint.get("channel_values", {})
    metadata: dict[str, Any] = dict(tup.metadata or {})
    step = metadata.get("step")
    return GraphCheckpoint(
        thread_id=thread_id,
        checkpoint_id=str(tup.checkpoint["id"]),
        ns=str(conf.get("checkpoint_ns") or ""),
        parent=parent,
        created_at=_time(tup.checkpoint.get("ts")),
        step=step if isinstance(step, int) else None,
        source=metadata.get("source"),
        channels=sorted(ch for ch in values if not ch.startswith(_BRANCH)),
        next=sorted(ch[len(_BRANCH) :] for ch in values if ch.startswith(_BRANCH)),
        writes=[{"task": t, "channel": ch, "value": plain(v)} for t, ch, v in tup.pending_writes or []],
    )


def _status(tup: CheckpointTuple) -> tuple[str, str | None, list[Any] | None]:
    """(status, error, interrupts) of a thread whose latest checkpoint is ``tup``."""
    writes = tup.pending_writes or []
    errors = [v for _, ch, v in writes if ch == "__error__"]
    interrupts = [plain(v) for _, ch, v in writes if ch == "__interrupt__"]
    if errors:
        return "failed", str(plain(errors[-1])), None
    if interrupts:
        flat = [i for group in interrupts for i in (group if isinstance(group, list) else [group])]
        return "interrupted", None, [i.get("value", i) if isinstance(i, dict) else i for i in flat]
    scheduled = any(ch.startswith(_BRANCH) for ch in tup.checkpoint.get("channel_values", {}))
    return ("running" if scheduled or writes else "completed"), None, None


def summaries(lg: LangGraphSaver, ids: Iterable[str] | None = None) -> Iterator[ThreadSummary]:
    """One :class:`ThreadSummary` per LangGraph thread (default: every one), from its root graph's head."""

    def one(thread_id: str) -> ThreadSummary:
        try:
            tup = lg.get_tuple(_cfg(thread_id))
        except CairnflowError as exc:
            return ThreadSummary(thread_id=thread_id, status="corrupt", error=str(exc), layout=LAYOUT)
        if tup is None:
            return ThreadSummary(thread_id=thread_id, status="deleted", layout=LAYOUT)
        status, error, interrupts = _status(tup)
        cp = _checkpoint(thread_id, tup)
        return ThreadSummary(
            thread_id=thread_id,
            status=status,
            checkpoint_id=cp.checkpoint_id,
            steps=cp.step,
            updated_at=cp.created_at,
            error=error,
            waiting_for=interrupts[0] if interrupts and len(interrupts) == 1 else interrupts,
            layout=LAYOUT,
        )

    return objects.parallel(one, iter(thread_ids(lg) if ids is None else ids))


def history(lg: LangGraphSaver, thread_id: str, *, limit: int | None = None) -> list[GraphCheckpoint]:
    """The thread's checkpoints in every namespace, newest first (per namespace)."""
    found = [_checkpoint(thread_id, t) for t in lg.list(_cfg(thread_id, None), limit=limit)]
    if not found:
        raise ThreadNotFoundError(f"no thread {thread_id!r}")
    return found


def state(lg: LangGraphSaver, thread_id: str, checkpoint_id: str | None = None) -> GraphState:
    """The root graph's state at ``checkpoint_id`` (default: the latest)."""
    latest = lg.get_tuple(_cfg(thread_id))
    if latest is None:
        raise ThreadNotFoundError(f"no thread {thread_id!r}")
    tup = latest if checkpoint_id is None else lg.get_tuple(_cfg(thread_id, "", str(checkpoint_id)))
    if tup is None:
        raise ThreadNotFoundError(f"thread {thread_id!r} has no checkpoint {checkpoint_id!r}")
    status, error, interrupts = _status(tup)
    return GraphState(
        thread_id=thread_id,
        status=status,
        checkpoint=_checkpoint(thread_id, tup),
        latest_checkpoint_id=str(latest.checkpoint["id"]),
        values={
            ch: plain(v)
            for ch, v in tup.checkpoint.get("channel_values", {}).items()
            if not ch.startswith(_BRANCH)
        },
        namespaces=sorted(ns for _, ns in lg._namespaces(thread_id)),
        error=error,
        interrupts=interrupts,
    )


def _ids(lg: LangGraphSaver, thread_id: str) -> list[str]:
    return [str(t.checkpoint["id"]) for t in lg.list(_cfg(thread_id, None))]


def delete(lg: LangGraphSaver, thread_id: str, *, dry_run: bool, purge: bool) -> DeleteResult:
    """Delete a LangGraph thread in every namespace (the saver's own ``delete_thread``)."""
    latest = lg.get_tuple(_cfg(thread_id))
    if not has_thread(lg, thread_id) or (latest is None and not purge):
        raise ThreadNotFoundError(f"no thread {thread_id!r}")
    doomed = sorted(_ids(lg, thread_id))
    if not dry_run:
        lg.delete_thread(thread_id, purge=purge)
    status = "deleted" if latest is None else _status(latest)[0]
    return DeleteResult(
        thread_id=thread_id,
        dry_run=dry_run,
        status=status,
        deleted=doomed,
        tombstone=None,
        purged=purge,
        layout=LAYOUT,
    )


def prune_thread(
    lg: LangGraphSaver,
    summary: ThreadSummary,
    *,
    keep_last: int | None,
    cutoff: float,
    dry_run: bool,
    purge: bool,
) -> PrunedThread | None:
    """Prune one LangGraph thread: ``keep_last=1`` keeps its latest checkpoints; else delete if stale."""
    thread_id = summary.thread_id
    done = dataclasses.replace
    base = PrunedThread(
        thread_id=thread_id,
        status=summary.status,
        updated_at=summary.updated_at,
        action="skip",
        deleted=[],
        head=summary.checkpoint_id,
        layout=LAYOUT,
    )
    if keep_last is not None:
        heads = _heads(lg, thread_id)
        doomed = sorted(i for i in _ids(lg, thread_id) if i not in heads)
        if not doomed:
            return None
        if keep_last > 1:
            reason = "LangGraph threads keep every checkpoint or only the latest (--keep-last 1)"
            return done(base, reason=reason)
        if not dry_run:
            try:
                lg.prune([thread_id], strategy="keep_latest")
            except (CairnflowError, ValueError) as exc:
                return done(base, reason=str(exc))
        return done(base, action="trim", deleted=doomed, keep_from=summary.checkpoint_id)
    if summary.updated_at is None or summary.updated_at >= cutoff:
        return None
    action = "purge" if summary.status == "deleted" else "delete"
    doomed = sorted(_ids(lg, thread_id))
    if not dry_run:
        lg.delete_thread(thread_id, purge=purge or summary.status == "deleted")
    return done(base, action=action, deleted=doomed)


def _heads(lg: LangGraphSaver, thread_id: str) -> set[str]:
    heads = set()
    for _, ns in lg._namespaces(thread_id):
        tup = lg.get_tuple(_cfg(thread_id, ns))
        if tup is not None:
            heads.add(str(tup.checkpoint["id"]))
    return heads


def copy_thread(src: LangGraphSaver, dst: LangGraphSaver, thread_id: str, *, dry_run: bool) -> CopiedThread:
    """Copy one LangGraph thread (every namespace, checkpoint, value and pending write) to ``dst``.

    Checkpoints go oldest first through ``dst.put`` with their ids, parents and
    metadata, each followed by its pending writes (``put_writes``, per task,
    indexes kept), so the copy resumes like the original. Checkpoints the
    destination already has are skipped; a destination thread holding
    checkpoints the source does not is a ``conflict`` and is left alone.
    """
    copied = skipped = 0
    head: str | None = None

    def stop(result: str, error: str) -> CopiedThread:
        return CopiedThread(
            thread_id=thread_id,
            result=result,
            copied=copied,
            skipped=skipped,
            head=head,
            error=error,
            layout=LAYOUT,
        )

    try:
        for _, ns in list(src._namespaces(thread_id)):
            tuples = list(src.list(_cfg(thread_id, ns)))  # newest first
            if not tuples:
                continue
            if ns == "":
                head = str(tuples[0].checkpoint["id"])
            have = {str(t.checkpoint["id"]): t for t in dst.list(_cfg(thread_id, ns))}
            theirs = set(have) - {str(t.checkpoint["id"]) for t in tuples}
            if theirs:
                raise ConflictError(
                    f"the destination thread has {len(theirs)} checkpoint(s) of its own in namespace "
                    f"{ns!r}; nothing overwritten"
                )
            last: str | None = None  # the checkpoint this copy wrote last in this namespace
            for tup in reversed(tuples):
                cid = str(tup.checkpoint["id"])
                there = have.get(cid)
                if there is not None and len(there.pending_writes or []) >= len(tup.pending_writes or []):
                    skipped += 1
                    continue
                copied += 1
                if not dry_run:
                    _put(dst, thread_id, ns, tup, write_checkpoint=there is None, last=last)
                    last = cid if there is None else last
    except ConflictError as exc:
        return stop("conflict", str(exc))
    except CairnflowError as exc:
        return stop("corrupt", str(exc))
    result = "copied" if copied else "up_to_date"
    return CopiedThread(
        thread_id=thread_id, result=result, copied=copied, skipped=skipped, head=head, layout=LAYOUT
    )


def _put(
    dst: LangGraphSaver,
    thread_id: str,
    ns: str,
    tup: CheckpointTuple,
    *,
    write_checkpoint: bool,
    last: str | None,
) -> None:
    cid = str(tup.checkpoint["id"])
    if write_checkpoint:
        parent = tup.parent_config["configurable"].get("checkpoint_id") if tup.parent_config else None
        if parent is not None and parent != last:
            # A fork (update_state or replay from an older checkpoint), or a copy resumed after an
            # interruption: read the parent by id first, as LangGraph does before time travel, so
            # the saver appends it at the head instead of fencing it as a stale successor.
            dst.get_tuple(_cfg(thread_id, ns, parent))
        versions = dict(tup.checkpoint.get("channel_versions", {}))
        dst.put(_cfg(thread_id, ns, parent), tup.checkpoint, tup.metadata, versions)
    by_task: dict[str, list[tuple[str, Any]]] = {}
    for task, channel, value in tup.pending_writes or []:
        by_task.setdefault(task, []).append((channel, value))
    for task, writes in by_task.items():
        # Regular writes first: their index is their position, as when the task wrote them.
        ordered = [w for w in writes if w[0] not in _SPECIAL] + [w for w in writes if w[0] in _SPECIAL]
        dst.put_writes(_cfg(thread_id, ns, cid), ordered, task)


def verify_threads(
    lg: LangGraphSaver, thread_id: str | None, tick: Callable[[int, int], None]
) -> list[Problem]:
    """Read every checkpoint, value and pending write of LangGraph threads; report what fails."""
    problems: list[Problem] = []
    for tid in [thread_id] if thread_id is not None else thread_ids(lg):
        try:
            for _ in lg.list(_cfg(tid, None)):
                tick(1, 0)
        except CairnflowError as exc:
            problems.append(
                Problem("langgraph_unreadable", str(exc), key=getattr(exc, "key", None), thread_id=tid)
            )
        tick(0, 1)
    return problems
