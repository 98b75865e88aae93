"""Readers that rest between writes, attacked: they leave, lag, resume, or see the end
while resting, and nothing is lost, repeated, sent after the end or left running."""

from __future__ import annotations

from functools import partial
from typing import Any

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import respflow
from respflow import Hub, MemoryBroker
from respflow import _events as ev
from respflow._protocols.stream import ProtocolStream
from respflow.testing import LoopbackServer

from .test_app_serving import RID, SECRET, _bodies, _decoded, _events, _follow

pytestmark = pytest.mark.anyio


def _allow(request: Any, response_id: str) -> bool:
    return True


def _resumed_after_a_cut(count: int) -> list[ev.Event]:
    """A response cut short (its pipeline stopped: ``stream.truncated``), then resumed
    by another pipeline into the same hub: events after an end."""
    events = _events(count)[:-1]
    events.append(
        ev.StreamTruncated(RID, count + 1, f"{count + 1}-0", count, "the pipeline stopped")
    )
    return [*events, *_events(count + 3)[count + 2 :]]


async def test_a_hub_reader_gets_nothing_after_the_end_it_was_sent() -> None:
    events = _resumed_after_a_cut(6)
    end = next(n for n, e in enumerate(events) if isinstance(e, ev.END_TYPES))
    hub = Hub()
    reader = hub.subscribe(RID)
    for event in events:
        await hub.send(event)
    assert reader.ready(256) == events[: end + 1]
    assert reader.ready(256) == []
    with pytest.raises(StopAsyncIteration):
        await reader.__anext__()


@pytest.mark.parametrize("flush", [0.0, 1.0])
async def test_the_hub_app_ends_a_stream_at_its_end_even_if_more_came(flush: float) -> None:
    events = _resumed_after_a_cut(6)
    end = next(n for n, e in enumerate(events) if isinstance(e, ev.END_TYPES))
    hub = Hub()
    app = respflow.events_app(hub, authorize=_allow, flush=flush)
    await hub.send(events[0])
    got: list[bytes] = []
    async with anyio.create_task_group() as group:
        group.start_soon(_bodies, app, f"/events/{RID}", got)
        await anyio.wait_all_tasks_blocked()  # the first event went out; it rests
        for event in events[1:]:
            await hub.send(event)
    assert _decoded(b"".join(got)) == [(e.cursor, e) for e in events[: end + 1]]


async def test_a_hub_reader_that_lags_while_resting_is_told_so() -> None:
    hub = Hub(max_lag=5)
    app = respflow.events_app(hub, authorize=_allow, flush=1.0)
    events = _events(30)
    await hub.send(events[0])
    got: list[bytes] = []
    async with anyio.create_task_group() as group:
        group.start_soon(_bodies, app, f"/events/{RID}", got)
        await anyio.wait_all_tasks_blocked()
        for event in events[1:20]:
            await hub.send(event)
    body = b"".join(got)
    assert body.endswith(b"\n\n")
    assert body.count(b"event: lagged\ndata: ") == 1
    assert body.rstrip().rsplit(b"\n\n", 1)[-1].startswith(b"event: lagged")
    assert _decoded(body.split(b"event: lagged")[0]) == [(events[0].cursor, events[0])]


async def test_the_end_arriving_while_resting_ends_the_stream() -> None:
    broker = MemoryBroker()
    app = respflow.app(broker, secret=SECRET, flush=1.0)
    events = _events(5)
    await broker.publish(events[:2])
    got: list[bytes] = []
    async with anyio.create_task_group() as group:
        group.start_soon(_bodies, app, app.events_url(RID), got)
        await anyio.wait_all_tasks_blocked()
        await broker.publish(events[2:])
    assert _decoded(b"".join(got)) == [(e.cursor, e) for e in events]


async def test_a_heartbeat_shorter_than_the_rest_changes_nothing_sent() -> None:
    events = _events(30)
    streams = []
    for heartbeat, flush in ((15.0, 0.0), (0.001, 0.05)):
        broker = MemoryBroker()
        app = respflow.app(broker, secret=SECRET, flush=flush, heartbeat=heartbeat)
        bodies, _ = await _follow(app, events, broker)
        streams.append(b"".join(bodies).replace(b": keepalive\n\n", b""))
    assert streams[0] == streams[1]


@pytest.mark.parametrize("form", ["vercel", "ag-ui"])
@pytest.mark.parametrize("resume_at", [None, 0, 3, 12])
async def test_a_ui_protocol_resumed_while_events_come_says_the_same_when_paced(
    form: str, resume_at: int | None
) -> None:
    events = _events(20)
    after = None if resume_at is None else events[resume_at].cursor
    headers = {} if after is None else {"Last-Event-ID": after}
    one_by_one = ProtocolStream(form, after=after, inline_images=True)
    expected = b"".join(one_by_one.feed(event) for event in events) + one_by_one.close()
    for flush in (0.0, 0.2):
        broker = MemoryBroker()
        app = respflow.app(broker, secret=SECRET, flush=flush)
        await broker.publish(events[:5])
        got: list[bytes] = []
        async with anyio.create_task_group() as group:
            url = f"{app.events_url(RID)}&format={form}"
            group.start_soon(partial(_bodies, app, url, got, headers=headers))
            for event in events[5:]:
                await anyio.wait_all_tasks_blocked()
                await broker.publish([event])
        assert b"".join(got) == b"retry: 1000\n\n" + expected


