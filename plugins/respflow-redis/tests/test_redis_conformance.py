"""RedisBroker keeps the Broker contract: respflow's conformance suite, against a real
redis-server, on asyncio and trio, with a second broker (its own connections) as the
other process."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator

import pytest
from respflow_redis import RedisBroker

from respflow import Broker
from respflow.testing import BrokerConformance

pytestmark = pytest.mark.anyio


class TestRedisBroker(BrokerConformance):
    @pytest.fixture(autouse=True)
    def _server(self, redis_url: str) -> None:
        self.url = redis_url

    @contextlib.asynccontextmanager
    async def open_broker(
        self, *, max_events: int = 1_000, keep_after_end: float = 60.0
    ) -> AsyncIterator[Broker]:
        prefix = f"rftest:{uuid.uuid4().hex[:12]}:"
        async with RedisBroker(
            self.url, prefix=prefix, max_events=max_events, keep_after_end=keep_after_end
        ) as broker:
            yield broker

    @contextlib.asynccontextmanager
    async def _second(self, broker: Broker) -> AsyncIterator[Broker]:
        assert isinstance(broker, RedisBroker)
        async with RedisBroker(
            self.url,
            prefix=broker.prefix,
            max_events=broker.max_events,
            keep_after_end=broker.keep_after_end,
        ) as other:
            yield other

    def another_client(self, broker: Broker) -> contextlib.AbstractAsyncContextManager[Broker]:
        return self._second(broker)
