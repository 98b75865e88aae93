"""Text a LinkRewriter holds back is not lost when the stream stops before the response
ends: a Pipeline cancelled or out of events, or ``aiter_events`` whose source ends or
fails, lets it out (as text: the link never completed) before the truncation is told."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from respflow import Assembler, LinkRewriter, Pipeline, aiter_events, attach
from respflow import _events as ev
from respflow.testing import MemorySink, StreamBuilder, to_sse

from ._deltas import text_delta

pytestmark = pytest.mark.anyio

# Words whose end a rewriter may hold back ("sand" may start "sandbox:"), whole links and
# links cut short. Each follows a separator, so no bare "/mnt/data/" stands alone.
WORDS = [
    "s",
    "sa",
    "sand",
    "sandbox",
    "sandbox:",
    "sandbox:/mnt/da",
    "sandbox:/mnt/data/",
    "sandbox:/mnt/data/report.csv",
    "sandbox:/mnt/data/out/plot.png",
    "plain",
    "done.",
]
SEPARATORS = [" ", "\n", ". ", "(", "[x]("]
texts = st.lists(st.tuples(st.sampled_from(SEPARATORS), st.sampled_from(WORDS)), max_size=12).map(
    lambda pairs: "".join(sep + word for sep, word in pairs)
)


def unchanged_links() -> LinkRewriter:
    """A rewriter whose target is the link itself: what it lets out is what came in, so
    the text the sinks get must be the text the wire sent, wherever the stream stops."""
    return LinkRewriter(lambda _rid, path: f"sandbox:{path}", max_hold=64)


def wire_until(text: str, chunk: int, cut: int) -> list[dict[str, object]]:
    """The wire events of a response with one message of ``text``, the first ``cut``."""
    wire = StreamBuilder(response_id="resp_cut").message(text, chunk=chunk).events(end=None)
    return wire[: cut % (len(wire) + 1)]


def sent_text(wire: list[dict[str, object]]) -> str:
    return "".join(str(e["delta"]) for e in wire if e["type"] == "response.output_text.delta")


def got_text(events: list[ev.Event]) -> str:
    return "".join(e.delta for e in events if isinstance(e, ev.TextDelta))


def the_core_events(wire: list[dict[str, object]]) -> list[ev.Event]:
    """What the core makes of ``wire``, with no end of its own: the stream just stops."""
    return Assembler().feed(to_sse(wire))


async def run_out(events: list[ev.Event], processors: Sequence[Any]) -> list[ev.Event]:
    """Through a Pipeline whose events run out before the response ends."""

    async def source() -> AsyncIterator[ev.Event]:
        for event in events:
            yield event

    sink = MemorySink()
    async with Pipeline(sink, processors=processors) as pipeline:
        await pipeline.run(source())
    return sink.events


async def cancel_after(events: list[ev.Event], processors: list[LinkRewriter]) -> list[ev.Event]:
    """Through a Pipeline cancelled once every event has gone through the processors."""
    taken = anyio.Event()

    async def source() -> AsyncIterator[ev.Event]:
        for event in events:
            yield event
        taken.set()  # asked for the next: the last one went all the way through
        await anyio.sleep_forever()

    sink = MemorySink()
    async with anyio.create_task_group() as tg:

        async def run() -> None:
            async with Pipeline(sink, processors=processors) as pipeline:
                await pipeline.run(source())

        tg.start_soon(run)
        await taken.wait()
        tg.cancel_scope.cancel()
    return sink.events


def assert_in_order(events: list[ev.Event]) -> None:
    """Cursors unique and ascending, and the truncation told last."""
    keys = [tuple(map(int, e.cursor.rsplit("-", 1))) for e in events]
    assert keys == sorted(set(keys))
    ends = [e for e in events if isinstance(e, ev.END_TYPES)]
    assert ends == [events[-1]]


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(texts, st.integers(1, 7), st.integers(0, 200), st.sampled_from(["ran out", "cancelled"]))
async def test_a_pipeline_stopped_anywhere_delivers_all_the_text_the_wire_sent(
    text: str, chunk: int, cut: int, how: str
) -> None:
    wire = wire_until(text, chunk, cut)
    events = the_core_events(wire)
    stop = run_out if how == "ran out" else cancel_after
    got = await stop(events, [unchanged_links()])
    assert got_text(got) == sent_text(wire)
    if got:
        assert isinstance(got[-1], ev.StreamTruncated)
        assert_in_order(got)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(texts, st.integers(1, 7), st.integers(0, 200))
async def test_aiter_events_whose_source_stops_anywhere_gives_all_the_text(
    text: str, chunk: int, cut: int
) -> None:
    wire = wire_until(text, chunk, cut)

    async def body() -> AsyncIterator[bytes]:
        yield to_sse(wire)

    got = [e async for e in aiter_events(body(), processors=[unchanged_links()])]
    assert got_text(got) == sent_text(wire)
    assert_in_order(got)


async def test_held_start_of_a_link_comes_before_the_truncation_as_plain_text() -> None:
    events: list[ev.Event] = [text_delta(0, "see "), text_delta(1, "the sand")]
    got = await cancel_after(events, [LinkRewriter()])
    assert [type(e) for e in got] == [ev.TextDelta, ev.TextDelta, ev.TextDelta, ev.StreamTruncated]
    assert got_text(got) == "see the sand"


async def test_a_link_cut_short_is_let_out_as_it_came_not_rewritten() -> None:
    events: list[ev.Event] = [text_delta(0, "see sandbox:/mnt/data/rep")]
    got = await run_out(events, [LinkRewriter()])
    assert got_text(got) == "see sandbox:/mnt/data/rep"
    assert isinstance(got[-1], ev.StreamTruncated)


async def test_what_the_first_rewriter_lets_go_goes_through_the_next() -> None:
    events: list[ev.Event] = [text_delta(0, "see sandbox:/mnt/data/report.csv and sand")]
    first = LinkRewriter("/a/{filename}")
    second = LinkRewriter("/b/{filename}")
    got = await run_out(events, [first, second])
    assert got_text(got) == "see /a/report.csv and sand"
    assert_in_order(got)


async def test_a_source_that_fails_lets_the_held_text_out_before_the_error() -> None:
    wire = StreamBuilder(response_id="resp_x").message("look at sand", chunk=12).events(end=None)
    wire = wire[: 1 + max(i for i, e in enumerate(wire) if e["type"].endswith("text.delta"))]

    async def body() -> AsyncIterator[bytes]:
        yield to_sse(wire)
        raise ConnectionResetError("the peer hung up")

    got = [e async for e in aiter_events(body(), processors=[LinkRewriter()])]
    assert got_text(got) == "look at sand"
    kinds = [type(e) for e in got]
    assert kinds.index(ev.StreamError) > max(
        i for i, e in enumerate(got) if isinstance(e, ev.TextDelta)
    )
    assert_in_order(got)


async def test_a_response_that_ended_leaves_nothing_held_to_give_twice() -> None:
    rewriter = LinkRewriter()
    wire = StreamBuilder(response_id="resp_y").message("all sand", chunk=3).events()

    async def body() -> AsyncIterator[bytes]:
        yield to_sse(wire)

    got = [e async for e in aiter_events(body(), processors=[rewriter])]
    assert got_text(got) == "all sand"
    assert rewriter.close() == []


async def test_a_pipeline_gives_what_is_held_to_every_sink_it_still_feeds() -> None:
    slow, fast = MemorySink(), MemorySink()
    events: list[ev.Event] = [text_delta(0, "one sand")]

    async def source() -> AsyncIterator[ev.Event]:
        for event in events:
            yield event

    async with Pipeline(
        slow, attach(fast, policy="drop_oldest"), processors=[LinkRewriter()]
    ) as pipeline:
        await pipeline.run(source())
    for sink in (slow, fast):
        assert got_text(sink.events) == "one sand"
        assert isinstance(sink.events[-1], ev.StreamTruncated)


class _Batches:
    """A processor of one's own: holds code deltas back in pairs, gives the odd one at close."""

    def __init__(self) -> None:
        self.waiting: list[ev.Event] = []
        self.closed = 0

    def feed(self, event: ev.Event) -> list[ev.Event]:
        if not isinstance(event, ev.CodeDelta):
            return [event]
        self.waiting.append(event)
        if len(self.waiting) < 2:
            return []
        out, self.waiting = self.waiting, []
        return out

    def close(self) -> list[ev.Event]:
        self.closed += 1
        out, self.waiting = self.waiting, []
        return out


