"""Delivery under hostile conditions: sinks that hang, errors that must keep their type,
secrets that must not reach a log, readers the hub must not lose, ids a URL cannot hold."""

from __future__ import annotations

from collections.abc import AsyncIterator
from importlib import resources

import anyio
import httpx2
import openai
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import respflow
from respflow import (
    AuthenticationFailed,
    FileFetcher,
    Hub,
    Lagged,
    Pipeline,
    Policy,
    StreamDropped,
    StreamError,
    StreamTruncated,
    TooOld,
    attach,
    deliver,
)
from respflow.testing import LoopbackServer, MemorySink, MockServer, Recording, StreamBuilder

pytestmark = pytest.mark.anyio

SAMPLE_BYTES = resources.files("respflow").joinpath("samples", "code_interpreter.sse").read_bytes()
SAMPLE = Recording.from_bytes(SAMPLE_BYTES)
EVENTS = list(respflow.replay(SAMPLE_BYTES))
# Generous: the fixed code returns within a fraction of it; the old code never returned.
NEVER = 20


async def _events(pause: float = 0.0) -> AsyncIterator[respflow.Event]:
    for event in EVENTS:
        if pause:
            await anyio.sleep(pause)
        yield event


class StuckSink(MemorySink):
    """A consumer that stops taking events for good after ``after`` of them, as a
    websocket whose peer stopped reading does: its ``send`` never returns."""

    def __init__(self, after: int) -> None:
        super().__init__()
        self.after = after

    async def send(self, event: respflow.Event) -> None:
        if len(self.events) >= self.after:
            await anyio.sleep_forever()
        await super().send(event)


# -- 11: a sink stuck in send() ----------------------------------------------------------


@pytest.mark.parametrize("policy", ["drop_oldest", "disconnect"])
async def test_a_stuck_sink_that_never_holds_the_stream_back_does_not_hold_up_its_end(
    anyio_backend: str, policy: Policy
) -> None:
    good, stuck = MemorySink(), StuckSink(after=3)
    with anyio.fail_after(NEVER):
        async with Pipeline(
            good,
            attach(stuck, policy=policy, buffer=4),
            close_timeout=0.2,
        ) as pipeline:
            for event in EVENTS:
                await pipeline.publish(event)
                await anyio.sleep(0)  # the stuck sink takes its first events, then hangs
    assert good.events == EVENTS
    assert stuck.closed == 1
    assert len(stuck.events) <= 3
    [(name, why)] = pipeline.failures
    assert name == "StuckSink"
    assert "took no event" in str(why)


@pytest.mark.parametrize("policy", ["block", "drop_oldest", "disconnect"])
async def test_a_stuck_sink_is_closed_when_the_pipeline_is_cancelled(
    anyio_backend: str, policy: Policy
) -> None:
    good, stuck = MemorySink(), StuckSink(after=2)
    with anyio.fail_after(NEVER), anyio.CancelScope() as scope:
        async with Pipeline(
            good,
            attach(stuck, policy=policy, buffer=64),
            close_timeout=0.2,
        ) as pipeline:
            for event in EVENTS:
                await pipeline.publish(event)
                if len(good.events) >= 10:
                    scope.cancel()
                await anyio.sleep(0)
    assert stuck.closed == 1  # its notice could not get through; it is closed all the same
    assert good.closed == 1
    assert isinstance(good.events[-1], StreamTruncated)


sink_kinds = st.lists(
    st.tuples(
        st.sampled_from(["drop_oldest", "disconnect"]),
        st.one_of(st.none(), st.integers(min_value=0, max_value=60)),  # stuck after n
        st.integers(min_value=1, max_value=8),
    ),
    min_size=1,
    max_size=4,
)


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(kinds=sink_kinds, cancel_after=st.one_of(st.none(), st.integers(0, len(EVENTS))))
async def test_every_sink_is_closed_exactly_once_whatever_it_does(
    anyio_backend: str, kinds: list[tuple[str, int | None, int]], cancel_after: int | None
) -> None:
    sinks = [MemorySink() if stuck is None else StuckSink(stuck) for _, stuck, _ in kinds]
    block = MemorySink()  # a sink that keeps up, beside them
    attached = [
        attach(sink, policy=policy, buffer=buffer)  # type: ignore[arg-type]
        for sink, (policy, _, buffer) in zip(sinks, kinds, strict=True)
    ]
    with anyio.fail_after(NEVER), anyio.CancelScope() as scope:
        async with Pipeline(block, *attached, close_timeout=0.05) as pipeline:
            for published, event in enumerate(EVENTS):
                if published == cancel_after:
                    scope.cancel()
                await pipeline.publish(event)
                await anyio.sleep(0)
    for sink in [block, *sinks]:
        assert sink.closed == 1
        cursors = [respflow.parse_cursor(e.cursor) for e in sink.events]
        assert cursors == sorted(cursors)
    if cancel_after is None:
        assert block.events == EVENTS
    else:
        assert isinstance(block.events[-1], StreamTruncated)
    for sink, (policy, stuck, _) in zip(sinks, kinds, strict=True):
        if stuck is None and cancel_after is None and policy == "drop_oldest":
            got = [e for e in sink.events if not isinstance(e, StreamDropped | StreamError)]
            assert got[-1] == EVENTS[-1]  # a sink that keeps taking gets the end


