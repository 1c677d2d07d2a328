"""Raw reads of executor checkpoint objects for the operator tools: checked, never constructed.

Headers are read through :func:`cairnflow.core.format.parse_header` and the
state at a delta is rebuilt with :func:`cairnflow.core.log.state_records`
(the one owner of each rule). Bodies are parsed as plain JSON, so tagged
values stay tagged (see :func:`cairnflow.ops.display.untag`); a body written
with another serializer (pickle) is never loaded. An encrypted body is
decrypted when the saver has a cipher (the same key configuration the
library uses), and otherwise left unread.
"""

from __future__ import annotations

import collections
import concurrent.futures
import functools
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from cairnflow.core import codec, keys
from cairnflow.core.errors import CorruptCheckpointError, NotFoundError, ThreadNotFoundError
from cairnflow.core.format import Header, parse_header
from cairnflow.core.log import CheckpointLog, state_records
from cairnflow.core.retry import call_with_retry

__all__ = [
    "StoredCheckpoint",
    "head",
    "is_checkpoint_key",
    "parallel",
    "read",
    "read_key",
    "retry",
    "scan_heads",
    "state_of",
    "thread_keys",
    "thread_seqs",
]

T = TypeVar("T")
WORKERS = 8


@dataclass(frozen=True)
class StoredCheckpoint:
    """One checkpoint object, checked; ``records`` is its body as raw (tagged) JSON."""

    key: str
    header: Header
    records: list[Any] | None
    """None when the body cannot be shown (see ``unreadable``)."""
    unreadable: str | None = None
    """Why the values are not shown: encrypted without a key, or another serializer."""

    @property
    def seq(self) -> int:
        return self.header.seq

    @property
    def kind(self) -> str:
        return self.header.kind

    @property
    def status(self) -> str:
        return self.header.status

    @property
    def new(self) -> list[Any] | None:
        """The records this checkpoint added (None when not readable)."""
        if self.records is None:
            return None
        n = self.header.new
        return self.records[len(self.records) - n :] if n else []


def retry(saver: CheckpointLog, fn: Callable[[], T]) -> T:
    """``fn()`` under the saver's retry policy for store requests."""
    return call_with_retry(fn, saver.store_retry)


def decode(saver: CheckpointLog, thread_id: str, seq: int, key: str, data: bytes) -> StoredCheckpoint:
    """Check one object (envelope, header, position) and parse its body as raw JSON."""
    env = codec.decode(data, key=key)
    header = parse_header(env, key=key, thread_id=thread_id, seq=seq)
    body = env.body
    if env.flags & codec.FLAG_ENCRYPTED:
        if saver.cipher is None or header.key_id is None:
            why = "encrypted: set CAIRNFLOW_ENCRYPTION_KEYS to the store's keys to see the values"
            return StoredCheckpoint(key, header, None, why)
        body = saver.cipher.decrypt(body, env.header_bytes, header.key_id)
    if header.serde != "json":
        why = f"written with serializer {header.serde!r}, which this tool never loads"
        return StoredCheckpoint(key, header, None, why)
    try:
        records = json.loads(body)
    except ValueError:
        raise CorruptCheckpointError("checkpoint body is not JSON", key=key) from None
    if not isinstance(records, list):
        raise CorruptCheckpointError("checkpoint body is not a list of records", key=key)
    return StoredCheckpoint(key, header, records)


def read(saver: CheckpointLog, thread_id: str, seq: int) -> StoredCheckpoint:
    """Checkpoint ``seq`` of the thread; ThreadNotFoundError if it does not exist."""
    key = keys.checkpoint_key(saver.prefix, thread_id, seq)
    try:
        obj = retry(saver, lambda: saver.store.get(key))
    except NotFoundError:
        raise ThreadNotFoundError(f"thread {thread_id!r} has no checkpoint {seq}") from None
    return decode(saver, thread_id, seq, key, obj.data)


