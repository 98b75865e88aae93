"""aiter_events hands its first processor the assembler's events as it numbered them.

A LinkRewriter first in ``aiter_events(..., processors=[...])`` takes each chunk's events
knowing that each cursor is ``<sequence_number>-<k>`` with ``k`` from 0 at each new
number, so it does not read their cursors. What comes out must be what ``feed`` gives for
the same events one by one, for any stream the assembler reads (duplicates, gaps, hostile
numbering, cut tails, several responses, links across deltas) and any chunking.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import respflow
from respflow import Assembler, LinkRewriter
from respflow import _events as ev
from respflow.testing import StreamBuilder

from .test_fast_path import mangle, render, wire_streams

pytestmark = pytest.mark.anyio


def _batches(body: bytes, cuts: list[int]) -> list[list[ev.Event]]:
    assembler = Assembler()
    edges = sorted({c for c in cuts if 0 < c < len(body)})
    batches = [
        assembler.feed(body[a:b]) for a, b in zip([0, *edges], [*edges, len(body)], strict=True)
    ]
    return [*batches, assembler.close()]


def _one_by_one(events: list[ev.Event], **options: Any) -> list[ev.Event]:
    rewriter = LinkRewriter(**options)
    return [out for event in events for out in rewriter.feed(event)]


def _linked(text: str) -> str:
    return text + " see sandbox:/mnt/data/a.csv and [b](sandbox:/mnt/data/b b.csv)."


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(wire_streams(), st.data(), st.booleans())
def test_the_assemblers_numbered_events_come_out_as_feed_gives_them(
    wire: list[dict[str, Any]], data: st.DataObject, markdown: bool
) -> None:
    body = render(mangle(wire, data), data)
    cuts = data.draw(st.lists(st.integers(0, len(body)), max_size=20))
    batches = _batches(body, cuts)
    rewriter = LinkRewriter(markdown=markdown, max_hold=data.draw(st.sampled_from([18, 1024])))
    numbered = [out for batch in batches for out in rewriter._feed_all_numbered(batch)]
    events = [event for batch in batches for event in batch]
    assert numbered == _one_by_one(events, markdown=markdown, max_hold=rewriter.max_hold)


def _two_responses() -> bytes:
    first = StreamBuilder(response_id="resp_a").message(_linked("one"), chunk=3).events()
    second = (
        StreamBuilder(response_id="resp_b")
        .code_call("x = 1\n", chunk=2)
        .message(_linked("two s"), chunk=1)
        .events()
    )
    cut = first[: len(first) // 2]  # the first response never ends: truncated
    return "".join(f"data: {json.dumps(e)}\n\n" for e in cut + second).encode()


@pytest.mark.parametrize("size", [1, 5, 64, 4096])
async def test_aiter_events_with_a_rewriter_gives_what_feed_gives_event_by_event(
    size: int,
) -> None:
    body = _two_responses()

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(body), size):
            yield body[i : i + size]

    plain = [event async for event in respflow.aiter_events(chunks())]
    rewritten = [
        event async for event in respflow.aiter_events(chunks(), processors=[LinkRewriter()])
    ]
    assert rewritten == _one_by_one(plain)
    assert {e.response_id for e in rewritten} == {"resp_a", "resp_b"}
    assert any(isinstance(e, ev.StreamTruncated) for e in rewritten)
    texts = "".join(e.delta for e in rewritten if isinstance(e, ev.TextDelta))
    assert "sandbox:" not in texts


async def test_only_the_first_processor_takes_the_numbered_way() -> None:
    """A processor after another may get anything that one makes: it reads cursors."""

    class Renumbers:
        def feed(self, event: ev.Event) -> list[ev.Event]:
            if isinstance(event, ev.CodeDelta):  # a cursor no assembler would give
                return [ev.CodeDelta(**{**_fields(event), "cursor": "7-3"})]
            return [event]

    body = (
        "".join(
            f"data: {json.dumps(e)}\n\n"
            for e in StreamBuilder().code_call("abcdef", chunk=2).events()
        )
    ).encode()

    async def chunks() -> AsyncIterator[bytes]:
        yield body

    plain = [event async for event in respflow.aiter_events(chunks())]
    expected = _one_by_one([out for event in plain for out in Renumbers().feed(event)])
    processors = [Renumbers(), LinkRewriter()]
    got = [event async for event in respflow.aiter_events(chunks(), processors=processors)]
    assert got == expected
    codes = [e for e in got if isinstance(e, ev.CodeDelta)]
    assert [e.cursor for e in codes] == [f"{e.sequence_number}-0" for e in codes]


def _fields(event: ev.Event) -> dict[str, Any]:
    return {name: getattr(event, name) for name in event.__struct_fields__}


def test_an_event_after_one_the_rewriter_holds_back_gets_its_place() -> None:
    """response.completed finishing an open message and an open function call: the
    rewriter holds message.completed back (to the end), so the item.completed after it,
    second of its wire event, is the first to go out and is numbered so."""
    wire = (
        StreamBuilder(response_id="resp_h")
        .message(_linked("open"), chunk=4)
        .item({"id": "fc_1", "type": "function_call", "arguments": "{}"})
        .events()
    )
    open_items = [e for e in wire if e["type"] != "response.output_item.done"]
    dense = [{**e, "sequence_number": n} for n, e in enumerate(open_items)]
    body = "".join(f"data: {json.dumps(e)}\n\n" for e in dense).encode()
    batches = _batches(body, [])
    events = [event for batch in batches for event in batch]
    numbered = [out for batch in batches for out in LinkRewriter()._feed_all_numbered(batch)]
    assert numbered == _one_by_one(events)
    end = next(e for e in events if isinstance(e, ev.ResponseCompleted))
    held, after, *_ = (e for e in events if e.sequence_number == end.sequence_number)
    assert (held.type, held.cursor[-2:], after.type) == (
        "message.completed",
        "-0",
        "item.completed",
    )
    first_out = next(e for e in numbered if e.sequence_number == end.sequence_number)
    assert (first_out.type, first_out.cursor[-2:]) == ("item.completed", "-0")


async def test_a_subclass_with_its_own_feed_all_is_given_the_events_through_it() -> None:
    class Counting(LinkRewriter):
        def __init__(self) -> None:
            super().__init__()
            self.batches = 0

        def feed_all(self, events: Iterable[ev.Event]) -> list[ev.Event]:
            self.batches += 1
            return super().feed_all(events)

    body = "".join(
        f"data: {json.dumps(e)}\n\n" for e in StreamBuilder().message("a b c", chunk=1).events()
    ).encode()

    async def chunks() -> AsyncIterator[bytes]:
        yield body

    rewriter = Counting()
    got = [event async for event in respflow.aiter_events(chunks(), processors=[rewriter])]
    assert rewriter.batches == 1  # the one chunk's events (after the end, close() gives none)
    assert got == _one_by_one([event async for event in respflow.aiter_events(chunks())])
