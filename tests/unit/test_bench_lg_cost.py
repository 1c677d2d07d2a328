"""The LangGraph cost benchmark's arithmetic: DynamoDB request units, list prices, seeding.

These are the parts of ``benchmarks/lg_cost.py`` and ``benchmarks/lg_ddb.py`` whose
numbers end up in docs/benchmarks.md without an emulator to cross-check them.
"""

from __future__ import annotations

import pytest

from benchmarks import lg_cost, lg_ddb


def test_item_size_counts_names_and_values_by_aws_rules() -> None:
    item = {
        "PK": {"S": "thread#abc"},  # 2 + 10
        "payload": {"B": b"\x00" * 1000},  # 7 + 1000
        "idx": {"N": "12345"},  # 3 + (5 digits + 1) // 2 + 1 = 3 + 4
        "ok": {"BOOL": True},  # 2 + 1
        "m": {"M": {"a": {"S": "xy"}}},  # 1 + 3 + (1 + 1 + 2)
        "l": {"L": [{"S": "z"}, {"NULL": True}]},  # 1 + 3 + (1 + 1) + (1 + 1)
    }
    assert lg_ddb.item_size(item) == 12 + 1007 + 7 + 3 + 8 + 8


@pytest.mark.parametrize(
    ("size", "units"),
    [(0, 1), (1, 1), (1024, 1), (1025, 2), (47 * 1024 + 1, 48)],
)
def test_write_units_round_up_to_started_kilobytes(size: int, units: int) -> None:
    assert lg_ddb.write_units(size) == units


def test_read_units_round_to_4kb_and_halve_when_eventually_consistent() -> None:
    assert lg_ddb.read_units(100, consistent=True) == 1.0
    assert lg_ddb.read_units(100, consistent=False) == 0.5
    assert lg_ddb.read_units(8 * 1024, consistent=False) == 1.0
    assert lg_ddb.read_units(8 * 1024 + 1, consistent=True) == 3.0


def test_query_resized_without_projection_keeps_only_what_the_key_condition_uses() -> None:
    params = {
        "TableName": "t",
        "KeyConditionExpression": "PK = :pk AND begins_with(SK, :ns)",
        "ExpressionAttributeValues": {":pk": {"S": "a"}, ":ns": {"S": "#"}, ":f": {"S": "x"}},
        "ExpressionAttributeNames": {"#t": "type"},
        "ProjectionExpression": "id, #t",
        "FilterExpression": "kind = :f",
        "Limit": 1,
    }
    out = lg_ddb._unused_removed(params)
    assert out == {
        "TableName": "t",
        "KeyConditionExpression": "PK = :pk AND begins_with(SK, :ns)",
        "ExpressionAttributeValues": {":pk": {"S": "a"}, ":ns": {"S": "#"}},
        "Limit": 1,
    }


def test_dollars_apply_s3_request_classes_and_dynamodb_units() -> None:
    # 13 PUT + 2 LIST at $0.005/1k, 2 GET at $0.0004/1k, DELETE free.
    s3 = {"PUT": 13, "LIST": 2, "GET": 2, "DELETE": 5}
    assert lg_cost.dollars(s3) == pytest.approx(15 * 0.005 / 1000 + 2 * 0.0004 / 1000)
    assert lg_cost.dollars({}, wru=1e6, rru=2e6) == pytest.approx(0.625 + 0.25)


def test_plan_runs_small_marks_for_real_and_seeds_large_ones() -> None:
    assert lg_cost.plan(10) == (0, 5)
    assert lg_cost.plan(100) == (19, 80)
    assert lg_cost.plan(1000) == (919, 80)


def test_reversioned_translates_string_versions_to_the_savers_scheme() -> None:
    class IntVersions:
        def get_next_version(self, current: int | None, channel: None) -> int:
            return 1 if current is None else current + 1

    checkpoint = {
        "v": 4,
        "channel_versions": {"messages": "00000000000000000000000000000007.0123", "x": "3.9"},
        "versions_seen": {"bot": {"messages": "00000000000000000000000000000005.77"}},
    }
    out = lg_cost.reversioned(checkpoint, IntVersions())
    assert out["channel_versions"] == {"messages": 7, "x": 3}
    assert out["versions_seen"] == {"bot": {"messages": 5}}
    assert checkpoint["channel_versions"]["x"] == "3.9"  # the reference is not modified
