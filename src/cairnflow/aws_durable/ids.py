"""Callback ids: opaque to callers, but they name their execution and operation.

A callback id is what a handler hands to the outside world (an approver, a
webhook); the service must find the execution from the id alone, without an
index, so the id carries the ARN and the operation id, plus a random part so
that an id cannot be guessed from the execution's name.
"""

from __future__ import annotations

import base64
import binascii
import uuid

from cairnflow.core.errors import InvalidArgumentError

__all__ = ["decode_callback_id", "encode_callback_id"]


def encode_callback_id(arn: str, op_id: str) -> str:
    """A callback id that names its execution and operation (opaque to callers).

    Standard base64 with padding: the Lambda API's ``CallbackId`` shape
    (``[A-Za-z0-9+/]+={0,2}``, at most 1024 characters).
    """
    raw = f"{arn}\n{op_id}\n{uuid.uuid4().hex}".encode()
    return base64.b64encode(raw).decode()


def decode_callback_id(callback_id: str) -> tuple[str, str]:
    """``(arn, operation id)`` of a callback id; ``InvalidArgumentError`` if it is not one.

    Ids issued before the standard alphabet (URL-safe, unpadded) are read too.
    """
    try:
        padded = callback_id.rstrip("=") + "=" * (-len(callback_id.rstrip("=")) % 4)
        decode = base64.urlsafe_b64decode if ("-" in padded or "_" in padded) else base64.b64decode
        arn, op_id, _ = decode(padded.encode()).decode().split("\n")
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidArgumentError(f"{callback_id!r} is not a callback id issued by this service") from None
    return arn, op_id
