"""The abstract checkpoint saver: a linear, fenced log of checkpoints per thread.

A *thread* is one workflow instance. Its history is a sequence of
checkpoints numbered 0, 1, 2, ... Each checkpoint holds the *records*
(task results, interrupts, answers, the end of the run) that the executor
appended, and stands for the state made of every record up to it.

The saver's promises, whatever the store:

* **Linear history, fencing.** :meth:`CheckpointSaver.append` writes
  checkpoint ``head.seq + 1`` and nothing else. If another writer wrote that
  number first, it raises :class:`~cairnflow.core.errors.ConflictError` and
  writes nothing visible. Two writers can never both succeed at one step.
* **Exactly-once recording under retries.** An append retried after an
  ambiguous failure recognises its own checkpoint and succeeds.
* **Bounded reads.** :meth:`latest` costs a fixed number of requests
  whatever the history length.
* **Explicit forks only.** :meth:`fork` appends a checkpoint whose state is
  an older checkpoint's; the history stays a line, the fork is recorded.

:class:`AsyncCheckpointSaver` makes the same promises for asyncio: the same
methods, awaited (``history`` and ``threads`` are async iterators).
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from cairnflow.core.format import Kind, Status

__all__ = ["AsyncCheckpointSaver", "Checkpoint", "CheckpointInfo", "CheckpointSaver", "Kind", "Status"]


@dataclass(frozen=True)
class CheckpointInfo:
    """What the header of one checkpoint says (readable without loading values)."""

    thread_id: str
    seq: int
    kind: Kind
    status: Status
    created_at: float
    """Seconds since the epoch, by the writer's clock."""
    new_records: int
    """How many records this checkpoint added."""
    total_records: int
    """How many records make up the state at this checkpoint."""
    parent: int | None = None
    """For a fork: the checkpoint whose state it copied."""
    workflow: str | None = None
    """The workflow's name, when the writer gave one."""

    @property
    def checkpoint_id(self) -> str:
        return str(self.seq)


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint with the full state it stands for."""

    info: CheckpointInfo
    records: tuple[Any, ...]
    """Every record of the state at this checkpoint, oldest first."""
    base_seq: int
    """The snapshot this checkpoint's state was built on (itself, for a snapshot)."""
    base_len: int
    """How many of ``records`` come from that snapshot."""
    base_bytes: int = 0
    """Size of that snapshot's serialised records (drives the snapshot policy)."""

    @property
    def thread_id(self) -> str:
        return self.info.thread_id

    @property
    def seq(self) -> int:
        return self.info.seq

    @property
    def status(self) -> Status:
        return self.info.status

    @property
    def checkpoint_id(self) -> str:
        return self.info.checkpoint_id

    @property
    def new(self) -> tuple[Any, ...]:
        """The records this checkpoint added."""
        n = self.info.new_records
        return self.records[len(self.records) - n :] if n else ()


