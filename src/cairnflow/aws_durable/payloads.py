"""Large values as objects of their own: no 256 KB per-operation limit.

The managed service refuses an operation whose payload exceeds 256 KB. On
cairnflow a record is rewritten by the log's deltas and snapshots, so a large
value inside it would be copied again and again; instead every string of a
record longer than ``inline_limit`` bytes (a step result, a callback's
payload, the execution's input or result, an error's data) is written once as
its own create-only object, and the record carries a small reference::

    {"$cairnflow_payload": "<key>", "sha256": "<hex of the value>", "bytes": n}

Layout, beside the executions' log (``keys.durable_payloads_prefix``)::

    {prefix}durable/payloads/{encoded arn}/{uuid}

Each payload object is a checkpoint envelope (``core/codec``: magic, header,
body, SHA-256) whose header names its own key; with a cipher the body is
encrypted with the header as associated data, so an object moved to another
key fails to decrypt, and a saver that requires encryption refuses a clear
one. The reference's ``sha256`` lives inside the (encrypted) record, so a
payload object swapped for another is detected on read. Payload objects are
immutable, so a reader caches them by key.

The payload is written before the record that references it: a record never
points at a missing object. A record that is then refused (a stale token)
leaves an unreferenced payload behind; it is deleted with the execution.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from cairnflow.core import codec, keys
from cairnflow.core.checkpoint import Checkpoint, Status
from cairnflow.core.errors import AlreadyExistsError, CorruptCheckpointError, DecryptionError
from cairnflow.core.log import CheckpointLog
from cairnflow.core.retry import call_with_retry
from cairnflow.core.store import CREATE

__all__ = ["INLINE_LIMIT", "REF", "PayloadLog"]

#: Strings longer than this (UTF-8 bytes) are stored as objects of their own.
INLINE_LIMIT = 64 * 1024

#: The key that marks a reference to a payload object.
REF = "$cairnflow_payload"

_KIND = "durable-payload"
_CACHE_BYTES = 64 * 1024 * 1024


class PayloadLog(CheckpointLog):
    """The executions' checkpoint log, with large strings of each record kept out of line.

    :meth:`append` writes large values as payload objects first and the
    record with references; the checkpoints it and :meth:`get`/:meth:`latest`
    return hold the records as stored (with references), which is what the
    log's deltas must carry. :meth:`resolve` gives records with the values.
    """

    def __init__(self, *args: Any, inline_limit: int = INLINE_LIMIT, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.inline_limit = inline_limit
        self._cache: OrderedDict[str, str] = OrderedDict()
        self._cached_bytes = 0
        self._cache_lock = threading.Lock()

    # ------------------------------------------------------------------ writing

    def append(
        self,
        thread_id: str,
        head: Checkpoint | None,
        records: Sequence[Any],
        *,
        status: Status,
        workflow: str | None = None,
    ) -> Checkpoint:
        stored = [self._externalize(thread_id, record) for record in records]
        return super().append(thread_id, head, stored, status=status, workflow=workflow)

    def _externalize(self, thread_id: str, value: Any) -> Any:
        if isinstance(value, str) and len(value) > self.inline_limit // 4:
            data = value.encode()
            if len(data) > self.inline_limit:
                return self._store_payload(thread_id, value, data)
            return value
        if isinstance(value, dict):
            return {k: self._externalize(thread_id, v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._externalize(thread_id, v) for v in value]
        return value

    def _store_payload(self, thread_id: str, value: str, data: bytes) -> dict[str, Any]:
        key = f"{keys.durable_payloads_prefix(self.prefix, thread_id)}{uuid.uuid4().hex}"
        header: dict[str, Any] = {"kind": _KIND, "key": key}
        if self.cipher is None:
            blob = codec.encode(header, data)
        else:
            header["key_id"] = self.cipher.key_id
            head = codec.encode_header(header)
            blob = codec.encode(head, self.cipher.encrypt(data, head), codec.FLAG_ENCRYPTED)

        # A fresh random key: a retried create that already landed is AlreadyExists only for
        # our own bytes, which are then in place. That is the one error taken as success.
        def create() -> None:
            with contextlib.suppress(AlreadyExistsError):
                self.store.put(key, blob, CREATE)

        call_with_retry(create, self.store_retry)
        self._cache_payload(key, value)
        return {REF: key, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}

    # ------------------------------------------------------------------ reading

    def resolve(self, value: Any) -> Any:
        """``value`` (a record, a list of records...) with every payload reference replaced by its value."""
        if isinstance(value, dict):
            if REF in value:
                return self._payload(value)
            return {k: self.resolve(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.resolve(v) for v in value]
        return value

    def _payload(self, ref: dict[str, Any]) -> str:
        key = str(ref[REF])
        with self._cache_lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                return cached
        obj = call_with_retry(lambda: self.store.get(key), self.store_retry)
        env = codec.decode(obj.data, key=key)
        if env.header.get("kind") != _KIND or env.header.get("key") != key:
            raise CorruptCheckpointError("not the payload object this record references", key=key)
        data = env.body
        if env.flags & codec.FLAG_ENCRYPTED:
            key_id = env.header.get("key_id")
            if self.cipher is None:
                raise DecryptionError("payload object is encrypted and this saver has no cipher", key=key)
            if not isinstance(key_id, str):
                raise DecryptionError("encrypted payload object names no key id", key=key)
            data = self.cipher.decrypt(data, env.header_bytes, key_id)
        elif self.cipher is not None and self.require_encryption:
            raise DecryptionError(
                "payload object is not encrypted but this saver requires encryption", key=key
            )
        if hashlib.sha256(data).hexdigest() != ref.get("sha256"):
            raise CorruptCheckpointError("payload object does not hold the value its record names", key=key)
        value = data.decode()
        self._cache_payload(key, value)
        return value

    def _cache_payload(self, key: str, value: str) -> None:
        size = len(value)
        if size > _CACHE_BYTES // 4:
            return
        with self._cache_lock:
            if key not in self._cache:
                self._cache[key] = value
                self._cached_bytes += size
            while self._cached_bytes > _CACHE_BYTES:
                _, dropped = self._cache.popitem(last=False)
                self._cached_bytes -= len(dropped)
