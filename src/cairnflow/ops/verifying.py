"""``verify`` over both layouts: executor objects by :mod:`cairnflow.core.verify`,
LangGraph threads by reading them through the LangGraph saver."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from cairnflow.core import keys, status_index
from cairnflow.core.log import CheckpointLog
from cairnflow.core.verify import VerifyReport
from cairnflow.core.verify import verify as verify_log
from cairnflow.ops import lgraph, objects
from cairnflow.ops.reading import thread_layout

__all__ = ["verify"]


def verify(
    saver: CheckpointLog,
    thread_id: str | None = None,
    *,
    progress: Callable[[int, int], None] | None = None,
    workers: int = 8,
    layout: str | None = None,
    total: Callable[[int], None] | None = None,
) -> VerifyReport:
    """Check every thread under the prefix (or one), of both layouts; never raises for a bad object.

    Executor objects get every check of :func:`cairnflow.core.verify.verify`;
    LangGraph keys are left to the LangGraph saver, which reads every
    checkpoint, channel value and pending write of each LangGraph thread (a
    failure is a ``langgraph_unreadable`` problem). A store holding both is
    sound when both are. ``progress(objects_checked, threads_checked)``;
    ``layout`` names the layout of ``thread_id`` when both hold it.
    ``total(objects)``, when given, is called first with the number of objects
    to check (one more paged LIST of the prefix, for a progress bar).
    """
    lg = lgraph.graph_saver(saver)
    which = thread_layout(saver, thread_id, layout) if thread_id is not None else None
    if total is not None and which != "langgraph":
        where = saver.prefix if thread_id is None else keys.thread_prefix(saver.prefix, thread_id)
        index = status_index.index_prefix(saver.prefix)  # index keys are parsed, not checked

        def count() -> int:
            return sum(1 for o in saver.store.list(where) if not o.key.startswith(index))

        total(objects.retry(saver, count))
    done = [0, 0]  # what the executor part checked

    def executor_tick(objects: int, threads: int) -> None:
        done[0], done[1] = objects, threads
        if progress is not None:
            progress(objects, threads)

    if which == "langgraph":
        report = VerifyReport(
            store=saver.store.url,
            prefix=saver.prefix,
            thread_id=thread_id,
            threads_checked=0,
            objects_checked=0,
        )
    else:
        graph_keys = lgraph.key_filter(saver)
        durable = keys.durable_prefix(saver.prefix)

        def skip(key: str) -> bool:  # other layouts are checked by their own readers below
            return key.startswith(durable) or (graph_keys is not None and graph_keys(key))

        report = verify_log(saver, thread_id, progress=executor_tick, workers=workers, skip=skip)
        if thread_id is None:
            report = _with_durable(saver, report, workers)
    if lg is None or which == "executor":
        return report
    extra = [0, 0]

    def graph_tick(objects: int, threads: int) -> None:
        extra[0] += objects
        extra[1] += threads
        if progress is not None:
            progress(done[0] + extra[0], done[1] + extra[1])

    problems = lgraph.verify_threads(lg, thread_id, graph_tick)
    return dataclasses.replace(
        report,
        threads_checked=report.threads_checked + extra[1],
        objects_checked=report.objects_checked + extra[0],
        problems=report.problems + tuple(problems),
    )


def _with_durable(saver: CheckpointLog, report: VerifyReport, workers: int) -> VerifyReport:
    """Add the AWS durable executions (``cairnflow.aws_durable``): a checkpoint log of its own."""
    durable = keys.durable_prefix(saver.prefix)
    if not objects.retry(saver, lambda: next(iter(saver.store.list(durable, limit=1)), None)):
        return report
    log = CheckpointLog(
        saver.store,
        prefix=durable,
        serializer=saver.serializer,
        store_retry=saver.store_retry,
        cipher=saver.cipher,
        require_encryption=saver.require_encryption,
    )
    payloads = keys.durable_payloads_root(durable)  # large values, referenced from the records
    found = verify_log(log, None, workers=workers, skip=lambda key: key.startswith(payloads))
    return dataclasses.replace(
        report,
        threads_checked=report.threads_checked + found.threads_checked,
        objects_checked=report.objects_checked + found.objects_checked,
        problems=report.problems + found.problems,
    )
