"""Two `respflow serve` instances, one Redis, one mock API process: the instance that
started a background response is SIGKILLed halfway, and the other one finishes it."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from serve_processes import LISTENING, api_environment, mock_api, running, serve_command

import respflow

TOKEN = "takeover-token"
SECRET = "a-secret-both-instances-share!!!"
BODY = {
    "model": "gpt-5",
    "input": "dice",
    "tools": [{"type": "code_interpreter", "container": {"type": "auto"}}],
    "background": True,
}


@contextmanager
def _instance(redis_url: str, files: Path, api: str) -> Iterator[tuple[str, int]]:
    options = ("--lease-ttl", "1", "--secret", SECRET, "--record", f"{files / 'wire'}/")
    command = serve_command(redis_url, files, TOKEN, *options)
    with running(command, ready=LISTENING, env=api_environment(api)) as (first, process):
        yield first.rsplit(" ", 1)[-1].strip(), process.pid


async def _start(base: str) -> str:
    async with httpx2.AsyncClient(base_url=base) as http:
        answer = await http.post(
            "/responses", json=BODY, headers={"authorization": f"Bearer {TOKEN}"}
        )
        assert answer.status_code == 201, answer.text
        url: str = answer.json()["events_url"]
        return url


async def _follow(base: str, events_url: str, kill: tuple[int, int] | None = None) -> list[Any]:
    """The events a browser reading ``events_url`` at ``base`` gets; with ``kill``
    (n, pid): SIGKILLs pid once n events arrived."""
    events: list[respflow.Event] = []
    decoder = respflow.SSEDecoder()
    with anyio.fail_after(60):
        async with (
            httpx2.AsyncClient(base_url=base, timeout=60) as http,
            http.stream("GET", events_url) as stream,
        ):
            assert stream.status_code == 200
            async for chunk in stream.aiter_bytes():
                for frame in decoder.feed(chunk):
                    assert isinstance(frame, respflow.Frame)
                    if frame.data:
                        events.append(respflow.decode_event(frame.data))
                if kill is not None and len(events) >= kill[0]:
                    os.kill(kill[1], signal.SIGKILL)  # no cleanup, no end, no release
                    kill = None
    assert kill is None, "the response ended before the instance could be killed"
    return events


def _shape(events: list[respflow.Event]) -> list[tuple[str, int | None]]:
    """What does not depend on ids or timing: each event's type and place, files aside
    (and the place of a message, held back until its files are saved)."""
    return [
        (e.type, None if isinstance(e, respflow.MessageCompleted) else e.sequence_number)
        for e in events
        if not isinstance(e, respflow.FileSaved)
    ]


@pytest.mark.anyio
async def test_a_killed_instances_background_response_is_finished_by_the_other(
    redis_url: str, tmp_path: Path, anyio_backend: str
) -> None:
    with ExitStack() as stack:
        api = stack.enter_context(mock_api("--pace", "0.03"))
        a, a_pid = stack.enter_context(_instance(redis_url, tmp_path, api))
        b, _ = stack.enter_context(_instance(redis_url, tmp_path, api))
        events = await _follow(b, await _start(a), kill=(40, a_pid))
        # The same response, started and read where nobody dies.
        undisturbed = await _follow(b, await _start(b))
    assert isinstance(events[-1], respflow.ResponseCompleted)
    assert not any(isinstance(e, respflow.StreamTruncated) for e in events)
    cursors = [respflow.parse_cursor(e.cursor) for e in events]
    assert cursors == sorted(set(cursors))  # each event once, in order
    assert _shape(events) == _shape(undisturbed)  # none lost, none repeated
    saved = sorted(e.filename for e in events if isinstance(e, respflow.FileSaved))
    assert saved
    assert saved == sorted(e.filename for e in undisturbed if isinstance(e, respflow.FileSaved))
    # B recorded the replay it continued from, whole: the incident can be replayed.
    rid = events[0].response_id
    recorded = [p for p in (tmp_path / "wire").iterdir() if p.name.startswith(rid)]
    ends = [list(respflow.replay(p.read_bytes()))[-1] for p in recorded]
    assert any(isinstance(end, respflow.ResponseCompleted) for end in ends)
