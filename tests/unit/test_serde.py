"""The safe JSON serializer: what it stores, what it refuses, and registration rules."""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import uuid
from typing import Any

import pytest

from cairnflow.core.errors import InvalidArgumentError, SerializationError
from cairnflow.core.serde import JsonSerializer


@dataclasses.dataclass(frozen=True)
class Point:
    x: int
    y: int


class Declined(Exception):
    pass


@pytest.fixture
def serde() -> JsonSerializer:
    return JsonSerializer()


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        3,
        2.5,
        "s",
        [1, [2]],
        {"a": {"b": 1}},
        (1, (2, 3)),
        b"\x00\xff",
        {3, 1, 2},
        frozenset({"a"}),
        {1: "int key", (1, 2): "tuple key"},
        {"$cf": "a user key that looks like a tag"},
        dt.datetime(2026, 12, 7, 1, 2, 3, tzinfo=dt.timezone.utc),
        dt.date(2026, 12, 7),
        dt.time(1, 2, 3),
        dt.timedelta(days=1, seconds=2, microseconds=3),
        uuid.UUID(int=7),
        decimal.Decimal("1.10"),
    ],
)
def test_values_round_trip_exactly(serde: JsonSerializer, value: Any) -> None:
    back = serde.loads(serde.dumps(value))
    assert back == value and type(back) is type(value)


def test_sets_are_written_in_a_stable_order(serde: JsonSerializer) -> None:
    assert serde.dumps({"b", "a", "c"}) == serde.dumps({"c", "a", "b"})


def test_an_unregistered_type_is_refused_when_written_naming_it(serde: JsonSerializer) -> None:
    with pytest.raises(SerializationError, match=r"test_serde\.Point.*register"):
        serde.dumps(Point(1, 2))


def test_a_registered_dataclass_round_trips_and_an_unknown_name_is_never_built(serde: JsonSerializer) -> None:
    serde.register(Point, name="geo.Point")
    data = serde.dumps(Point(1, 2))
    assert serde.loads(data) == Point(1, 2)
    with pytest.raises(SerializationError, match=r"'geo\.Point', which is not registered"):
        JsonSerializer().loads(data)  # another serializer, without the registration


def test_exception_classes_register_without_encode_and_keep_their_args(serde: JsonSerializer) -> None:
    serde.register(Declined, name="pay.Declined")
    back = serde.loads(serde.dumps(Declined("card", 42)))
    assert type(back) is Declined and back.args == ("card", 42)


def test_main_classes_need_an_explicit_name(serde: JsonSerializer) -> None:
    local = dataclasses.make_dataclass("Local", [("v", int)])
    local.__module__ = "__main__"
    with pytest.raises(InvalidArgumentError, match=r"__main__.*name='Local'"):
        serde.register(local)
    assert serde.register(local, name="app.Local") is local


def test_registration_rules(serde: JsonSerializer) -> None:
    with pytest.raises(TypeError, match="both"):
        serde.register(Point, encode=lambda p: p)
    with pytest.raises(TypeError, match="neither a dataclass"):
        serde.register(int)
    serde.register(Point, name="dup")
    with pytest.raises(ValueError, match="already registered"):
        serde.register(dataclasses.make_dataclass("Other", [("v", int)]), name="dup")


@pytest.mark.parametrize(
    "data", [b"\xff not json", b'{"$cf": "nope", "v": 1}', b'{"$cf": "bytes", "v": "!!"}']
)
def test_undecodable_bodies_raise_serialization_error(serde: JsonSerializer, data: bytes) -> None:
    with pytest.raises(SerializationError):
        serde.loads(data)
