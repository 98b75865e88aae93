"""A Pipeline runs consecutive feed-only processors as one step, and says the same.

``Pipeline.run`` gives each processor with ``process`` (like FileFetcher) its own stage,
and runs each run of consecutive processors that only have ``feed`` (LinkRewriter, the
app's file URLs) as one step: each event goes through all of them in turn, through
``feed_all`` where they have it. What reaches the sinks must be what the processors give
one stage each, event by event, in any order of processors and any batching of events.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Iterable
from typing import Any

import anyio
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from respflow import LinkRewriter, deliver
from respflow import _events as ev
from respflow.testing import MemorySink

from .test_rewrite_batches import responses

pytestmark = pytest.mark.anyio


class _Marks:
    """Feed only: sends each text delta twice, the second one marked."""

    def feed(self, event: ev.Event) -> list[ev.Event]:
        if isinstance(event, ev.TextDelta):
            return [event, msgspec.structs.replace(event, delta=event.delta + "|")]
        return [event]


class _DropsCode:
    """Feed only: lets no code delta through."""

    def feed(self, event: ev.Event) -> list[ev.Event]:
        return [] if isinstance(event, ev.CodeDelta) else [event]


class _Counts:
    """Passes everything, and counts the calls and events it got."""

    def __init__(self) -> None:
        self.calls = 0
        self.seen = 0

    def feed_all(self, events: Iterable[ev.Event]) -> list[ev.Event]:
        out = list(events)
        self.calls += 1
        self.seen += len(out)
        return out

    def feed(self, event: ev.Event) -> list[ev.Event]:
        return self.feed_all([event])


class _Alone:
    """A processor in a stage of its own, as a process() processor is: the reference."""

    def __init__(self, processor: Any) -> None:
        self.processor = processor

    @contextlib.asynccontextmanager
    async def process(
        self, events: AsyncIterable[ev.Event]
    ) -> AsyncIterator[AsyncIterator[ev.Event]]:
        async def fed() -> AsyncGenerator[ev.Event, None]:
            async for event in events:
                for out in self.processor.feed(event):
                    yield out

        generator = fed()
        try:
            yield generator
        finally:
            await generator.aclose()


def _make(name: str) -> Any:
    if name == "rewriter":
        return LinkRewriter()
    if name == "markdown":
        return LinkRewriter(markdown=True, max_hold=30)
    return {"marks": _Marks, "drops": _DropsCode}[name]()


async def _source(events: list[ev.Event]) -> AsyncIterator[ev.Event]:
    for event in events:
        yield event


async def _delivered(events: list[ev.Event], processors: list[Any]) -> list[ev.Event]:
    sink = MemorySink()
    with anyio.fail_after(20):
        failures = await deliver(_source(events), sink, processors=processors)
    assert failures == []
    return sink.events


names = st.lists(st.sampled_from(["rewriter", "markdown", "marks", "drops"]), max_size=4)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(responses("resp_1"), names, st.data())
async def test_feed_only_processors_in_one_step_give_what_a_stage_each_gives(
    events: list[ev.Event], order: list[str], data: st.DataObject
) -> None:
    # Now and then a process() stage between them, which splits the run of feed ones.
    alone = [data.draw(st.booleans()) for _ in order]
    fused = [_Alone(_make(n)) if a else _make(n) for n, a in zip(order, alone, strict=True)]
    reference = [_Alone(_make(n)) for n in order]
    assert await _delivered(events, fused) == await _delivered(events, reference)


async def test_a_feed_all_processor_after_a_rewriter_gets_each_event_once() -> None:
    events: list[ev.Event] = [
        ev.CodeDelta("resp_1", n, f"{n}-0", "ci_1", 0, "x") for n in range(20)
    ]
    counts = _Counts()
    seen = await _delivered(events, [LinkRewriter(), counts])
    assert seen[:-1] == events
    assert isinstance(seen[-1], ev.StreamTruncated)  # the response never ended
    assert counts.seen == 20
    assert counts.calls == 20  # the events come one at a time


async def test_a_process_stage_sees_what_the_feed_processors_before_it_let_through() -> None:
    events: list[ev.Event] = [ev.CodeDelta("resp_1", n, f"{n}-0", "ci_1", 0, "x") for n in range(5)]
    events.append(ev.TextDelta("resp_1", 5, "5-0", "msg_1", 1, 0, "hi"))
    before, after = _Counts(), _Counts()
    seen = await _delivered(events, [_DropsCode(), _Alone(before), after])
    assert [e.type for e in seen] == ["text.delta", "stream.truncated"]
    assert (before.seen, after.seen) == (1, 1)


async def test_a_processor_that_raises_in_the_step_raises_as_itself() -> None:
    class Breaks:
        def feed(self, event: ev.Event) -> list[ev.Event]:
            raise LookupError("no such thing")

    events: list[ev.Event] = [ev.CodeDelta("resp_1", 0, "0-0", "ci_1", 0, "x")]
    with pytest.raises(LookupError, match="no such thing"):
        await _delivered(events, [LinkRewriter(), Breaks()])
