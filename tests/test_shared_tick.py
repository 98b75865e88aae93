"""Readers of one response rest on one shared tick: they wake together, each gets every
event once and in order, a reader leaving (even the one whose timer the others wait
on) delays or hurries no one, and the last one leaving frees the tick."""

from __future__ import annotations

import gc
from collections.abc import Awaitable
from functools import partial

import anyio
import pytest

import respflow
from respflow import MemoryBroker
from respflow._server.pacing import Tick, Ticks

from .test_app_serving import RID, SECRET, _bodies, _decoded, _events

pytestmark = pytest.mark.anyio

# Ends of rests are compared with the clock they were set on; asyncio may run a timer up
# to its clock's resolution early.
EARLY = 0.001


async def _rest(tick: Tick, ended: list[float]) -> None:
    await tick.rest()
    ended.append(anyio.current_time())


async def _within(scope: anyio.CancelScope, work: Awaitable[object]) -> None:
    with scope:
        await work


async def test_readers_resting_together_wake_together_after_the_rest() -> None:
    tick = Tick(0.05)
    ended: list[float] = []
    start = anyio.current_time()
    async with anyio.create_task_group() as group:
        for _ in range(50):
            group.start_soon(_rest, tick, ended)
    assert len(ended) == 50
    assert min(ended) >= start + 0.05 - EARLY


async def test_a_reader_joining_a_rest_under_way_wakes_at_its_tick() -> None:
    tick = Tick(1.0)
    first: list[float] = []
    joined: list[float] = []
    async with anyio.create_task_group() as group:
        group.start_soon(_rest, tick, first)
        await anyio.wait_all_tasks_blocked()
        group.start_soon(_rest, tick, joined)
    assert len(first) == len(joined) == 1
    assert joined[0] - first[0] < 0.5  # the same tick, not a second rest of its own


async def test_the_sleeper_leaving_neither_wakes_the_others_early_nor_strands_them() -> None:
    tick = Tick(1.0)
    ended: list[float] = []
    start = anyio.current_time()
    with anyio.fail_after(10):  # a stranded reader would wait for ever
        await _left_by_the_sleeper(tick, ended)
    assert len(ended) == 5
    assert min(ended) >= start + 1.0 - EARLY


async def _left_by_the_sleeper(tick: Tick, ended: list[float]) -> None:
    async with anyio.create_task_group() as group:
        sleeper = anyio.CancelScope()  # the first to rest holds the timer
        group.start_soon(_within, sleeper, _rest(tick, ended))
        await anyio.wait_all_tasks_blocked()
        for _ in range(5):
            group.start_soon(_rest, tick, ended)
        await anyio.wait_all_tasks_blocked()
        sleeper.cancel()
        await anyio.wait_all_tasks_blocked()
        assert ended == []  # gone is the timer's holder, not the rest


async def test_a_rest_after_a_quiet_spell_is_a_new_one() -> None:
    tick = Tick(0.02)
    ended: list[float] = []
    await _rest(tick, ended)
    await anyio.sleep(0.05)  # the tick passed long ago: a new rest starts now
    start = anyio.current_time()
    await _rest(tick, ended)
    assert ended[1] >= start + 0.02 - EARLY


async def test_each_response_has_its_own_tick_and_the_last_reader_frees_it() -> None:
    ticks = Ticks(0.02)
    a, b = ticks("resp_a"), ticks("resp_b")
    assert a is ticks("resp_a")
    assert a is not b
    assert len(ticks) == 2
    del a, b
    gc.collect()
    assert len(ticks) == 0
    assert Ticks(0.0)("resp_a") is None  # no rest, no tick


