"""Key layouts: the shared escaping and inverted sequence numbers."""

from __future__ import annotations

import pytest

from cairnflow.core import keys
from cairnflow.core.errors import InvalidThreadIdError
from cairnflow.langgraph import _layout


@pytest.mark.parametrize("digits", [6, 12])
def test_inverted_numbers_round_trip_and_sort_newest_first(digits: int) -> None:
    numbers = [0, 1, 9, 10, 99, 10**digits - 1]
    encoded = [keys.encode_inverted(n, digits) for n in numbers]
    assert all(len(e) == digits and e.isdigit() for e in encoded)
    assert [keys.parse_inverted(e, digits) for e in encoded] == numbers
    assert sorted(encoded) == encoded[::-1]  # ascending key order = newest first


def test_inverted_numbers_reject_what_does_not_fit() -> None:
    with pytest.raises(ValueError, match="out of range"):
        keys.encode_inverted(10**6, 6)
    with pytest.raises(ValueError, match="out of range"):
        keys.encode_inverted(-1)
    for text in ("12345", "1234567", "12345a", "\uff11\uff12\uff13\uff14\uff15\uff16", "+12345"):
        with pytest.raises(ValueError, match="not an inverted"):
            keys.parse_inverted(text, 6)


def test_checkpoint_keys_use_the_shared_helper() -> None:
    key = keys.checkpoint_key("p/", "t", 5)
    assert key == "p/v1/threads/t/999999999994"
    assert keys.parse_checkpoint_key("p/", key) == ("t", 5)
    for bad in ("p/v1/threads/t/99999999999", "p/v1/threads/t", "p/v1/threads/t/x99999999999", "q/x"):
        with pytest.raises(ValueError, match="not"):
            keys.parse_checkpoint_key("p/", bad)
    with pytest.raises(ValueError, match="out of range"):
        keys.checkpoint_key("p/", "t", keys.MAX_SEQ + 1)


def test_the_langgraph_layout_shares_the_helpers() -> None:
    assert _layout.inv is keys.encode_inverted and _layout.parse_inv is keys.parse_inverted
    assert _layout.MAX_SEQ == keys.MAX_SEQ
    assert _layout.log_key("", "t", "", 0).endswith("/" + "9" * 12)


@pytest.mark.parametrize("thread_id", ["a", "A", "a/b", "..", "é", "a%2F", "x" * 240, "-_"])
def test_thread_ids_round_trip_and_never_contain_separators(thread_id: str) -> None:
    encoded = keys.encode_thread_id(thread_id)
    assert "/" not in encoded and "." not in encoded
    assert keys.decode_thread_id(encoded) == thread_id


def test_distinct_ids_encode_distinctly_even_case_folded() -> None:
    ids = ["a", "A", "a/b", "a%2Fb", "a%2fb", "%41"]
    encoded = [keys.encode_thread_id(i) for i in ids]
    assert len({e.lower() for e in encoded}) == len(ids)


@pytest.mark.parametrize("segment", ["%61", "%2f", "A", "a b", "%4", "é"])
def test_non_canonical_segments_are_refused(segment: str) -> None:
    with pytest.raises(ValueError):
        keys.decode_thread_id(segment)


@pytest.mark.parametrize("bad", ["", "x" * 241, "\ud800"])
def test_invalid_thread_ids_are_typed_errors(bad: str) -> None:
    with pytest.raises(InvalidThreadIdError):
        keys.encode_thread_id(bad)
