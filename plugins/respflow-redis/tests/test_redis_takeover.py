"""Producer takeover through Redis: the producer that dies has connections of its own
(another process's view), its successor continues the response from the same streams."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator

import pytest
from respflow_redis import RedisBroker

from respflow import Broker
from respflow.testing import TakeoverConformance

pytestmark = pytest.mark.anyio


class TestRedisTakeover(TakeoverConformance):
    @pytest.fixture(autouse=True)
    def _server(self, redis_url: str) -> None:
        self.url = redis_url

    @contextlib.asynccontextmanager
    async def open_broker(self) -> AsyncIterator[Broker]:
        async with RedisBroker(self.url, prefix=f"rftest:{uuid.uuid4().hex[:12]}:") as broker:
            yield broker

    @contextlib.asynccontextmanager
    async def _second(self, broker: Broker) -> AsyncIterator[Broker]:
        assert isinstance(broker, RedisBroker)
        async with RedisBroker(self.url, prefix=broker.prefix) as other:
            yield other

    def another_client(self, broker: Broker) -> contextlib.AbstractAsyncContextManager[Broker]:
        return self._second(broker)
