"""Processors' ``close()`` attacked: one that raises, one that gives back an event it held
from earlier, rewriters in a chain, streams cut inside a link, sinks that block or are
let go, cancellation while the late events go out. Nothing received is lost, cursors
stay unique and ascending, each sink is closed once, and no link is half-rewritten."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import respflow
from respflow import Assembler, LinkRewriter, Pipeline, aiter_events, attach
from respflow import _events as ev
from respflow.testing import MemorySink, StreamBuilder, to_sse

from ._deltas import text_delta

pytestmark = pytest.mark.anyio

LINK = "sandbox:/mnt/data/x.csv"
TEXT = f"see {LINK} ok"


class CloseFails:
    """Passes every event; its close() raises, as a processor's bug would."""

    def __init__(self) -> None:
        self.closed = 0

    def feed(self, event: ev.Event) -> list[ev.Event]:
        return [event]

    def close(self) -> list[ev.Event]:
        self.closed += 1
        raise LookupError("this processor lost its place")


class HoldsCode:
    """Holds every code delta until close(), which gives them back as they came: with
    the numbers they had, older than the events that passed meanwhile."""

    def __init__(self) -> None:
        self.held: list[ev.Event] = []

    def feed(self, event: ev.Event) -> list[ev.Event]:
        if isinstance(event, ev.CodeDelta):
            self.held.append(event)
            return []
        return [event]

    def close(self) -> list[ev.Event]:
        out, self.held = self.held, []
        return out


def cut_wire(text: str, cut: int) -> list[dict[str, object]]:
    """A response streaming ``text`` one character a delta, stopped after ``cut`` of them."""
    wire = StreamBuilder(response_id="resp_cut").message(text, chunk=1).events(end=None)
    first = next(i for i, e in enumerate(wire) if e["type"] == "response.output_text.delta")
    return wire[: first + cut]


def text_of(events: Sequence[ev.Event]) -> str:
    return "".join(e.delta for e in events if isinstance(e, ev.TextDelta))


def assert_in_order(events: Sequence[ev.Event]) -> None:
    keys = [tuple(map(int, e.cursor.rsplit("-", 1))) for e in events]
    assert keys == sorted(set(keys))


async def source(events: Sequence[ev.Event]) -> AsyncIterator[ev.Event]:
    for event in events:
        yield event


def sent(text: str, cut: int) -> str:
    return text[:cut]


def rewritten(text: str, target: str) -> str:
    """What the sinks must get of ``text`` cut short: a link is rewritten only if the
    character that ends it came; else it goes out as it came, whole or cut."""
    ended = text.startswith(f"see {LINK} ")
    return text.replace(LINK, target, 1) if ended else text


async def test_a_processor_whose_close_raises_holds_back_no_one_elses_events() -> None:
    wire = StreamBuilder(response_id="resp_r").message("all sand", chunk=3).events(end=None)
    events = Assembler().feed(to_sse(wire))  # its message.completed waits for the end
    for processors in ([LinkRewriter(), CloseFails()], [CloseFails(), LinkRewriter()]):
        sink = MemorySink()
        with pytest.raises(LookupError, match="lost its place"):
            async with Pipeline(sink, processors=processors) as pipeline:
                await pipeline.run(source(events))
        assert any(isinstance(e, ev.MessageCompleted) for e in sink.events)
        assert text_of(sink.events) == "all sand"
        assert isinstance(sink.events[-1], ev.StreamTruncated)
        assert_in_order(sink.events)
        assert sink.closed == 1
        assert [p.closed for p in processors if isinstance(p, CloseFails)] == [1]


