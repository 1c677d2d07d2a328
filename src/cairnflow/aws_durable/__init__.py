"""AWS Lambda durable functions on your own store: the Durable Execution SDK's service side.

Code written for ``aws-durable-execution-sdk-python`` (``@durable_execution``,
``context.step``, ``wait``, callbacks, child contexts...) runs unchanged with
its state kept as cairnflow checkpoint objects::

    from cairnflow.aws_durable import CairnflowDurableClient, LocalRunner

    client = CairnflowDurableClient(CheckpointLog(LocalStore("state")))
    result = LocalRunner(handler, client).run({"order": 42})

Needs the ``aws-durable`` extra (``pip install 'cairnflow[aws-durable]'``,
Python 3.11+). See docs/aws_durable.md.
"""

from __future__ import annotations

try:
    import aws_durable_execution_sdk_python  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    from cairnflow.core.errors import MissingDependencyError

    raise MissingDependencyError(
        "cairnflow.aws_durable needs the AWS Durable Execution SDK: pip install 'cairnflow[aws-durable]' "
        "(Python 3.11 or newer)"
    ) from exc

from .boto import Boto3Adapter, DurableServiceError
from .client import CairnflowDurableClient
from .cloud import DurableDriver
from .lambda_api import LambdaApiError, LocalLambda
from .processes import SubprocessRunner
from .runner import ExecutionResult, LocalLambdaContext, LocalRunner
from .state import ExecutionView

__all__ = [
    "Boto3Adapter",
    "CairnflowDurableClient",
    "DurableDriver",
    "DurableServiceError",
    "ExecutionResult",
    "ExecutionView",
    "LambdaApiError",
    "LocalLambda",
    "LocalLambdaContext",
    "LocalRunner",
    "SubprocessRunner",
]