# -- 12: typed errors before the first event ---------------------------------------------


async def test_a_wrong_key_through_deliver_is_authentication_failed_itself(
    anyio_backend: str,
) -> None:
    async with (
        MockServer(SAMPLE) as mock,
        openai.AsyncOpenAI(base_url=mock.openai_base_url, api_key="sk-wrong", max_retries=0) as sdk,
    ):
        sink = MemorySink()
        with pytest.raises(AuthenticationFailed, match="HTTP 401"):
            await deliver(respflow.stream(sdk, model="m", input="x"), sink)
        assert sink.events == []
        assert sink.closed == 1
        # Through a processor that runs its own tasks (the file fetcher) too.
        with pytest.raises(AuthenticationFailed, match="HTTP 401"):
            await deliver(
                respflow.stream(sdk, model="m", input="x"), sink, processors=[FileFetcher(sdk)]
            )
        with pytest.raises(respflow.ConnectionFailed):
            async with openai.AsyncOpenAI(
                base_url="http://127.0.0.1:9/v1", api_key="sk-mock-openai", max_retries=0
            ) as nowhere:
                await deliver(respflow.stream(nowhere, model="m", input="x"), MemorySink())


# -- 14: the hub keeps live responses and says when a cursor is too old ------------------

RID = EVENTS[0].response_id


def _as(response_id: str, events: list[respflow.Event] = EVENTS) -> list[respflow.Event]:
    return [
        respflow.decode_event(respflow.encode_event(e).replace(RID.encode(), response_id.encode()))
        for e in events
    ]


async def _read(reader: AsyncIterator[respflow.Event]) -> list[respflow.Event]:
    return [event async for event in reader]


async def test_subscribing_to_unknown_responses_evicts_no_live_one(anyio_backend: str) -> None:
    hub = Hub(max_responses=2)
    got: list[respflow.Event] = []

    async def follow() -> None:
        got.extend(await _read(hub.subscribe(RID)))

    async with anyio.create_task_group() as group:
        await hub.send(EVENTS[0])
        group.start_soon(follow)
        await anyio.sleep(0)
        for n in range(5_000):  # anyone may ask for ids that never come
            hub.subscribe(f"resp_unknown_{n}")
        for event in EVENTS[1:]:
            await hub.send(event)
    assert got == EVENTS  # the live response's reader got its end
    assert hub.responses() == [RID]  # asking for an id stores nothing
    assert await _read(hub.subscribe(RID, after=EVENTS[9].cursor)) == EVENTS[10:]


async def test_a_reader_waiting_for_a_response_gets_it_when_it_comes(anyio_backend: str) -> None:
    hub = Hub(max_responses=1)
    got: list[respflow.Event] = []
    later = "resp_later"

    async def follow() -> None:
        got.extend(await _read(hub.subscribe(later, after=None)))

    async with anyio.create_task_group() as group:
        group.start_soon(follow)
        await anyio.sleep(0)
        for event in EVENTS:  # another response comes and goes first
            await hub.send(event)
        for event in _as(later):
            await hub.send(event)
    assert got == _as(later)


