"""Writing a run's records to its thread's log, in one of three durability modes.

``"sync"``     a task's result is stored before its future resolves; results
               that finish while a write is in flight share the next write
               (group commit), so N parallel tasks cost at most N writes.
``"async"``    results are stored by a background writer while the workflow
               goes on; ``run()``/``resume()`` return only after every write
               is acknowledged, and the writer thread is gone by then.
``"exit"``     nothing is stored until the run completes, fails, pauses or is
               suspended; one write then. A hard kill loses the whole run's
               progress (tasks run again on the next attempt).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any, Literal

from cairnflow.core.checkpoint import Checkpoint, CheckpointSaver, Status
from cairnflow.core.errors import ConflictError

__all__ = ["DURABILITIES", "Committer", "CommitterBase", "Durability"]

#: How often one write moves onto a newer head that only gained callback completions.
_REBASES = 3

Durability = Literal["sync", "async", "exit"]
DURABILITIES = ("sync", "async", "exit")


class CommitterBase:
    """What both committers share: the queue of records, the head, and the rebase rule.

    The sync :class:`Committer` waits with a condition variable and writes in the
    caller's (or a background) thread; the asyncio one
    (:class:`cairnflow.core.acommitter.AsyncCommitter`) awaits. Both write one batch
    at a time, in order, and are poisoned by their first failed write.
    """

    def __init__(
        self,
        saver: Any,
        thread_id: str,
        head: Checkpoint | None,
        mode: Durability,
        workflow: str,
    ) -> None:
        self.saver = saver
        self.thread_id = thread_id
        self.head = head
        self._start = head  # its index entry, if any, is superseded by this run's stop
        self.mode = mode
        self.workflow = workflow
        self.writes = 0
        #: Told the callback completions a write moved past (:meth:`rebased`).
        self.on_rebase: Callable[[Sequence[Any]], None] | None = None
        self._pending: list[Any] = []
        self._enqueued = 0
        self._durable = 0
        self._writing = False
        self._stopping = False
        self._error: BaseException | None = None

    @property
    def start_head(self) -> Checkpoint | None:
        """The head this run started from (None for a new thread)."""
        return self._start

    @property
    def error(self) -> BaseException | None:
        return self._error

    def queued(self) -> int:
        """How many records were handed to this committer so far (staged or committed)."""
        return self._enqueued

    @property
    def has_pending(self) -> bool:
        """Whether records are queued that no write has stored yet."""
        return bool(self._pending)

    def stage(self, records: Sequence[Any]) -> None:
        """Queue records to go out with the next write, without causing one."""
        self._check()
        self._pending.extend(records)
        self._enqueued += len(records)

    def commit(self, records: Sequence[Any], *, wait: bool | None = None) -> Any:
        """Queue records and store them per the mode (sync: returns None; async: a coroutine)."""
        raise NotImplementedError

    def _check(self) -> None:
        if self._error is not None:
            raise self._error

    def _landed(self, batch: Sequence[Any], new_head: Checkpoint) -> None:
        self.head = new_head
        self.writes += 1
        self._durable += len(batch)

    def rebased(self, latest: Checkpoint | None, batch: Sequence[Any]) -> bool:
        """After a conflict: move onto ``latest`` if all it added are callback completions.

        ``complete_callback`` appends to a thread that may be running (the token left in
        a task and was answered at once). Such records change nothing this run wrote or
        read, unless the batch itself ends the same callback (its timeout): then, and for
        any other writer, the conflict stands.
        """
        if self.head is None:
            return False
        old = self.head.records
        if latest is None or len(latest.records) <= len(old) or latest.records[: len(old)] != old:
            return False
        extra = latest.records[len(old) :]
        if not all(isinstance(r, dict) and r.get("op") == "callback_done" for r in extra):
            return False
        ending = {r.get("pos") for r in batch if isinstance(r, dict) and r.get("op") == "callback_done"}
        if any(r.get("pos") in ending for r in extra):
            return False
        self.head = latest
        if self.on_rebase is not None:
            self.on_rebase(extra)
        return True


class Committer(CommitterBase):
    """Appends records to the thread's log according to the durability mode.

    All writes of one run go through here, one at a time, in order. In
    ``sync`` mode callers wait for their records and whoever finds no write
    in flight writes everything pending (group commit); in ``async`` mode a
    background thread writes; in ``exit`` mode records wait for
    :meth:`finish`. The first failed write (e.g. ``ConflictError``) poisons
    the committer: every later call re-raises it and nothing more is written.
    """

    def __init__(
        self,
        saver: CheckpointSaver,
        thread_id: str,
        head: Checkpoint | None,
        mode: Durability,
        workflow: str,
    ) -> None:
        super().__init__(saver, thread_id, head, mode, workflow)
        self.saver: CheckpointSaver = saver
        self._cv = threading.Condition()
        self._thread: threading.Thread | None = None
        if mode == "async":
            self._thread = threading.Thread(target=self._background, name="cairnflow-writer", daemon=True)
            self._thread.start()

    def queued(self) -> int:
        with self._cv:
            return self._enqueued

    @property
    def has_pending(self) -> bool:
        with self._cv:
            return bool(self._pending)

    def stage(self, records: Sequence[Any]) -> None:
        with self._cv:
            super().stage(records)

    def commit(self, records: Sequence[Any], *, wait: bool | None = None) -> None:
        """Queue records and, if ``wait`` (default: in sync mode), return once they are stored.

        ``wait=True`` in async mode waits for the background writer; in exit mode
        nothing is written before :meth:`finish`, so it cannot wait.
        """
        if wait is None:
            wait = self.mode == "sync"
        with self._cv:
            self._check()
            self._pending.extend(records)
            self._enqueued += len(records)
            ticket = self._enqueued
            if self.mode == "async":
                self._cv.notify_all()
                while wait and self._durable < ticket:
                    self._check()
                    self._cv.wait()
            elif self.mode == "sync":
                while self._durable < ticket:
                    self._check()
                    if self._writing:
                        self._cv.wait()
                    else:
                        self._write_pending("running")

    def finish(self, records: Sequence[Any], status: Status) -> Checkpoint | None:
        """Write everything still pending plus ``records`` with the run's final status."""
        with self._cv:
            self._stopping = True
            self._cv.notify_all()
            while self._writing:
                self._cv.wait()
            self._check()
            self._pending.extend(records)
            stopped = bool(self._pending)
            if stopped:
                self._write_pending(status)
        if self._thread is not None:
            self._thread.join()
        if stopped and self.head is not None:
            self.saver.index_stop(self.head, self._start)  # the one index write per stop
        return self.head

    def abandon(self) -> None:
        """Stop the background writer without writing anything more."""
        with self._cv:
            self._stopping = True
            self._cv.notify_all()
        if self._thread is not None:
            self._thread.join()

    def _write_pending(self, status: Status) -> None:
        """Write the pending batch. Called with the lock held; releases it during I/O."""
        batch, self._pending = self._pending, []
        self._writing = True
        self._cv.release()
        error: BaseException | None = None
        new_head: Checkpoint | None = None
        try:
            for attempt in range(_REBASES + 1):
                try:
                    new_head = self.saver.append(
                        self.thread_id, self.head, batch, status=status, workflow=self.workflow
                    )
                    break
                except ConflictError:
                    if attempt == _REBASES or not self._rebase(batch):
                        raise
        except BaseException as exc:  # noqa: BLE001 - handed to every waiting caller below
            error = exc
        finally:
            self._cv.acquire()
            self._writing = False
            self._cv.notify_all()
        if error is not None:
            self._error = error
            raise error
        assert new_head is not None
        self._landed(batch, new_head)

    def _rebase(self, batch: Sequence[Any]) -> bool:
        """After a conflict: read the head once and see whether the write may move onto it."""
        if self.head is None:
            return False
        return self.rebased(self.saver.latest(self.thread_id), batch)

    def _background(self) -> None:
        with self._cv:
            while True:
                while not self._pending and not self._stopping:
                    self._cv.wait()
                if self._stopping or self._error is not None:
                    return
                try:
                    self._write_pending("running")
                except BaseException:  # noqa: BLE001 - kept in self._error, re-raised to callers
                    return