async def test_many_resting_readers_each_get_every_event_once() -> None:
    broker = MemoryBroker()
    app = respflow.app(broker, secret=SECRET, flush=0.01)
    events = _events(60)
    await broker.publish(events[:1])
    readers: list[list[bytes]] = [[] for _ in range(40)]
    async with anyio.create_task_group() as group:
        for got in readers:
            group.start_soon(_bodies, app, app.events_url(RID), got)
        for n, event in enumerate(events[1:]):
            if n % 7 == 0:
                await anyio.wait_all_tasks_blocked()
            await broker.publish([event])
    expected = [(e.cursor, e) for e in events]
    for got in readers:
        assert _decoded(b"".join(got)) == expected


class _Watched(MemoryBroker):
    """Tells when each subscription it gave is closed."""

    def __init__(self) -> None:
        super().__init__()
        self.closed = anyio.Event()

    async def subscribe(self, response_id: str, *, after: str | None = None) -> Any:
        subscription = await super().subscribe(response_id, after=after)
        close = subscription.aclose

        async def aclose() -> None:
            try:
                await close()
            finally:  # it is closed in a cancelled scope
                self.closed.set()

        subscription.aclose = aclose  # type: ignore[method-assign]
        return subscription


@pytest.mark.parametrize("more", [True, False])
async def test_a_reader_that_leaves_while_resting_is_let_go(more: bool) -> None:
    broker = _Watched()
    # The heartbeat is far off: the reader is let go because it left, not at a write.
    app = respflow.app(broker, secret=SECRET, flush=1.0, heartbeat=15.0)
    events = _events(10)
    await broker.publish(events[:1])
    async with LoopbackServer(app) as server:
        host, port = server.url.removeprefix("http://").rstrip("/").split(":")
        async with await anyio.connect_tcp(host, int(port)) as client:
            request = f"GET {app.events_url(RID)} HTTP/1.1\r\nhost: {host}\r\n\r\n"
            await client.send(request.encode())
            got = b""
            while b"data: " not in got:
                got += await client.receive()
        # Gone while resting (the first event came), with or without events coming.
        if more:
            await broker.publish(events[1:5])
        with anyio.fail_after(10):
            await broker.closed.wait()


async def test_a_ui_reader_resumed_at_the_newest_event_gets_the_next_at_once() -> None:
    # Its catch-up writes nothing (every event is before its id; AG-UI would write a
    # snapshot): there is no write to rest after, so the next event is the first after a
    # quiet spell and goes out at once.
    form = "vercel"
    broker = MemoryBroker()
    app = respflow.app(broker, secret=SECRET, flush=1.0)
    events = _events(10)
    await broker.publish(events[:6])
    after = events[5].cursor
    got: list[bytes] = []
    async with anyio.create_task_group() as group:
        url = f"{app.events_url(RID)}&format={form}"
        group.start_soon(partial(_bodies, app, url, got, headers={"Last-Event-ID": after}))
        await anyio.wait_all_tasks_blocked()
        assert got == [b"retry: 1000\n\n"]
        await broker.publish(events[6:7])
        await anyio.wait_all_tasks_blocked()
        assert len(got) == 2  # the new event, not after a rest
        await broker.publish(events[7:])
    one_by_one = ProtocolStream(form, after=after, inline_images=True)
    expected = b"".join(one_by_one.feed(event) for event in events) + one_by_one.close()
    assert b"".join(got) == b"retry: 1000\n\n" + expected


@settings(max_examples=60, deadline=None)
@given(
    count=st.integers(1, 30),
    resumes=st.integers(0, 3),
    after=st.integers(-1, 100),
    limits=st.lists(st.integers(1, 40), min_size=1, max_size=5),
)
def test_ready_and_anext_agree_when_a_response_is_resumed_after_its_end(
    count: int, resumes: int, after: int, limits: list[int]
) -> None:
    # Each resume: the response cut (stream.truncated), then more of it from another
    # pipeline; a reader stops at the first end after where it starts, either way.
    events = _events(count)[:-1]
    for _ in range(resumes):
        seq = len(events)
        events.append(ev.StreamTruncated(RID, seq, f"{seq}-0", seq - 1, "stopped"))
        events += [
            ev.TextDelta(RID, n, f"{n}-0", "msg_1", 0, 0, "more") for n in range(seq + 1, seq + 4)
        ]
    events.append(ev.ResponseCompleted(RID, len(events), f"{len(events)}-0"))

    async def run() -> None:
        hub = Hub()
        for event in events:
            await hub.send(event)
        cursor = events[after].cursor if 0 <= after < len(events) else None
        one_by_one = [e async for e in hub.subscribe(RID, after=cursor)]
        reader = hub.subscribe(RID, after=cursor)
        mixed: list[ev.Event] = []
        turn = 0
        while True:
            batch = reader.ready(limits[turn % len(limits)])
            turn += 1
            mixed += batch
            if not batch:
                try:
                    mixed.append(await reader.__anext__())
                except StopAsyncIteration:
                    break
        assert mixed == one_by_one
        assert sum(isinstance(e, ev.END_TYPES) for e in mixed) <= 1

    anyio.run(run)
