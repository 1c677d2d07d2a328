"""cairnflow.core: the durable executor, the checkpoint protocol and the store seam.

Standard library only: importing this package never imports a cloud SDK
or LangGraph.

>>> from cairnflow.core import workflow, task, interrupt, RetryPolicy
"""

from cairnflow.core.checkpoint import Checkpoint, CheckpointInfo, CheckpointSaver
from cairnflow.core.errors import (
    CairnflowError,
    ConflictError,
    CorruptCheckpointError,
    NondeterminismError,
    ResumeError,
    SerializationError,
    ThreadNotFoundError,
)
from cairnflow.core.executor import (
    Durability,
    Run,
    Task,
    TaskFailedError,
    TaskFuture,
    Workflow,
    interrupt,
    task,
    workflow,
)
from cairnflow.core.log import CheckpointLog
from cairnflow.core.retry import RetryPolicy
from cairnflow.core.serde import JsonSerializer, UnsafePickleSerializer, register_type

__all__ = [
    "CairnflowError",
    "Checkpoint",
    "CheckpointInfo",
    "CheckpointLog",
    "CheckpointSaver",
    "ConflictError",
    "CorruptCheckpointError",
    "Durability",
    "JsonSerializer",
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
    "interrupt",
    "register_type",
    "task",
    "workflow",
]