async def test_many_readers_sharing_a_tick_each_get_every_event_once_in_order() -> None:
    broker = MemoryBroker()
    app = respflow.app(broker, secret=SECRET, flush=0.01)
    events = _events(80)
    readers: list[list[bytes]] = [[] for _ in range(30)]
    starts = [n // 2 + 1 if n % 3 == 0 else 0 for n in range(len(readers))]
    async with anyio.create_task_group() as group:
        for n, got in enumerate(readers):
            await broker.publish(events[n : n + 1])
            # Some join late, from a cursor: they catch up, then rest with the others.
            after = events[starts[n] - 1].cursor if starts[n] else None
            headers = {} if after is None else {"Last-Event-ID": after}
            group.start_soon(partial(_bodies, app, app.events_url(RID), got, headers=headers))
        for n, event in enumerate(events[len(readers) :]):
            if n % 4 == 0:
                await anyio.wait_all_tasks_blocked()
            if n % 9 == 0:
                await anyio.sleep(0.01)  # some publishes land on a tick
            await broker.publish([event])
    for start, got in zip(starts, readers, strict=True):
        assert _decoded(b"".join(got)) == [(e.cursor, e) for e in events[start:]]


async def test_a_reader_leaving_mid_rest_leaves_the_others_their_events() -> None:
    broker = MemoryBroker()
    app = respflow.app(broker, secret=SECRET, flush=0.5)
    events = _events(10)
    await broker.publish(events[:1])
    leaving: list[bytes] = []
    staying: list[list[bytes]] = [[], []]
    async with anyio.create_task_group() as group:
        first = anyio.CancelScope()  # the first reader to rest holds the timer
        group.start_soon(_within, first, _bodies(app, app.events_url(RID), leaving))
        await anyio.wait_all_tasks_blocked()
        for got in staying:
            group.start_soon(_bodies, app, app.events_url(RID), got)
        await anyio.wait_all_tasks_blocked()
        await broker.publish(events[1:5])  # they arrive while all three rest
        first.cancel()
        await anyio.wait_all_tasks_blocked()
        await broker.publish(events[5:])
    assert _decoded(b"".join(leaving)) == [(events[0].cursor, events[0])]
    for got in staying:
        assert _decoded(b"".join(got)) == [(e.cursor, e) for e in events]
    await _collected()
    assert len(app._ticks) == 0  # every reader gone: nothing of the response's pacing kept


async def _collected() -> None:
    """Garbage collected, and what the collection handed the event loop to close, closed."""
    gc.collect()
    await anyio.wait_all_tasks_blocked()
    gc.collect()


async def test_the_hub_app_readers_share_a_tick_too() -> None:
    hub = respflow.Hub()
    app = respflow.events_app(hub, authorize=lambda request, rid: True, flush=0.5)
    events = _events(12)
    await hub.send(events[0])
    readers: list[list[bytes]] = [[] for _ in range(10)]
    async with anyio.create_task_group() as group:
        for got in readers:
            group.start_soon(_bodies, app, f"/events/{RID}", got)
        await anyio.wait_all_tasks_blocked()
        for event in events[1:]:
            await hub.send(event)
    for got in readers:
        # the retry line, the first event at once, then the rest after one shared rest
        assert len(got) == 3
        assert _decoded(b"".join(got)) == [(e.cursor, e) for e in events]


def test_serve_the_app_and_the_hub_app_rest_the_same_by_default() -> None:
    import inspect

    from respflow._cli.main import _parser
    from respflow._server.pacing import FLUSH

    args = _parser(["serve"]).parse_args(["serve"])
    assert args.flush == FLUSH
    assert inspect.signature(respflow.app).parameters["flush"].default == FLUSH
    assert inspect.signature(respflow.events_app).parameters["flush"].default == FLUSH


async def test_a_reader_coming_as_the_sleeper_leaves_joins_the_rest_under_way() -> None:
    # Halfway through a rest the sleeper leaves and, before the reader waiting for it
    # looks again, another reader rests: all end at the tick due, not a rest later.
    tick = Tick(1.0)
    ended: list[float] = []
    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            sleeper = anyio.CancelScope()
            group.start_soon(_within, sleeper, _rest(tick, ended))
            await anyio.wait_all_tasks_blocked()
            group.start_soon(_rest, tick, ended)
            await anyio.sleep(0.5)
            left = anyio.current_time()
            sleeper.cancel()
            group.start_soon(_rest, tick, ended)
    assert len(ended) == 2
    assert max(ended) < left + 1.0  # a rest of its own would have ended a second later


async def test_a_rest_set_on_a_running_app_paces_the_readers_that_come_after() -> None:
    broker = MemoryBroker()
    app = respflow.app(broker, secret=SECRET, flush=1.0)
    app.flush = 0
    assert app.flush == 0
    events = _events(6)
    await broker.publish(events[:1])
    got: list[bytes] = []
    async with anyio.create_task_group() as group:
        group.start_soon(_bodies, app, app.events_url(RID), got)
        for event in events[1:]:
            await anyio.wait_all_tasks_blocked()
            await broker.publish([event])
    assert len(got) == 1 + len(events)  # never rested: one write per event
    with pytest.raises(respflow.UsageError, match="flush must be 0 to 1 seconds"):
        app.flush = 2.0
