"""Attacks on rests that end at a publish: a rest begun once the response is over (ended,
dropped from the broker, the broker or hub closed) ends at once rather than at the
fallback; a watcher's ``stop()`` called twice takes away no other watcher; a watcher that
raises neither fails the producer's publish nor keeps the others (or other responses'
readers) from waking; a publish of another response, or one that adds nothing, ends no
rest; a sleeper cancelled inside the publisher's call strands nobody; and a thousand
resting readers cost one watcher, so a publish stays O(1) in readers."""

from __future__ import annotations

import gc
import logging
from collections.abc import Awaitable, Callable
from functools import partial
from itertools import pairwise
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import respflow
from respflow import Frame, Hub, MemoryBroker
from respflow import _events as ev
from respflow._delivery.broker import _MemorySubscription
from respflow._server import pacing
from respflow._server.pacing import Tick

from ._asgi import http_scope
from .test_app_serving import RID, SECRET, _bodies, _decoded, _events

pytestmark = pytest.mark.anyio

OTHER = "resp_other"


@pytest.fixture
def no_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rests end only at a publish or an end (the fallback is hours away): a rest left
    to it hangs, and the test's fail_after says so."""
    monkeypatch.setattr(pacing, "LATE", 1e6)


def _other(count: int) -> list[ev.Event]:
    events: list[ev.Event] = [ev.ResponseStarted(OTHER, 0, "0-0")]
    events += [ev.TextDelta(OTHER, n, f"{n}-0", "msg_1", 0, 0, "x") for n in range(1, count + 1)]
    return events


async def _subscribe(broker: MemoryBroker, response_id: str = RID) -> _MemorySubscription:
    subscription = await broker.subscribe(response_id)
    assert isinstance(subscription, _MemorySubscription)
    return subscription


def _pairs(events: list[ev.Event]) -> list[tuple[str | None, ev.Event]]:
    return [(e.cursor, e) for e in events]


# -- a rest begun once the response is over ends at once ----------------------------------


async def _memory_ended() -> Any:
    broker = MemoryBroker()
    await broker.publish(_events(2))
    return await _subscribe(broker, RID)


async def _memory_evicted() -> Any:
    broker = MemoryBroker(max_responses=1)
    await broker.publish(_events(2)[:2])
    subscription = await _subscribe(broker, RID)
    await broker.publish(_other(1))  # pushes the unfinished response out
    return subscription


async def _memory_closed() -> Any:
    broker = MemoryBroker()
    await broker.publish(_events(2)[:2])
    subscription = await _subscribe(broker, RID)
    await broker.aclose()
    return subscription


async def _hub_ended() -> Any:
    hub = Hub()
    for event in _events(2):
        await hub.send(event)
    return hub.subscribe(RID)


async def _hub_evicted() -> Any:
    hub = Hub(max_responses=1)
    for event in _events(2)[:2]:
        await hub.send(event)
    reader = hub.subscribe(RID)
    await hub.send(_other(1)[0])
    return reader


async def _hub_closed() -> Any:
    hub = Hub()
    for event in _events(2)[:2]:
        await hub.send(event)
    reader = hub.subscribe(RID)
    hub.close()
    return reader


@pytest.mark.parametrize(
    "over",
    [_memory_ended, _memory_evicted, _memory_closed, _hub_ended, _hub_evicted, _hub_closed],
)
async def test_a_rest_begun_once_the_response_is_over_ends_at_once(
    no_fallback: None, over: Callable[[], Awaitable[Any]]
) -> None:
    """Nothing more will be published: a rest waiting for a publish would wait for its
    fallback (75 ms at the default flush, or a second and a half at the most)."""
    subscription = await over()
    tick = Tick(pacing.MOST_FLUSH)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            for _ in range(3):  # one sleeps, two join it
                group.start_soon(tick.rest, subscription.on_publish)
    log = subscription._log
    assert log.watchers == []


