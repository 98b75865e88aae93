"""Attacks on the shared tick: readers of one response resting together, cancelled at
every await, flush changed under them, many responses at once. No reader is stranded
(a stranded one would hang: each test is bounded by fail_after), each reader gets every
event once and in order, and the tick table empties when the readers are gone."""

from __future__ import annotations

import gc
import math
from functools import partial

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.requests import ClientDisconnect

import respflow
from respflow import MemoryBroker, UsageError
from respflow import _events as ev
from respflow._server.pacing import MOST_FLUSH, Tick, Ticks, paced

from ._asgi import http_scope
from .test_app_serving import SECRET, _bodies, _decoded

pytestmark = pytest.mark.anyio


def _events(rid: str, count: int) -> list[ev.Event]:
    events: list[ev.Event] = [ev.ResponseStarted(rid, 0, "0-0")]
    for seq in range(1, count + 1):
        events.append(ev.TextDelta(rid, seq, f"{seq}-0", "msg_1", 0, 0, f"{rid} {seq} "))
    events.append(ev.ResponseCompleted(rid, count + 1, f"{count + 1}-0"))
    return events


async def _collected() -> None:
    gc.collect()
    await anyio.wait_all_tasks_blocked()
    gc.collect()


def _idle(tick: Tick) -> bool:
    """Nobody holds the timer, and nobody waits on it (its event is a fresh one)."""
    return not tick._sleeping and not tick._woken.is_set()


async def _rests(tick: Tick, times: int, done: list[int], n: int) -> None:
    for _ in range(times):
        await tick.rest()
    done.append(n)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    st.lists(st.tuples(st.integers(1, 4), st.integers(0, 6)), min_size=1, max_size=12),
    st.integers(0, 6),
)
async def test_readers_cancelled_at_any_step_strand_none_of_the_others(
    readers: list[tuple[int, int]], join_late: int
) -> None:
    """Each reader rests a few times; some are cancelled after a number of scheduler
    steps (0: before their first rest ends; the first to rest holds the timer)."""
    tick = Tick(0.01)
    done: list[int] = []
    scopes = [anyio.CancelScope() for _ in readers]
    with anyio.fail_after(20):
        async with anyio.create_task_group() as group:
            for n, (times, _) in enumerate(readers):
                if n == join_late:
                    await anyio.wait_all_tasks_blocked()
                group.start_soon(_cancellable, scopes[n], _rests(tick, times, done, n))
            for step in range(7):
                await anyio.wait_all_tasks_blocked()
                for scope, (_, cancel_at) in zip(scopes, readers, strict=True):
                    if cancel_at == step:
                        scope.cancel()
                await anyio.sleep(0.004)  # some cancellations land on a tick
    stayed = [n for n, (_, cancel_at) in enumerate(readers) if cancel_at > 6]
    assert set(stayed) <= set(done)
    assert _idle(tick)
    await _within(tick, 1)  # the tick still works for whoever comes next


async def _cancellable(scope: anyio.CancelScope, work: object) -> None:
    with scope:
        await work  # type: ignore[misc]


async def _within(tick: Tick, times: int) -> None:
    with anyio.fail_after(5):
        for _ in range(times):
            await tick.rest()


async def test_every_reader_cancelled_at_once_leaves_the_tick_free() -> None:
    tick = Tick(1.0)
    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            for _ in range(20):
                group.start_soon(tick.rest)
            await anyio.wait_all_tasks_blocked()
            group.cancel_scope.cancel()
    assert _idle(tick)
    tick.flush = 0.01
    await _within(tick, 1)  # the rest under way was left: the next reader finishes it


async def test_the_timer_holder_cancelled_as_the_tick_comes_strands_nobody() -> None:
    tick = Tick(0.05)
    ended: list[int] = []

    async def rest(n: int) -> None:
        await tick.rest()
        ended.append(n)

    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            holder = anyio.CancelScope()
            group.start_soon(_cancellable, holder, rest(0))
            await anyio.wait_all_tasks_blocked()
            holder.deadline = tick._due  # its cancellation and its tick, together
            for n in range(1, 6):
                group.start_soon(rest, n)
    assert sorted(ended)[-5:] == [1, 2, 3, 4, 5]
    assert _idle(tick)


async def test_responses_with_ids_alike_have_ticks_of_their_own() -> None:
    ticks = Ticks(0.5)
    ids = ["resp_a", "RESP_A", "resp_A", "", " ", "resp_a ", "résp_a", "resp_a\x00"]
    held: list[Tick] = []
    for rid in ids:
        tick = ticks(rid)
        assert tick is not None
        held.append(tick)
    assert len({id(tick) for tick in held}) == len(ids) == len(ticks)
    assert [ticks(rid) for rid in ids] == held
    # One response's rest under way holds no other's readers.
    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            group.start_soon(held[0].rest)
            await anyio.wait_all_tasks_blocked()
            held[1].flush = 0.001
            await held[1].rest()
            assert held[0]._sleeping  # the first still rests: ticks apart
            group.cancel_scope.cancel()
    del held, tick
    await _collected()
    assert len(ticks) == 0


async def test_readers_of_many_responses_at_once_each_get_only_theirs() -> None:
    broker = MemoryBroker()
    app = respflow.app(broker, secret=SECRET, flush=0.01)
    ids = ["resp_x", "RESP_X", "resp_X", "resp_y"]
    streams = {rid: _events(rid, 30) for rid in ids}
    got: dict[str, list[list[bytes]]] = {rid: [[], [], []] for rid in ids}
    for rid in ids:
        await broker.publish(streams[rid][:1])
    with anyio.fail_after(20):
        async with anyio.create_task_group() as group:
            for rid in ids:
                for into in got[rid]:
                    group.start_soon(partial(_bodies, app, app.events_url(rid), into))
            await anyio.wait_all_tasks_blocked()
            for n in range(1, 32):
                for rid in ids:
                    await broker.publish(streams[rid][n : n + 1])
                if n % 5 == 0:
                    await anyio.sleep(0.01)
    for rid in ids:
        for into in got[rid]:
            assert _decoded(b"".join(into)) == [(e.cursor, e) for e in streams[rid]]
    await _collected()
    assert len(app._ticks) == 0


