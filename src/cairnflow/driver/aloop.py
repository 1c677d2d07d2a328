"""Continuing ``async def`` workflows from the driver: an asyncio saver on the driver's store.

The driver holds a sync :class:`~cairnflow.core.checkpoint.CheckpointSaver`
(its due index, leases and reads of a thread's head go through it). An
``async def`` workflow runs on an event loop with an
:class:`~cairnflow.core.checkpoint.AsyncCheckpointSaver` on the *same* store:
:class:`AsyncSavers` gives one, opened for the loop that runs the workflow
and closed after it (asyncio clients such as aiobotocore's are bound to the
loop that opened them, and a sync entry point runs each continuation under
its own ``asyncio.run``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TypeAlias

from cairnflow.core.checkpoint import AsyncCheckpointSaver, CheckpointSaver
from cairnflow.core.errors import MisuseError
from cairnflow.core.log import AsyncCheckpointLog, CheckpointLog

__all__ = ["AsyncSaverSource", "AsyncSavers", "async_twin"]

#: What ``Driver(async_saver=...)`` accepts: a saver (used as is, never closed by the
#: driver: for the async entry points on its own loop), a factory called once per event
#: loop (its saver is closed after), a URL for ``open_async_saver``, or None: derived
#: from the driver's sync saver.
AsyncSaverSource: TypeAlias = AsyncCheckpointSaver | Callable[[], AsyncCheckpointSaver] | str | None


def async_twin(saver: CheckpointSaver) -> AsyncCheckpointLog:
    """An :class:`AsyncCheckpointLog` on the store, prefix, serializer and cipher of ``saver``.

    The store is opened again from its URL (``memory://`` shares the process's
    objects, ``file://`` the directory); cloud clients take their credentials
    and endpoint from the environment, as ``open_async_saver(url)`` does. A
    store built with an explicit client needs ``Driver(async_saver=...)``.
    """
    from cairnflow.savers import open_async_store, parse_url

    if not isinstance(saver, CheckpointLog):
        raise MisuseError(
            f"cannot derive an async saver from {type(saver).__name__} to continue an `async def` "
            "workflow: pass Driver(..., async_saver=URL or a factory of AsyncCheckpointSaver)"
        )
    url = str(getattr(saver.store, "url", ""))
    scheme = parse_url(url)[0]
    if scheme in ("memory", "file"):
        store, prefix = open_async_store(url)[0], saver.prefix
    else:  # a cloud store: its probe stays under the log's prefix, as open_async_saver's does
        store, prefix = open_async_store(f"{url}/{saver.prefix}".rstrip("/"))
    return AsyncCheckpointLog(
        store,
        prefix=prefix,
        serializer=saver.serializer,
        snapshot_every=saver.snapshot_every,
        snapshot_bytes=saver.snapshot_bytes,
        store_retry=saver.store_retry,
        cipher=saver.cipher,
        require_encryption=saver.require_encryption,
    )


class AsyncSavers:
    """Where the driver gets the :class:`AsyncCheckpointSaver` for one event loop."""

    def __init__(self, saver: CheckpointSaver, source: AsyncSaverSource) -> None:
        self.saver = saver
        self.source = source

    @asynccontextmanager
    async def opened(self) -> AsyncIterator[AsyncCheckpointSaver]:
        """The async saver to use on the running loop; closed on leaving unless it was given."""
        source = self.source
        if isinstance(source, AsyncCheckpointSaver):
            yield source  # the caller's: it lives on the caller's loop, the caller closes it
            return
        if source is None:
            opened: AsyncCheckpointSaver = async_twin(self.saver)
        elif isinstance(source, str):
            from cairnflow.savers import open_async_saver

            opened = open_async_saver(source, create=False)
        else:
            opened = source()
        try:
            yield opened
        finally:
            await opened.aclose()