async def test_the_end_published_while_a_reader_writes_ends_its_next_rest_at_once(
    no_fallback: None,
) -> None:
    """The reader's write is under way when the producer publishes the rest of the
    response, its end with it; the rest that follows the write must not wait for a
    publish that will never come."""
    broker = MemoryBroker()
    app = respflow.app(broker, secret=SECRET, flush=pacing.MOST_FLUSH)
    events = _events(5)
    await broker.publish(events[:1])
    bodies: list[bytes] = []
    ended = anyio.Event()

    async def receive() -> dict[str, Any]:
        await ended.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] != "http.response.body":
            return
        if message.get("body"):
            bodies.append(message["body"])
            if len(bodies) == 2:  # the first event goes out: the producer finishes now
                await broker.publish(events[1:])
        if not message.get("more_body", False):
            ended.set()

    with anyio.fail_after(10):
        await app(http_scope(app.events_url(RID)), receive, send)
    assert _decoded(b"".join(bodies)) == _pairs(events)
    assert broker._logs[RID].watchers == []


# -- on_publish's stop() ------------------------------------------------------------------


async def _memory_two() -> tuple[Any, Any, Callable[[], Awaitable[None]]]:
    broker = MemoryBroker()
    events = _events(4)
    await broker.publish(events[:1])
    first, second = await _subscribe(broker, RID), await _subscribe(broker, RID)

    async def publish() -> None:
        await broker.publish(events[1:2])

    return first, second, publish


async def _hub_two() -> tuple[Any, Any, Callable[[], Awaitable[None]]]:
    hub = Hub()
    events = _events(4)
    await hub.send(events[0])
    first, second = hub.subscribe(RID), hub.subscribe(RID)

    async def publish() -> None:
        await hub.send(events[1])

    return first, second, publish


@pytest.mark.parametrize("two", [_memory_two, _hub_two])
async def test_a_stop_called_twice_takes_away_no_other_watcher(
    two: Callable[[], Awaitable[tuple[Any, Any, Callable[[], Awaitable[None]]]]],
) -> None:
    """A tick registers the same callback (its bound method, equal each time) from
    each reader that sleeps in turn: one reader's stop, called again, must not end
    another's watch."""
    first, second, publish = await two()
    calls: list[bool] = []
    stop_first = first.on_publish(calls.append)
    stop_second = second.on_publish(calls.append)
    stop_first()
    stop_first()  # again: a no-op
    await publish()
    assert calls == [False]  # the second's watch holds
    stop_second()
    stop_second()
    await publish()
    assert calls == [False]
    assert first._log.watchers == []


async def test_a_stop_after_the_log_went_is_harmless() -> None:
    broker = MemoryBroker(max_responses=1)
    await broker.publish(_events(2)[:2])
    subscription = await _subscribe(broker, RID)
    calls: list[bool] = []
    stop = subscription.on_publish(calls.append)
    await broker.publish(_other(1))  # evicts RID
    assert calls == [True]
    stop()
    stop()
    assert subscription._log.watchers == []


# -- a watcher that raises ----------------------------------------------------------------


def _raises(final: bool) -> None:
    raise RuntimeError("a watcher's bug")


async def test_a_raising_watcher_fails_no_publish_and_strands_no_one(
    caplog: pytest.LogCaptureFixture,
) -> None:
    broker = MemoryBroker()
    events, others = _events(4), _other(3)
    await broker.publish([events[0], others[0]])
    ours, theirs = await _subscribe(broker, RID), await _subscribe(broker, OTHER)
    for subscription in (ours, theirs):
        assert subscription.ready(10)
    calls: list[bool] = []
    ours.on_publish(_raises)
    ours.on_publish(calls.append)
    got: list[ev.Event] = []

    async def follow() -> None:
        got.append(await theirs.__anext__())

    with anyio.fail_after(5), caplog.at_level(logging.ERROR, "respflow"):
        async with anyio.create_task_group() as group:
            group.start_soon(follow)
            await anyio.wait_all_tasks_blocked()
            # One publish of both responses: ours is woken first.
            assert await broker.publish([events[1], others[1]]) == 2
    assert calls == [False]
    assert got == [others[1]]
    assert "a watcher's bug" in caplog.text
    await broker.publish(events[2:3])
    assert calls == [False, False]
    assert ours._log.watchers == [calls.append]  # the broken one is called no more


