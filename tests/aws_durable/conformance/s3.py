"""A saver on a fresh bucket of a moto S3 server started for the run (for the CLI; tests use the fixtures)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from cairnflow.core.log import CheckpointLog
from tests.emulators.s3 import ACCESS_KEY, REGION, SECRET_KEY, new_bucket, start_moto


@contextlib.contextmanager
def moto_saver() -> Iterator[CheckpointLog]:
    """A CheckpointLog on a new bucket of a moto server that lives as long as the block."""
    import boto3.session

    from cairnflow.savers.s3 import S3Store

    server = start_moto()
    try:
        session = boto3.session.Session(
            aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY, region_name=REGION
        )
        store = S3Store(new_bucket(server.url), session=session, endpoint_url=server.url)
        try:
            yield CheckpointLog(store, prefix="conformance")
        finally:
            store.close()
    finally:
        server.stop()
