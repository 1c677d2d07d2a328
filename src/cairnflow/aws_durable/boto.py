"""The service behind boto3's Lambda method names, for ``@durable_execution(boto3_client=...)``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from aws_durable_execution_sdk_python.exceptions import CheckpointError, GetExecutionStateError
from aws_durable_execution_sdk_python.lambda_service import OperationUpdate

from .client import CairnflowDurableClient

__all__ = ["Boto3Adapter", "DurableServiceError"]


class DurableServiceError(Exception):
    """A service error in the shape boto3 gives it (``.response``), for the ``boto3_client=`` path."""

    def __init__(self, code: str, message: str, status: int) -> None:
        super().__init__(f"{code}: {message}")
        self.response = {
            "Error": {"Code": code, "Message": message},
            "ResponseMetadata": {"HTTPStatusCode": status},
        }


class Boto3Adapter:
    """The service as the SDK's ``boto3_client=`` sees it: boto3's method names, dicts, and errors.

    ``@durable_execution(boto3_client=client.boto3_client())`` makes a handler
    take plain JSON invocation events (as Lambda delivers them) and checkpoint
    through this adapter. Errors carry ``.response`` like botocore's, so the
    SDK classifies a stale token as retryable exactly as on AWS.
    """

    def __init__(self, service: CairnflowDurableClient) -> None:
        self.service = service

    @staticmethod
    def _as_boto(exc: CheckpointError | GetExecutionStateError) -> DurableServiceError:
        error = exc.error or {"Code": "ServiceException", "Message": str(exc)}
        status = (exc.response_metadata["HTTPStatusCode"] if exc.response_metadata else None) or 500
        return DurableServiceError(str(error.get("Code")), str(error.get("Message")), int(status))

    def checkpoint_durable_execution(
        self,
        *,
        DurableExecutionArn: str,
        CheckpointToken: str,
        Updates: Sequence[Mapping[str, Any]],
        ClientToken: str | None = None,
    ) -> dict[str, Any]:
        try:
            out = self.service.checkpoint(
                durable_execution_arn=DurableExecutionArn,
                checkpoint_token=CheckpointToken,
                updates=[OperationUpdate.from_dict(dict(u)) for u in Updates],
                client_token=ClientToken,
            )
        except CheckpointError as exc:
            raise self._as_boto(exc) from None
        response: dict[str, Any] = {
            "NewExecutionState": {"Operations": [op.to_dict() for op in out.new_execution_state.operations]}
        }
        if out.checkpoint_token:
            response["CheckpointToken"] = out.checkpoint_token
        return response

    def get_durable_execution_state(
        self,
        *,
        DurableExecutionArn: str,
        CheckpointToken: str,
        Marker: str | None = None,
        MaxItems: int = 1000,
    ) -> dict[str, Any]:
        try:
            out = self.service.get_execution_state(
                durable_execution_arn=DurableExecutionArn,
                checkpoint_token=CheckpointToken,
                next_marker=Marker or "",
                max_items=MaxItems,
            )
        except GetExecutionStateError as exc:
            raise self._as_boto(exc) from None
        response: dict[str, Any] = {"Operations": [op.to_dict() for op in out.operations]}
        if out.next_marker:
            response["NextMarker"] = out.next_marker
        return response
