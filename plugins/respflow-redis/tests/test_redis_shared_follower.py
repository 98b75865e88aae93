"""Readers of one response in one process share its follower from the start: page reads
from Redis grow with the events, not with events times readers."""

from __future__ import annotations

import anyio
import pytest
from respflow_redis import RedisBroker

from respflow import Subscription
from respflow.testing import make_events

pytestmark = pytest.mark.anyio


async def test_readers_of_a_live_response_share_one_follower(redis_url: str, prefix: str) -> None:
    events = make_events(120)
    rid = events[0].response_id
    readers = 150
    async with (
        RedisBroker(redis_url, prefix=prefix) as producer,
        RedisBroker(redis_url, prefix=prefix) as broker,
    ):
        reads = 0
        page = broker._read

        async def counted(response_id: str, position: tuple[int, int]) -> object:
            nonlocal reads
            reads += 1
            return await page(response_id, position)

        broker._read = counted  # type: ignore[method-assign,assignment]
        await producer.publish(events[:1])
        got: list[int] = []
        subscriptions = [await broker.subscribe(rid) for _ in range(readers)]

        async def read(subscription: Subscription) -> None:
            got.append(len([e async for e in subscription]))

        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                for subscription in subscriptions:
                    tg.start_soon(read, subscription)
                for event in events[1:]:  # a live response: events keep coming
                    await producer.publish([event])
                    await anyio.sleep(0.002)
    assert got == [len(events)] * readers
    # Each reader's subscribe reads once; after that, reads are the follower's (about
    # one per event or two), not every reader's.
    assert reads <= readers + 3 * len(events)


async def test_ready_gives_what_a_reader_can_have_without_waiting(
    redis_url: str, prefix: str
) -> None:
    # What respflow.app writes in one go when a reader wakes: all that is there, in
    # order, up to the limit, and nothing after the end.
    events = make_events(30)
    rid = events[0].response_id
    async with RedisBroker(redis_url, prefix=prefix) as broker:
        await broker.publish(events[:10])
        subscription = await broker.subscribe(rid)
        first = await subscription.__anext__()
        assert subscription.ready(limit=4) == events[1:5]
        assert subscription.ready() == events[5:10]
        assert subscription.ready() == []
        with anyio.fail_after(10):
            await broker.publish(events[10:])
            nxt = await subscription.__anext__()  # waits on the follower
            rest = subscription.ready(limit=100)
        assert [first, *events[1:10], nxt, *rest] == events
        assert subscription.ready() == []
