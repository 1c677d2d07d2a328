"""How stored values and records are shown: plain JSON, one-line summaries, times, durations.

Nothing here constructs a stored value: tagged JSON (tuples, bytes,
datetimes, registered types, ...) becomes plain JSON (:func:`untag`), so an
operator needs none of the workflow's code.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import time
from typing import Any

from cairnflow.core.errors import InvalidArgumentError
from cairnflow.core.records import RecordedError

__all__ = ["describe_record", "error_text", "iso_time", "parse_duration", "plain", "untag"]


def untag(value: Any) -> Any:
    """Turn a stored (tagged JSON) value into plain JSON for display, constructing nothing.

    Tuples and sets become lists; ``bytes`` ``{"$bytes": base64}``; datetimes,
    UUIDs and decimals strings; timedeltas ``{"$timedelta": seconds}``; dicts
    with non-string keys get their keys as JSON text; a registered type
    ``{"$type": name, "value": ...}``.
    """
    if isinstance(value, list):
        return [untag(v) for v in value]
    if not isinstance(value, dict):
        return value
    tag = value.get("$cf")
    if tag is None:
        return {k: untag(v) for k, v in value.items()}
    payload = value.get("v")
    if tag in ("tuple", "set", "frozenset") and isinstance(payload, list):
        return [untag(v) for v in payload]
    if tag == "bytes":
        return {"$bytes": payload}
    if tag in ("datetime", "date", "time", "uuid", "decimal"):
        return payload
    if tag == "timedelta" and isinstance(payload, list) and len(payload) == 3:
        days, seconds, micros = payload
        return {"$timedelta": days * 86400 + seconds + micros / 1e6}
    if tag == "dict" and isinstance(payload, list):
        out: dict[str, Any] = {}
        for pair in payload:
            if isinstance(pair, list) and len(pair) == 2:
                k = untag(pair[0])
                out[k if isinstance(k, str) else json.dumps(k, sort_keys=True)] = untag(pair[1])
        return out
    if tag == "type":
        return {"$type": value.get("n"), "value": untag(payload)}
    return value


def compact(value: Any, width: int = 60) -> str:
    """``value`` as one line of plain JSON, cut to ``width`` characters."""
    text = json.dumps(untag(value), ensure_ascii=False, sort_keys=True, default=str)
    return text if len(text) <= width else text[: width - 1] + "…"


def error_text(error: Any) -> str:
    """A recorded error (``{"type": ..., "message": ...}``) as ``Type: message``."""
    return RecordedError.of(error).text()


def describe_record(record: Any) -> str:
    """One line saying what a record means (for history listings)."""
    if not isinstance(record, dict):
        return f"unknown record {compact(record)}"
    op = record.get("op")
    pos = record.get("pos")
    if op == "start":
        return f"start {record.get('workflow')} input={compact(record.get('input'))}"
    if op == "task":
        return f"task #{pos} {record.get('name')} -> {compact(record.get('value'))}"
    if op == "task_error":
        return f"task #{pos} {record.get('name')} failed: {error_text(record.get('error'))}"
    if op == "interrupt":
        return f"interrupt #{pos}: {compact(record.get('value'))}"
    if op == "resume":
        return f"answer #{pos}: {compact(record.get('value'))}"
    if op == "suspend":
        return "suspended (deadline)"
    if op == "end":
        if record.get("status") == "completed":
            return f"completed -> {compact(record.get('value'))}"
        return f"failed: {error_text(record.get('error'))}"
    return f"{op} {compact(record)}"


def iso_time(epoch: float | None) -> str | None:
    """Seconds since the epoch as ISO 8601 UTC with milliseconds (``...Z``)."""
    if epoch is None:
        return None
    seconds = math.floor(epoch)
    millis = min(999, round((epoch - seconds) * 1000))
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> float:
    """``"90s"``, ``"15m"``, ``"12h"``, ``"30d"``, ``"2w"`` or sums like ``"1d12h"``, in seconds.

    :class:`InvalidArgumentError` (a ``ValueError``) for anything else.
    """
    cleaned = text.strip().lower()
    pos, total = 0, 0.0
    for match in _DURATION.finditer(cleaned):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if not cleaned or pos != len(cleaned):
        raise InvalidArgumentError(f"not a duration: {text!r} (use e.g. 90s, 15m, 12h, 30d, 2w or 1d12h)")
    return total


def plain(value: Any) -> Any:
    """A LangGraph value (already loaded by its serializer) as plain JSON: messages, Interrupts,
    pydantic models and dataclasses as objects, exceptions as ``Type: message``, anything else its repr."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [plain(v) for v in value]
    if isinstance(value, bytes):
        return {"$bytes_len": len(value)}
    if isinstance(value, BaseException):
        return f"{type(value).__name__}: {value}"
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return plain(dump())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return repr(value)
