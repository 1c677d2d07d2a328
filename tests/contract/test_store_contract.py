"""The store seam's contract, run unchanged against every backend.

A backend is correct for cairnflow when it passes this file. Each test uses
a fresh, empty bucket (or directory, or dict) from the ``store`` fixture.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from cairnflow.core.errors import AlreadyExistsError, NotFoundError, PreconditionFailedError
from cairnflow.core.store import CREATE, OVERWRITE, ObjectStore, Update


def test_create_then_get_returns_body_and_version(store: ObjectStore) -> None:
    etag = store.put("a/one", b"hello", CREATE)
    got = store.get("a/one")
    assert got.data == b"hello"
    assert got.etag == etag


def test_create_only_refuses_existing_key_and_keeps_original(store: ObjectStore) -> None:
    store.put("k", b"first", CREATE)
    with pytest.raises(AlreadyExistsError) as info:
        store.put("k", b"second", CREATE)
    assert info.value.key == "k"
    assert store.get("k").data == b"first"


def test_update_with_current_version_replaces(store: ObjectStore) -> None:
    v1 = store.put("k", b"one", CREATE)
    v2 = store.put("k", b"two", Update(v1))
    assert v2 != v1
    got = store.get("k")
    assert (got.data, got.etag) == (b"two", v2)


def test_update_with_stale_version_fails_and_keeps_current(store: ObjectStore) -> None:
    v1 = store.put("k", b"one", CREATE)
    store.put("k", b"two", Update(v1))
    with pytest.raises(PreconditionFailedError):
        store.put("k", b"three", Update(v1))
    assert store.get("k").data == b"two"


def test_update_of_missing_key_fails(store: ObjectStore) -> None:
    v1 = store.put("k", b"one", CREATE)
    store.delete("k")
    with pytest.raises(PreconditionFailedError):
        store.put("k", b"two", Update(v1))
    with pytest.raises(NotFoundError):
        store.get("k")


def test_overwrite_is_unconditional(store: ObjectStore) -> None:
    store.put("k", b"one", OVERWRITE)
    store.put("k", b"two", OVERWRITE)
    assert store.get("k").data == b"two"


def test_get_missing_raises_not_found(store: ObjectStore) -> None:
    with pytest.raises(NotFoundError) as info:
        store.get("missing/key")
    assert info.value.key == "missing/key"


@pytest.mark.parametrize(
    "body", [b"", bytes(range(256)) * 3, b"x" * (1 << 20)], ids=["empty", "binary", "1MiB"]
)
def test_bodies_round_trip_exactly(store: ObjectStore, body: bytes) -> None:
    store.put("blob", body, CREATE)
    assert store.get("blob").data == body


#: Every character the key layouts write besides letters and digits: escapes ("%3D",
#: "%2F"), LangGraph's "=" for the root namespace, the index's "~" and ".", "-" and "_".
LAYOUT_KEYS = ["lay/%2F%3D%25/x", "lay/=/c/000001", "lay/a=b", "lay/~/x", "lay/a.b_c-d"]


def test_keys_with_every_layout_character_round_trip(store: ObjectStore) -> None:
    # a client that requotes the path it signed ("%3D" sent as "=") is refused by the
    # service (seen with Azure's aio client), or stores another name than it was given
    for i, key in enumerate(LAYOUT_KEYS):
        store.put(key, str(i).encode(), CREATE)
    assert [store.get(key).data for key in LAYOUT_KEYS] == [str(i).encode() for i in range(len(LAYOUT_KEYS))]
    assert [info.key for info in store.list("lay/")] == sorted(LAYOUT_KEYS)
    with pytest.raises(AlreadyExistsError):
        store.put("lay/=/c/000001", b"again", CREATE)


def test_list_is_in_byte_order_and_respects_prefix(store: ObjectStore) -> None:
    # '-' (0x2d) < '/' (0x2f) < '0' (0x30) < '%' is 0x25: byte order, not path order.
    keys = ["p/a-b", "p/a/b", "p/a0", "p/%41", "p/z", "q/other", "o"]
    for key in keys:
        store.put(key, key.encode(), CREATE)
    listed = [info.key for info in store.list("p/")]
    assert listed == sorted(k for k in keys if k.startswith("p/"))
    assert listed == ["p/%41", "p/a-b", "p/a/b", "p/a0", "p/z"]


def test_list_reports_sizes(store: ObjectStore) -> None:
    store.put("s/one", b"1", CREATE)
    store.put("s/three", b"333", CREATE)
    assert {i.key: i.size for i in store.list("s/")} == {"s/one": 1, "s/three": 3}


def test_list_prefix_can_end_mid_segment(store: ObjectStore) -> None:
    for key in ["t/abc/1", "t/abd/1", "t/ab", "t/b"]:
        store.put(key, b"", CREATE)
    assert [i.key for i in store.list("t/ab")] == ["t/ab", "t/abc/1", "t/abd/1"]


def test_list_start_after_and_limit(store: ObjectStore) -> None:
    keys = [f"l/{n:03d}" for n in range(25)]
    for key in keys:
        store.put(key, b"", CREATE)
    assert [i.key for i in store.list("l/", limit=3)] == keys[:3]
    assert [i.key for i in store.list("l/", start_after="l/010")] == keys[11:]
    assert [i.key for i in store.list("l/", start_after="l/010", limit=2)] == keys[11:13]
    # start_after need not be an existing key, and may sort before the prefix.
    assert [i.key for i in store.list("l/", start_after="l/0105")] == keys[11:]
    assert [i.key for i in store.list("l/", start_after="a")] == keys
    assert list(store.list("l/", start_after="l/999")) == []
    assert list(store.list("l/", limit=0)) == []
    assert list(store.list("nothing/")) == []


def test_list_start_after_skips_whole_subtrees(store: ObjectStore) -> None:
    for key in ["d/a/1", "d/a/2", "d/a0", "d/b/1"]:
        store.put(key, b"", CREATE)
    # "d/a0" sorts after every "d/a/..." key, so nothing under d/a/ may appear.
    assert [i.key for i in store.list("d/", start_after="d/a0")] == ["d/b/1"]
    assert [i.key for i in store.list("d/", start_after="d/a/1")] == ["d/a/2", "d/a0", "d/b/1"]


def test_list_pages_through_more_keys_than_one_page(store: ObjectStore) -> None:
    # Fixtures configure small page sizes where a backend pages, so that 60 keys
    # span several pages without thousands of requests.
    keys = [f"pg/{n:04d}" for n in range(60)]
    for key in keys:
        store.put(key, b"", CREATE)
    assert [i.key for i in store.list("pg/")] == keys


def test_delete_is_idempotent_without_version(store: ObjectStore) -> None:
    store.put("d", b"x", CREATE)
    store.delete("d")
    store.delete("d")
    with pytest.raises(NotFoundError):
        store.get("d")
    store.put("d", b"again", CREATE)  # a deleted key can be created again
    assert store.get("d").data == b"again"


def test_delete_removes_any_version(store: ObjectStore) -> None:
    # Deletes are unconditional (the protocol never deletes conditionally).
    v1 = store.put("d", b"x", CREATE)
    store.put("d", b"y", Update(v1))
    store.delete("d")
    with pytest.raises(NotFoundError):
        store.get("d")
    assert [i.key for i in store.list("d")] == []


def test_racing_creators_exactly_one_wins(store_factory: Callable[[], ObjectStore]) -> None:
    # Small bodies on purpose: moto checks-then-stores without a lock and has been
    # seen letting two creators of 16 MB bodies both win (see EMULATORS.md).
    for round_no in range(5):
        key = f"race/{round_no}"
        clients = [store_factory() for _ in range(6)]
        barrier = threading.Barrier(len(clients))
        winners: list[int] = []
        errors: list[BaseException] = []

        def create(
            n: int,
            client: ObjectStore,
            key: str = key,
            barrier: threading.Barrier = barrier,
            winners: list[int] = winners,
            errors: list[BaseException] = errors,
        ) -> None:
            barrier.wait()
            try:
                client.put(key, f"writer-{n}".encode(), CREATE)
                winners.append(n)
            except AlreadyExistsError:
                pass
            except BaseException as exc:  # a wrong error type must fail the test
                errors.append(exc)

        threads = [threading.Thread(target=create, args=(n, c)) for n, c in enumerate(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert len(winners) == 1
        assert store_factory().get(key).data == f"writer-{winners[0]}".encode()


def test_compare_and_swap_loses_no_update(store_factory: Callable[[], ObjectStore]) -> None:
    store = store_factory()
    store.put("counter", b"0", CREATE)
    workers, increments = 4, 5

    def bump(client: ObjectStore) -> None:
        done = 0
        while done < increments:
            current = client.get("counter")
            try:
                client.put("counter", str(int(current.data) + 1).encode(), Update(current.etag))
                done += 1
            except PreconditionFailedError:
                continue

    threads = [threading.Thread(target=bump, args=(store_factory(),)) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert int(store.get("counter").data) == workers * increments


def test_list_prefixes_yields_folders_in_key_order(store: ObjectStore) -> None:
    for key in ["f/a/1", "f/a/2", "f/a-b/1", "f/b/x/1", "f/c", "g/z/1", "f/%41/1"]:
        store.put(key, b"", CREATE)
    # Folders only (not the object "f/c"), each once, in key order ("f/a-b/" < "f/a/").
    assert list(store.list_prefixes("f/")) == ["f/%41/", "f/a-b/", "f/a/", "f/b/"]
    assert list(store.list_prefixes("f/b/")) == ["f/b/x/"]
    assert list(store.list_prefixes("nothing/")) == []
    store.delete("f/b/x/1")
    assert list(store.list_prefixes("f/")) == ["f/%41/", "f/a-b/", "f/a/"]  # emptied folders vanish
