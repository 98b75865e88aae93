"""The `respflow serve` contract, against `respflow serve --mock` run as a user runs it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import anyio
import httpx2
import pytest

import respflow
from respflow import SSEDecoder

SAMPLES = resources.files("respflow").joinpath("samples")
FILES = Path(str(SAMPLES.joinpath("files")))
TOKEN = "serve-test-token"
BODY = {
    "model": "gpt-5",
    "input": "Roll two dice 100 times",
    "tools": [{"type": "code_interpreter", "container": {"type": "auto"}}],
}


@dataclass
class Served:
    url: str
    process: subprocess.Popen[str]


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "AZURE_"))}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    files = tmp_path_factory.mktemp("served-files")
    command = [sys.executable, "-m", "respflow", "serve", "--mock", "--port", "0"]
    command += ["--token", TOKEN, "--secret", "s" * 32, "--files-dir", str(files)]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env()
    ) as process:
        try:
            assert process.stdout is not None
            first = process.stdout.readline()
            assert first.startswith("respflow serve: listening on http://127.0.0.1:"), first
            yield Served(first.rsplit(" ", 1)[-1].strip(), process)
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                code = process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                raise
    assert code == 0


async def _start(http: httpx2.AsyncClient) -> dict[str, str]:
    answer = await http.post("/responses", json=BODY, headers={"authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 201, answer.text
    body: dict[str, str] = answer.json()
    return body


async def _follow(http: httpx2.AsyncClient, url: str, **headers: str) -> list[respflow.Event]:
    events = []
    decoder = SSEDecoder()
    with anyio.fail_after(30):
        async with http.stream("GET", url, headers=headers) as answer:
            assert answer.status_code == 200
            assert answer.headers["content-type"].startswith("text/event-stream")
            async for chunk in answer.aiter_bytes():
                for frame in decoder.feed(chunk):
                    assert isinstance(frame, respflow.Frame)
                    if frame.data:
                        event = respflow.decode_event(frame.data)
                        assert frame.id == event.cursor
                        events.append(event)
    return events


@pytest.mark.anyio
async def test_the_serve_contract(served: Served, anyio_backend: str) -> None:
    async with httpx2.AsyncClient(base_url=served.url) as http:
        assert (await http.get("/healthz")).status_code == 200
        assert (await http.post("/responses", json=BODY)).status_code == 401
        wrong = {"authorization": "Bearer nope"}
        assert (await http.post("/responses", json=BODY, headers=wrong)).status_code == 401

        started = await _start(http)
        again = await _start(http)  # the mock gives every run its own ids: no collision
        assert again["response_id"] != started["response_id"]
        events = await _follow(http, started["events_url"])
        assert isinstance(
            (await _follow(http, again["events_url"]))[-1], respflow.ResponseCompleted
        )
        assert isinstance(events[-1], respflow.ResponseCompleted)
        assert {e.response_id for e in events} == {started["response_id"]}

        # Resume: exactly the events after a cursor.
        middle = events[len(events) // 2].cursor
        rest = await _follow(http, started["events_url"], **{"last-event-id": middle})
        assert rest == events[len(events) // 2 + 1 :]

        # Files: served by the URL the event carries, the exact bytes; a tampered URL is 403.
        saved = [e for e in events if isinstance(e, respflow.FileSaved)]
        csv = next(e for e in saved if e.filename == "dice_rolls.csv")
        assert csv.url is not None
        assert (await http.get(csv.url)).content == (FILES / "dice_rolls.csv").read_bytes()
        assert (await http.get(csv.url[:-3] + "AAA")).status_code == 403
        text = [e for e in events if isinstance(e, respflow.MessageCompleted)][-1].text
        assert csv.url in text

        # Another response's id under this one's signature is refused.
        path, _, query = started["events_url"].partition("?")
        other = path.replace(started["response_id"], "resp_other") + "?" + query
        assert (await http.get(other)).status_code == 403


@pytest.mark.anyio
async def test_without_allow_origin_no_cors_headers_are_sent(
    served: Served, anyio_backend: str
) -> None:
    page = {"origin": "https://chat.example.com"}
    async with httpx2.AsyncClient(base_url=served.url) as http:
        preflight = await http.options(
            "/responses", headers={**page, "access-control-request-method": "POST"}
        )
        started = await http.post(
            "/responses", json=BODY, headers={**page, "authorization": f"Bearer {TOKEN}"}
        )
        assert started.status_code == 201
        async with http.stream("GET", started.json()["events_url"], headers=page) as events:
            assert events.status_code == 200
            headers = events.headers
    for answer_headers in (preflight.headers, started.headers, headers):
        assert not [name for name in answer_headers if name.startswith("access-control-")]


def test_refused_set_ups_say_why_in_one_line() -> None:
    for extra, why in [
        (["--workers", "2"], "--workers above 1 needs a broker the workers share"),
        (["--broker", "nats://x"], "is not a broker respflow knows"),
        (["--port", "70000"], "out of range"),
        (["--flush", "5"], "--flush 5.0 is out of range (0 to 1 second)"),
    ]:
        done = subprocess.run(
            [sys.executable, "-m", "respflow", "serve", "--mock", *extra],
            capture_output=True,
            text=True,
            env=_env(),
            timeout=60,
        )
        assert done.returncode != 0
        assert done.stderr.count("\n") == 1, done.stderr
        assert why in done.stderr
