"""How respflow.app writes a response's events to a reader: what is there when the reader
wakes goes out in one write, each frame is the same for every reader, the UI protocols
say exactly what they say event by event, and an idle reader still gets its heartbeat."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

import respflow
from respflow import MemoryBroker, SSEDecoder
from respflow import _events as ev
from respflow._protocols.stream import ProtocolStream

from ._asgi import http_scope

pytestmark = pytest.mark.anyio

SECRET = "a-secret-of-32-bytes-for-tests!!"
RID = "resp_serving"


def _events(count: int) -> list[ev.Event]:
    events: list[ev.Event] = [ev.ResponseStarted(RID, 0, "0-0")]
    for seq in range(1, count + 1):
        events.append(ev.TextDelta(RID, seq, f"{seq}-0", "msg_1", 0, 0, f"word {seq} "))
    end = count + 1
    events.append(ev.ResponseCompleted(RID, end, f"{end}-0"))
    return events


async def _bodies(
    app: respflow.App,
    url: str,
    into: list[bytes] | None = None,
    *,
    headers: dict[str, str] | None = None,
) -> list[bytes]:
    """The body messages the app sends for a GET of ``url`` (added to ``into`` as they
    are sent), until the stream ends."""
    scope = http_scope(url, headers=headers)
    bodies: list[bytes] = [] if into is None else into
    asked = False
    ended = anyio.Event()

    async def receive() -> dict[str, Any]:
        nonlocal asked
        if not asked:
            asked = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await ended.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            assert message["status"] == 200
        elif message["type"] == "http.response.body":
            if message.get("body"):
                bodies.append(message["body"])
            if not message.get("more_body", False):
                ended.set()

    with anyio.fail_after(20):
        await app(scope, receive, send)
    return bodies


def _decoded(body: bytes) -> list[tuple[str | None, ev.Event]]:
    return [
        (frame.id, respflow.decode_event(frame.data))
        for frame in SSEDecoder().feed(body)
        if isinstance(frame, respflow.Frame) and frame.data
    ]


async def test_a_reader_behind_gets_what_is_there_in_one_write() -> None:
    broker = MemoryBroker()
    app = respflow.app(broker, secret=SECRET)
    events = _events(100)
    await broker.publish(events)
    bodies = await _bodies(app, app.events_url(RID))
    assert bodies[0] == b"retry: 1000\n\n"
    assert len(bodies) == 2  # every event in the second write
    assert _decoded(bodies[1]) == [(e.cursor, e) for e in events]


async def test_a_long_way_behind_is_written_in_bounded_pieces() -> None:
    broker = MemoryBroker()
    app = respflow.app(broker, secret=SECRET)
    events = _events(1000)
    await broker.publish(events)
    bodies = await _bodies(app, app.events_url(RID))
    assert 2 < len(bodies) < 10
    assert _decoded(b"".join(bodies)) == [(e.cursor, e) for e in events]


async def test_every_reader_gets_the_same_bytes_and_a_resumed_one_the_rest() -> None:
    broker = MemoryBroker()
    app = respflow.app(broker, secret=SECRET)
    events = _events(20)
    await broker.publish(events)
    url = app.events_url(RID)
    first, second = b"".join(await _bodies(app, url)), b"".join(await _bodies(app, url))
    assert first == second
    resumed = b"".join(await _bodies(app, url, headers={"Last-Event-ID": events[10].cursor}))
    assert _decoded(resumed) == [(e.cursor, e) for e in events[11:]]


async def test_readers_following_a_response_as_it_is_published_get_all_of_it() -> None:
    broker = MemoryBroker()
    app = respflow.app(broker, secret=SECRET)
    events = _events(60)
    await broker.publish(events[:1])
    got: list[list[bytes]] = []

    async def read() -> None:
        got.append(await _bodies(app, app.events_url(RID)))

    async with anyio.create_task_group() as group:
        for _ in range(3):
            group.start_soon(read)
        for at in range(1, len(events), 7):  # in batches, with readers waiting between
            await anyio.wait_all_tasks_blocked()
            await broker.publish(events[at : at + 7])
    for bodies in got:
        assert _decoded(b"".join(bodies)) == [(e.cursor, e) for e in events]


@pytest.mark.parametrize("form", ["vercel", "ag-ui"])
@pytest.mark.parametrize("resume_at", [None, 5, 30])
async def test_a_ui_protocol_says_what_it_says_event_by_event(
    form: str, resume_at: int | None
) -> None:
    broker = MemoryBroker()
    app = respflow.app(broker, secret=SECRET)
    events = _events(40)
    await broker.publish(events)
    after = None if resume_at is None else events[resume_at].cursor
    headers = {} if after is None else {"Last-Event-ID": after}
    bodies = await _bodies(app, f"{app.events_url(RID)}&format={form}", headers=headers)
    one_by_one = ProtocolStream(form, after=after, inline_images=True)
    expected = b"".join(one_by_one.feed(event) for event in events) + one_by_one.close()
    assert b"".join(bodies) == b"retry: 1000\n\n" + expected


async def test_an_idle_reader_gets_a_heartbeat_and_then_the_events() -> None:
    broker = MemoryBroker()
    app = respflow.app(broker, secret=SECRET, heartbeat=0.01)
    events = _events(3)
    await broker.publish(events[:1])
    got: list[bytes] = []

    async def read() -> None:
        await _bodies(app, app.events_url(RID), got)

    async with anyio.create_task_group() as group:
        group.start_soon(read)
        with anyio.fail_after(20):
            while b": keepalive\n\n" not in got:
                await anyio.sleep(0.01)
        await broker.publish(events[1:])
    assert _decoded(b"".join(got)) == [(e.cursor, e) for e in events]


async def test_a_long_answer_reaches_every_reader_whole() -> None:
    broker = MemoryBroker()
    app = respflow.app(broker, secret=SECRET)
    text = "All work and no play makes Jack a dull boy. " * 5000  # past what is kept shared
    events: list[ev.Event] = [
        ev.ResponseStarted(RID, 0, "0-0"),
        ev.TextDone(RID, 1, "1-0", "msg_1", 0, 0, text),
        ev.ResponseCompleted(RID, 2, "2-0"),
    ]
    await broker.publish(events)
    for _ in range(2):
        body = b"".join(await _bodies(app, app.events_url(RID)))
        assert _decoded(body) == [(e.cursor, e) for e in events]


async def _follow(
    app: respflow.App, events: list[ev.Event], broker: MemoryBroker
) -> tuple[list[bytes], list[int]]:
    """A reader following ``events`` published one by one, each once every task waits;
    the bodies it got, and how many events had been published at each of its writes."""
    await broker.publish(events[:1])
    published = 1
    at_write: list[int] = []

    class Watched(list[bytes]):
        def append(self, body: bytes) -> None:
            at_write.append(published)
            super().append(body)

    watched = Watched()
    async with anyio.create_task_group() as group:
        group.start_soon(_bodies, app, app.events_url(RID), watched)
        for event in events[1:]:
            await anyio.wait_all_tasks_blocked()
            published += 1
            await broker.publish([event])
    return list(watched), at_write


async def test_events_that_come_while_a_reader_rests_go_out_in_one_write() -> None:
    broker = MemoryBroker()
    events = _events(30)
    bodies, at_write = await _follow(respflow.app(broker, secret=SECRET, flush=1.0), events, broker)
    # The first event goes out at once; the rest come while the reader rests after that
    # write, and go out together when it wakes.
    assert at_write[:2] == [1, 1]
    assert len(bodies) == 3
    assert _decoded(b"".join(bodies)) == [(e.cursor, e) for e in events]


async def test_without_flush_each_event_goes_out_as_the_reader_wakes() -> None:
    broker = MemoryBroker()
    events = _events(30)
    bodies, at_write = await _follow(respflow.app(broker, secret=SECRET, flush=0), events, broker)
    assert len(bodies) == 1 + len(events)
    assert at_write == [1, *range(1, len(events) + 1)]
    assert _decoded(b"".join(bodies)) == [(e.cursor, e) for e in events]


async def test_flushing_changes_when_bytes_go_out_never_which() -> None:
    events = _events(40)
    streams = []
    for flush in (0.0, 0.01, 1.0):
        broker = MemoryBroker()
        bodies, _ = await _follow(respflow.app(broker, secret=SECRET, flush=flush), events, broker)
        streams.append(b"".join(bodies))
    assert streams[0] == streams[1] == streams[2]


async def test_a_reader_that_rested_through_a_quiet_spell_gets_the_next_event_at_once() -> None:
    broker = MemoryBroker()
    app = respflow.app(broker, secret=SECRET, flush=0.01)
    events = _events(2)
    await broker.publish(events[:1])
    got: list[bytes] = []
    async with anyio.create_task_group() as group:
        group.start_soon(_bodies, app, app.events_url(RID), got)
        await anyio.sleep(0.3)  # long past its rest: it waits for the next event
        await anyio.wait_all_tasks_blocked()
        await broker.publish(events[1:2])
        await anyio.wait_all_tasks_blocked()
        assert _decoded(b"".join(got)) == [(e.cursor, e) for e in events[:2]]
        await broker.publish(events[2:])
    assert _decoded(b"".join(got)) == [(e.cursor, e) for e in events]


@pytest.mark.parametrize("flush", [-0.1, 1.5, float("nan")])
async def test_a_flush_out_of_range_is_refused(flush: float) -> None:
    with pytest.raises(respflow.UsageError, match="flush must be 0 to 1 seconds"):
        respflow.app(MemoryBroker(), secret=SECRET, flush=flush)


async def test_the_hub_app_paces_its_readers_the_same_way() -> None:
    hub = respflow.Hub()
    app = respflow.events_app(hub, authorize=lambda request, rid: True, flush=1.0)
    events = _events(30)
    await hub.send(events[0])
    got: list[bytes] = []
    async with anyio.create_task_group() as group:
        group.start_soon(_bodies, app, f"/events/{RID}", got)
        await anyio.wait_all_tasks_blocked()
        assert len(got) == 2  # the first event at once; the reader now rests
        for event in events[1:]:
            await hub.send(event)
    assert len(got) == 3
    assert _decoded(b"".join(got)) == [(e.cursor, e) for e in events]


async def test_the_hub_app_refuses_a_flush_out_of_range() -> None:
    with pytest.raises(respflow.UsageError, match="flush must be 0 to 1 seconds"):
        respflow.events_app(respflow.Hub(), flush=2)


@pytest.mark.parametrize("heartbeat", [0, -1.0, float("inf"), float("nan")])
async def test_the_hub_app_refuses_a_heartbeat_that_would_spin_or_never_come(
    heartbeat: float,
) -> None:
    with pytest.raises(respflow.UsageError, match="heartbeat must be a positive number"):
        respflow.events_app(respflow.Hub(), heartbeat=heartbeat)
