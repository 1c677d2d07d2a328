"""AWS's DynamoDBSaver (``langgraph-checkpoint-aws``) on moto, and its DynamoDB capacity units.

The saver's requests go through the counting proxy like every other contender's
(moto serves DynamoDB and S3 on one port; a DynamoDB call is a ``POST /`` on the
wire). What the proxy cannot see is what DynamoDB *bills*: request units depend
on the size of the items an operation touches, not on the bytes sent.
:class:`CapacityMeter` therefore wraps the saver's DynamoDB client and computes,
for every call, the request units AWS's published rules charge
(docs.aws.amazon.com/amazondynamodb/latest/developerguide/read-write-operations.html):

* a write (``PutItem``) costs one write request unit (WRU) per started 1 KB of
  the larger of the new and the replaced item; a ``BatchWriteItem`` the same per
  item; a write whose condition fails still costs the existing item's units;
* a ``GetItem`` costs one read request unit (RRU) per started 4 KB of the item,
  half that when eventually consistent (the default, which the saver uses);
* a ``Query`` costs the same on the *sum* of the sizes of every item it
  evaluated, rounded up to 4 KB once.

Item sizes are full items, never what a ``ProjectionExpression`` returns (AWS
bills the item, not the projection): the meter re-reads the same keys or the
same query straight from the emulator (not through the proxy, so not counted)
without the projection, and sizes the items by AWS's rules (attribute names
count; strings and binaries by length; numbers about one byte per two digits).
"""

from __future__ import annotations

import math
import re
import threading
from collections import Counter
from typing import Any

from benchmarks.common import ACCESS_KEY, BUCKET, REGION, SECRET_KEY

TABLE = "cf-bench-lg"
PACKAGE = "langgraph-checkpoint-aws"

WRITE_UNIT = 1024
READ_UNIT = 4096


def create_table(upstream: str) -> None:
    """Create the saver's table (PK/SK strings, on-demand) directly on moto: not counted."""
    client = _client(upstream)
    try:
        names = client.list_tables().get("TableNames", [])
        if TABLE not in names:
            client.create_table(
                TableName=TABLE,
                KeySchema=[
                    {"AttributeName": "PK", "KeyType": "HASH"},
                    {"AttributeName": "SK", "KeyType": "RANGE"},
                ],
                AttributeDefinitions=[
                    {"AttributeName": "PK", "AttributeType": "S"},
                    {"AttributeName": "SK", "AttributeType": "S"},
                ],
                BillingMode="PAY_PER_REQUEST",
            )
    finally:
        client.close()


def _client(endpoint: str) -> Any:
    import boto3

    return boto3.client(
        "dynamodb",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
    )


# --------------------------------------------------------------------------- item sizes


def _number_size(text: str) -> int:
    digits = re.sub(r"[^0-9]", "", text).strip("0") or "0"
    return (len(digits) + 1) // 2 + 1


def value_size(value: dict[str, Any]) -> int:
    """Bytes an attribute value counts for in AWS's item-size rules."""
    (kind, v), *_ = value.items()
    if kind == "S":
        return len(v.encode())
    if kind == "B":
        return len(v)
    if kind == "N":
        return _number_size(v)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(s.encode()) for s in v)
    if kind == "BS":
        return sum(len(b) for b in v)
    if kind == "NS":
        return sum(_number_size(n) for n in v)
    if kind == "L":
        return 3 + sum(1 + value_size(x) for x in v)
    if kind == "M":
        return 3 + sum(1 + len(k.encode()) + value_size(x) for k, x in v.items())
    raise ValueError(f"unknown DynamoDB attribute type {kind!r}")


def item_size(item: dict[str, Any]) -> int:
    return sum(len(name.encode()) + value_size(v) for name, v in item.items())


def write_units(size: int) -> int:
    return max(1, math.ceil(size / WRITE_UNIT))


def read_units(size: int, *, consistent: bool) -> float:
    units = max(1, math.ceil(size / READ_UNIT))
    return float(units) if consistent else units / 2


