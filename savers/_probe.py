"""The conditional-write probe: one implementation for every cloud store.

Some gateways and proxies drop conditional headers (an S3-compatible store that
ignores ``If-None-Match``, a SAS gateway that strips it, a proxy that drops
``ifGenerationMatch``); on such a store a stale writer would silently replace a
checkpoint. A :class:`~cairnflow.savers._base.CloudStore` therefore runs this
probe before its first write, and hides the probe object from its listings; an
:class:`~cairnflow.savers._abase.AsyncCloudStore` runs the same decisions with
awaited writes.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Generator
from typing import TYPE_CHECKING, Final, NoReturn

from cairnflow.core.errors import (
    AlreadyExistsError,
    ConditionalWritesUnsupportedError,
    PreconditionFailedError,
)
from cairnflow.core.store import PROBE_SUFFIX
from cairnflow.savers._base import Op

if TYPE_CHECKING:
    from cairnflow.savers._abase import AsyncCloudStore
    from cairnflow.savers._base import CloudMapping, CloudStore

__all__ = ["PROBE_BODY", "AsyncConditionalWriteProbe", "ConditionalWriteProbe", "ProbeState"]

PROBE_BODY: Final = b"cairnflow conditional-write probe; safe to delete\n"


#: One probe write: the key, the body, the phase (CREATE or UPDATE) and the version it must match.
ProbeWrite = tuple[str, bytes, Op, "str | None"]


class ProbeState:
    """The probe's decisions, written once for the sync and the async store (sans I/O).

    Some gateways and proxies drop conditional headers (an S3-compatible store that
    ignores ``If-None-Match``, a SAS gateway that strips it, a proxy that drops
    ``ifGenerationMatch``); on such a store a stale writer would silently replace a
    checkpoint. So before a store's first write, the create-only phase writes
    ``{prefix}.cairnflow-probe`` create-only, and again if the first was accepted
    (the key was new): that second write must be refused. Before the first update,
    the If-Match phase writes it with a version no object can have: refused too.
    Steady state: one refused request per store object; a fresh prefix costs two.
    Each phase runs once; a failure is remembered. :class:`ConditionalWriteProbe`
    and :class:`AsyncConditionalWriteProbe` only send the writes :meth:`_phase` asks for.
    """

    def __init__(self, prefix: str, *, enabled: bool = True) -> None:
        self.key = f"{prefix}{PROBE_SUFFIX}"
        self._pending: frozenset[Op] = frozenset({Op.CREATE, Op.UPDATE}) if enabled else frozenset()
        self._failure: str | None = None

    def _phases(self, op: Op) -> list[Op]:
        """The phases a write of kind ``op`` still needs (raising a remembered failure)."""
        phases = (Op.CREATE, Op.UPDATE) if op is Op.UPDATE else (Op.CREATE,)
        return [phase for phase in phases if phase in self._pending]

    def _check_failed(self, store: CloudMapping) -> None:
        if self._failure is not None:
            raise ConditionalWritesUnsupportedError(self._failure, key=self.key, store=store.url)

    def _phase(self, store: CloudMapping, phase: Op) -> Generator[ProbeWrite, Exception | None, None]:
        """Yield each write of ``phase``; be sent ``None`` (accepted) or the store error it raised."""
        etag = store._NEVER_MATCHING_ETAG if phase is Op.UPDATE else None
        for _ in range(2 if phase is Op.CREATE else 1):
            outcome = yield (self.key, PROBE_BODY, phase, etag)
            if isinstance(outcome, (AlreadyExistsError, PreconditionFailedError)):
                self._pending = self._pending - {phase}
                return  # refused, as it must be
            if isinstance(outcome, ConditionalWritesUnsupportedError):
                self._fail(store, phase, f"refused it as unsupported ({outcome})")
        self._fail(store, phase, "accepted a write that its condition should have refused")

    def _fail(self, store: CloudMapping, phase: Op, outcome: str) -> NoReturn:
        self._failure = (
            f"{store.where} {outcome} ({store._CONDITIONS[phase]} on {self.key!r}): it does not "
            "honour conditional writes, and on a store that ignores conditional writes a stale "
            "writer could silently replace a checkpoint. Check proxies and gateways or use a store "
            "that supports conditional writes; pass verify_conditional_writes=False to skip this "
            "check at your own risk."
        )
        raise ConditionalWritesUnsupportedError(self._failure, key=self.key, store=store.url)


#: What a probe write may raise that the probe reads as an answer (any other error propagates).
_ANSWERS = (AlreadyExistsError, PreconditionFailedError, ConditionalWritesUnsupportedError)


class ConditionalWriteProbe(ProbeState):
    """The probe of a sync :class:`~cairnflow.savers._base.CloudStore`; thread-safe."""

    def __init__(self, prefix: str, *, enabled: bool = True) -> None:
        super().__init__(prefix, enabled=enabled)
        self._lock = threading.Lock()

    def ensure(self, store: CloudStore, op: Op) -> None:
        """Run the phases a write of kind ``op`` needs and that have not run yet."""
        if not self._phases(op):
            return
        with self._lock:
            self._check_failed(store)
            for phase in self._phases(op):
                steps = self._phase(store, phase)
                write = next(steps)
                while True:
                    outcome: Exception | None = None
                    try:
                        store._write(*write)
                    except _ANSWERS as exc:
                        outcome = exc
                    try:
                        write = steps.send(outcome)
                    except StopIteration:
                        break


class AsyncConditionalWriteProbe(ProbeState):
    """The probe of an :class:`~cairnflow.savers._abase.AsyncCloudStore`; safe for many tasks."""

    def __init__(self, prefix: str, *, enabled: bool = True) -> None:
        super().__init__(prefix, enabled=enabled)
        self._lock = asyncio.Lock()

    async def ensure(self, store: AsyncCloudStore, op: Op) -> None:
        """Run the phases a write of kind ``op`` needs and that have not run yet."""
        if not self._phases(op):
            return
        async with self._lock:
            self._check_failed(store)
            for phase in self._phases(op):
                steps = self._phase(store, phase)
                write = next(steps)
                while True:
                    outcome: Exception | None = None
                    try:
                        await store._write(*write)
                    except _ANSWERS as exc:
                        outcome = exc
                    try:
                        write = steps.send(outcome)
                    except StopIteration:
                        break
