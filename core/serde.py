"""Safe serialisation of recorded values.

The default, :class:`JsonSerializer`, writes JSON. Loading it never runs code
and never constructs a class that was not registered explicitly: a bucket
writer cannot make a worker execute anything by crafting an object.

Values it stores as they are: ``None``, ``bool``, ``int``, ``float``, ``str``,
``list``, and ``dict`` with ``str`` keys. Values it stores with a tag and
restores exactly: ``tuple``, ``bytes``, ``set``, ``frozenset``, dicts with
other keys, ``datetime``/``date``/``time``/``timedelta``, ``UUID``,
``Decimal``, and any type registered with :meth:`JsonSerializer.register`
(dataclasses and pydantic models out of the box, anything else with an
``encode``/``decode`` pair). Anything else raises :class:`SerializationError`
when it is written, not when it is read back.

:class:`UnsafePickleSerializer` exists for users who explicitly accept that
anyone who can write to their bucket can run code in their workers.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import decimal
import json
import pickle
import uuid
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from cairnflow.core.errors import InvalidArgumentError, SerializationError

__all__ = [
    "JsonSerializer",
    "Serializer",
    "UnsafePickleSerializer",
    "default_serializer",
    "register_type",
]

_TAG = "$cf"  # a dict holding this key is a tagged value; user dicts holding it are escaped


@runtime_checkable
class Serializer(Protocol):
    """Turns recorded values into bytes and back. ``name`` is stored in every object."""

    name: str

    def dumps(self, value: Any) -> bytes: ...

    def loads(self, data: bytes) -> Any: ...


@dataclasses.dataclass(frozen=True)
class _Registered:
    cls: type
    encode: Callable[[Any], Any]
    decode: Callable[[Any], Any]


class JsonSerializer:
    """JSON with explicit, allowlisted extra types. Safe to load from an untrusted bucket."""

    name = "json"

    def __init__(self) -> None:
        self._by_name: dict[str, _Registered] = {}
        self._by_type: dict[type, str] = {}

    # ----------------------------------------------------------- registration

    def register(
        self,
        cls: type,
        *,
        name: str | None = None,
        encode: Callable[[Any], Any] | None = None,
        decode: Callable[[Any], Any] | None = None,
    ) -> type:
        """Allow ``cls`` to be stored. Returns ``cls``, so it works as a decorator.

        Dataclasses, pydantic models and exception classes (stored as their
        ``args``: a task raising one is replayed as the same exception) need
        no ``encode``/``decode``; other types must give both (``encode``
        returns a serialisable value, ``decode`` rebuilds the object from it).
        ``name`` (default ``module.QualName``) is what is written to storage:
        keep it stable when you move the class. A class defined in the script
        being run (module ``__main__``) needs an explicit ``name``: other entry
        points (a worker, the resuming process) know it under another module.
        """
        if name is None and cls.__module__ == "__main__":
            raise InvalidArgumentError(
                f"{cls.__qualname__} is defined in __main__ (the script being run), a module name other "
                f"processes cannot resolve: give it a stable name, register_type({cls.__qualname__}, "
                f"name={cls.__qualname__!r}), or move it to an importable module"
            )
        if encode is None or decode is None:
            if encode is not None or decode is not None:
                raise TypeError("give both encode and decode, or neither")
            if isinstance(cls, type) and issubclass(cls, BaseException):

                def encode(obj: Any) -> Any:
                    return list(obj.args)

                def decode(data: Any) -> Any:
                    return cls(*data)

            elif dataclasses.is_dataclass(cls):
                field_names = [f.name for f in dataclasses.fields(cls) if f.init]

                def encode(obj: Any) -> Any:
                    return {n: getattr(obj, n) for n in field_names}

                def decode(data: Any) -> Any:
                    return cls(**data)

            elif hasattr(cls, "model_dump") and hasattr(cls, "model_validate"):

                def encode(obj: Any) -> Any:
                    return obj.model_dump(mode="python")

                def decode(data: Any) -> Any:
                    return cls.model_validate(data)

            else:
                raise TypeError(
                    f"{cls!r} is neither a dataclass nor a pydantic model: give encode and decode"
                )
        type_name = name or f"{cls.__module__}.{cls.__qualname__}"
        existing = self._by_name.get(type_name)
        if existing is not None and existing.cls is not cls:
            raise ValueError(f"type name {type_name!r} is already registered for {existing.cls!r}")
        self._by_name[type_name] = _Registered(cls, encode, decode)
        self._by_type[cls] = type_name
        return cls

    # ----------------------------------------------------------- encoding

    def dumps(self, value: Any) -> bytes:
        try:
            return json.dumps(self._encode(value), separators=(",", ":"), ensure_ascii=False).encode()
        except SerializationError:
            raise
        except (TypeError, ValueError, RecursionError) as exc:
            raise SerializationError(f"value cannot be serialised: {exc}") from exc

    def _encode(self, value: Any) -> Any:
        if value is None or isinstance(value, (bool, str)):
            return value
        if isinstance(value, (int, float)) and type(value) in (int, float):
            return value
        kind = type(value)
        registered = self._by_type.get(kind)
        if registered is not None:
            return {
                _TAG: "type",
                "n": registered,
                "v": self._encode(self._by_name[registered].encode(value)),
            }
        if kind is list:
            return [self._encode(v) for v in value]
        if kind is dict:
            if all(type(k) is str for k in value) and _TAG not in value:
                return {k: self._encode(v) for k, v in value.items()}
            return {
                _TAG: "dict",
                "v": [[self._encode(k), self._encode(v)] for k, v in value.items()],
            }
        if kind is tuple:
            return {_TAG: "tuple", "v": [self._encode(v) for v in value]}
        if kind in (bytes, bytearray):
            return {_TAG: "bytes", "v": base64.b64encode(bytes(value)).decode("ascii")}
        if kind in (set, frozenset):
            items = [self._encode(v) for v in value]
            items.sort(key=lambda item: json.dumps(item, sort_keys=True))  # stable bytes for hashing
            return {_TAG: kind.__name__, "v": items}
        if kind is dt.datetime:
            return {_TAG: "datetime", "v": value.isoformat()}
        if kind is dt.date:
            return {_TAG: "date", "v": value.isoformat()}
        if kind is dt.time:
            return {_TAG: "time", "v": value.isoformat()}
        if kind is dt.timedelta:
            return {_TAG: "timedelta", "v": [value.days, value.seconds, value.microseconds]}
        if kind is uuid.UUID:
            return {_TAG: "uuid", "v": str(value)}
        if kind is decimal.Decimal:
            return {_TAG: "decimal", "v": str(value)}
        raise SerializationError(
            f"cannot serialise a value of type {kind.__module__}.{kind.__qualname__}: return "
            "JSON-compatible data, or register the type (cairnflow.core.register_type)"
        )

    # ----------------------------------------------------------- decoding

    def loads(self, data: bytes) -> Any:
        try:
            return self._decode(json.loads(data))
        except SerializationError:
            raise
        except (ValueError, TypeError, KeyError, RecursionError) as exc:
            raise SerializationError(f"stored value cannot be loaded: {exc}") from exc

    def _decode(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self._decode(v) for v in value]
        if not isinstance(value, dict):
            return value
        tag = value.get(_TAG)
        if tag is None:
            return {k: self._decode(v) for k, v in value.items()}
        payload: Any = value.get("v")
        if tag == "type":
            type_name = value.get("n")
            registered = self._by_name.get(type_name) if isinstance(type_name, str) else None
            if registered is None:
                raise SerializationError(
                    f"stored value has type {type_name!r}, which is not registered with this "
                    "serializer; refusing to construct it"
                )
            return registered.decode(self._decode(payload))
        if tag == "dict":
            return {self._decode(k): self._decode(v) for k, v in payload}
        if tag == "tuple":
            return tuple(self._decode(v) for v in payload)
        if tag == "bytes":
            return base64.b64decode(payload, validate=True)
        if tag == "set":
            return {self._decode(v) for v in payload}
        if tag == "frozenset":
            return frozenset(self._decode(v) for v in payload)
        if tag == "datetime":
            return dt.datetime.fromisoformat(payload)
        if tag == "date":
            return dt.date.fromisoformat(payload)
        if tag == "time":
            return dt.time.fromisoformat(payload)
        if tag == "timedelta":
            days, seconds, micros = payload
            return dt.timedelta(days=days, seconds=seconds, microseconds=micros)
        if tag == "uuid":
            return uuid.UUID(payload)
        if tag == "decimal":
            return decimal.Decimal(payload)
        raise SerializationError(f"unknown tag {tag!r} in stored value")


class UnsafePickleSerializer:
    """Pickle. ANYONE WHO CAN WRITE TO THE BUCKET CAN RUN CODE IN YOUR WORKERS.

    Use it only when every writer of the bucket is trusted and values cannot
    be made JSON-compatible. A saver configured with the default serializer
    refuses to load objects written with this one.
    """

    name = "pickle"

    def dumps(self, value: Any) -> bytes:
        try:
            return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            raise SerializationError(f"value cannot be pickled: {exc}") from exc

    def loads(self, data: bytes) -> Any:
        return pickle.loads(data)  # the user opted in explicitly


#: The serializer savers use unless given another. Register your types on it.
default_serializer = JsonSerializer()


def register_type(
    cls: type,
    *,
    name: str | None = None,
    encode: Callable[[Any], Any] | None = None,
    decode: Callable[[Any], Any] | None = None,
) -> type:
    """Register ``cls`` with :data:`default_serializer` (usable as a class decorator)."""
    return default_serializer.register(cls, name=name, encode=encode, decode=decode)
