"""Producer takeover through the MemoryBroker: one process, several runners."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from respflow import Broker, MemoryBroker
from respflow.testing import TakeoverConformance


class TestMemoryTakeover(TakeoverConformance):
    @contextlib.asynccontextmanager
    async def open_broker(self) -> AsyncIterator[Broker]:
        broker = MemoryBroker()
        try:
            yield broker
        finally:
            await broker.aclose()
