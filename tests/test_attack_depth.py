"""The measure of JSON depth on bytes attacked: strings made of quotes, backslashes,
brackets and escapes of them (``\\u0022``, ``\\\\\\"``), lone surrogates, every container
shape, bytes, bytearray and str, nesting at exactly ``MAX_DEPTH`` and one more. What
``decode_json`` and the Assembler refuse as too deep is what nests deeper than that."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from respflow import Assembler
from respflow import _events as ev
from respflow._core import wire
from respflow.testing import StreamBuilder, to_sse

from .test_json_depth import depth

LIMIT = wire.MAX_DEPTH

# Pieces that confuse a scan: escaped quotes and backslashes in every run length, the
# quote escaped as \u0022 (decoded, a quote; on the wire, no quote at all), a lone
# surrogate (written as \ud800 by json.dumps), brackets of both kinds.
_PIECES = st.sampled_from(['"', "\\", "\\\\", '\\"', "[", "]", "{", "}", "\ud800", "é", "x"])
_TRICKY = st.lists(_PIECES, max_size=8).map("".join)
_JSON: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False) | _TRICKY,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_TRICKY, inner, max_size=3),
    max_leaves=30,
)


def wrapped(value: Any, levels: int) -> Any:
    """``value`` inside ``levels`` containers, lists and objects in turn."""
    for level in range(levels):
        value = [value] if level % 2 else {'k[\\"': value}
    return value


def encodings(text: str) -> list[str | bytes | bytearray]:
    data = text.encode("utf-8", "surrogatepass")
    return [text, data, bytearray(data)]


@given(_JSON, st.booleans(), st.integers(0, 3))
def test_the_measure_is_the_depth_of_the_value_whatever_its_strings_hold(
    value: Any, ascii_only: bool, indent: int
) -> None:
    text = json.dumps(value, ensure_ascii=ascii_only, indent=indent or None)
    for data in encodings(text)[1:]:
        assert wire._depth(data) == depth(value)  # type: ignore[arg-type]


@given(_TRICKY, st.integers(-2, 1))
def test_decode_json_refuses_exactly_what_nests_deeper_than_the_limit(leaf: str, off: int) -> None:
    value = wrapped([leaf, leaf], LIMIT - 1 + off)
    text = json.dumps(value, ensure_ascii=True)
    assert depth(value) == LIMIT + off
    for data in encodings(text):
        if "\ud800" in leaf:  # no reader of respflow takes a lone surrogate
            continue
        if off > 0:
            with pytest.raises(wire.NestingTooDeep):
                wire.decode_json(data)
        else:
            assert wire.decode_json(data) == value


def response_with_tools(levels: int) -> bytes:
    """A response whose end carries JSON nesting ``levels`` below its ``tools`` field: the
    event nests two levels more (itself, the response)."""
    events = StreamBuilder(response_id="resp_deep").message("kept").events()
    end = dict(events[-1])
    end["response"] = {**end["response"], "tools": wrapped('"]}\\u0022[', levels)}
    return to_sse([*events[:-1], end])


@pytest.mark.parametrize("levels", [LIMIT - 3, LIMIT - 2, LIMIT - 1, LIMIT])
def test_the_assembler_refuses_an_event_exactly_when_it_nests_too_deep(levels: int) -> None:
    events = Assembler().feed(response_with_tools(levels))
    refused = [e for e in events if isinstance(e, ev.StreamError)]
    if levels + 2 > LIMIT:
        assert [e.code for e in refused] == ["too_deeply_nested"]
        assert not any(isinstance(e, ev.ResponseCompleted) for e in events)
    else:
        assert refused == []
        assert isinstance(events[-1], ev.ResponseCompleted)
    # Whatever the end's fate, the text before it is all there.
    assert "".join(e.delta for e in events if isinstance(e, ev.TextDelta)) == "kept"