async def test_any_processor_with_close_is_asked_once_as_a_cut_stream_ends() -> None:
    wire = StreamBuilder(response_id="resp_c").code_call("print(1)", chunk=3).events(end=None)
    sent = [e for e in wire if e["type"].endswith("code_interpreter_call_code.delta")]

    async def body() -> AsyncIterator[bytes]:
        yield to_sse(wire[: 1 + wire.index(sent[0])])

    batches = _Batches()
    got = [e async for e in aiter_events(body(), processors=[batches])]
    assert [e.delta for e in got if isinstance(e, ev.CodeDelta)] == [sent[0]["delta"]]
    assert isinstance(got[-1], ev.StreamTruncated)
    assert batches.closed == 1

    in_pipeline = _Batches()
    got = await run_out(the_core_events(wire[: 1 + wire.index(sent[0])]), [in_pipeline])
    assert [e.delta for e in got if isinstance(e, ev.CodeDelta)] == [sent[0]["delta"]]
    assert in_pipeline.closed == 1


async def test_a_response_that_fails_mid_answer_keeps_the_held_text() -> None:
    rewriter = LinkRewriter()
    events: list[ev.Event] = [
        text_delta(0, "half sand"),
        ev.ResponseFailed(response_id="resp_1", sequence_number=1, cursor="1-0", error=None),
    ]
    got = [out for event in events for out in rewriter.feed(event)]
    assert got_text(got) == "half sand"
    assert isinstance(got[-1], ev.ResponseFailed)
    assert_in_order(got)
