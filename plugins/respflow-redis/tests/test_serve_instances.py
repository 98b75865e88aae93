"""Two `respflow serve` processes sharing one Redis and one secret honour each other's URLs."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from importlib import resources
from pathlib import Path

import anyio
import httpx2
import pytest
from serve_processes import LISTENING, api_environment, running, serve_command

import respflow

SAMPLES = resources.files("respflow").joinpath("samples")
FILES = Path(str(SAMPLES.joinpath("files")))
TOKEN = "instances-token"
SECRET = "a-secret-both-instances-share!!!"
BODY = {"model": "gpt-5", "input": "dice", "tools": [{"type": "code_interpreter"}]}


@contextmanager
def serving(redis_url: str, files: Path) -> Iterator[str]:
    command = serve_command(redis_url, files, TOKEN, "--mock", "--secret", SECRET)
    with running(command, ready=LISTENING, env=api_environment()) as (first, _):
        yield first.rsplit(" ", 1)[-1].strip()


async def _follow(base: str, url: str) -> list[respflow.Event]:
    events = []
    decoder = respflow.SSEDecoder()
    async with httpx2.AsyncClient(base_url=base) as http, http.stream("GET", url) as answer:
        assert answer.status_code == 200
        async for chunk in answer.aiter_bytes():
            for frame in decoder.feed(chunk):
                assert isinstance(frame, respflow.Frame)
                if frame.data:
                    events.append(respflow.decode_event(frame.data))
    return events


@pytest.mark.anyio
async def test_a_response_started_on_one_instance_is_read_and_served_by_another(
    redis_url: str, tmp_path: Path, anyio_backend: str
) -> None:
    with ExitStack() as stack:
        a = stack.enter_context(serving(redis_url, tmp_path))
        b = stack.enter_context(serving(redis_url, tmp_path))
        async with httpx2.AsyncClient(base_url=a) as http:
            answer = await http.post(
                "/responses", json=BODY, headers={"authorization": f"Bearer {TOKEN}"}
            )
            assert answer.status_code == 201, answer.text
            started = answer.json()
        with anyio.fail_after(30):
            through_a = await _follow(a, started["events_url"])
            through_b = await _follow(b, started["events_url"])  # A's URL, B's server
        assert through_b == through_a
        assert isinstance(through_b[-1], respflow.ResponseCompleted)
        middle = through_a[len(through_a) // 2].cursor
        async with httpx2.AsyncClient(base_url=b) as http:
            resumed = await http.get(started["events_url"], headers={"last-event-id": middle})
            assert resumed.status_code == 200
            saved = [e for e in through_a if isinstance(e, respflow.FileSaved)]
            csv = next(e for e in saved if e.filename == "dice_rolls.csv")
            assert csv.url is not None
            download = await http.get(csv.url)  # a file URL A handed out, served by B
            assert download.content == (FILES / "dice_rolls.csv").read_bytes()
