"""Writing an async workflow's records: :class:`AsyncCommitter`, the asyncio twin of the
:class:`~cairnflow.core.committer.Committer`'s waiting and I/O.

The durability modes, the batching (group commit), the poisoning by the first
failed write and the rule for moving onto a head that only gained callback
completions are the same, and live in :class:`~cairnflow.core.committer.CommitterBase`;
this module only awaits instead of blocking: an ``AsyncCheckpointSaver``'s
``append`` is awaited, waiters wait on an :class:`asyncio.Event`, and the
``async`` mode's background writer is an asyncio task rather than a thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from cairnflow.core.checkpoint import Checkpoint, Status
from cairnflow.core.committer import _REBASES, CommitterBase, Durability
from cairnflow.core.errors import ConflictError

__all__ = ["AsyncCommitter"]


class AsyncCommitter(CommitterBase):
    """Appends records to the thread's log on an ``AsyncCheckpointSaver``, per the durability mode.

    Everything runs on the event loop's thread, so the shared state needs no lock:
    a write is in flight while ``_writing`` is set, and every change wakes the
    waiters (:meth:`_changed`).
    """

    def __init__(
        self,
        saver: Any,
        thread_id: str,
        head: Checkpoint | None,
        mode: Durability,
        workflow: str,
    ) -> None:
        super().__init__(saver, thread_id, head, mode, workflow)
        self._event = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        if mode == "async":
            self._writer = asyncio.get_running_loop().create_task(self._background())

    def _changed(self) -> None:
        """Wake everyone waiting for a change (a write landed or failed, records queued, a stop)."""
        self._event.set()
        self._event = asyncio.Event()

    async def _next_change(self) -> None:
        await self._event.wait()

    async def commit(self, records: Sequence[Any], *, wait: bool | None = None) -> None:
        """Queue records and, if ``wait`` (default: in sync mode), return once they are stored."""
        if wait is None:
            wait = self.mode == "sync"
        self._check()
        self._pending.extend(records)
        self._enqueued += len(records)
        ticket = self._enqueued
        if self.mode == "async":
            self._changed()
            while wait and self._durable < ticket:
                self._check()
                await self._next_change()
            self._check()
        elif self.mode == "sync":
            while self._durable < ticket:
                self._check()
                if self._writing:
                    await self._next_change()
                else:
                    await self._write_pending("running")

    async def finish(self, records: Sequence[Any], status: Status) -> Checkpoint | None:
        """Write everything still pending plus ``records`` with the run's final status."""
        self._stopping = True
        self._changed()
        while self._writing:
            await self._next_change()
        if self._writer is not None:
            await self._writer
        self._check()
        self._pending.extend(records)
        stopped = bool(self._pending)
        if stopped:
            await self._write_pending(status)
        if stopped and self.head is not None:
            await self.saver.index_stop(self.head, self._start)  # the one index write per stop
        return self.head

    async def abandon(self) -> None:
        """Stop the background writer without writing anything more."""
        self._stopping = True
        self._changed()
        if self._writer is not None:
            await asyncio.gather(self._writer, return_exceptions=True)

    async def _write_pending(self, status: Status) -> None:
        batch, self._pending = self._pending, []
        self._writing = True
        try:
            for attempt in range(_REBASES + 1):
                try:
                    new_head = await self.saver.append(
                        self.thread_id, self.head, batch, status=status, workflow=self.workflow
                    )
                    break
                except ConflictError:
                    if attempt == _REBASES or self.head is None:
                        raise
                    if not self.rebased(await self.saver.latest(self.thread_id), batch):
                        raise
        except BaseException as exc:
            self._error = exc
            raise
        finally:
            self._writing = False
            self._changed()
        self._landed(batch, new_head)
        self._changed()

    async def _background(self) -> None:
        while True:
            while not self._pending and not self._stopping:
                await self._next_change()
            if self._stopping or self._error is not None:
                return
            try:
                await self._write_pending("running")
            except BaseException:  # noqa: BLE001 - kept in self._error, re-raised to callers
                return