def _unused_removed(params: dict[str, Any]) -> dict[str, Any]:
    """The same query without projection or filter (AWS bills every item evaluated, whole)."""
    out = {
        k: v
        for k, v in params.items()
        if k not in ("ProjectionExpression", "FilterExpression", "Select", "ReturnConsumedCapacity")
    }
    expr = " ".join(str(params.get(k, "")) for k in ("KeyConditionExpression",))
    for key in ("ExpressionAttributeNames", "ExpressionAttributeValues"):
        if key in out:
            kept = {name: v for name, v in out[key].items() if name in expr}
            if kept:
                out[key] = kept
            else:
                del out[key]
    return out


class CapacityMeter:
    """Counts a DynamoDBSaver's calls by API and the request units they cost (see module doc)."""

    WRAPPED = ("put_item", "get_item", "query", "batch_write_item", "delete_item", "update_item")

    def __init__(self, upstream: str) -> None:
        self._upstream = _client(upstream)
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.calls: Counter[str] = Counter()
            self.wru = 0.0
            self.rru = 0.0

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {"calls": dict(self.calls), "wru": self.wru, "rru": self.rru}

    def close(self) -> None:
        self._upstream.close()

    def _add(self, op: str, wru: float = 0.0, rru: float = 0.0) -> None:
        with self._lock:
            self.calls[op] += 1
            self.wru += wru
            self.rru += rru

    def _existing(self, key: dict[str, Any]) -> int:
        got = self._upstream.get_item(TableName=TABLE, Key=key, ConsistentRead=True)
        return item_size(got["Item"]) if "Item" in got else 0

    def wrap(self, client: Any) -> None:
        """Replace the client's calls the saver makes with counting ones (instance attributes)."""
        for name in self.WRAPPED:
            setattr(client, name, self._wrapper(name, getattr(client, name)))

    def _wrapper(self, name: str, call: Any) -> Any:
        meter = self

        def counted(**params: Any) -> Any:
            before = meter._before(name, params)
            try:
                response = call(**params)
            except Exception as exc:
                code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
                if code == "ConditionalCheckFailedException":
                    meter._add(_op(name), wru=write_units(before))
                else:
                    meter._add(_op(name))
                raise
            meter._after(name, params, before)
            return response

        return counted

    def _before(self, name: str, params: dict[str, Any]) -> int:
        """Size of the item a write replaces (0 when new)."""
        if name == "put_item":
            item = params["Item"]
            return self._existing({"PK": item["PK"], "SK": item["SK"]})
        if name in ("delete_item", "update_item"):
            return self._existing(params["Key"])
        return 0

    def _after(self, name: str, params: dict[str, Any], before: int) -> None:
        consistent = bool(params.get("ConsistentRead", False))
        if name == "put_item":
            self._add("PutItem", wru=write_units(max(before, item_size(params["Item"]))))
        elif name in ("delete_item", "update_item"):
            after = self._existing(params["Key"])
            self._add(_op(name), wru=write_units(max(before, after)))
        elif name == "get_item":
            got = self._upstream.get_item(TableName=params["TableName"], Key=params["Key"])
            size = item_size(got["Item"]) if "Item" in got else 0
            self._add("GetItem", rru=read_units(size, consistent=consistent))
        elif name == "query":
            full = self._upstream.query(**_unused_removed(params))
            size = sum(item_size(i) for i in full.get("Items", []))
            self._add("Query", rru=read_units(size, consistent=consistent))
        elif name == "batch_write_item":
            units = 0
            for requests in params["RequestItems"].values():
                for r in requests:
                    if "PutRequest" in r:
                        units += write_units(item_size(r["PutRequest"]["Item"]))
                    else:
                        units += 1
            self._add("BatchWriteItem", wru=units)


def _op(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def build_saver(proxy_url: str, prefix: str, meter: CapacityMeter) -> Any:
    """A DynamoDBSaver on the shared table, S3 offload to the shared bucket under ``prefix``.

    As documented: default settings (no compression, no TTL); the S3 offload is what
    lets a checkpoint above 350 KB (DynamoDB's items stop at 400 KB) be stored at all.
    Each contender instance has its own thread ids, so sharing one table is harmless.
    """
    from langgraph_checkpoint_aws.checkpoint.dynamodb import DynamoDBSaver

    saver = DynamoDBSaver(
        table_name=TABLE,
        region_name=REGION,
        endpoint_url=proxy_url,
        s3_offload_config={"bucket_name": BUCKET, "endpoint_url": proxy_url, "key_prefix": prefix},
    )
    meter.wrap(saver.client)
    return saver
