"""The assembler's in-line path for deltas says what the general path says.

``Assembler.feed`` remembers the part the last text delta went to and the item the last
code delta went to, and takes the next delta going there without looking the item up.
These tests hold it to the general path (every frame dispatched one by one) where that
memory could go stale: deltas alternating between parts and items, items finished or
added between deltas, and streams whose events carry no sequence numbers at all (some
proxies strip them), however the bytes are chunked.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from respflow import Assembler
from respflow import _events as ev
from respflow.testing import StreamBuilder

from .test_fast_path import FrameByFrame, every, mangle, render, run, wire_streams


def sse(events: list[dict[str, Any]]) -> bytes:
    return "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events).encode()


def unnumbered(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in e.items() if k != "sequence_number"} for e in events]


def two_messages_interleaved() -> list[dict[str, Any]]:
    """Two messages of two parts each, their deltas taking turns, numbered in line."""
    wire = StreamBuilder().message("abcdef", chunk=1).message("uvwxyz", chunk=1).events()
    first = [e for e in wire if e.get("output_index") == 0]
    second = [e for e in wire if e.get("output_index") == 1]
    head = [e for e in wire if "output_index" not in e and e["type"] != "response.completed"]
    tail = [e for e in wire if e["type"] == "response.completed"]
    mixed: list[dict[str, Any]] = []
    for a, b in zip(first, second, strict=True):
        mixed += [a, b]
    for e in mixed:
        if e["type"] == "response.output_text.delta" and e["delta"] in "cdwx":
            e["content_index"] = 1  # a second part of each message
    events = head + mixed + tail
    return [{**e, "sequence_number": n} for n, e in enumerate(events)]


def test_a_stream_without_sequence_numbers_reads_as_the_general_path_reads_it() -> None:
    body = sse(
        unnumbered(StreamBuilder().code_call("x = 1\n", chunk=2).message("hi there").events())
    )
    expected = run(FrameByFrame(), body, [])
    assert run(Assembler(), body, []) == expected
    assert run(Assembler(), body, every(7, body)) == expected
    texts = [e.delta for e in expected if isinstance(e, ev.TextDelta)]
    assert "".join(texts) == "hi there"


def test_deltas_taking_turns_between_parts_and_items_go_where_each_says() -> None:
    body = sse(two_messages_interleaved())
    expected = run(FrameByFrame(), body, [])
    for size in (1, 13, 100, len(body)):
        assert run(Assembler(), body, every(size, body)) == expected
    parts: dict[tuple[int, int], str] = {}
    for e in expected:
        if isinstance(e, ev.TextDelta):
            key = (e.output_index, e.content_index)
            parts[key] = parts.get(key, "") + e.delta
    assert parts == {(0, 0): "abef", (0, 1): "cd", (1, 0): "uvyz", (1, 1): "wx"}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(wire_streams(), st.data())
def test_streams_without_sequence_numbers_read_the_same_for_every_chunking(
    wire: list[dict[str, Any]], data: st.DataObject
) -> None:
    body = render(mangle(unnumbered(wire), data), data)
    expected = run(FrameByFrame(), body, [])
    cuts = data.draw(st.lists(st.integers(0, len(body)), max_size=20))
    assert run(Assembler(), body, cuts) == expected


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(wire_streams(), wire_streams(), st.data())
def test_two_responses_items_merged_read_the_same_for_every_chunking(
    first: list[dict[str, Any]], second: list[dict[str, Any]], data: st.DataObject
) -> None:
    """The items of two streams in one response, their events merged in any order that
    keeps each item's own order, renumbered in line: deltas go to one item, then the
    other, each added or finished between them."""
    ours = [e for e in first if "output_index" in e]
    shift = 1 + max((e["output_index"] for e in ours), default=0)
    theirs = [
        {**e, "output_index": e["output_index"] + shift} for e in second if "output_index" in e
    ]
    merged: list[dict[str, Any]] = []
    while ours or theirs:
        source = ours if ours and (not theirs or data.draw(st.booleans())) else theirs
        merged.append(source.pop(0))
    head = [
        e
        for e in first
        if "output_index" not in e and not e["type"].endswith(("completed", "failed"))
    ]
    tail = [e for e in first if "output_index" not in e and e not in head]
    events = [{**e, "sequence_number": n} for n, e in enumerate(head + merged + tail)]
    body = render(events, data)
    expected = run(FrameByFrame(), body, [])
    cuts = data.draw(st.lists(st.integers(0, len(body)), max_size=20))
    assert run(Assembler(), body, cuts) == expected
    assert run(Assembler(), body, every(data.draw(st.integers(1, 300)), body)) == expected