async def test_events_a_processor_gives_back_at_close_come_after_all_that_went_out() -> None:
    wire = StreamBuilder(response_id="resp_h").code_call("print(1)", chunk=4).events(end=None)
    events = Assembler().feed(to_sse(wire))
    sink = MemorySink()
    async with Pipeline(sink, processors=[HoldsCode()]) as pipeline:
        await pipeline.run(source(events))
    code = [e.delta for e in sink.events if isinstance(e, ev.CodeDelta)]
    assert "".join(code) == "print(1)"
    assert_in_order(sink.events)
    # Resuming after the truncation's number repeats nothing the sink was given.
    notice = sink.events[-1]
    assert isinstance(notice, ev.StreamTruncated)
    assert notice.last_sequence_number == max(e.sequence_number for e in events)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.integers(0, len(TEXT)), st.sampled_from(["ran out", "cancelled", "aiter_events"]))
async def test_two_rewriters_cut_anywhere_in_a_link_deliver_it_whole_or_as_it_came(
    cut: int, how: str
) -> None:
    wire = cut_wire(TEXT, cut)
    chain = [LinkRewriter("/a/{filename}"), LinkRewriter("/b/{filename}")]
    if how == "aiter_events":

        async def body() -> AsyncIterator[bytes]:
            yield to_sse(wire)

        got = [e async for e in aiter_events(body(), processors=chain)]
    else:
        got = await through_pipeline(Assembler().feed(to_sse(wire)), chain, how)
    assert text_of(got) == rewritten(sent(TEXT, cut), "/a/x.csv")
    assert_in_order(got)
    assert isinstance(got[-1], ev.StreamTruncated)


async def through_pipeline(events: list[ev.Event], chain: list[Any], how: str) -> list[ev.Event]:
    sink = MemorySink()
    taken = anyio.Event()

    async def events_then_wait() -> AsyncIterator[ev.Event]:
        for event in events:
            yield event
        if how == "cancelled":
            taken.set()
            await anyio.sleep_forever()

    async with anyio.create_task_group() as tg:

        async def run() -> None:
            async with Pipeline(sink, processors=chain) as pipeline:
                await pipeline.run(events_then_wait())

        tg.start_soon(run)
        if how == "cancelled":
            await taken.wait()
            tg.cancel_scope.cancel()
    assert sink.closed == 1
    return sink.events


class Gate:
    """A sink whose ``send`` number ``stop`` waits until the pipeline gives up on it."""

    def __init__(self, stop: int) -> None:
        self.stop = stop
        self.events: list[ev.Event] = []
        self.closed = 0
        self.waiting = anyio.Event()

    async def send(self, event: ev.Event) -> None:
        if len(self.events) == self.stop:
            self.stop = -1
            self.waiting.set()
            await anyio.sleep_forever()
        self.events.append(event)

    async def aclose(self) -> None:
        self.closed += 1


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.integers(0, 12), st.sampled_from(["block", "drop_oldest", "disconnect"]))
async def test_a_sink_stuck_anywhere_while_a_cancelled_pipeline_ends_is_closed_once(
    stop: int, policy: str
) -> None:
    events = [text_delta(i, piece) for i, piece in enumerate(["see ", "the ", "sand"])]
    gate, other = Gate(stop), MemorySink()
    async with anyio.create_task_group() as tg:

        async def run() -> None:
            async with Pipeline(
                attach(gate, policy=policy, buffer=2),  # type: ignore[arg-type]
                other,
                processors=[LinkRewriter()],
                close_timeout=0.05,
            ) as pipeline:
                await pipeline.run(source([*events, *events_forever()]))
            gate.waiting.set()  # let go before its stop (disconnect): nothing to wait for

        tg.start_soon(run)
        await gate.waiting.wait()
        tg.cancel_scope.cancel()
    assert (gate.closed, other.closed) == (1, 1)
    assert_in_order(gate.events)  # the send it hung on was given up: its loss alone
    assert_in_order(other.events)
    # The rewriter had let "sand" go into the event the stuck sink held back: the other
    # sink still gets it (it was lost, the truncation saying to resume after it).
    assert text_of(other.events).startswith("see the sand")


def events_forever() -> list[ev.Event]:
    """More of the response, as much as a test needs: the pipeline is cancelled in it."""
    return [text_delta(3 + i, " more") for i in range(20)]


