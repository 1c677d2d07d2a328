"""open_async_store / open_async_saver: the asyncio openers and their scheme table."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from cairnflow.core.errors import InvalidURLError, StoreAccessError
from cairnflow.core.log import AsyncCheckpointLog
from cairnflow.core.store import CREATE, AsyncObjectStore
from cairnflow.savers import open_async_saver, open_async_store, open_store
from cairnflow.savers.local import AsyncLocalStore
from cairnflow.savers.memory import AsyncMemoryStore


def test_memory_url_shares_objects_with_the_sync_opener() -> None:
    async def main() -> bytes:
        store, prefix = open_async_store("memory://shared-with-sync/app")
        assert isinstance(store, AsyncMemoryStore) and prefix == "app/"
        await store.put("k", b"from async", CREATE)
        return (await store.get("k")).data

    assert asyncio.run(main()) == b"from async"
    sync, _ = open_store("memory://shared-with-sync")
    assert sync.get("k").data == b"from async"


def test_file_url_opens_a_local_store_on_that_directory(tmp_path: Path) -> None:
    async def main() -> list[str]:
        store, prefix = open_async_store(f"file://{tmp_path}/s")
        assert isinstance(store, AsyncLocalStore) and prefix == ""
        async with store:
            await store.put("a/b", b"x", CREATE)
            return [info.key async for info in store.list("a/")]

    assert asyncio.run(main()) == ["a/b"]
    assert (tmp_path / "s" / "a" / "b").read_bytes() == b"x"


@pytest.mark.parametrize(
    ("scheme", "store_class"),
    [("s3", "AsyncS3Store"), ("gs", "AsyncGCSStore"), ("az", "AsyncAzureBlobStore")],
)
def test_every_cloud_scheme_has_an_async_backend(scheme: str, store_class: str) -> None:
    from cairnflow.savers import _ASYNC_SCHEMES, _backend

    module = _backend(scheme, _ASYNC_SCHEMES)
    assert callable(module.async_store_from_url)
    assert issubclass(getattr(module, store_class), AsyncObjectStore)


def test_unknown_scheme_is_refused() -> None:
    with pytest.raises(InvalidURLError, match="unknown store URL scheme"):
        open_async_store("ftp://x/y")


def test_open_async_saver_returns_the_async_log(tmp_path: Path) -> None:
    saver = open_async_saver("memory://async-saver/tenant")
    assert isinstance(saver, AsyncCheckpointLog) and saver.prefix == "tenant/"
    assert isinstance(saver.store, AsyncObjectStore)
    with pytest.raises(StoreAccessError, match="no store directory"):
        open_async_saver(f"file://{tmp_path}/missing", create=False)
    assert not (tmp_path / "missing").exists()
