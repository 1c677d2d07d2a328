"""The service's identifiers: callback ids, checkpoint tokens, execution ARNs.

Callback ids are opaque to callers, but they name their execution and operation.

A callback id is what a handler hands to the outside world (an approver, a
webhook); the service must find the execution from the id alone, without an
index, so the id carries the ARN and the operation id, plus a random part so
that an id cannot be guessed from the execution's name.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import uuid

from cairnflow.core.errors import InvalidArgumentError

__all__ = ["decode_callback_id", "decode_token", "encode_callback_id", "encode_token", "new_execution_arn"]


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


def new_execution_arn(function: str, name: str | None = None) -> str:
    """A fresh execution ARN for ``function`` (named ``name``, else by its id)."""
    execution_id = uuid.uuid4().hex
    base = f"arn:cairnflow:lambda:local:000000000000:function:{function}"
    return f"{base}/durable-execution/{name or execution_id}/{execution_id}"


def _tag(arn: str) -> str:
    return hashlib.sha256(arn.encode()).hexdigest()[:12]


def encode_token(arn: str, seq: int) -> str:
    """The checkpoint token naming record ``seq`` of execution ``arn``.

    ``"{seq}.{arn tag}"`` in standard base64: the API's ``CheckpointToken`` shape.
    """
    return base64.b64encode(f"{seq}.{_tag(arn)}".encode()).decode()


def decode_token(arn: str, token: str) -> int | None:
    """The record a checkpoint token names; None if it is not a token of ``arn``."""
    try:
        text = base64.b64decode(str(token).encode(), validate=True).decode()
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None
    seq_text, dot, tag = text.partition(".")
    if not dot or tag != _tag(arn) or not seq_text.isdigit():
        return None
    return int(seq_text)
