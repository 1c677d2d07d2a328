"""Fixtures for the CLI tests: stores (local and emulators) populated by real workflows.

``location`` is parametrized over the local store and the S3 emulator (moto);
its environment is applied to this process, so ``main([...])`` and
``open_saver(url)`` reach the store exactly as the installed command would.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from cairnflow.savers import open_store, parse_url
from tests.cli.flows import Expected, populate
from tests.emulators import StoreLocation
from tests.emulators.s3 import make_s3_client

BACKENDS = ["local", "s3"]


@pytest.fixture(params=BACKENDS)
def location(
    request: pytest.FixtureRequest, use_env: Callable[[StoreLocation], StoreLocation]
) -> StoreLocation:
    loc: StoreLocation = request.getfixturevalue(f"{request.param}_location")
    return use_env(loc)


@pytest.fixture
def populated(location: StoreLocation) -> dict[str, Expected]:
    return populate(location.url)


def raw_objects(location: StoreLocation) -> dict[str, bytes]:
    """Every object of the location's bucket or directory, straight from the backend.

    Not through the store seam: hidden files (local temporaries and locks) and the S3
    probe object count too, so that "a dry run changes nothing" means nothing at all.
    """
    scheme, where, _ = parse_url(location.url)
    out: dict[str, bytes] = {}
    if scheme == "file":
        root = Path(where)
        for dirpath, _, files in os.walk(root):
            for name in files:
                path = Path(dirpath) / name
                out[str(path.relative_to(root))] = path.read_bytes()
        return out
    if scheme == "s3":
        client = make_s3_client(location.env["AWS_ENDPOINT_URL_S3"])
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=where):
            for item in page.get("Contents", []):
                out[item["Key"]] = client.get_object(Bucket=where, Key=item["Key"])["Body"].read()
        return out
    store, prefix = open_store(location.url)
    for info in store.list(prefix):
        out[info.key] = store.get(info.key).data
    return out


@pytest.fixture
def snapshot() -> Callable[[StoreLocation], dict[str, bytes]]:
    return raw_objects
