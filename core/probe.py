"""A once-per-store check that the store really refuses a second create-only write.

Some gateways and proxies drop conditional headers (an S3-compatible store that
ignores ``If-None-Match``, an Azure SAS gateway that strips it, a GCS proxy that
drops ``ifGenerationMatch``). On such a store a stale writer would silently
replace a checkpoint. Before a store's first write, the probe creates
``{prefix}.cairnflow-probe`` create-only (if absent), then creates it again:
that second write must be refused. Steady state: one request per store object
(the refused create); a fresh prefix costs two. Backends list the probe key as
nothing: they hide it from ``list()``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Final

from cairnflow.core.errors import AlreadyExistsError, ConditionalWritesUnsupportedError

__all__ = ["PROBE_BODY", "PROBE_SUFFIX", "CreateOnlyProbe"]

#: The probe object's key is ``prefix + PROBE_SUFFIX``.
PROBE_SUFFIX: Final = ".cairnflow-probe"
PROBE_BODY: Final = b"cairnflow conditional-write probe; safe to delete\n"


class CreateOnlyProbe:
    """Runs the probe once, lazily and thread-safely; remembers a failure."""

    def __init__(self, prefix: str, *, enabled: bool = True) -> None:
        self.key = f"{prefix}{PROBE_SUFFIX}"
        self._done = threading.Event()
        if not enabled:
            self._done.set()
        self._failure: str | None = None
        self._lock = threading.Lock()

    def ensure(self, create: Callable[[str, bytes], object], *, store: str) -> None:
        """Probe with ``create(key, body)`` (a create-only put that raises AlreadyExistsError)."""
        if self._done.is_set():
            return
        with self._lock:
            if self._failure is not None:
                raise ConditionalWritesUnsupportedError(self._failure, key=self.key, store=store)
            if self._done.is_set():  # another thread probed while we waited
                return
            for _ in range(2):
                try:
                    create(self.key, PROBE_BODY)
                except AlreadyExistsError:
                    self._done.set()  # refused, as it must be
                    return
            self._failure = (
                "the store accepted a create-only write over an existing object: it ignores "
                "conditional writes, so cairnflow cannot guarantee a linear history here "
                "(check proxies and gateways; pass verify_conditional_writes=False only if you "
                "know better)"
            )
            raise ConditionalWritesUnsupportedError(self._failure, key=self.key, store=store)

    def hides(self, key: str) -> bool:
        return key == self.key
