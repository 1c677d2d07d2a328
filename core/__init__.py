"""cairnflow.core: the durable executor, the checkpoint protocol and the store seam.

Standard library only: importing this package never imports a cloud SDK
or LangGraph.

>>> from cairnflow.core import workflow, task, interrupt, RetryPolicy

Importing the package itself is nearly free: each public name (and each
submodule reached as an attribute) is imported on first use (PEP 562), so a
program that only needs, say, the errors or the key layout never pays for the
executor, the serializers or their standard-library dependencies.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not `from typing import ...`: typing alone costs ~2 ms to import
if TYPE_CHECKING:
    from cairnflow.core.callbacks import (
        Callback,
        acomplete_callback,
        afail_callback,
        callback,
        complete_callback,
        fail_callback,
    )
    from cairnflow.core.checkpoint import AsyncCheckpointSaver, Checkpoint, CheckpointInfo, CheckpointSaver
    from cairnflow.core.committer import Durability
    from cairnflow.core.errors import (
        CairnflowError,
        CallbackCompletedError,
        CallbackFailedError,
        CallbackTimeoutError,
        ConflictError,
        CorruptCheckpointError,
        FlavourMismatchError,
        InvalidArgumentError,
        InvalidCallbackTokenError,
        MisuseError,
        NondeterminismError,
        ResumeError,
        SerializationError,
        TaskFailedError,
        ThreadNotFoundError,
    )
    from cairnflow.core.executor import Workflow, workflow
    from cairnflow.core.log import AsyncCheckpointLog, CheckpointLog
    from cairnflow.core.replay import interrupt, now, random, uuid4
    from cairnflow.core.retry import RetryPolicy
    from cairnflow.core.runs import Run
    from cairnflow.core.serde import JsonSerializer, UnsafePickleSerializer, register_type
    from cairnflow.core.tasks import Task, TaskFuture, task
    from cairnflow.core.timers import sleep, sleep_until

__all__ = [
    "AsyncCheckpointLog",
    "AsyncCheckpointSaver",
    "CairnflowError",
    "Callback",
    "CallbackCompletedError",
    "CallbackFailedError",
    "CallbackTimeoutError",
    "Checkpoint",
    "CheckpointInfo",
    "CheckpointLog",
    "CheckpointSaver",
    "ConflictError",
    "CorruptCheckpointError",
    "Durability",
    "FlavourMismatchError",
    "InvalidArgumentError",
    "InvalidCallbackTokenError",
    "JsonSerializer",
    "MisuseError",
    "NondeterminismError",
    "ResumeError",
    "RetryPolicy",
    "Run",
    "SerializationError",
    "Task",
    "TaskFailedError",
    "TaskFuture",
    "ThreadNotFoundError",
    "UnsafePickleSerializer",
    "Workflow",
    "acomplete_callback",
    "afail_callback",
    "callback",
    "complete_callback",
    "fail_callback",
    "interrupt",
    "now",
    "random",
    "register_type",
    "sleep",
    "sleep_until",
    "task",
    "uuid4",
    "workflow",
]

#: Where each public name lives (kept equal to ``__all__`` by tests/core/test_imports.py).
_HOMES: dict[str, str] = {
    **dict.fromkeys(
        ("AsyncCheckpointSaver", "Checkpoint", "CheckpointInfo", "CheckpointSaver"), "checkpoint"
    ),
    **dict.fromkeys(
        (
            "CairnflowError",
            "CallbackCompletedError",
            "CallbackFailedError",
            "CallbackTimeoutError",
            "ConflictError",
            "CorruptCheckpointError",
            "FlavourMismatchError",
            "InvalidArgumentError",
            "InvalidCallbackTokenError",
            "MisuseError",
            "NondeterminismError",
            "ResumeError",
            "SerializationError",
            "TaskFailedError",
            "ThreadNotFoundError",
        ),
        "errors",
    ),
    **dict.fromkeys(("Workflow", "workflow"), "executor"),
    "Run": "runs",
    **dict.fromkeys(("Task", "TaskFuture", "task"), "tasks"),
    "Durability": "committer",
    **dict.fromkeys(("interrupt", "now", "random", "uuid4"), "replay"),
    **dict.fromkeys(("sleep", "sleep_until"), "timers"),
    **dict.fromkeys(
        (
            "Callback",
            "acomplete_callback",
            "afail_callback",
            "callback",
            "complete_callback",
            "fail_callback",
        ),
        "callbacks",
    ),
    **dict.fromkeys(("AsyncCheckpointLog", "CheckpointLog"), "log"),
    "RetryPolicy": "retry",
    **dict.fromkeys(("JsonSerializer", "UnsafePickleSerializer", "register_type"), "serde"),
}


def __getattr__(name: str) -> object:
    """Import a public name (or a submodule) on first use."""
    import sys  # built in: free

    home = _HOMES.get(name)
    module = f"{__name__}.{home or name}"
    try:
        # __import__ rather than importlib.import_module: `-X importtime` reports only the former.
        __import__(module)
    except ModuleNotFoundError as exc:
        if home is not None or exc.name != module:
            raise  # a module that exists failed to import: say so
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value: object = getattr(sys.modules[module], name) if home is not None else sys.modules[module]
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
