"""Every error cairnflow raises, in one tree.

This module imports nothing outside the standard library, so that any code
(including the cloud adapters) can catch cairnflow's errors without importing
a cloud SDK. Backends translate their SDK's exceptions into these in exactly
one place each, and always ``raise ... from`` the original, so the SDK error
stays available as ``__cause__``.

::

    CairnflowError
    ├── StoreError                      the object store refused or failed a request
    │   ├── AlreadyExistsError          create-only write found the key taken
    │   ├── PreconditionFailedError     update-if-match found another version (or none)
    │   ├── NotFoundError               no object under that key
    │   ├── TransientStoreError         try again later (5xx, throttling, timeouts)
    │   ├── StoreAccessError            credentials, permissions, missing bucket: do not retry
    │   └── ConditionalWritesUnsupportedError   the store ignores conditional headers
    ├── ConflictError                   another writer advanced the thread first
    ├── NondeterminismError             replay diverged from the recorded history
    │   └── FlavourMismatchError        a `def` workflow's thread given to its `async def` twin (or back)
    ├── CorruptCheckpointError          an object failed its checksum or format checks
    │   ├── UnsupportedFormatError      written by a newer (or unknown) format version
    │   └── DecryptionError             wrong key, unknown key id, or altered ciphertext
    ├── SerializationError              a value cannot be stored (or loaded) safely
    ├── TaskFailedError                 replay of a recorded task failure that cannot be rebuilt
    ├── ThreadNotFoundError             no checkpoint for that thread
    ├── ResumeError                     resume() called in a state that cannot take it
    ├── PruneRefusedError               a prune would lose state a kept checkpoint needs (ValueError)
    ├── MissingDependencyError          a backend's SDK is not installed (also an ImportError)
    └── UsageError                      the API was called wrongly; nothing was written
        ├── InvalidArgumentError        a bad argument value (also a ValueError)
        │   ├── InvalidThreadIdError    empty, too long, or not a string
        │   └── InvalidURLError         unknown scheme, no bucket, query string...
        └── MisuseError                 a call in the wrong place or of the wrong kind (also a TypeError)
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "AlreadyExistsError",
    "CairnflowError",
    "CallbackCompletedError",
    "CallbackFailedError",
    "CallbackTimeoutError",
    "ConditionalWritesUnsupportedError",
    "ConflictError",
    "CorruptCheckpointError",
    "DecryptionError",
    "FlavourMismatchError",
    "InvalidArgumentError",
    "InvalidCallbackTokenError",
    "InvalidThreadIdError",
    "InvalidURLError",
    "MissingDependencyError",
    "MisuseError",
    "NondeterminismError",
    "NotFoundError",
    "PreconditionFailedError",
    "PruneRefusedError",
    "ResumeError",
    "SerializationError",
    "StoreAccessError",
    "StoreError",
    "TaskFailedError",
    "ThreadNotFoundError",
    "TransientStoreError",
    "UnsupportedFormatError",
    "UsageError",
]


class CairnflowError(Exception):
    """Base class of every error raised by cairnflow."""


# --------------------------------------------------------------------------- store


class StoreError(CairnflowError):
    """An object-store request failed.

    ``key`` names the object (or prefix) involved, ``store`` the store's URL;
    neither ever holds object bodies or credentials.
    """

    def __init__(self, message: str, *, key: str | None = None, store: str | None = None) -> None:
        parts = [message]
        if key is not None:
            parts.append(f"key={key!r}")
        if store is not None:
            parts.append(f"store={store}")
        super().__init__(" ".join(parts) if len(parts) == 1 else f"{message} ({', '.join(parts[1:])})")
        self.key = key
        self.store = store


class AlreadyExistsError(StoreError):
    """A create-only write found an object already under the key."""


class PreconditionFailedError(StoreError):
    """An update-if-match write (or delete) found a different version of the object."""


class NotFoundError(StoreError):
    """No object exists under the key."""


class TransientStoreError(StoreError):
    """The request may succeed if tried again later.

    ``ambiguous`` is true when the request may have been applied even though
    no success was seen (a timeout or dropped connection after the body was
    sent). Callers must then verify, never assume, the outcome of a write.
    """

    def __init__(
        self,
        message: str,
        *,
        key: str | None = None,
        store: str | None = None,
        ambiguous: bool = True,
    ) -> None:
        super().__init__(message, key=key, store=store)
        self.ambiguous = ambiguous


class StoreAccessError(StoreError):
    """Credentials, permissions or the bucket itself are wrong; retrying will not help."""


class ConditionalWritesUnsupportedError(StoreError):
    """The store accepted a write that its condition should have refused.

    Running on such a store would silently lose cairnflow's guarantees, so it
    is refused.
    """


# --------------------------------------------------------------------------- protocol


class ConflictError(CairnflowError):
    """Another writer advanced the thread since this writer loaded it.

    Nothing was written by the losing writer. Load the thread again to see
    the winner's state.
    """

    def __init__(self, message: str, *, thread_id: str | None = None) -> None:
        super().__init__(message)
        self.thread_id = thread_id


class NondeterminismError(CairnflowError):
    """On replay, a workflow made a call that differs from the recorded one at that position."""


class FlavourMismatchError(NondeterminismError):
    """A thread started by a plain (``def``) workflow was given to its ``async def`` version,
    or the other way round: finish it with the flavour that started it, or use a new thread."""


class CorruptCheckpointError(CairnflowError):
    """A stored object is truncated, fails its checksum, or is not a cairnflow checkpoint."""

    def __init__(self, message: str, *, key: str | None = None) -> None:
        super().__init__(f"{message} (key={key!r})" if key is not None else message)
        self.key = key


class UnsupportedFormatError(CorruptCheckpointError):
    """An object was written in a format version this release cannot read."""


class DecryptionError(CorruptCheckpointError):
    """An encrypted object cannot be decrypted: wrong or unknown key, or it was altered or moved."""


class SerializationError(CairnflowError):
    """A value cannot be serialised safely, or a stored value cannot be loaded safely."""


class ThreadNotFoundError(CairnflowError):
    """No checkpoint exists for the thread."""


class ResumeError(CairnflowError):
    """``resume()`` was called on a thread whose state cannot take it."""


class CallbackTimeoutError(CairnflowError):
    """``Callback.wait()``: the callback's timeout passed before anyone completed it."""


