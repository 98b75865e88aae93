"""RedisBroker at the edge of a trimmed history: a reader whose cursor is the newest event
trimmed away has lost nothing after it, and reads on; one below it gets TooOld."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import coredis
import pytest
from respflow_redis import RedisBroker

from respflow import Event, TooOld
from respflow.testing import make_events

pytestmark = pytest.mark.anyio


@pytest.fixture
async def raw(redis_url: str, anyio_backend: str) -> AsyncIterator[coredis.Redis[bytes]]:
    async with coredis.Redis.from_url(redis_url) as client:
        yield client


async def _oldest_kept(raw: coredis.Redis[bytes], prefix: str, events: list[Event]) -> int:
    """The index in ``events`` of the oldest event the stream still holds."""
    log = f"{prefix}{{{events[0].response_id}}}:log"
    oldest = (await raw.xrange(log, count=1))[0].identifier
    ms, _, k = (oldest.decode() if isinstance(oldest, bytes) else oldest).partition("-")
    return [e.cursor for e in events].index(f"{int(ms) - 2}-{k}")


async def _read(broker: RedisBroker, rid: str, after: str) -> list[Event]:
    subscription = await broker.subscribe(rid, after=after)
    with anyio.fail_after(10):
        return [event async for event in subscription]


@pytest.mark.parametrize(("max_events", "batch"), [(1, 1), (5, 3), (50, 10), (150, 40)])
async def test_a_reader_at_the_newest_trimmed_event_reads_on(
    redis_url: str, prefix: str, raw: coredis.Redis[bytes], max_events: int, batch: int
) -> None:
    events = make_events(600)
    rid = events[0].response_id
    async with RedisBroker(redis_url, prefix=prefix, max_events=max_events) as broker:
        for start in range(0, len(events), batch):
            await broker.publish(events[start : start + batch])
        kept_from = await _oldest_kept(raw, prefix, events)
        assert kept_from > 1
        # The newest trimmed event: everything after it is still there.
        assert await _read(broker, rid, events[kept_from - 1].cursor) == events[kept_from:]
        with pytest.raises(TooOld, match="no longer kept"):
            await broker.subscribe(rid, after=events[kept_from - 2].cursor)
        with pytest.raises(TooOld, match="no longer kept"):
            await broker.subscribe(rid)


async def test_nothing_is_too_old_before_anything_was_trimmed(redis_url: str, prefix: str) -> None:
    events = make_events(40)
    rid = events[0].response_id
    async with RedisBroker(redis_url, prefix=prefix, max_events=1_000) as broker:
        await broker.publish(events)
        assert await _read(broker, rid, "-1-0") == events
        assert await _read(broker, rid, events[0].cursor) == events[1:]
