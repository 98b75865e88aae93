"""A runner that exits hands a background response over with text its LinkRewriter still
holds: that text is not published (the successor's own rewriter lets it out, as part of
the link it completes), so readers get the answer once, as the successor rewrote it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any, cast

import anyio
import openai
import pytest

import respflow
from respflow import LinkRewriter, MemoryBroker, Runner
from respflow import _events as ev
from respflow.testing import StreamBuilder, to_sse

pytestmark = pytest.mark.anyio

TEXT = "see the sandbox:/mnt/data/x.csv now"


class _Source:
    """Events from bytes, shaped as ``respflow.stream``'s (an async context manager too)."""

    def __init__(self, body: AsyncIterator[bytes]) -> None:
        self._events = respflow.aiter_events(body)

    def __aiter__(self) -> _Source:
        return self

    async def __anext__(self) -> ev.Event:
        return await self._events.__anext__()

    async def __aenter__(self) -> _Source:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await cast(Any, self._events).aclose()


def _opens(wire: bytes, *, then_wait: bool) -> Callable[..., _Source]:
    async def body() -> AsyncIterator[bytes]:
        yield wire
        if then_wait:
            await anyio.sleep_forever()

    return lambda *_args, **_kwargs: _Source(body())


async def _text_in(broker: MemoryBroker, rid: str, *, until_a_delta: bool) -> list[ev.Event]:
    got: list[ev.Event] = []
    with anyio.fail_after(20):
        async for event in await broker.subscribe(rid):
            got.append(event)
            if until_a_delta and isinstance(event, ev.TextDelta):
                break
    return got


async def test_text_held_at_a_handover_is_published_once_by_the_successor() -> None:
    wire = StreamBuilder(response_id="resp_h", background=True).message(TEXT, chunk=11).events()
    first = next(i for i, e in enumerate(wire) if e["type"] == "response.output_text.delta")
    assert wire[first]["delta"] == "see the san"  # "san" may start "sandbox:": held
    broker = MemoryBroker()
    client = cast(openai.AsyncOpenAI, None)  # the streams here never call the API
    whole = _opens(to_sse(wire), then_wait=False)
    async with Runner(
        client,
        broker,
        processors=lambda: [LinkRewriter()],
        lease_ttl=0.3,
        takeover=True,
        resume=whole,
        owner="successor",
    ) as successor:
        async with Runner(
            client,
            broker,
            processors=lambda: [LinkRewriter()],
            lease_ttl=0.3,
            takeover=True,
            stream=_opens(to_sse(wire[: first + 1]), then_wait=True),
            owner="leaving",
        ) as leaving:
            rid = await leaving.start(model="gpt-5", input="x", background=True)
            await _text_in(broker, rid, until_a_delta=True)
        with anyio.fail_after(20):
            while (status := await broker.status(rid)) is None or not status.ended:
                await anyio.sleep(0.05)
        await successor.wait(rid)
    events = await _text_in(broker, rid, until_a_delta=False)
    [done] = [e for e in events if isinstance(e, ev.TextDone)]
    assert "".join(e.delta for e in events if isinstance(e, ev.TextDelta)) == done.text
    assert done.text == "see the /files/resp_h/x.csv now"
    assert isinstance(events[-1], ev.ResponseCompleted)
