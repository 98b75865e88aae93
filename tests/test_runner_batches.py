"""Runner: what is ready is published together, so a burst of events costs a few broker
calls instead of one per event, and readers get the same events, in the same order."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any, cast

import anyio
import msgspec
import openai
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import respflow
from respflow import Event, Lease, MemoryBroker, ResponseCompleted, Runner
from respflow.testing import MockServer, Recording, StreamBuilder, to_sse

pytestmark = pytest.mark.anyio

SAMPLES = resources.files("respflow").joinpath("samples")
SAMPLE = Recording.from_bytes(SAMPLES.joinpath("code_interpreter.sse").read_bytes())
FILES = Path(str(SAMPLES.joinpath("files")))
CI_TOOLS = [{"type": "code_interpreter", "container": {"type": "auto"}}]
MOST = 256
"""The most events the Runner puts in one publish call."""


def _long_stream() -> bytes:
    code = "values = [x ** 2 for x in range(10)]\n" * 40
    text = "The squares grow quickly; see the CSV for every value. " * 40
    builder = (
        StreamBuilder(response_id="resp_batches")
        .code_call(code, logs="[0, 1, 4, 9]\n", container_id="cntr_b", chunk=4)
        .message(text, chunk=4)
    )
    return to_sse(builder.events())


LONG = _long_stream()
WHOLE = list(respflow.replay(LONG))


class _Noting(MemoryBroker):
    """A MemoryBroker that notes the cursors of each publish call."""

    def __init__(self) -> None:
        super().__init__(max_events=100_000)
        self.calls: list[list[str]] = []

    async def publish(self, events: Sequence[Event], *, lease: Lease | None = None) -> int:
        self.calls.append([e.cursor for e in events])
        return await super().publish(events, lease=lease)


class _Source:
    """Events from bytes, shaped as ``respflow.stream``'s (an async context manager too)."""

    def __init__(self, body: AsyncIterator[bytes]) -> None:
        self._events = respflow.aiter_events(body)

    def __aiter__(self) -> _Source:
        return self

    async def __anext__(self) -> Event:
        return await self._events.__anext__()

    async def __aenter__(self) -> _Source:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await cast(Any, self._events).aclose()


def _arriving_in(chunks: list[bytes]) -> Callable[..., AsyncIterator[Event]]:
    """A Runner's ``stream``: the response's bytes arrive in ``chunks``, as from a socket."""

    async def body() -> AsyncIterator[bytes]:
        for chunk in chunks:
            await anyio.lowlevel.checkpoint()
            yield chunk

    def open_stream(client: Any, **create: Any) -> AsyncIterator[Event]:
        return _Source(body())

    return open_stream


def _cut(body: bytes, cuts: list[int]) -> list[bytes]:
    edges = [0, *sorted(set(cuts)), len(body)]
    return [body[a:b] for a, b in itertools.pairwise(edges) if b > a]


async def _run(broker: MemoryBroker, chunks: list[bytes]) -> list[Event]:
    client = cast(openai.AsyncOpenAI, None)  # the stream above never calls the API
    async with Runner(client, broker, stream=_arriving_in(chunks)) as runner:
        rid = await runner.start(model="gpt-5", input="x")
        await runner.wait(rid)
    with anyio.fail_after(20):
        return [e async for e in await broker.subscribe(rid)]


def _json(events: Sequence[Event]) -> list[Any]:
    return [msgspec.to_builtins(e) | {"type": e.type} for e in events]


@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(cuts=st.lists(st.integers(0, len(LONG)), max_size=60))
def test_any_chunking_reaches_readers_whole_in_few_calls(
    anyio_backend: str, cuts: list[int]
) -> None:
    chunks = _cut(LONG, cuts)
    broker = _Noting()
    events = anyio.run(_run, broker, chunks, backend=anyio_backend)
    # Readers get what they got when every event had a call of its own.
    assert _json(events) == _json(WHOLE)
    # Every event went out once, in order, in calls of at most MOST events.
    assert [c for call in broker.calls for c in call] == [e.cursor for e in events]
    assert all(0 < len(call) <= MOST for call in broker.calls)
    # What one chunk brings is never split across calls unless a call is full: at most
    # one call per chunk, plus the response's first event (start returns once it is in).
    assert len(broker.calls) <= len(chunks) + 1 + len(events) // MOST


async def test_a_burst_goes_out_in_full_calls() -> None:
    broker = _Noting()
    events = await _run(broker, [LONG])
    assert len(events) > 3 * MOST
    assert len(broker.calls) <= len(events) // MOST + 2
    assert isinstance(events[-1], ResponseCompleted)


async def test_a_lone_event_is_published_without_waiting_for_more() -> None:
    # The first chunk's events are in the broker while the next chunk has not come:
    # batching never holds an event back for company.
    frames = LONG.split(b"\n\n")
    head = b"\n\n".join(frames[:6]) + b"\n\n"
    gate = anyio.Event()

    async def body() -> AsyncIterator[bytes]:
        yield head
        await gate.wait()
        yield LONG[len(head) :]

    def open_stream(client: Any, **create: Any) -> AsyncIterator[Event]:
        return _Source(body())

    broker = _Noting()
    expected = WHOLE[:4]  # what the head's frames give while the stream goes on
    assert _json(expected) == _json(list(respflow.replay(head))[:4])
    client = cast(openai.AsyncOpenAI, None)
    async with Runner(client, broker, stream=open_stream) as runner:
        rid = await runner.start(model="gpt-5", input="x")
        subscription = await broker.subscribe(rid)
        with anyio.fail_after(10):
            early = [await subscription.__anext__() for _ in expected]
        assert _json(early) == _json(expected)
        gate.set()
        with anyio.fail_after(10):
            rest = [e async for e in subscription]
    assert _json(early + rest) == _json(WHOLE)


async def test_a_response_with_file_downloads_takes_fewer_calls_than_events(
    tmp_path: Path, anyio_backend: str
) -> None:
    broker = _Noting()
    async with (
        MockServer(SAMPLE, files=FILES) as mock,
        openai.AsyncOpenAI(
            base_url=mock.openai_base_url, api_key="sk-mock-openai", max_retries=0
        ) as client,
    ):
        storage = respflow.LocalStorage(tmp_path)
        async with Runner(
            client,
            broker,
            processors=lambda: [
                respflow.FileFetcher(client, storage),
                respflow.LinkRewriter("/files/{response_id}/{filename}"),
            ],
        ) as runner:
            rid = await runner.start(model="gpt-5", input="roll dice", tools=CI_TOOLS)
            await runner.wait(rid)
        with anyio.fail_after(20):
            events = [e async for e in await broker.subscribe(rid)]
    saved = {e.filename for e in events if isinstance(e, respflow.FileSaved)}
    assert {"dice_rolls.csv", "dice_chart.png"} <= saved
    assert isinstance(events[-1], ResponseCompleted)
    assert [c for call in broker.calls for c in call] == [e.cursor for e in events]
    assert len(broker.calls) < len(events)
