"""The header schema: one parser, every field checked, every rule between fields."""

from __future__ import annotations

from typing import Any

import pytest

from cairnflow.core import codec
from cairnflow.core.errors import CorruptCheckpointError
from cairnflow.core.format import (
    KINDS,
    STATUSES,
    Header,
    base_problem,
    body_problem,
    build_header,
    examine_header,
    parse_header,
)


def _raw(**fields: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "thread": "t",
        "seq": 3,
        "kind": "snapshot",
        "status": "running",
        "base": 3,
        "new": 1,
        "total": 4,
        "time": 12.5,
        "writer": "ab" * 16,
        "serde": "json",
    }
    raw.update(fields)
    return {k: v for k, v in raw.items() if v is not None}


def test_kinds_and_statuses_are_the_literal_types() -> None:
    assert KINDS == ("snapshot", "delta", "fork", "tombstone")
    assert STATUSES == ("running", "interrupted", "suspended", "waiting", "completed", "failed", "deleted")


def test_a_sound_header_parses_into_typed_fields_and_round_trips() -> None:
    raw = _raw(workflow="flow", key="k1")
    header = parse_header(raw, key="the/key", thread_id="t", seq=3)
    assert header == Header(
        thread="t",
        seq=3,
        kind="snapshot",
        status="running",
        base=3,
        new=1,
        total=4,
        time=12.5,
        writer="ab" * 16,
        serde="json",
        workflow="flow",
        key_id="k1",
    )
    assert header.to_dict() == raw


def test_parse_header_reads_an_envelope_too() -> None:
    env = codec.decode(codec.encode(_raw(), b"[]"))
    assert parse_header(env, key="k").seq == 3


def test_optional_fields_are_left_out_when_unset() -> None:
    header = parse_header(_raw(writer=None, serde=None, time=None), key="k")
    assert header.time == 0.0 and header.writer is None and header.serde is None
    assert set(header.to_dict()) == {"thread", "seq", "kind", "status", "base", "new", "total", "time"}


def test_unknown_extra_fields_are_ignored() -> None:
    assert parse_header(_raw(future="x"), key="k") == parse_header(_raw(), key="k")


def test_build_header_stamps_time_and_a_fresh_writer_token() -> None:
    fields: dict[str, Any] = dict(
        thread="t", seq=0, kind="snapshot", status="running", base=0, new=0, total=0, serde="json"
    )
    first, second = build_header(**fields), build_header(**fields)
    assert first.time > 0 and len(first.writer or "") == 32
    assert first.writer != second.writer
    assert "parent" not in first.to_dict() and "key" not in first.to_dict()
    assert parse_header(first.to_dict(), key="k", thread_id="t", seq=0) == first


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"kind": "patch"}, "unknown checkpoint kind or status: kind 'patch'"),
        ({"status": "paused"}, "unknown checkpoint kind or status: status 'paused'"),
        ({"thread": 7}, "thread 7 is not a string"),
        ({"seq": -1}, "seq -1 is not a non-negative integer"),
        ({"new": True}, "new True is not a non-negative integer"),
        ({"total": "4"}, "total '4' is not a non-negative integer"),
        ({"base": 1.5}, "base 1.5 is not a checkpoint id"),
        ({"parent": "0"}, "parent '0' is not a checkpoint id"),
        ({"time": "now"}, "time is not a number"),
        ({"time": False}, "time is not a number"),
        ({"serde": 5}, "serde 5 is not a string"),
        ({"workflow": ["w"]}, "workflow ['w'] is not a string"),
        ({"key": 1}, "key 1 is not a string"),
        ({"writer": 1}, "writer 1 is not a string"),
    ],
)
def test_every_field_is_checked(fields: dict[str, Any], message: str) -> None:
    header, problems = examine_header(_raw(**fields))
    assert header is None
    assert [(p.code, p.message) for p in problems] == [("bad_header", message)]
    with pytest.raises(CorruptCheckpointError, match="the/key") as info:
        parse_header(_raw(**fields), key="the/key")
    assert message in str(info.value) and info.value.key == "the/key"


