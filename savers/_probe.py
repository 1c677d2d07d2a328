"""The conditional-write probe: one implementation for every cloud store.

Some gateways and proxies drop conditional headers (an S3-compatible store that
ignores ``If-None-Match``, a SAS gateway that strips it, a proxy that drops
``ifGenerationMatch``); on such a store a stale writer would silently replace a
checkpoint. A :class:`~cairnflow.savers._base.CloudStore` therefore runs this
probe before its first write, and hides the probe object from its listings.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Final

from cairnflow.core.errors import (
    AlreadyExistsError,
    ConditionalWritesUnsupportedError,
    PreconditionFailedError,
)
from cairnflow.core.store import PROBE_SUFFIX
from cairnflow.savers._base import Op

if TYPE_CHECKING:
    from cairnflow.savers._base import CloudStore

__all__ = ["PROBE_BODY", "ConditionalWriteProbe"]

PROBE_BODY: Final = b"cairnflow conditional-write probe; safe to delete\n"


class ConditionalWriteProbe:
    """A once-per-store check that the store really evaluates its write conditions.

    Some gateways and proxies drop conditional headers (an S3-compatible store that
    ignores ``If-None-Match``, a SAS gateway that strips it, a proxy that drops
    ``ifGenerationMatch``); on such a store a stale writer would silently replace a
    checkpoint. So before a store's first write, the create-only phase writes
    ``{prefix}.cairnflow-probe`` create-only, and again if the first was accepted
    (the key was new): that second write must be refused. Before the first update,
    the If-Match phase writes it with a version no object can have: refused too.
    Steady state: one refused request per store object; a fresh prefix costs two.
    Thread-safe; runs each phase once; remembers a failure.
    """

    def __init__(self, prefix: str, *, enabled: bool = True) -> None:
        self.key = f"{prefix}{PROBE_SUFFIX}"
        self._pending: frozenset[Op] = frozenset({Op.CREATE, Op.UPDATE}) if enabled else frozenset()
        self._failure: str | None = None
        self._lock = threading.Lock()

    def ensure(self, store: CloudStore, op: Op) -> None:
        """Run the phases a write of kind ``op`` needs and that have not run yet."""
        phases = (Op.CREATE, Op.UPDATE) if op is Op.UPDATE else (Op.CREATE,)
        if not self._pending.intersection(phases):
            return
        with self._lock:
            if self._failure is not None:
                raise ConditionalWritesUnsupportedError(self._failure, key=self.key, store=store.url)
            for phase in phases:
                if phase in self._pending:
                    self._run(store, phase)
                    self._pending = self._pending - {phase}

    def _run(self, store: CloudStore, phase: Op) -> None:
        etag = store._NEVER_MATCHING_ETAG if phase is Op.UPDATE else None
        for _ in range(2 if phase is Op.CREATE else 1):
            try:
                store._write(self.key, PROBE_BODY, phase, etag)
            except (AlreadyExistsError, PreconditionFailedError):
                return  # refused, as it must be
            except ConditionalWritesUnsupportedError as exc:
                self._fail(store, phase, f"refused it as unsupported ({exc})")
        self._fail(store, phase, "accepted a write that its condition should have refused")

    def _fail(self, store: CloudStore, phase: Op, outcome: str) -> None:
        self._failure = (
            f"{store.where} {outcome} ({store._CONDITIONS[phase]} on {self.key!r}): it does not "
            "honour conditional writes, and on a store that ignores conditional writes a stale "
            "writer could silently replace a checkpoint. Check proxies and gateways or use a store "
            "that supports conditional writes; pass verify_conditional_writes=False to skip this "
            "check at your own risk."
        )
        raise ConditionalWritesUnsupportedError(self._failure, key=self.key, store=store.url)