def read_key(saver: CheckpointLog, thread_id: str, key: str) -> StoredCheckpoint:
    """The checkpoint at a listed ``key`` of the thread."""
    try:
        found, seq = keys.parse_checkpoint_key(saver.prefix, key)
    except ValueError:
        raise CorruptCheckpointError("foreign object under the thread's prefix", key=key) from None
    if found != thread_id:
        raise CorruptCheckpointError("object under the wrong thread prefix", key=key)
    obj = retry(saver, lambda: saver.store.get(key))
    return decode(saver, thread_id, seq, key, obj.data)


def thread_keys(saver: CheckpointLog, thread_id: str, limit: int | None = None) -> list[str]:
    """The thread's keys, newest first (one paged LIST)."""
    prefix = keys.thread_prefix(saver.prefix, thread_id)
    return [o.key for o in retry(saver, lambda: list(saver.store.list(prefix, limit=limit)))]


def thread_seqs(saver: CheckpointLog, thread_id: str) -> list[tuple[int, str]]:
    """(seq, key) of the thread's checkpoints, newest first; foreign keys left out."""
    out = []
    for key in thread_keys(saver, thread_id):
        try:
            found, seq = keys.parse_checkpoint_key(saver.prefix, key)
        except ValueError:
            continue
        if found == thread_id:
            out.append((seq, key))
    return out


def is_checkpoint_key(saver: CheckpointLog, key: str) -> bool:
    try:
        keys.parse_checkpoint_key(saver.prefix, key)
    except ValueError:
        return False
    return True


def head(saver: CheckpointLog, thread_id: str) -> StoredCheckpoint | None:
    """The thread's newest checkpoint (one LIST, one GET), or None."""
    found = thread_keys(saver, thread_id, limit=1)
    return read_key(saver, thread_id, found[0]) if found else None


def state_of(saver: CheckpointLog, obj: StoredCheckpoint, thread_id: str) -> list[Any] | None:
    """Every record of the state at ``obj`` (its base's and its own for a delta); None if unreadable."""

    def read_base(base_seq: int) -> tuple[Header, Sequence[Any] | None]:
        base = read(saver, thread_id, base_seq)
        return base.header, base.records

    state = state_records(obj.header, obj.records, key=obj.key, read_base=read_base)
    return None if state is None else list(state[0])


def _list_first(saver: CheckpointLog, prefix: str, start_after: str | None) -> list[Any]:
    return list(saver.store.list(prefix, start_after=start_after, limit=1))


def scan_heads(saver: CheckpointLog) -> Iterator[tuple[str, str]]:
    """(thread id, newest key) of every thread, in key order: one LIST (limit 1) per thread."""
    base = keys.threads_prefix(saver.prefix)
    cursor: str | None = None
    while True:
        listing = retry(saver, functools.partial(_list_first, saver, base, cursor))
        if not listing:
            return
        key = listing[0].key
        segment, sep, _ = key[len(base) :].partition("/")
        if not sep:  # a foreign object directly under threads/: skip just it
            cursor = key
            continue
        cursor = f"{base}{segment}0"  # '0' follows '/': skip the rest of this thread at once
        try:
            thread_id = keys.decode_thread_id(segment)
        except ValueError:
            continue  # not a thread of ours (verify reports it)
        yield thread_id, key


def parallel(fn: Callable[[T], Any], items: Iterator[T], workers: int = WORKERS) -> Iterator[Any]:
    """``fn(item)`` for each item, in order, with at most ``2 * workers`` in flight."""
    with concurrent.futures.ThreadPoolExecutor(
        max_workers=workers, thread_name_prefix="cairnflow-ops"
    ) as pool:
        window: collections.deque[concurrent.futures.Future[Any]] = collections.deque()
        try:
            for item in items:
                window.append(pool.submit(fn, item))
                if len(window) >= 2 * workers:
                    yield window.popleft().result()
            while window:
                yield window.popleft().result()
        finally:
            for future in window:
                future.cancel()
