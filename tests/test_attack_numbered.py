"""Attacks on the numbered rewriter path: a LinkRewriter first in aiter_events takes the
assembler's events without reading their cursors. Whatever the stream and however the
rewriter and the assembler came to it, what comes out is what ``feed`` gives event by
event: the same events, with the same cursors, so a reader's resume cursor never repeats
or goes back."""

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


def _sse(wire: Iterable[dict[str, Any]]) -> bytes:
    return "".join(f"data: {json.dumps(e)}\n\n" for e in wire).encode()


async def _chunks(body: bytes, cuts: list[int]) -> AsyncIterator[bytes]:
    edges = sorted({c for c in cuts if 0 < c < len(body)})
    for a, b in zip([0, *edges], [*edges, len(body)], strict=True):
        yield body[a:b]


def _one_by_one(rewriter: LinkRewriter, events: Iterable[ev.Event]) -> list[ev.Event]:
    return [out for event in events for out in rewriter.feed(event)]


def _split(wire: list[dict[str, Any]], at: int) -> tuple[bytes, bytes]:
    return _sse(wire[:at]), _sse(wire[at:])


def _unnumbered_tail(wire: list[dict[str, Any]], at: int) -> list[dict[str, Any]]:
    """The events from ``at`` on without numbers: the assembler numbers them on from the
    last number it took, ``k`` going on counting (a server that stops numbering)."""
    return [
        *wire[:at],
        *({k: v for k, v in e.items() if k != "sequence_number"} for e in wire[at:]),
    ]


def _without_id(event: dict[str, Any]) -> dict[str, Any]:
    if isinstance(event.get("response"), dict):
        return {**event, "response": {**event["response"], "id": ""}}
    return event


def _linked_code_and_text() -> list[dict[str, Any]]:
    # No response id: the rewriter's first event is then not sent the long way as one of
    # a new response, so it is taken on the numbered path.
    return (
        StreamBuilder(response_id="")
        .code_call("x = 1\n", chunk=2)
        .message("see sandbox:/mnt/data/a.csv and more words here", chunk=3)
        .events()
    )


async def test_an_assembler_that_already_read_part_of_the_stream_numbers_as_feed_does() -> None:
    """aiter_events(assembler=...) with an assembler that has read the start of the
    stream (a caller that looked at the first bytes itself): its next events may carry
    the last number with k past 0, and the rewriter must not take them for the first."""
    wire = _unnumbered_tail(_linked_code_and_text(), 4)
    head, tail = _split(wire, 5)
    assembler, reference = Assembler(), Assembler()
    assembler.feed(head)
    reference.feed(head)
    expected = _one_by_one(LinkRewriter(), reference.feed(tail) + reference.close())
    got = [
        event
        async for event in respflow.aiter_events(
            _chunks(tail, []), assembler=assembler, processors=[LinkRewriter()]
        )
    ]
    assert got == expected
    cursors = [event.cursor for event in got]
    assert len(set(cursors)) == len(cursors)  # no resume cursor given twice


async def test_a_rewriter_fed_by_hand_then_given_to_aiter_events_numbers_as_feed_does() -> None:
    wire = _unnumbered_tail(_linked_code_and_text(), 6)
    head, tail = _split(wire, 6)
    assembler = Assembler()
    rewriter, reference = LinkRewriter(), LinkRewriter()
    first = assembler.feed(head)
    assert rewriter.feed_all(first) == _one_by_one(reference, first)
    shadow = Assembler()
    shadow.feed(head)
    expected = _one_by_one(reference, shadow.feed(tail) + shadow.close())
    got = [
        event
        async for event in respflow.aiter_events(
            _chunks(tail, [7, 50]), assembler=assembler, processors=[rewriter]
        )
    ]
    assert got == expected


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(wire_streams(), st.data())
async def test_any_stream_from_a_part_read_assembler_gives_what_feed_gives(
    wire: list[dict[str, Any]], data: st.DataObject
) -> None:
    if data.draw(st.booleans()):
        wire = [_without_id(e) for e in wire]
    body = render(mangle(wire, data), data)
    at = data.draw(st.integers(0, len(body)))
    cuts = data.draw(st.lists(st.integers(0, len(body) - at), max_size=10))
    reused = data.draw(st.booleans())  # the rewriter took the head's events as well
    assembler, shadow = Assembler(), Assembler()
    head = assembler.feed(body[:at])
    assert shadow.feed(body[:at]) == head
    rewriter, reference = LinkRewriter(), LinkRewriter()
    if reused:
        rewriter.feed_all(head)
        _one_by_one(reference, head)
    expected = _one_by_one(reference, shadow.feed(body[at:]) + shadow.close())
    got = [
        event
        async for event in respflow.aiter_events(
            _chunks(body[at:], cuts), assembler=assembler, processors=[rewriter]
        )
    ]
    assert got == expected


