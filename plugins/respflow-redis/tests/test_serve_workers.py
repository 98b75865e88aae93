"""`respflow serve --workers 2`: one port, two worker processes, one Redis; workers that
die are started again and their responses continued."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import anyio
import httpx2
import pytest
from serve_processes import LISTENING, api_environment, running, serve_command

import respflow

TOKEN = "workers-token"
BODY = {
    "model": "gpt-5",
    "input": "dice",
    "tools": [{"type": "code_interpreter", "container": {"type": "auto"}}],
    "background": True,
}

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/task").exists(), reason="finds the workers through /proc (Linux)"
)


@contextmanager
def _serving(redis_url: str, files: Path) -> Iterator[tuple[str, int]]:
    options = ("--workers", "2", "--mock", "--lease-ttl", "1")
    command = serve_command(redis_url, files, TOKEN, *options)
    with running(command, ready=LISTENING, env=api_environment()) as (first, parent):
        yield first.split()[4], parent.pid
    assert _workers(parent.pid) == []


def _workers(parent: int) -> list[int]:
    try:
        children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    except FileNotFoundError:
        return []
    found = []
    for child in children:
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        except FileNotFoundError:
            continue
        if b"--worker-fd" in cmdline:
            found.append(int(child))
    return found


async def _start(base: str) -> str:
    async with httpx2.AsyncClient(base_url=base, timeout=30) as http:
        answer = await http.post(
            "/responses", json=BODY, headers={"authorization": f"Bearer {TOKEN}"}
        )
        assert answer.status_code == 201, answer.text
        url: str = answer.json()["events_url"]
        return url


async def _follow(base: str, url: str, kill_after: int | None, parent: int) -> list[respflow.Event]:
    """A browser's view: it follows ``url``, and reconnects with Last-Event-ID when the
    connection drops. With ``kill_after``, every worker is SIGKILLed after that many."""
    events: list[respflow.Event] = []
    with anyio.fail_after(90):
        while not events or not isinstance(events[-1], respflow.END_TYPES):
            headers = {"last-event-id": events[-1].cursor} if events else {}
            decoder = respflow.SSEDecoder()
            try:
                async with (
                    httpx2.AsyncClient(base_url=base, timeout=60) as http,
                    http.stream("GET", url, headers=headers) as stream,
                ):
                    async for chunk in stream.aiter_bytes():
                        for frame in decoder.feed(chunk):
                            assert isinstance(frame, respflow.Frame)
                            if frame.data:
                                events.append(respflow.decode_event(frame.data))
                        if kill_after is not None and len(events) >= kill_after:
                            workers = _workers(parent)
                            assert len(workers) == 2
                            for pid in workers:
                                os.kill(pid, signal.SIGKILL)
                            kill_after = None
            except (httpx2.TransportError, httpx2.HTTPStatusError):
                await anyio.sleep(0.2)  # until the parent has started new workers
    assert kill_after is None, "the response ended before the workers could be killed"
    return events


@pytest.mark.anyio
async def test_workers_killed_halfway_are_replaced_and_the_response_finishes(
    redis_url: str, tmp_path: Path, anyio_backend: str
) -> None:
    with _serving(redis_url, tmp_path) as (base, parent):
        events = await _follow(base, await _start(base), 40, parent)
        undisturbed = await _follow(base, await _start(base), None, parent)
    assert isinstance(events[-1], respflow.ResponseCompleted)
    cursors = [respflow.parse_cursor(e.cursor) for e in events]
    assert cursors == sorted(set(cursors))  # each event once, in order

    def shape(events: list[respflow.Event]) -> list[str]:
        return [e.type for e in events if not isinstance(e, respflow.FileSaved)]

    assert shape(events) == shape(undisturbed)
    assert sorted(e.filename for e in events if isinstance(e, respflow.FileSaved)) == sorted(
        e.filename for e in undisturbed if isinstance(e, respflow.FileSaved)
    )


def test_workers_that_cannot_start_say_why_and_the_command_fails() -> None:
    command = [sys.executable, "-m", "respflow", "serve", "--workers", "2", "--port", "0"]
    command += ["--broker", "redis://127.0.0.1:1/0"]  # nothing listens on port 1
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "did not answer" in done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        "respflow serve: a worker did not start (exit status 1)"
    )
    assert done.stdout == ""


@pytest.mark.anyio
async def test_every_worker_answers_for_the_allowed_origins(
    redis_url: str, tmp_path: Path, anyio_backend: str
) -> None:
    page = "https://chat.example.com"
    options = ("--workers", "2", "--mock", "--allow-origin", page)
    command = serve_command(redis_url, tmp_path, TOKEN, *options)
    with running(command, ready=LISTENING, env=api_environment()) as (first, _):
        base = first.split()[4]
        preflight = {"access-control-request-method": "POST"}
        # A new connection each time, so the answers are not all one worker's (which
        # worker accepts is the kernel's choice); whichever answers must allow the page.
        for _ in range(8):
            async with httpx2.AsyncClient(base_url=base, timeout=30) as http:
                allowed = await http.options("/responses", headers={**preflight, "origin": page})
                other = await http.options(
                    "/responses", headers={**preflight, "origin": "https://other.example"}
                )
            assert allowed.headers["access-control-allow-origin"] == page
            assert "access-control-allow-origin" not in other.headers