async def test_a_consumer_that_leaves_early_is_not_given_what_was_held() -> None:
    # It asked for no more: close() is for a stream that ended, not one left behind.
    closes = CloseFails()
    wire = StreamBuilder(response_id="resp_l").message("see sand", chunk=4).events(end=None)

    async def body() -> AsyncGenerator[bytes, None]:
        yield to_sse(wire)
        await anyio.sleep_forever()

    chunks = body()
    events = aiter_events(chunks, processors=[LinkRewriter(), closes])
    async for event in events:
        if isinstance(event, ev.TextDelta):
            break
    await events.aclose()  # type: ignore[attr-defined]
    await chunks.aclose()  # the source is the caller's to close
    assert closes.closed == 0


async def test_an_end_after_the_message_was_held_gives_it_once() -> None:
    wire = StreamBuilder(response_id="resp_e").message("text sand", chunk=5).events(end=None)
    events = Assembler().feed(to_sse(wire))
    rewriter = LinkRewriter()
    sink = MemorySink()
    async with Pipeline(sink, processors=[rewriter]) as pipeline:
        await pipeline.run(source(events))
    completed = [e for e in sink.events if isinstance(e, ev.MessageCompleted)]
    assert len(completed) == 1
    assert rewriter.close() == []  # asked twice: nothing twice
    assert_in_order(sink.events)


async def test_close_asked_twice_gives_what_it_held_once() -> None:
    rewriter = LinkRewriter()
    out = rewriter.feed(text_delta(0, "see the sand"))
    first, second = rewriter.close(), rewriter.close()
    assert text_of([*out, *first]) == "see the sand"
    assert second == []
    assert_in_order([*out, *first])


@pytest.mark.parametrize("how", ["assembler part-read", "record"])
async def test_held_text_comes_out_with_a_given_assembler_or_a_recording(
    how: str, tmp_path: Any
) -> None:
    wire = StreamBuilder(response_id="resp_g").message("read sandbox:/mnt/da", chunk=4)
    data = to_sse(wire.events(end=None))
    cut = data.index(b"response.output_text.delta")  # the core reads up to the first delta
    asm = Assembler()
    before = asm.feed(data[:cut]) if how == "assembler part-read" else []

    async def rest() -> AsyncIterator[bytes]:
        yield data[cut:] if how == "assembler part-read" else data

    if how == "record":
        events = aiter_events(
            rest(), record=respflow.Recorder(tmp_path / "r.sse"), processors=[LinkRewriter()]
        )
    else:
        events = aiter_events(rest(), assembler=asm, processors=[LinkRewriter()])
    got = [*before, *[e async for e in events]]
    assert text_of(got) == "read sandbox:/mnt/da"
    assert_in_order(got)
    assert isinstance(got[-1], ev.StreamTruncated)


WORDS = ["sand", "sandbox:/mnt/da", "sandbox:/mnt/data/x.csv", "text", "s"]


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.tuples(st.sampled_from(["resp_A", "resp_B"]), st.sampled_from(WORDS))))
def test_interleaved_responses_keep_all_their_text(pieces: list[tuple[str, str]]) -> None:
    # A rewriter follows one response at a time: another's event used to drop what it
    # held of the first (a start of "sandbox:"), which then never reached anyone.
    events = [text_delta(n, f" {word}", rid) for n, (rid, word) in enumerate(pieces)]

    fed = LinkRewriter(lambda _rid, path: f"sandbox:{path}")
    one_by_one = [out for event in events for out in fed.feed(event)] + fed.close()
    for rid in ("resp_A", "resp_B"):
        sent = "".join(f" {word}" for r, word in pieces if r == rid)
        assert text_of([e for e in one_by_one if e.response_id == rid]) == sent
    assert_in_order(one_by_one)
    batched = LinkRewriter(lambda _rid, path: f"sandbox:{path}")
    assert batched.feed_all(events) + batched.close() == one_by_one
