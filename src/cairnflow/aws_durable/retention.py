"""Retention under the user's control: delete finished executions, one by one or by age.

The managed service keeps an execution's history for its retention period and
then drops it. Here nothing is dropped unless asked: :func:`delete_execution`
removes one finished execution (its records and its large values), and
:func:`prune_executions` every finished execution that ended before a cutoff
(``cairnflow durable delete`` / ``prune``).

Deleting goes through the log's tombstone (:mod:`cairnflow.core.tombstone`),
placed exactly above the head that was found finished, so an execution that
moved on meanwhile is not deleted (``ConflictError``), and a writer holding an
old token is fenced. The payload objects go after the records that reference
them: a reader never finds a record whose value is gone while the record stays.
"""

from __future__ import annotations

from cairnflow.core import keys
from cairnflow.core.errors import InvalidArgumentError

from .client import CairnflowDurableClient

__all__ = ["delete_execution", "prune_executions"]


def delete_execution(client: CairnflowDurableClient, arn: str) -> int:
    """Delete finished execution ``arn`` and its large values; return how many payload objects went.

    Refuses (``InvalidArgumentError``) an execution still running: stop it first.
    ``ThreadNotFoundError`` if there is none; ``ConflictError`` if it moved meanwhile.
    """
    view = client.describe(arn)
    if not view.done:
        raise InvalidArgumentError(
            f"execution {arn!r} is {view.status}; stop it first (cairnflow durable stop) or let it finish"
        )
    client.log.delete_thread(arn, purge=True, expected_head=client.known_seq(arn))
    with client._lock:  # this process's cache of the execution goes with it
        client._heads.pop(arn, None)
    store = client.log.store
    payloads = [info.key for info in store.list(keys.durable_payloads_prefix(client.log.prefix, arn))]
    for key in payloads:
        store.delete(key)
    return len(payloads)


def prune_executions(
    client: CairnflowDurableClient, *, older_than: float, now: float | None = None
) -> list[str]:
    """Delete every finished execution that ended more than ``older_than`` seconds ago; return their ARNs.

    Costs one listing of the executions and a read of each (1-2 GETs), then
    the deletes. Running executions are never touched.
    """
    if older_than < 0:
        raise InvalidArgumentError(f"older_than must be seconds >= 0, got {older_than!r}")
    cutoff_ms = ((client.clock() if now is None else now) - older_than) * 1000
    deleted: list[str] = []
    for arn in list(client.log.threads()):
        view = client.describe(arn)
        ended = (view.operations.get(view.execution_id) or {}).get("EndTimestamp")
        if view.done and ended is not None and int(ended) <= cutoff_ms:
            delete_execution(client, arn)
            deleted.append(arn)
    return deleted