class CallbackFailedError(CairnflowError):
    """``Callback.wait()``: ``fail_callback`` sent an error whose type cannot be rebuilt safely."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(f"callback failed: {error_type}: {message}")
        self.error_type = error_type


class CallbackCompletedError(ResumeError):
    """A callback already ended differently (another value, an error, or its timeout)."""


class TaskFailedError(CairnflowError):
    """Replay of a recorded task failure whose exception type cannot be rebuilt safely."""

    def __init__(self, task: str, error_type: str, message: str) -> None:
        super().__init__(f"task {task!r} failed: {error_type}: {message}")
        self.task = task
        self.error_type = error_type


class PruneRefusedError(CairnflowError, ValueError):
    """A prune would lose state that a kept checkpoint still needs.

    Nothing was deleted. ``refused`` lists the (thread id, namespace) pairs whose
    latest checkpoint still depends on older checkpoints' objects.
    """

    def __init__(self, message: str, refused: Sequence[tuple[str, str]] = ()) -> None:
        super().__init__(message)
        self.refused = list(refused)


class MissingDependencyError(CairnflowError, ImportError):
    """A backend's SDK is not installed; the message names the pip extra."""


# --------------------------------------------------------------------------- usage


class UsageError(CairnflowError):
    """The API was called wrongly. Nothing was written; the message says what to do instead."""


class InvalidArgumentError(UsageError, ValueError):
    """An argument has a value cairnflow cannot use; the message names the argument."""


class InvalidThreadIdError(InvalidArgumentError):
    """The thread id is empty, too long, or not a string."""


class InvalidCallbackTokenError(InvalidArgumentError):
    """A callback token is malformed, or names no callback of its thread (a wrong secret)."""


class InvalidURLError(InvalidArgumentError):
    """The store URL cannot be parsed (unknown scheme, no bucket, query string...)."""


class MisuseError(UsageError, TypeError):
    """A cairnflow function was called in the wrong place or with the wrong kind of object."""
