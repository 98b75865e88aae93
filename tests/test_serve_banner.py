"""What `respflow serve` prints is enough to use it: the token it made up can be passed
back with --token, and the curl it shows, then the events_url, get a response's events."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
from collections.abc import Iterator

import anyio
import httpx2
import pytest

import respflow
from respflow._cli.main import _parser
from respflow._cli.serve import banner, new_token


def _env() -> dict[str, str]:
    unset = ("OPENAI_", "AZURE_", "RESPFLOW_TOKEN", "RESPFLOW_SECRET")
    return {k: v for k, v in os.environ.items() if not k.startswith(unset)}


@pytest.fixture(scope="module")
def printed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    files = tmp_path_factory.mktemp("banner-files")
    command = [sys.executable, "-m", "respflow", "serve", "--mock", "--port", "0"]
    command += ["--files-dir", str(files)]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env()
    ) as process:
        try:
            assert process.stdout is not None
            lines = [process.stdout.readline() for _ in range(4)]
            assert lines[0].startswith("respflow serve: listening on "), lines
            yield lines
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                raise


def test_a_generated_token_reads_back_as_an_option() -> None:
    for _ in range(500):
        token = new_token()
        args = _parser(["serve"]).parse_args(["serve", "--token", token])
        assert args.token == token


@pytest.mark.anyio
async def test_the_printed_steps_get_a_response(printed: list[str], anyio_backend: str) -> None:
    url = printed[0].rsplit(" ", 1)[-1].strip()
    token = printed[1].split()[1]
    assert _parser(["serve"]).parse_args(["serve", "--token", token]).token == token

    curl = shlex.split(printed[2].split("start: ", 1)[1])
    target = curl[curl.index("-X") + 2]
    header = curl[curl.index("-H") + 1]
    body = curl[curl.index("-d") + 1]
    follow = re.search(r"curl -N (\S+)<events_url>", printed[3])
    assert follow is not None, printed[3]
    assert follow.group(1) == url

    async with httpx2.AsyncClient() as http:
        name, _, value = header.partition(": ")
        started = await http.post(
            target, content=body, headers={name: value, "content-type": "application/json"}
        )
        assert started.status_code == 201, started.text
        events = []
        decoder = respflow.SSEDecoder()
        with anyio.fail_after(30):
            events_url = follow.group(1) + started.json()["events_url"]
            async with http.stream("GET", events_url) as answer:
                assert answer.status_code == 200
                async for chunk in answer.aiter_bytes():
                    for frame in decoder.feed(chunk):
                        assert isinstance(frame, respflow.Frame)
                        if frame.data:
                            events.append(respflow.decode_event(frame.data))
    assert isinstance(events[-1], respflow.ResponseCompleted)


def test_the_banner_names_the_server_for_the_events_url() -> None:
    shown = banner("http://127.0.0.1:8000", "t0k3n", generated=True)
    assert "curl -N http://127.0.0.1:8000<events_url>" in shown
