"""``aiter_events`` with processors attacked: processors that raise anywhere, sources
that fail, LinkRewriters fed their own way (subclasses, mixins, methods replaced on the
instance). The events are those of feeding each event in turn; a processor's exception
comes out as it was raised with the source closed; a source's failure is a fatal
``stream.error`` and the end."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from respflow import Assembler, LinkRewriter, aiter_events
from respflow import _events as ev
from respflow.testing import StreamBuilder, to_sse

pytestmark = pytest.mark.anyio

WIRE = to_sse(
    StreamBuilder(response_id="resp_d")
    .code_call("print(1)", chunk=3)
    .message("see sandbox:/mnt/data/a.csv and sandbox:/mnt/da", chunk=5)
    .events()
)


class Source:
    """The wire in chunks of ``size`` bytes, then maybe a failure; knows if it was closed."""

    def __init__(self, size: int, fail: bool = False, cut: int | None = None) -> None:
        self.size, self.fail, self.closed = size, fail, False
        self.wire = WIRE[:cut]

    async def chunks(self) -> AsyncGenerator[bytes, None]:
        try:
            for start in range(0, len(self.wire), self.size):
                yield self.wire[start : start + self.size]
            if self.fail:
                raise ConnectionResetError("the peer hung up")
        finally:
            self.closed = True


def one_by_one(processors: Sequence[Any]) -> list[ev.Event]:
    """Every event of the wire fed to each processor in turn: what aiter_events must give."""
    events = Assembler().feed(WIRE)
    for processor in processors:
        events = [out for event in events for out in processor.feed(event)]
    return events


async def read(source: Source, processors: Sequence[Any]) -> list[ev.Event]:
    return [e async for e in aiter_events(source.chunks(), processors=processors)]


class RaisesAt:
    """Passes events on, and raises on the ``n``-th one it is given."""

    def __init__(self, n: int) -> None:
        self.n = n

    def feed(self, event: ev.Event) -> list[ev.Event]:
        self.n -= 1
        if self.n < 0:
            raise KeyError(f"no place for {event.cursor}")
        return [event]


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.integers(0, 40), st.integers(1, 200), st.booleans())
async def test_a_processor_raising_anywhere_comes_out_as_raised_with_the_source_closed(
    n: int, size: int, after_a_rewriter: bool
) -> None:
    n %= len(one_by_one([]))  # the rewriter passes as many events as it is given here
    raising = RaisesAt(n)
    processors: list[Any] = [LinkRewriter(), raising] if after_a_rewriter else [raising]
    source = Source(size)
    got: list[ev.Event] = []

    async def take_all() -> None:
        async for event in aiter_events(source.chunks(), processors=processors):
            got.append(event)

    with pytest.raises(KeyError, match="no place for") as raised:
        await take_all()
    assert type(raised.value) is KeyError
    assert source.closed
    expected = one_by_one([LinkRewriter()] if after_a_rewriter else [])
    assert got == expected[: len(got)]
    assert len(got) <= n


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.integers(1, 300), st.integers(0, 2), st.integers(1, len(WIRE) - 1))
async def test_a_source_failing_is_a_fatal_error_then_the_end_through_any_processors(
    size: int, rewriters: int, cut: int
) -> None:
    source = Source(size, fail=True, cut=cut)
    got = await read(source, [LinkRewriter() for _ in range(rewriters)])
    fatal = [i for i, e in enumerate(got) if isinstance(e, ev.StreamError) and e.fatal]
    assert fatal
    ended = [i for i, e in enumerate(got) if isinstance(e, ev.END_TYPES)]
    assert len(ended) == 1  # one end, whoever says it: the wire's or the truncation
    # The end is last, or the response had ended and then heard its connection broke.
    assert len(got) - 1 in (ended[0], fatal[-1])
    assert source.closed
    keys = [tuple(map(int, e.cursor.rsplit("-", 1))) for e in got]
    assert keys == sorted(set(keys))


class CountsFeed:
    seen = 0

    def feed(self, event: ev.Event) -> list[ev.Event]:
        type(self).seen += 1
        return super().feed(event)  # type: ignore[misc, no-any-return]


class CountsFeedAll:
    seen = 0

    def feed_all(self, events: Any) -> list[ev.Event]:
        events = list(events)
        type(self).seen += len(events)
        return super().feed_all(events)  # type: ignore[misc, no-any-return]


class FeedMixed(CountsFeed, LinkRewriter):
    pass


class FeedAllMixed(CountsFeedAll, LinkRewriter):
    pass


@pytest.mark.parametrize("mixed", [FeedMixed, FeedAllMixed])
async def test_a_rewriter_with_a_mixin_of_its_own_sees_every_event(mixed: Any) -> None:
    mixed.seen = 0
    got = await read(Source(7), [mixed()])
    assert got == one_by_one([LinkRewriter()])
    assert mixed.seen == len(Assembler().feed(WIRE))


async def test_a_feed_replaced_on_the_instance_sees_every_event() -> None:
    # A wrapper that traces, or mock.patch.object: aiter_events took the class's batch
    # path, which sent only the events with a link in them through it.
    rewriter = LinkRewriter()
    seen: list[ev.Event] = []
    own_feed = rewriter.feed

    def traced(event: ev.Event) -> list[ev.Event]:
        seen.append(event)
        return own_feed(event)

    rewriter.feed = traced  # type: ignore[method-assign]
    got = await read(Source(7), [rewriter])
    assert got == one_by_one([LinkRewriter()])
    assert seen == Assembler().feed(WIRE)


async def test_a_feed_all_replaced_on_the_instance_is_called() -> None:
    rewriter = LinkRewriter()
    batches: list[int] = []
    own_feed_all = rewriter.feed_all

    def counted(events: Any) -> list[ev.Event]:
        events = list(events)
        batches.append(len(events))
        return own_feed_all(events)

    rewriter.feed_all = counted  # type: ignore[method-assign]
    got = await read(Source(7), [rewriter])
    assert got == one_by_one([LinkRewriter()])
    assert sum(batches) == len(Assembler().feed(WIRE))
