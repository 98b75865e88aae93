"""Cursors as stream ids and response ids as keys, for any input (no Redis needed)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from respflow_redis._ids import after_id, cursor_of, entry_id, format_id, response_keys

from respflow import UsageError

MAX = 2**64 - 1
# What respflow makes, but for the very last id, which no reader could resume after.
made = st.tuples(st.integers(-1, MAX - 2), st.integers(0, MAX)).filter(
    lambda pair: pair != (MAX - 2, MAX)
)
any_cursor = st.tuples(st.integers(-(2**70), 2**70), st.integers(0, 2**70))


def cursor(pair: tuple[int, int]) -> str:
    return f"{pair[0]}-{pair[1]}"


def hash_tag(key: str) -> str:
    """The part of a key Redis Cluster hashes (its rules: first "{", then the next "}")."""
    start = key.find("{")
    end = key.find("}", start + 1)
    return key[start + 1 : end] if start != -1 and end > start + 1 else key


@given(made, made)
def test_cursors_respflow_makes_become_valid_ids_in_the_same_order(
    one: tuple[int, int], two: tuple[int, int]
) -> None:
    first, second = entry_id(cursor(one)), entry_id(cursor(two))
    assert 1 <= first[0] <= MAX  # never 0-0, nor 0-<k>
    assert 0 <= first[1] <= MAX
    assert (first < second) == (one < two)
    assert cursor_of(first) == cursor(one)
    assert after_id(cursor(one)) == first


@given(any_cursor, any_cursor)
def test_any_cursor_a_reader_sends_reads_after_a_valid_id_in_the_same_order(
    one: tuple[int, int], two: tuple[int, int]
) -> None:
    first, second = after_id(cursor(one)), after_id(cursor(two))
    for stream_id in (first, second):
        assert 0 <= stream_id[0] <= MAX
        assert 0 <= stream_id[1] <= MAX
        assert stream_id < (MAX, MAX)  # "(<id>" of the very last id is refused
    if one <= two:
        assert first <= second


@pytest.mark.parametrize(
    "bad", ["-2-0", "-7-3", f"{MAX - 1}-0", f"0-{MAX + 1}", f"{MAX - 2}-{MAX}"]
)
def test_a_cursor_respflow_never_makes_cannot_be_stored(bad: str) -> None:
    with pytest.raises(UsageError, match="cannot store"):
        entry_id(bad)


def test_the_lowest_cursors_map_to_the_lowest_valid_ids() -> None:
    assert format_id(entry_id("-1-0")) == "1-0"
    assert format_id(entry_id("0-0")) == "2-0"
    assert after_id(None) == (0, 0)


@given(st.text(), st.text())
def test_a_response_s_keys_share_one_slot_and_no_two_ids_share_keys(one: str, two: str) -> None:
    keys = response_keys("respflow:", one)
    tags = {hash_tag(key) for key in (keys.log, keys.last, keys.lease)}
    assert len(tags) == 1
    assert tags.pop() != ""
    if one != two:
        assert response_keys("respflow:", two).log != keys.log