async def test_a_raising_watcher_fails_no_hub_send(caplog: pytest.LogCaptureFixture) -> None:
    hub = Hub()
    events = _events(3)
    await hub.send(events[0])
    reader = hub.subscribe(RID)
    calls: list[bool] = []
    reader.on_publish(_raises)
    reader.on_publish(calls.append)
    with caplog.at_level(logging.ERROR, "respflow"):
        await hub.send(events[1])
        hub.close()
    assert calls == [False, True]
    assert "a watcher's bug" in caplog.text


# -- what ends a rest, and what does not --------------------------------------------------


async def _resting_past_due(tick: Tick, on_publish: pacing.OnPublish, ended: list[int]) -> None:
    await tick.rest(on_publish)
    ended.append(1)


@pytest.mark.parametrize("publish", ["another response", "nothing new", "after the end"])
async def test_a_publish_that_adds_nothing_to_the_response_ends_no_rest(
    no_fallback: None, publish: str
) -> None:
    broker = MemoryBroker()
    events = _events(3)
    await broker.publish([events[0], *_other(1)])
    subscription = await _subscribe(broker, RID)
    tick = Tick(0.005)
    ended: list[int] = []
    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            group.start_soon(_resting_past_due, tick, subscription.on_publish, ended)
            await anyio.sleep(0.02)  # past due
            if publish == "another response":
                await broker.publish(_other(3)[1:])
            elif publish == "nothing new":
                await broker.publish(events[:1])
            await anyio.wait_all_tasks_blocked()
            assert ended == []
            await broker.publish(events[1:2])
    assert ended == [1]
    if publish == "after the end":  # the end ends it; what comes after it wakes nobody
        await broker.publish(events)
        assert broker._logs[RID].watchers == []


@pytest.mark.parametrize("first", [True, False])
async def test_a_sleeper_cancelled_inside_the_publishers_call_strands_nobody(
    no_fallback: None, first: bool
) -> None:
    """The sleeper's scope is cancelled by a watcher called in the same publish, before
    or after the tick's own."""
    broker = MemoryBroker()
    events = _events(3)
    await broker.publish(events[:1])
    subscriptions = [await _subscribe(broker, RID) for _ in range(4)]
    tick = Tick(0.005)
    sleeper = anyio.CancelScope()
    ended: list[int] = []

    def cancel(final: bool) -> None:
        sleeper.cancel()

    async def sleeps() -> None:
        with sleeper:
            await tick.rest(subscriptions[0].on_publish)

    if first:
        stop = subscriptions[0].on_publish(cancel)
    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            group.start_soon(sleeps)
            await anyio.wait_all_tasks_blocked()
            if not first:
                stop = subscriptions[0].on_publish(cancel)
            for subscription in subscriptions[1:]:
                group.start_soon(_resting_past_due, tick, subscription.on_publish, ended)
            await anyio.sleep(0.02)
            await anyio.wait_all_tasks_blocked()
            await broker.publish(events[1:2])
            await anyio.wait_all_tasks_blocked()
            # A cancel that came first left the rest for another to hold: the next
            # publish ends it.
            await broker.publish(events[2:3])
    stop()
    assert ended == [1, 1, 1]
    assert broker._logs[RID].watchers == []
    assert not tick._sleeping


# -- a publish is O(1) in resting readers ------------------------------------------------


