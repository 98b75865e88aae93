"""A RedisBroker subscription cannot see a publish in another process, so its readers'
rests end on the tick's timer, as before rests ended at publishes: with no publish at all
(and the publish path's fallback out of reach), a rest still ends."""

from __future__ import annotations

import anyio
import pytest
from respflow_redis import RedisBroker

from respflow._server import pacing
from respflow._server.pacing import Tick
from respflow.testing import make_events

pytestmark = pytest.mark.anyio


async def test_a_redis_readers_rest_ends_on_the_timer_without_a_publish(
    redis_url: str, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pacing, "LATE", 1e6)  # a rest left to a publish would hang
    events = make_events(4)
    async with RedisBroker(redis_url, prefix=prefix) as broker:
        await broker.publish(events[:2])
        subscription = await broker.subscribe(events[0].response_id)
        try:
            on_publish = getattr(subscription, "on_publish", None)
            assert on_publish is None
            tick = Tick(0.01)
            with anyio.fail_after(10):
                async with anyio.create_task_group() as group:
                    for _ in range(3):
                        group.start_soon(tick.rest, on_publish)
        finally:
            await subscription.aclose()