async def test_a_live_response_pushed_out_by_newer_ones_tells_its_readers(
    anyio_backend: str,
) -> None:
    hub = Hub(max_responses=1)
    reader = hub.subscribe(RID)
    for event in EVENTS[:10]:
        await hub.send(event)
    for event in _as("resp_newer"):  # a newer response takes the only place
        await hub.send(event)
    with pytest.raises(Lagged, match="reconnect"):
        await _read(reader)  # never a silent end without an end event
    for event in EVENTS[10:]:  # the first response goes on; its start is gone
        await hub.send(event)
    with pytest.raises(TooOld):
        hub.subscribe(RID, after=EVENTS[3].cursor)
    assert await _read(hub.subscribe(RID, after=EVENTS[20].cursor)) == EVENTS[21:]


async def test_a_cursor_older_than_what_the_hub_saw_is_too_old_even_if_it_was_waiting(
    anyio_backend: str,
) -> None:
    hub = Hub()
    reader = hub.subscribe(RID, after=EVENTS[3].cursor)  # the hub has not seen it yet
    for event in EVENTS[10:]:  # it only ever sees the response from the middle
        await hub.send(event)
    with pytest.raises(TooOld):
        await _read(reader)
    # From the start of what it has, or from a cursor it has: exactly the rest.
    assert await _read(hub.subscribe(RID)) == EVENTS[10:]
    assert await _read(hub.subscribe(RID, after=EVENTS[10].cursor)) == EVENTS[11:]


async def test_a_browser_waiting_with_an_old_cursor_hears_it_is_too_old(
    anyio_backend: str,
) -> None:
    hub = Hub()
    app = respflow.events_app(hub, authorize=lambda request, rid: True)
    async with (
        LoopbackServer(app) as server,
        httpx2.AsyncClient(base_url=server.url) as http,
        http.stream("GET", f"/events/{RID}", headers={"last-event-id": EVENTS[3].cursor}) as sse,
    ):
        for event in EVENTS[10:]:  # the hub only ever sees the response from the middle
            await hub.send(event)
        body = (await sse.aread()).decode()
    assert "event: too_old" in body
    assert "data: {" not in body  # no event that would hide the gap


# -- 21: a response id that cannot go into a URL -----------------------------------------

FAST = respflow.Reconnect(attempts=2, initial_delay=0.0)


def _recording(response_id: str) -> Recording:
    built = StreamBuilder(response_id=response_id, background=True)
    return Recording.from_events(built.code_call("print(1)", logs="1\n").message("one").events())


async def _cut_background_stream(response_id: str) -> list[respflow.Event]:
    async with (
        MockServer(_recording(response_id), cut_after=5) as mock,
        openai.AsyncOpenAI(
            base_url=mock.openai_base_url, api_key="sk-mock-openai", max_retries=0
        ) as sdk,
        respflow.stream(sdk, model="m", input="x", background=True, reconnect=FAST) as events,
    ):
        return [event async for event in events]


def _ends_once_and_last(got: list[respflow.Event]) -> None:
    ends = [e for e in got if isinstance(e, respflow.END_TYPES)]
    assert len(ends) == 1
    assert got[-1] is ends[0]


@pytest.mark.parametrize("response_id", [".", ".."])
async def test_a_cut_stream_whose_id_cannot_be_a_url_segment_ends_with_an_error_event(
    anyio_backend: str, response_id: str
) -> None:
    got = await _cut_background_stream(response_id)
    assert got[0].type == "response.started"
    _ends_once_and_last(got)
    assert isinstance(got[-1], StreamTruncated)
    [error] = [e for e in got if isinstance(e, StreamError)]
    assert error.code == "resume_failed"
    assert "cannot be resumed" in error.message


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(response_id=st.one_of(st.sampled_from([".", "..", "a/..", "%2e%2e"]), st.text(max_size=12)))
async def test_any_server_chosen_id_ends_a_cut_stream_with_one_end_and_no_exception(
    anyio_backend: str, response_id: str
) -> None:
    _ends_once_and_last(await _cut_background_stream(response_id))


async def test_resume_and_cancel_refuse_an_id_that_cannot_be_a_url_segment(
    anyio_backend: str,
) -> None:
    async with (
        MockServer(SAMPLE) as mock,
        openai.AsyncOpenAI(base_url=mock.openai_base_url, api_key="sk-mock-openai") as sdk,
    ):
        for bad in (".", "..", "", "a/../b"):
            with pytest.raises(respflow.UsageError, match="response id"):
                await respflow.cancel(sdk, bad)
            with pytest.raises(respflow.UsageError, match="response id"):
                async with respflow.resume(sdk, bad) as events:
                    await events.__anext__()
        assert mock.requests == []  # nothing went out