async def test_a_thousand_resting_readers_cost_one_watcher(
    no_fallback: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    broker = MemoryBroker()
    hub = Hub()
    events = _events(3)
    await broker.publish(events[:1])
    await hub.send(events[0])
    subscriptions = [await _subscribe(broker, RID) for _ in range(1000)]
    readers = [hub.subscribe(RID) for _ in range(1000)]
    on_broker, on_hub = Tick(0.005), Tick(0.005)
    ended: list[int] = []
    calls = 0
    published = Tick._published

    def counted(tick: Tick, final: bool) -> None:
        nonlocal calls
        calls += 1
        published(tick, final)

    monkeypatch.setattr(Tick, "_published", counted)
    with anyio.fail_after(20):
        async with anyio.create_task_group() as group:
            for subscription, reader in zip(subscriptions, readers, strict=True):
                group.start_soon(_resting_past_due, on_broker, subscription.on_publish, ended)
                group.start_soon(_resting_past_due, on_hub, reader.on_publish, ended)
            await anyio.wait_all_tasks_blocked()
            assert len(broker._logs[RID].watchers) == 1
            assert len(hub._logs[RID].watchers) == 1
            await anyio.sleep(0.02)
            await broker.publish(events[1:2])
            await hub.send(events[1])
    assert calls == 2  # one call a publish, for a thousand readers
    assert len(ended) == 2000
    assert broker._logs[RID].watchers == []
    assert hub._logs[RID].watchers == []


async def test_a_hundred_app_readers_rest_on_one_watcher() -> None:
    broker = MemoryBroker()
    app = respflow.app(broker, secret=SECRET, flush=0.02)
    events = _events(30)
    await broker.publish(events[:1])
    readers: list[list[bytes]] = [[] for _ in range(100)]
    most = 0
    with anyio.fail_after(30):
        async with anyio.create_task_group() as group:
            for into in readers:
                group.start_soon(partial(_bodies, app, app.events_url(RID), into))
            await anyio.wait_all_tasks_blocked()
            for event in events[1:]:
                await broker.publish([event])
                most = max(most, len(broker._logs[RID].watchers))
                await anyio.sleep(0.002)
    assert most <= 2  # a sleeper just woken may not have unregistered yet
    for into in readers:
        assert _decoded(b"".join(into)) == _pairs(events)
    gc.collect()
    assert len(app._ticks) == 0
    assert broker._logs[RID].watchers == []


# -- a publish refused part-way -----------------------------------------------------------


async def test_a_publish_with_a_bad_cursor_further_on_appends_nothing_unannounced() -> None:
    """Before, the events ahead of the bad one were appended and the publish raised
    before waking anyone: a reader waiting for them waited for a publish that, from a
    producer that stopped on the error, never came."""
    broker = MemoryBroker()
    events = _events(3)
    await broker.publish(events[:1])
    subscription = await _subscribe(broker)
    assert subscription.ready(10) == events[:1]
    bad = ev.TextDelta(RID, 2, "two", "msg_1", 0, 0, "y")
    got: list[ev.Event] = []

    async def follow() -> None:
        got.append(await subscription.__anext__())

    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            group.start_soon(follow)
            await anyio.wait_all_tasks_blocked()
            with pytest.raises(ValueError, match="not a respflow cursor: 'two'"):
                await broker.publish([events[1], bad])
            status = await broker.status(RID)
            assert status is not None
            assert status.last_cursor == events[0].cursor  # nothing went in unannounced
            await broker.publish(events[1:2])
    assert got == events[1:2]


# -- on a clock the test moves: every event once, in order, writes a flush apart ---------


async def _timed(app: respflow.App, into: list[tuple[float, bytes]]) -> None:
    """The body messages of a GET of the response's events, each with the time the
    pacing's clock says it went out."""
    ended = anyio.Event()

    async def receive() -> dict[str, Any]:
        await ended.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            if message.get("body"):
                into.append((anyio.current_time(), message["body"]))
            if not message.get("more_body", False):
                ended.set()

    await app(http_scope(app.events_url(RID)), receive, send)


async def _leaves(scope: anyio.CancelScope, app: respflow.App) -> None:
    with scope:
        await _timed(app, [])


@settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    steps=st.lists(
        st.tuples(st.integers(0, 4), st.sampled_from([0, 10, 20, 49, 50, 51, 80, 200])),
        min_size=1,
        max_size=30,
    ),
    readers=st.integers(1, 5),
    leaving=st.lists(st.integers(0, 29), max_size=3),
)
async def test_on_a_moved_clock_writes_stay_a_flush_apart_and_lose_nothing(
    steps: list[tuple[int, int]], readers: int, leaving: list[int]
) -> None:
    """Each step publishes a few events (none: the clock moves only) and moves the
    pacing's clock some milliseconds; the fallback is out of reach, so only publishes
    and the end end rests. A reader's writes are ``flush`` apart or more on that clock,
    save the one that carries the end."""
    flush = 0.05
    broker = MemoryBroker()
    app = respflow.app(broker, secret=SECRET, flush=flush, heartbeat=3600)
    events = _events(sum(size for size, _ in steps))
    start = anyio.current_time()
    clock = [start]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pacing, "LATE", 1e6)
        patch.setattr(anyio, "current_time", lambda: clock[0])
        await broker.publish(events[:1])
        timed: list[list[tuple[float, bytes]]] = [[] for _ in range(readers)]
        gone = [anyio.CancelScope() for _ in leaving]
        with anyio.fail_after(30):
            async with anyio.create_task_group() as group:
                for into in timed:
                    group.start_soon(_timed, app, into)
                for scope in gone:
                    group.start_soon(_leaves, scope, app)
                await anyio.wait_all_tasks_blocked()
                at = 1
                for n, (size, wait) in enumerate(steps):
                    await broker.publish(events[at : at + size])
                    at += size
                    for scope, when in zip(gone, leaving, strict=True):
                        if when == n:
                            scope.cancel()
                    await anyio.wait_all_tasks_blocked()
                    clock[0] += wait / 1000
                for scope in gone:
                    scope.cancel()
                await broker.publish(events[at:])
    for into in timed:
        assert _decoded(b"".join(body for _, body in into)) == _pairs(events)
        writes = into[1:]  # after the retry line
        for (before, _), (after, body) in pairwise(writes):
            if b"response.completed" not in body:
                assert after - before >= flush - 1e-9
    gc.collect()
    assert len(app._ticks) == 0
    assert broker._logs[RID].watchers == []


