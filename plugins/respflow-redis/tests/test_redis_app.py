"""Two respflow.app instances sharing one Redis: a response started on one is followed,
live and resumed, from the other (as two worker processes behind a load balancer)."""

from __future__ import annotations

import importlib.util
import re
import uuid
from importlib import resources
from pathlib import Path
from types import ModuleType

import anyio
import coredis
import httpx2
import openai
import pytest
from respflow_redis import RedisBroker

import respflow
from respflow import Event, Runner, SSEDecoder
from respflow.testing import LoopbackServer, MockServer, Recording

pytestmark = pytest.mark.anyio

README = Path(__file__).resolve().parents[1] / "README.md"
SAMPLE = Recording.from_bytes(
    resources.files("respflow").joinpath("samples", "code_interpreter.sse").read_bytes()
)
TOKEN = "test-token-123"
SECRET = "a-secret-of-32-bytes-for-tests!!"
BODY = {
    "model": "gpt-5",
    "input": "Roll two dice 100 times",
    "tools": [{"type": "code_interpreter", "container": {"type": "auto"}}],
}


async def follow(http: httpx2.AsyncClient, url: str, **headers: str) -> list[Event]:
    events: list[Event] = []
    decoder = SSEDecoder()
    with anyio.fail_after(20):
        async with http.stream("GET", url, headers=headers) as answer:
            assert answer.status_code == 200, await answer.aread()
            async for chunk in answer.aiter_bytes():
                for frame in decoder.feed(chunk):
                    assert isinstance(frame, respflow.Frame)
                    if frame.data:
                        event = respflow.decode_event(frame.data)
                        assert frame.id == event.cursor
                        events.append(event)
    return events


async def test_a_response_started_on_one_instance_is_followed_from_another(
    redis_url: str, tmp_path: Path
) -> None:
    prefix = f"rftest:{uuid.uuid4().hex[:12]}:"
    async with (
        MockServer(SAMPLE, pace=0.01) as mock,
        openai.AsyncOpenAI(
            base_url=mock.openai_base_url, api_key=mock.openai_api_key, max_retries=0
        ) as client,
        RedisBroker(redis_url, prefix=prefix) as starting_broker,
        RedisBroker(redis_url, prefix=prefix) as serving_broker,
        Runner(client, starting_broker) as runner,
    ):
        starting = respflow.app(starting_broker, runner=runner, secret=SECRET, token=TOKEN)
        # Heartbeats every 10 ms: the reader's waits are cut short again and again.
        serving = respflow.app(serving_broker, secret=SECRET, heartbeat=0.01)
        async with (
            LoopbackServer(starting) as first,
            LoopbackServer(serving) as second,
            httpx2.AsyncClient(base_url=first.url) as to_first,
            httpx2.AsyncClient(base_url=second.url) as to_second,
        ):
            answer = await to_first.post(
                "/responses", json=BODY, headers={"authorization": f"Bearer {TOKEN}"}
            )
            assert answer.status_code == 201, answer.text
            events_url = answer.json()["events_url"]
            live = await follow(to_second, events_url)
            assert isinstance(live[-1], respflow.ResponseCompleted)
            assert [e.type for e in live].count("response.completed") == 1
            assert len({e.cursor for e in live}) == len(live)
            assert live == await follow(to_first, events_url)
            for k in (0, len(live) // 2, len(live) - 2):
                resumed = await follow(to_second, events_url, **{"last-event-id": live[k].cursor})
                assert resumed == live[k + 1 :]


def snippet() -> str:
    text = README.read_text()
    marked = text[text.index("<!-- redis-snippet") :]
    found = re.search(r"```python\n(.*?)```", marked, re.S)
    assert found is not None
    return found.group(1)


def worker(path: Path, name: str) -> ModuleType:
    """The README's server as one worker process would load it."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_the_readme_server_runs_as_two_workers_sharing_redis(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    database = redis_url.rpartition("/")[0] + "/15"
    async with coredis.Redis.from_url(database) as raw:
        await raw.flushdb()  # the snippet uses the default key prefix: a database of its own
    (tmp_path / "server.py").write_text(snippet())
    monkeypatch.setenv("REDIS_URL", database)
    monkeypatch.setenv("RESPFLOW_SECRET", "a-secret-long-enough-to-sign-urls")
    monkeypatch.setenv("MY_KEY", "k-123")
    monkeypatch.setenv("RESPFLOW_FILES", str(tmp_path / "files"))
    first, second = (worker(tmp_path / "server.py", f"worker_{n}") for n in "ab")
    async with MockServer(SAMPLE, pace=0.01) as mock:
        monkeypatch.setenv("OPENAI_BASE_URL", mock.openai_base_url)
        monkeypatch.setenv("OPENAI_API_KEY", mock.openai_api_key)
        async with (
            LoopbackServer(first.app) as one,
            LoopbackServer(second.app) as two,
            httpx2.AsyncClient(base_url=one.url) as to_one,
            httpx2.AsyncClient(base_url=two.url) as to_two,
        ):
            started = await to_one.post(
                "/respflow/responses", json=BODY, headers={"x-api-key": "k-123"}
            )
            assert started.status_code == 201, started.text
            events_url = started.json()["events_url"]
            live = await follow(to_two, events_url)
            assert isinstance(live[-1], respflow.ResponseCompleted)
            assert live == await follow(to_one, events_url)
