"""A runner that exits hands a background response over with text its LinkRewriter still
holds: that text is not published (the successor's own rewriter lets it out, as part of
the link it completes), so readers get the answer once, as the successor rewrote it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any, cast

import anyio
import openai
import pytest

from respflow import LinkRewriter, MemoryBroker, Runner
from respflow import _events as ev
from respflow.testing import StreamBuilder, to_sse

from .test_runner_batches import _Source

pytestmark = pytest.mark.anyio

TEXT = "see the sandbox:/mnt/data/x.csv now"


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


def _rewriting_runner(
    client: openai.AsyncOpenAI, broker: MemoryBroker, owner: str, **how: Any
) -> Runner:
    """A runner that takes responses over, with a LinkRewriter for each."""
    return Runner(
        client,
        broker,
        processors=lambda: [LinkRewriter()],
        lease_ttl=0.3,
        takeover=True,
        owner=owner,
        **how,
    )


async def test_text_held_at_a_handover_is_published_once_by_the_successor() -> None:
    wire = StreamBuilder(response_id="resp_h", background=True).message(TEXT, chunk=11).events()
    first = next(i for i, e in enumerate(wire) if e["type"] == "response.output_text.delta")
    assert wire[first]["delta"] == "see the san"  # "san" may start "sandbox:": held
    broker = MemoryBroker()
    client = cast(openai.AsyncOpenAI, None)  # the streams here never call the API
    whole = _opens(to_sse(wire), then_wait=False)
    async with _rewriting_runner(client, broker, "successor", resume=whole) as successor:
        stream = _opens(to_sse(wire[: first + 1]), then_wait=True)
        async with _rewriting_runner(client, broker, "leaving", stream=stream) as leaving:
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