# -- events_app over a hub ---------------------------------------------------------------


def _allow(request: Any, response_id: str) -> bool:
    return True


@pytest.mark.parametrize("how", ["closed", "evicted", "ended"])
async def test_hub_app_readers_resting_when_the_response_is_over_end_at_once(
    no_fallback: None, how: str
) -> None:
    """The hub closed at shutdown, the response pushed out by a newer one, or its end
    sent, while readers rest a whole second: each stream ends there, with what it had."""
    hub = Hub(max_responses=1)
    app = respflow.events_app(hub, authorize=_allow, flush=pacing.MOST_FLUSH)
    events = _events(6)
    await hub.send(events[0])
    readers: list[list[bytes]] = [[] for _ in range(5)]
    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            for into in readers:
                group.start_soon(_bodies, app, f"/events/{RID}", into)
            await anyio.wait_all_tasks_blocked()
            for event in events[1:4]:
                await hub.send(event)
            await anyio.wait_all_tasks_blocked()
            if how == "closed":
                hub.close()
            elif how == "evicted":
                await hub.send(_other(1)[0])
            else:
                for event in events[4:]:
                    await hub.send(event)
    for into in readers:
        frames = [f for f in respflow.SSEDecoder().feed(b"".join(into)) if isinstance(f, Frame)]
        got = [respflow.decode_event(f.data) for f in frames if f.event == "message" and f.data]
        if how == "ended":
            assert got == events
        else:  # a hub closed, or letting go of a response, ends its readers now (they
            # reconnect with their last cursor): what went out is a start of the response
            assert got == events[: len(got)]
            assert (frames[-1].event == "lagged") is (how == "evicted")
    assert not hub._logs.get(RID) or hub._logs[RID].watchers == []
