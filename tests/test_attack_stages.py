"""Attacks on a Pipeline's run of feed-only processors as one stage.

Whatever a processor in the run does (raise part way, give many events for one, keep
state), the sinks get what they got with a stage per processor: what was delivered
before a failure stays delivered, the failure comes out as itself, and every ``process``
stage around the run is ended once, innermost first, however the run stops (a raise, the
consumer cancelled)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator
from typing import Any

import anyio
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from respflow import LinkRewriter, Pipeline, attach
from respflow import _events as ev
from respflow.testing import MemorySink

from .test_pipeline_stages import _Alone

pytestmark = pytest.mark.anyio


def _codes(count: int) -> list[ev.Event]:
    return [ev.CodeDelta("resp_1", n, f"{n}-0", "ci_1", 0, f"x{n}") for n in range(count)]


async def _source(events: list[ev.Event]) -> AsyncIterator[ev.Event]:
    for event in events:
        yield event


class _BreaksAt:
    """Feed only: raises on its ``at``-th event."""

    def __init__(self, at: int) -> None:
        self.at = at
        self.seen = 0

    def feed(self, event: ev.Event) -> list[ev.Event]:
        self.seen += 1
        if self.seen > self.at:
            raise LookupError(f"broke on event {self.seen}")
        return [event]


class _Fans:
    """Feed only, with state: each event out ``times`` times, numbered by a running count."""

    def __init__(self, times: int) -> None:
        self.times = times
        self.count = 0

    def feed(self, event: ev.Event) -> list[ev.Event]:
        out: list[ev.Event] = []
        for _ in range(self.times):
            self.count += 1
            if isinstance(event, ev.CodeDelta):
                out.append(msgspec.structs.replace(event, delta=f"{event.delta}.{self.count}"))
            else:
                out.append(event)
        return out


class _Ends:
    """A process() stage that notes when it starts and ends, in a shared log."""

    def __init__(self, name: str, log: list[str]) -> None:
        self.name, self.log = name, log

    @contextlib.asynccontextmanager
    async def process(
        self, events: AsyncIterable[ev.Event]
    ) -> AsyncIterator[AsyncIterator[ev.Event]]:
        async def passed() -> AsyncGenerator[ev.Event, None]:
            async for event in events:
                yield event

        generator = passed()
        self.log.append(f"start {self.name}")
        try:
            yield generator
        finally:
            await generator.aclose()
            self.log.append(f"end {self.name}")


async def _run(events: list[ev.Event], processors: list[Any]) -> tuple[list[ev.Event], Any]:
    sink = MemorySink()
    raised: BaseException | None = None
    with anyio.fail_after(20):
        try:
            async with Pipeline(sink, processors=processors) as pipeline:
                await pipeline.run(_source(events))
        except Exception as exc:
            raised = exc
    assert sink.closed == 1
    return sink.events, raised


def _make(kind: str, at: int) -> Any:
    if kind == "breaks":
        return _BreaksAt(at)
    if kind == "fans":
        return _Fans(3)
    return LinkRewriter()


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    st.lists(st.sampled_from(["breaks", "fans", "rewriter"]), min_size=1, max_size=5),
    st.integers(0, 12),
    st.integers(1, 10),
)
async def test_a_failure_anywhere_in_the_run_keeps_what_a_stage_each_delivered(
    kinds: list[str], at: int, count: int
) -> None:
    events = _codes(count)
    fused, fused_raised = await _run(events, [_make(k, at) for k in kinds])
    alone, alone_raised = await _run(events, [_Alone(_make(k, at)) for k in kinds])
    assert fused == alone
    assert type(fused_raised) is type(alone_raised)
    if fused_raised is not None:
        assert isinstance(fused_raised, LookupError)
        assert str(fused_raised) == str(alone_raised)


async def test_many_events_for_one_come_out_in_order_through_a_long_run() -> None:
    processors = [_Fans(1) for _ in range(60)] + [_Fans(200)]
    got, raised = await _run(_codes(3), processors)
    assert raised is None
    codes = [e for e in got if isinstance(e, ev.CodeDelta)]
    assert [e.delta for e in codes] == [
        f"x{n}" + "".join(f".{n + 1}" for _ in range(60)) + f".{k}"
        for n in range(3)
        for k in range(n * 200 + 1, n * 200 + 201)
    ]


@pytest.mark.parametrize("breaks", [None, 0, 2])
async def test_every_process_stage_around_the_run_ends_once_innermost_first(
    breaks: int | None,
) -> None:
    log: list[str] = []
    middle: list[Any] = [LinkRewriter(), _Fans(2)]
    if breaks is not None:
        middle.insert(1, _BreaksAt(breaks))
    processors = [_Ends("a", log), *middle, _Ends("b", log), _Fans(1), LinkRewriter()]
    got, raised = await _run(_codes(5), processors)
    assert log == ["start a", "start b", "end b", "end a"]
    if breaks is None:
        assert raised is None
        assert len([e for e in got if isinstance(e, ev.CodeDelta)]) == 10
    else:
        assert isinstance(raised, LookupError)
        assert len([e for e in got if isinstance(e, ev.CodeDelta)]) == 2 * breaks


async def test_the_consumer_cancelled_mid_run_ends_every_stage_once_and_tells_the_sink() -> None:
    log: list[str] = []
    sink = MemorySink()
    reached = anyio.Event()

    class Waits:
        def feed(self, event: ev.Event) -> list[ev.Event]:
            if event.sequence_number == 3:
                reached.set()
            return [event]

    async def slow(events: list[ev.Event]) -> AsyncIterator[ev.Event]:
        for event in events:
            yield event
            if event.sequence_number >= 3:
                await anyio.sleep_forever()

    processors = [_Ends("a", log), LinkRewriter(), Waits(), _Fans(1), _Ends("b", log)]
    with anyio.fail_after(20):
        async with anyio.create_task_group() as group:

            async def consume() -> None:
                async with Pipeline(attach(sink), processors=processors) as pipeline:
                    await pipeline.run(slow(_codes(8)))

            group.start_soon(consume)
            await reached.wait()
            await anyio.wait_all_tasks_blocked()
            group.cancel_scope.cancel()
    assert log == ["start a", "start b", "end b", "end a"]
    assert sink.closed == 1
    assert [e.sequence_number for e in sink.events[:-1]] == [0, 1, 2, 3]
    assert isinstance(sink.events[-1], ev.StreamTruncated)


async def test_a_processor_with_feed_all_in_the_run_is_fed_each_event_once() -> None:
    class Both:
        def __init__(self) -> None:
            self.fed: list[str] = []

        def feed(self, event: ev.Event) -> list[ev.Event]:
            self.fed.append(event.cursor)
            return [event]

        def feed_all(self, events: list[ev.Event]) -> list[ev.Event]:  # never both
            return [out for event in events for out in self.feed(event)]

    both = Both()
    got, raised = await _run(_codes(6), [LinkRewriter(), both, _Fans(1)])
    assert raised is None
    assert both.fed == [f"{n}-0" for n in range(6)]
    assert len(got) == 7  # and the stream.truncated the unfinished response ends with


@pytest.mark.parametrize("where", ["processor", "none"])
async def test_the_events_given_to_run_are_closed_however_it_stops(where: str) -> None:
    closed: list[bool] = []

    async def source() -> AsyncIterator[ev.Event]:
        try:
            for event in _codes(5):
                yield event
        finally:
            closed.append(True)

    processors: list[Any] = [LinkRewriter(), _BreaksAt(2)] if where == "processor" else []
    sink = MemorySink()
    with anyio.fail_after(20), contextlib.suppress(LookupError):
        async with Pipeline(sink, processors=processors) as pipeline:
            await pipeline.run(source())
    assert closed == [True]
