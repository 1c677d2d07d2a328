"""AsyncObjectStore's own behaviour: the default skip-scan of list_prefixes, and counting it."""

from __future__ import annotations

import asyncio

from cairnflow.core.counting import AsyncCountingStore
from cairnflow.core.store import CREATE
from cairnflow.savers.memory import AsyncMemoryStore
from tests.support.forwarding import AsyncForwardingStore

KEYS = ["f/a/1", "f/a/2", "f/a-b/1", "f/b/x/1", "f/c", "g/z/1", "f/%41/1"]


def test_default_list_prefixes_skip_scan_matches_the_native_listing() -> None:
    async def main() -> tuple[list[str], list[str], int]:
        native = AsyncMemoryStore()
        for key in KEYS:
            await native.put(key, b"", CREATE)
        # AsyncForwardingStore does not forward list_prefixes: it runs the ABC's skip-scan.
        counting = AsyncCountingStore(AsyncForwardingStore(native))
        scanned = [f async for f in counting.list_prefixes("f/")]
        return [f async for f in native.list_prefixes("f/")], scanned, counting.counts["LIST"]

    native, scanned, lists = asyncio.run(main())
    assert native == ["f/%41/", "f/a-b/", "f/a/", "f/b/"]
    assert scanned == native
    assert lists == len(native) + 2  # one LIST per folder, one for the object f/c, one to find the end


def test_counting_a_native_delimiter_listing_is_one_list() -> None:
    async def main() -> tuple[list[str], int]:
        counting = AsyncCountingStore(AsyncMemoryStore())
        for key in KEYS:
            await counting.put(key, b"", CREATE)
        counting.reset()
        return [f async for f in counting.list_prefixes("f/")], counting.counts["LIST"]

    folders, lists = asyncio.run(main())
    assert len(folders) == 4 and lists == 1