class CheckpointSaver(abc.ABC):
    """Where a workflow's checkpoints live. See the module docstring for the promises."""

    @abc.abstractmethod
    def latest(self, thread_id: str) -> Checkpoint | None:
        """The newest checkpoint of the thread (a tombstone if it was deleted), or None."""

    @abc.abstractmethod
    def get(self, thread_id: str, checkpoint_id: str | int) -> Checkpoint:
        """One checkpoint by id; ``ThreadNotFoundError`` if it does not exist."""

    @abc.abstractmethod
    def append(
        self,
        thread_id: str,
        head: Checkpoint | None,
        records: Sequence[Any],
        *,
        status: Status,
        workflow: str | None = None,
    ) -> Checkpoint:
        """Write checkpoint ``head.seq + 1`` (0 for a new thread) adding ``records``.

        Raises ``ConflictError`` if the thread's head is no longer ``head``.
        """

    @abc.abstractmethod
    def fork(self, thread_id: str, checkpoint_id: str | int) -> Checkpoint:
        """Append a checkpoint whose state is that of ``checkpoint_id`` (time travel)."""

    @abc.abstractmethod
    def history(
        self, thread_id: str, *, limit: int | None = None, before: str | int | None = None
    ) -> Iterator[CheckpointInfo]:
        """The thread's checkpoints, newest first; ``before`` is exclusive."""

    @abc.abstractmethod
    def threads(self, *, limit: int | None = None) -> Iterator[str]:
        """Every thread id with at least one checkpoint (deleted ones included), in key order."""

    @abc.abstractmethod
    def delete_thread(
        self, thread_id: str, *, purge: bool = False, expected_head: int | None = None
    ) -> int | None:
        """Delete a thread's checkpoints, fencing out any writer still holding it.

        A small tombstone stays as the thread's head so that a writer that
        loaded the thread before the delete cannot resurrect it; ``purge``
        removes the tombstone as well. With ``expected_head``, delete only if
        the thread's newest checkpoint is still that one (else ``ConflictError``).
        Returns the tombstone's sequence number, or None if there was no thread.
        """

    def index_stop(self, head: Checkpoint, previous: Checkpoint | None) -> None:  # noqa: B027 - optional hook
        """Called once when a run stops at ``head``, having started from ``previous``.

        Savers with a status index (:mod:`cairnflow.core.status_index`) record
        the stop there; the default does nothing. Must not raise for a store failure.
        """


class AsyncCheckpointSaver(abc.ABC):
    """:class:`CheckpointSaver` for asyncio: the same methods, promises and errors, awaited.

    ``history`` and ``threads`` are async iterators (``async for``), the rest
    coroutines. See the module docstring for the promises.
    """

    @abc.abstractmethod
    async def latest(self, thread_id: str) -> Checkpoint | None:
        """The newest checkpoint of the thread (a tombstone if it was deleted), or None."""

    @abc.abstractmethod
    async def get(self, thread_id: str, checkpoint_id: str | int) -> Checkpoint:
        """One checkpoint by id; ``ThreadNotFoundError`` if it does not exist."""

    @abc.abstractmethod
    async def append(
        self,
        thread_id: str,
        head: Checkpoint | None,
        records: Sequence[Any],
        *,
        status: Status,
        workflow: str | None = None,
    ) -> Checkpoint:
        """Write checkpoint ``head.seq + 1`` (0 for a new thread) adding ``records``.

        Raises ``ConflictError`` if the thread's head is no longer ``head``.
        """

    @abc.abstractmethod
    async def fork(self, thread_id: str, checkpoint_id: str | int) -> Checkpoint:
        """Append a checkpoint whose state is that of ``checkpoint_id`` (time travel)."""

    @abc.abstractmethod
    def history(
        self, thread_id: str, *, limit: int | None = None, before: str | int | None = None
    ) -> AsyncIterator[CheckpointInfo]:
        """The thread's checkpoints, newest first; ``before`` is exclusive (an async iterator)."""

    @abc.abstractmethod
    def threads(self, *, limit: int | None = None) -> AsyncIterator[str]:
        """Every thread id with at least one checkpoint (deleted ones included), in key order."""

    @abc.abstractmethod
    async def delete_thread(
        self, thread_id: str, *, purge: bool = False, expected_head: int | None = None
    ) -> int | None:
        """Delete a thread's checkpoints, fencing out any writer still holding it.

        As :meth:`CheckpointSaver.delete_thread`: a tombstone stays as the head
        unless ``purge``; ``expected_head`` makes the delete conditional.
        Returns the tombstone's sequence number, or None if there was no thread.
        """

    async def index_stop(self, head: Checkpoint, previous: Checkpoint | None) -> None:  # noqa: B027 - optional hook
        """Called once when a run stops at ``head``, having started from ``previous``.

        As :meth:`CheckpointSaver.index_stop`; the default does nothing. Must not
        raise for a store failure.
        """

    async def aopen(self) -> None:  # noqa: B027 - optional hook
        """Create the store's client now rather than on the first request (optional)."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release the store's clients and connections (optional)."""

    async def __aenter__(self) -> AsyncCheckpointSaver:
        await self.aopen()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