@pytest.mark.parametrize("then", [0.0, 0.001, MOST_FLUSH, 0.02])
async def test_flush_set_while_readers_rest_loses_and_repeats_nothing(then: float) -> None:
    broker = MemoryBroker()
    app = respflow.app(broker, secret=SECRET, flush=0.05)
    events = _events("resp_f", 40)
    old_ticks = app._ticks
    await broker.publish(events[:1])
    readers: list[list[bytes]] = [[] for _ in range(6)]
    with anyio.fail_after(20):
        async with anyio.create_task_group() as group:
            for into in readers[:3]:
                group.start_soon(partial(_bodies, app, app.events_url("resp_f"), into))
            await anyio.wait_all_tasks_blocked()
            await broker.publish(events[1:5])
            app.flush = then  # while the first three rest
            for into in readers[3:]:
                group.start_soon(partial(_bodies, app, app.events_url("resp_f"), into))
            await anyio.wait_all_tasks_blocked()
            for event in events[5:]:
                await broker.publish([event])
    for into in readers:
        assert _decoded(b"".join(into)) == [(e.cursor, e) for e in events]
    await _collected()
    assert len(app._ticks) == len(old_ticks) == 0


@pytest.mark.parametrize("flush", [-0.001, MOST_FLUSH + 0.001, math.inf, math.nan, -math.inf])
async def test_a_flush_out_of_range_is_refused_and_the_old_one_kept(flush: float) -> None:
    app = respflow.app(MemoryBroker(), secret=SECRET, flush=0.02)
    with pytest.raises(UsageError, match="flush must be 0 to 1 seconds"):
        app.flush = flush
    assert app.flush == 0.02
    with pytest.raises(UsageError, match="flush must be 0 to 1 seconds"):
        respflow.app(MemoryBroker(), secret=SECRET, flush=flush)


class _Reader:
    """Events from a list, a few at a time (a ready() as subscriptions have)."""

    def __init__(self, events: list[ev.Event]) -> None:
        self.events = list(events)

    def ready(self, limit: int) -> list[ev.Event]:
        taken, self.events = self.events[:2], self.events[2:]
        return taken

    def __aiter__(self) -> _Reader:
        return self

    async def __anext__(self) -> ev.Event:
        if not self.events:
            raise StopAsyncIteration
        return self.events.pop(0)


async def test_a_reader_whose_write_raises_leaves_its_tick_to_the_others() -> None:
    ticks = Ticks(0.01)
    events = _events("resp_w", 12)
    got: list[bytes] = []

    def breaks(batch: list[ev.Event]) -> bytes:
        if any(e.sequence_number >= 5 for e in batch):
            raise ValueError("the write failed")
        return b"x"

    def writes(batch: list[ev.Event]) -> bytes:
        return b"".join(e.cursor.encode() + b";" for e in batch)

    async def read(write: object, into: list[bytes]) -> None:
        bodies = paced(
            _Reader(events),
            write,  # type: ignore[arg-type]
            heartbeat=5,
            tick=ticks("resp_w"),
            refusals=(),
            ending=lambda refused: b"",
        )
        async for body in bodies:
            into.append(body)

    async def broken() -> None:
        with pytest.raises(ValueError, match="the write failed"):
            await read(breaks, [])

    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            group.start_soon(broken)
            group.start_soon(read, writes, got)
    assert b"".join(got[1:]).decode().split(";")[:-1] == [e.cursor for e in events]
    await _collected()
    assert len(ticks) == 0


async def _cut_off_after(app: respflow.App, url: str, writes: int) -> list[bytes]:
    """A GET whose connection breaks (send raises OSError, as servers of ASGI 2.4 report
    a client gone) after ``writes`` body messages."""
    scope = http_scope(url)
    bodies: list[bytes] = []

    async def receive() -> dict[str, object]:
        await anyio.sleep_forever()
        raise AssertionError

    async def send(message: dict[str, object]) -> None:
        if message["type"] == "http.response.body":
            if len(bodies) >= writes:
                raise OSError("the connection is gone")
            bodies.append(message["body"])  # type: ignore[arg-type]

    # Newer Starlette reports the break as ClientDisconnect; older, the OSError
    # comes out as it is, or in a task group's exception group.
    disconnected = False
    with anyio.fail_after(20):
        try:
            await app(scope, receive, send)
        except* (ClientDisconnect, OSError):
            disconnected = True
    assert disconnected
    return bodies


@pytest.mark.parametrize("writes", [1, 2, 3])
async def test_a_reader_whose_connection_breaks_frees_its_tick_and_subscription(
    writes: int,
) -> None:
    broker = MemoryBroker()
    app = respflow.app(broker, secret=SECRET, flush=0.01)
    events = _events("resp_c", 20)
    await broker.publish(events[:3])
    staying: list[bytes] = []
    with anyio.fail_after(20):
        async with anyio.create_task_group() as group:
            group.start_soon(partial(_bodies, app, app.events_url("resp_c"), staying))
            group.start_soon(_cut_off_after, app, app.events_url("resp_c"), writes)
            await anyio.wait_all_tasks_blocked()
            for event in events[3:]:
                await broker.publish([event])
                await anyio.sleep(0.002)
    assert _decoded(b"".join(staying)) == [(e.cursor, e) for e in events]
    await _collected()
    assert len(app._ticks) == 0