def test_field_problems_are_reported_together() -> None:
    _, problems = examine_header(_raw(kind="x", status="y", new=-1))
    assert len(problems) == 1 and problems[0].message.count(";") == 2


@pytest.mark.parametrize(("thread_id", "seq"), [("other", 3), ("t", 4)])
def test_a_header_at_the_wrong_position_is_a_key_mismatch(thread_id: str, seq: int) -> None:
    header, problems = examine_header(_raw(), thread_id=thread_id, seq=seq)
    assert header is None and [p.code for p in problems] == ["key_mismatch"]
    with pytest.raises(CorruptCheckpointError, match="does not belong"):
        parse_header(_raw(), key="k", thread_id=thread_id, seq=seq)


def test_a_bool_seq_does_not_match_position_one() -> None:
    _, problems = examine_header(_raw(seq=True), thread_id="t", seq=1)
    assert [p.code for p in problems] == ["key_mismatch"]


@pytest.mark.parametrize(
    ("fields", "code", "text"),
    [
        ({"kind": "tombstone", "status": "running", "new": 0, "total": 0}, "bad_header", "a tombstone with"),
        ({"kind": "snapshot", "status": "deleted"}, "bad_header", "a snapshot with status 'deleted'"),
        ({"kind": "delta", "base": 3}, "bad_base", "no valid base"),
        ({"kind": "delta", "base": None}, "bad_base", "no valid base"),
        ({"kind": "snapshot", "base": 1}, "bad_header", "must be its own base"),
        ({"new": 5, "total": 4}, "count_mismatch", "adds 5 records but holds only 4"),
        ({"kind": "tombstone", "status": "deleted", "new": 0}, "count_mismatch", "a tombstone holding 4"),
        ({"kind": "fork", "parent": None, "new": 0}, "bad_parent", "fork names parent None"),
        ({"kind": "fork", "parent": 3, "new": 0}, "bad_parent", "fork names parent 3"),
    ],
)
def test_rules_between_fields(fields: dict[str, Any], code: str, text: str) -> None:
    header, problems = examine_header(_raw(**fields))
    assert header is not None  # every field is usable: the header is still returned
    assert [p.code for p in problems] == [code]
    assert text in problems[0].message
    with pytest.raises(CorruptCheckpointError, match=text):
        parse_header(_raw(**fields), key="k")


def test_sound_kinds_have_no_problems() -> None:
    for fields in (
        {"kind": "delta", "base": 1},
        {"kind": "fork", "parent": 1, "new": 0},
        {"kind": "tombstone", "status": "deleted", "new": 0, "total": 0},
    ):
        assert examine_header(_raw(**fields))[1] == [], fields


def test_body_counts() -> None:
    snapshot = parse_header(_raw(), key="k")
    assert body_problem(snapshot, 4) is None
    problem = body_problem(snapshot, 3)
    assert problem is not None and problem.code == "count_mismatch" and "record count" in problem.message
    delta = parse_header(_raw(kind="delta", base=1, new=2), key="k")
    assert body_problem(delta, 2) is None  # a delta's body is its tail: at least what it adds
    assert body_problem(delta, 1) is not None


def test_base_rules() -> None:
    delta = parse_header(_raw(kind="delta", base=1, new=1, total=4), key="k")
    base = parse_header(_raw(seq=1, base=1, new=1, total=3), key="k")
    assert base_problem(delta, base, 1, 3) is None
    assert base_problem(delta, base, None, None) is None  # bodies unread: counts unchecked
    wrong = base_problem(delta, base, 2, 3)
    assert wrong is not None and wrong.code == "count_mismatch"
    not_snapshot = base_problem(delta, parse_header(_raw(seq=1, kind="delta", base=0), key="k"), 1, 3)
    assert not_snapshot is not None and not_snapshot.code == "bad_base"
    assert "not a snapshot" in not_snapshot.message
    fork = parse_header(_raw(seq=1, kind="fork", base=1, parent=0, new=0, total=3), key="k")
    assert base_problem(delta, fork, 1, 3) is None
