"""MemoryBroker keeps the Broker contract (the conformance suite), and its own bounds."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import anyio
import pytest

from respflow import Broker, MemoryBroker, ResponseNotFound, TooOld
from respflow.testing import BrokerConformance, make_events

pytestmark = pytest.mark.anyio


class TestMemoryBroker(BrokerConformance):
    @contextlib.asynccontextmanager
    async def open_broker(
        self, *, max_events: int = 1_000, keep_after_end: float = 60.0
    ) -> AsyncIterator[Broker]:
        broker = MemoryBroker(max_events=max_events, keep_after_end=keep_after_end)
        try:
            yield broker
        finally:
            await broker.aclose()


def test_a_memory_broker_is_a_broker() -> None:
    assert isinstance(MemoryBroker(), Broker)


async def test_past_max_responses_the_oldest_finished_response_goes_first() -> None:
    broker = MemoryBroker(max_responses=3)
    done, live, *others = (make_events(4) for _ in range(4))
    await broker.publish(live[:2])
    await broker.publish(done)
    await broker.publish(others[0])
    await broker.publish(others[1])  # a fourth: the finished one is dropped, not the live one
    assert done[0].response_id not in broker.responses()
    assert live[0].response_id in broker.responses()
    with pytest.raises(ResponseNotFound):
        await broker.subscribe(done[0].response_id)


async def test_a_reader_of_an_evicted_response_is_told_not_left_hanging() -> None:
    broker = MemoryBroker(max_responses=1)
    first, second = make_events(6), make_events(6)
    await broker.publish(first[:3])
    subscription = await broker.subscribe(first[0].response_id)
    got = [await subscription.__anext__() for _ in range(3)]
    assert got == first[:3]
    await broker.publish(second)
    with anyio.fail_after(5), pytest.raises(ResponseNotFound, match="evicted"):
        await subscription.__anext__()


async def test_a_reader_slower_than_the_history_gets_too_old() -> None:
    broker = MemoryBroker(max_events=5)
    events = make_events(40)
    await broker.publish(events[:2])
    subscription = await broker.subscribe(events[0].response_id)
    assert await subscription.__anext__() == events[0]
    await broker.publish(events[2:])
    with pytest.raises(TooOld):
        await subscription.__anext__()


async def test_closing_the_broker_ends_its_readers() -> None:
    broker = MemoryBroker()
    events = make_events(6)
    await broker.publish(events[:2])
    subscription = await broker.subscribe(events[0].response_id)
    got: list[object] = []

    async def read() -> None:
        got.extend([e async for e in subscription])

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(read)
            await anyio.sleep(0.05)
            await broker.aclose()
    assert got == events[:2]