async def test_one_rewriter_over_two_streams_in_turn_gives_what_feed_gives() -> None:
    """A rewriter kept for a session: each stream has its own assembler."""
    one = _sse(_unnumbered_tail(_linked_code_and_text(), 3))
    two = _sse(
        StreamBuilder(response_id="resp_two").message("sandbox:/mnt/data/b.csv", chunk=2).events()
    )
    rewriter, reference = LinkRewriter(), LinkRewriter()
    for body in (one, two, one):
        plain = Assembler()
        expected = _one_by_one(reference, plain.feed(body) + plain.close())
        got = [e async for e in respflow.aiter_events(_chunks(body, [9]), processors=[rewriter])]
        assert got == expected


async def test_a_subclass_with_its_own_feed_is_given_every_event_through_it() -> None:
    """aiter_events promises what feed gives for each event in turn; a subclass that
    changes feed (here: drops code) must see every event, not only the ones the batch
    path sends the long way."""

    class NoCode(LinkRewriter):
        def feed(self, event: ev.Event) -> list[ev.Event]:
            if isinstance(event, ev.CodeDelta | ev.TextDelta) and "x" in event.delta:
                return []
            return super().feed(event)

    body = _sse(
        StreamBuilder(response_id="resp_s")
        .code_call("x = 1\nxx\n", chunk=1)
        .message("a text with x in it", chunk=1)
        .events()
    )
    plain = [event async for event in respflow.aiter_events(_chunks(body, []))]
    expected = _one_by_one(NoCode(), plain)
    for processors in ([NoCode()], [LinkRewriter(), NoCode()]):
        got = [e async for e in respflow.aiter_events(_chunks(body, [40]), processors=processors)]
        if len(processors) == 1:
            assert got == expected
        assert not any(isinstance(e, ev.CodeDelta | ev.TextDelta) and "x" in e.delta for e in got)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(wire_streams(), min_size=2, max_size=3), st.data())
async def test_responses_one_after_another_or_interleaved_give_what_feed_gives(
    streams: list[list[dict[str, Any]]], data: st.DataObject
) -> None:
    """Several responses in one byte stream, ids kept, alike or blank, in turn or with
    their events interleaved (a server or a proxy mixing two streams up)."""
    ids = data.draw(st.sampled_from(["own", "same", "blank"]))
    named = [
        [_renamed(e, {"own": f"resp_{n}", "same": "resp_same", "blank": ""}[ids]) for e in s]
        for n, s in enumerate(streams)
    ]
    if data.draw(st.booleans()):
        wire = [e for s in named for e in s]
    else:  # each response's events in their order, the responses' taken in any order
        turns = data.draw(st.permutations([n for n, s in enumerate(named) for _ in s]))
        left = [iter(s) for s in named]
        wire = [next(left[n]) for n in turns]
    body = render(mangle(wire, data), data)
    cuts = data.draw(st.lists(st.integers(0, len(body)), max_size=12))
    plain = Assembler()
    expected = _one_by_one(LinkRewriter(), plain.feed(body) + plain.close())
    got = [e async for e in respflow.aiter_events(_chunks(body, cuts), processors=[LinkRewriter()])]
    assert got == expected


def _renamed(event: dict[str, Any], rid: str) -> dict[str, Any]:
    if isinstance(event.get("response"), dict):
        return {**event, "response": {**event["response"], "id": rid}}
    return event
