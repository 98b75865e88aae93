"""Runner: a response started from a handler, run in the background into a broker."""

from __future__ import annotations

from collections.abc import AsyncIterator
from importlib import resources
from pathlib import Path

import anyio
import openai
import pytest

import respflow
from respflow import (
    AuthenticationFailed,
    FileFetcher,
    LinkRewriter,
    LocalStorage,
    MemoryBroker,
    ResponseCompleted,
    Runner,
    StreamTruncated,
)
from respflow.testing import MockServer, Recording

pytestmark = pytest.mark.anyio

SAMPLES = resources.files("respflow").joinpath("samples")
SAMPLE = Recording.from_bytes(SAMPLES.joinpath("code_interpreter.sse").read_bytes())
FILES = Path(str(SAMPLES.joinpath("files")))
CI_TOOLS = [{"type": "code_interpreter", "container": {"type": "auto"}}]


@pytest.fixture
async def mock(anyio_backend: str) -> AsyncIterator[MockServer]:
    async with MockServer(SAMPLE, files=FILES) as server:
        yield server


@pytest.fixture
async def client(mock: MockServer) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(
        base_url=mock.openai_base_url, api_key="sk-mock-openai", max_retries=0
    ) as sdk:
        yield sdk


async def _all(broker: respflow.Broker, response_id: str) -> list[respflow.Event]:
    with anyio.fail_after(20):
        return [e async for e in await broker.subscribe(response_id)]


async def test_start_returns_the_id_and_the_whole_response_reaches_the_broker(
    client: openai.AsyncOpenAI,
) -> None:
    broker = MemoryBroker()
    async with Runner(client, broker) as runner:
        rid = await runner.start(model="gpt-5", input="roll dice", tools=CI_TOOLS)
        # The id is known and followable the moment start returns.
        assert rid == SAMPLE.response_id
        status = await broker.status(rid)
        assert status is not None
        assert status.last_cursor is not None
        events = await _all(broker, rid)
    direct = list(respflow.replay(SAMPLE.to_sse()))
    assert [e.type for e in events] == [e.type for e in direct]
    assert isinstance(events[-1], ResponseCompleted)
    assert runner.running() == []


async def test_a_failure_before_the_first_event_is_raised_by_start_as_itself(
    mock: MockServer,
) -> None:
    broker = MemoryBroker()
    async with (
        openai.AsyncOpenAI(base_url=mock.openai_base_url, api_key="sk-wrong", max_retries=0) as bad,
        Runner(bad, broker) as runner,
    ):
        with pytest.raises(AuthenticationFailed):
            await runner.start(model="gpt-5", input="x")
        assert runner.running() == []
        # The runner goes on serving other starts.
        with pytest.raises(AuthenticationFailed):
            await runner.start(model="gpt-5", input="x")


async def test_processors_run_per_response_into_the_broker(
    client: openai.AsyncOpenAI, tmp_path: Path
) -> None:
    broker = MemoryBroker()
    storage = LocalStorage(tmp_path)
    async with Runner(
        client,
        broker,
        processors=lambda: [
            FileFetcher(client, storage),
            LinkRewriter("/files/{response_id}/{filename}"),
        ],
    ) as runner:
        rid = await runner.start(model="gpt-5", input="roll dice", tools=CI_TOOLS)
        events = await _all(broker, rid)
    saved = {e.filename for e in events if isinstance(e, respflow.FileSaved)}
    assert {"dice_rolls.csv", "dice_chart.png"} <= saved
    final = [e for e in events if isinstance(e, respflow.MessageCompleted)][-1]
    assert "sandbox:" not in final.text
    assert f"/files/{rid}/dice_rolls.csv" in final.text
    assert isinstance(events[-1], ResponseCompleted)


async def test_leaving_the_runner_ends_every_running_response_in_the_broker(
    anyio_backend: str,
) -> None:
    async with (
        MockServer(SAMPLE, pace=0.05) as slow,
        openai.AsyncOpenAI(base_url=slow.openai_base_url, api_key="sk-mock-openai") as client,
    ):
        broker = MemoryBroker()
        async with Runner(client, broker) as runner:
            rid = await runner.start(model="gpt-5", input="x")
            await anyio.sleep(0.2)
        events = await _all(broker, rid)
    assert isinstance(events[-1], StreamTruncated)
    assert len([e for e in events if e.type in {"stream.truncated", "response.completed"}]) == 1
    cursors = [respflow.parse_cursor(e.cursor) for e in events]
    assert cursors == sorted(set(cursors))


async def test_cancel_stops_a_response_and_its_log_ends(anyio_backend: str) -> None:
    async with (
        MockServer(SAMPLE, pace=0.05) as slow,
        openai.AsyncOpenAI(base_url=slow.openai_base_url, api_key="sk-mock-openai") as client,
    ):
        broker = MemoryBroker()
        async with Runner(client, broker) as runner:
            rid = await runner.start(model="gpt-5", input="x", background=True, store=True)
            with anyio.fail_after(10):
                assert await runner.cancel(rid, grace=0.2)
            assert runner.running() == []
            assert not await runner.cancel(rid)
            events = await _all(broker, rid)
        assert any(r.method == "POST" and r.path.endswith(f"/{rid}/cancel") for r in slow.requests)
    assert events[-1].type in {"stream.truncated", "response.failed", "response.incomplete"}


async def test_a_producer_whose_lease_was_taken_publishes_nothing_more(
    anyio_backend: str,
) -> None:
    now = [0.0]
    broker = MemoryBroker(clock=lambda: now[0])
    async with (
        MockServer(SAMPLE, pace=0.05) as slow,
        openai.AsyncOpenAI(base_url=slow.openai_base_url, api_key="sk-mock-openai") as client,
    ):
        async with Runner(client, broker, lease_ttl=5.0) as runner:
            rid = await runner.start(model="gpt-5", input="x")
            now[0] += 60  # the producer stalls past its lease, and another claims it
            successor = await broker.claim(rid, "successor", ttl=600)
            assert successor is not None
            status = await broker.status(rid)
            assert status is not None
            before = status.last_cursor
            with anyio.fail_after(10):
                await runner.wait(rid)
        status = await broker.status(rid)
        assert status is not None
        assert status.last_cursor == before  # nothing after the takeover, not even an end
        assert status.owner == "successor"
