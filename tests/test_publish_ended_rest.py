"""A rest of a response's readers ends at the first publish once it is due, so readers
write in the wake-up the producer makes anyway rather than in one of a timer's own: the
end of the response ends it at once, a quiet spell after a burst still delivers the
burst (a fallback, ``LATE`` flushes past the tick), every reader gets every event once
and in order, and nothing of a rest is left on the broker's log once readers are gone.
A flush changed while readers follow a response holds from their next rest."""

from __future__ import annotations

import gc
from functools import partial

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import respflow
from respflow import Hub, MemoryBroker
from respflow import _events as ev
from respflow._delivery.broker import _MemorySubscription
from respflow._server import pacing
from respflow._server.pacing import Tick

from .test_app_serving import RID, SECRET, _bodies, _decoded, _events

pytestmark = pytest.mark.anyio


@pytest.fixture
def no_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rests end only at a publish (the fallback is hours away)."""
    monkeypatch.setattr(pacing, "LATE", 1e6)


async def _resting(tick: Tick, on_publish: pacing.OnPublish, ended: list[int]) -> None:
    await tick.rest(on_publish)
    ended.append(1)


async def test_a_rest_past_its_tick_ends_at_the_next_publish(no_fallback: None) -> None:
    broker = MemoryBroker()
    events = _events(3)
    await broker.publish(events[:1])
    subscription = await broker.subscribe(RID)
    assert isinstance(subscription, _MemorySubscription)
    tick = Tick(0.01)
    ended: list[int] = []
    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            for _ in range(5):  # one sleeps, four join its rest
                group.start_soon(_resting, tick, subscription.on_publish, ended)
            await anyio.sleep(0.05)  # past the tick: no timer ends the rest
            await anyio.wait_all_tasks_blocked()
            assert ended == []
            await broker.publish(events[1:2])
    assert ended == [1] * 5
    assert broker._logs[RID].watchers == []


async def test_a_publish_before_the_tick_leaves_the_rest_alone_and_the_end_ends_it(
    no_fallback: None,
) -> None:
    broker = MemoryBroker()
    events = _events(3)
    await broker.publish(events[:1])
    subscription = await broker.subscribe(RID)
    assert isinstance(subscription, _MemorySubscription)
    tick = Tick(pacing.MOST_FLUSH)
    ended: list[int] = []
    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            group.start_soon(_resting, tick, subscription.on_publish, ended)
            await anyio.wait_all_tasks_blocked()
            await broker.publish(events[1:3])
            await anyio.wait_all_tasks_blocked()
            assert ended == []  # a second of rest is not over
            await broker.publish(events[3:])  # the end: nothing comes after it to wait for
    assert ended == [1]


async def test_the_hub_ends_rests_at_a_publish_too(no_fallback: None) -> None:
    hub = Hub()
    events = _events(3)
    await hub.send(events[0])
    reader = hub.subscribe(RID)
    assert await reader.__anext__() == events[0]
    tick = Tick(0.01)
    ended: list[int] = []
    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            group.start_soon(_resting, tick, reader.on_publish, ended)
            await anyio.sleep(0.05)
            await anyio.wait_all_tasks_blocked()
            assert ended == []
            await hub.send(events[1])
    assert ended == [1]


async def test_a_burst_before_a_quiet_spell_reaches_every_reader() -> None:
    broker = MemoryBroker()
    app = respflow.app(broker, secret=SECRET, flush=0.01)
    events = _events(12)
    await broker.publish(events[:1])
    readers: list[list[bytes]] = [[] for _ in range(4)]
    burst = events[:-1]
    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            for into in readers:
                group.start_soon(partial(_bodies, app, app.events_url(RID), into))
            await anyio.wait_all_tasks_blocked()
            for event in events[1:-1]:  # while the readers rest, then nothing more
                await broker.publish([event])
            while any(_decoded(b"".join(into)) != _pairs(burst) for into in readers):
                await anyio.sleep(0.01)  # the fallback ends the rest: no publish will
            await broker.publish(events[-1:])
    for into in readers:
        assert _decoded(b"".join(into)) == _pairs(events)


def _pairs(events: list[ev.Event]) -> list[tuple[str | None, ev.Event]]:
    return [(e.cursor, e) for e in events]


@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    batches=st.lists(st.integers(1, 6), min_size=1, max_size=25),
    pauses=st.lists(st.sampled_from([0.0, 0.0, 0.002, 0.012]), min_size=1, max_size=25),
    readers=st.integers(1, 6),
    leaving=st.integers(0, 3),
)
async def test_readers_resting_on_publishes_get_every_event_once_in_order(
    batches: list[int], pauses: list[float], readers: int, leaving: int
) -> None:
    broker = MemoryBroker()
    app = respflow.app(broker, secret=SECRET, flush=0.005)
    events = _events(sum(batches))
    await broker.publish(events[:1])
    staying: list[list[bytes]] = [[] for _ in range(readers)]
    gone = [anyio.CancelScope() for _ in range(leaving)]
    with anyio.fail_after(30):
        async with anyio.create_task_group() as group:
            for into in staying:
                group.start_soon(partial(_bodies, app, app.events_url(RID), into))
            for scope in gone:  # readers that leave mid-stream, maybe holding the rest
                group.start_soon(_left, scope, app)
            await anyio.wait_all_tasks_blocked()
            at = 1
            for n, size in enumerate(batches):
                await broker.publish(events[at : at + size])
                at += size
                if n == len(batches) // 2:
                    for scope in gone:
                        scope.cancel()
                await anyio.sleep(pauses[n % len(pauses)])
            await broker.publish(events[at:])
    for into in staying:
        assert _decoded(b"".join(into)) == _pairs(events)
    gc.collect()
    assert len(app._ticks) == 0
    assert broker._logs[RID].watchers == []


async def _left(scope: anyio.CancelScope, app: respflow.App) -> None:
    with scope:
        await _bodies(app, app.events_url(RID))


async def test_a_flush_changed_while_readers_follow_holds_from_their_next_rest() -> None:
    broker = MemoryBroker()
    app = respflow.app(broker, secret=SECRET, flush=0.05)
    events = _events(12)
    await broker.publish(events[:1])
    got: list[bytes] = []
    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            group.start_soon(partial(_bodies, app, app.events_url(RID), got))
            await anyio.wait_all_tasks_blocked()
            assert len(got) == 2  # the retry line, then the first event; now it rests
            tick = app._ticks(RID)
            assert tick is not None
            assert tick.flush == 0.05
            app.flush = 0
            assert tick.flush == 0  # the reader's own tick, not only readers to come
            await broker.publish(events[1:2])
            while len(got) == 2:  # the rest under way ends (its fallback: no more publish)
                await anyio.sleep(0.01)
            writes = len(got)
            for event in events[2:-1]:  # no more rests: each event its own write
                await broker.publish([event])
                await anyio.wait_all_tasks_blocked()
            assert len(got) == writes + len(events[2:-1])
            await broker.publish(events[-1:])
    assert _decoded(b"".join(got)) == _pairs(events)
