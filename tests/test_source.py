"""The byte-stream source, on asyncio and trio."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import pytest

import respflow
from respflow.testing import StreamBuilder, to_sse

pytestmark = pytest.mark.anyio

BODY = to_sse(StreamBuilder().code_call("print(2)", logs="2\n").message("two").events())


async def chunks(data: bytes, size: int) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        await anyio.sleep(0)
        yield data[i : i + size]


async def test_events_from_a_byte_stream() -> None:
    events = [e async for e in respflow.aiter_events(chunks(BODY, 37))]
    assert events == list(respflow.replay(BODY))


async def test_a_failing_source_ends_with_an_error_and_truncation() -> None:
    async def broken() -> AsyncIterator[bytes]:
        yield BODY[:400]
        raise ConnectionResetError("peer closed connection")

    events = [e async for e in respflow.aiter_events(broken())]
    errors = [e for e in events if isinstance(e, respflow.StreamError)]
    (error,) = [e for e in errors if e.code == "transport_error"]
    assert error.fatal
    assert "peer closed connection" in error.message
    assert isinstance(events[-1], respflow.StreamTruncated)


async def test_cancellation_is_not_swallowed() -> None:
    async def slow() -> AsyncIterator[bytes]:
        yield BODY[:100]
        await anyio.sleep_forever()
        yield b""  # pragma: no cover

    seen = []
    with anyio.move_on_after(0.2) as scope:
        async for event in respflow.aiter_events(slow()):
            seen.append(event)
    assert scope.cancelled_caught
