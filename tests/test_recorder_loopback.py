"""A production incident becomes a local test in two commands, over loopback, as a user
runs them: ``respflow serve --record`` writes the wire; the file replays to the same
events; ``respflow mock-server --fixture`` serves it, and ``respflow stream`` against that
mock gives the same events again, recording the same bytes again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path

import anyio
import httpx2

import respflow

SAMPLES = resources.files("respflow").joinpath("samples")
FILES = Path(str(SAMPLES.joinpath("files")))
TOKEN = "record-test-token"
BODY = {
    "model": "gpt-5",
    "input": "Roll two dice 100 times",
    "tools": [{"type": "code_interpreter", "container": {"type": "auto"}}],
}
# What the server's file fetcher and link rewriter add or rewrite; the rest is the wire's.
PROCESSED = (
    respflow.FileSaved,
    respflow.FileFailed,
    respflow.FileCited,
    respflow.FileLink,
    respflow.TextDelta,
    respflow.TextDone,
    respflow.MessageCompleted,
)


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "AZURE_"))}
    return {**env, **extra}


@contextmanager
def _running(*args: str, first: str) -> Iterator[str]:
    """Run ``respflow ARGS`` until the block ends; yields the URL its first line gives.
    Stopped with SIGTERM, as a service manager stops it; it must exit cleanly."""
    command = [sys.executable, "-m", "respflow", *args]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env()
    ) as process:
        assert process.stdout is not None
        try:
            line = process.stdout.readline()
            assert line.startswith(first), line + (process.stderr.read() if process.stderr else "")
            yield line.split(" on ", 1)[1].strip()
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                code = process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                raise
    assert code == 0


async def _run_one(url: str) -> list[respflow.Event]:
    """Start a response on ``respflow serve`` and follow its events to the end."""
    events: list[respflow.Event] = []
    decoder = respflow.SSEDecoder()
    async with httpx2.AsyncClient(base_url=url) as http:
        answer = await http.post(
            "/responses", json=BODY, headers={"authorization": f"Bearer {TOKEN}"}
        )
        assert answer.status_code == 201, answer.text
        with anyio.fail_after(30):
            async with http.stream("GET", answer.json()["events_url"]) as stream:
                async for chunk in stream.aiter_bytes():
                    for frame in decoder.feed(chunk):
                        assert isinstance(frame, respflow.Frame)
                        event = respflow.decode_event(frame.data)
                        events.append(event)
                        if isinstance(event, respflow.END_TYPES):
                            return events
    raise AssertionError("the events ended without the response's end")


def _stream(base_url: str, *extra: str) -> list[respflow.Event]:
    """``respflow stream --format jsonl`` against a mock API; the events it printed."""
    command = [sys.executable, "-m", "respflow", "stream", "--model", "gpt-5", "Roll the dice"]
    done = subprocess.run(
        [*command, "--format", "jsonl", *extra],
        capture_output=True,
        env=_env(OPENAI_BASE_URL=base_url, OPENAI_API_KEY="sk-mock-openai"),
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    return [respflow.decode_event(line) for line in done.stdout.splitlines()]


def _unprocessed(events: list[respflow.Event]) -> list[dict[str, object]]:
    """The events no processor touches, as their fields but the cursor (a processor that
    inserts events renumbers what follows them)."""
    kept = [e for e in events if not isinstance(e, PROCESSED)]
    return [{f: getattr(e, f) for f in e.__struct_fields__ if f != "cursor"} for e in kept]


def test_an_incident_recorded_by_serve_replays_and_is_served_again(tmp_path: Path) -> None:
    # One event loop is enough: the commands under test run in their own processes.
    recorded = tmp_path / "incidents"
    serve = ["serve", "--mock", "--port", "0", "--token", TOKEN, "--secret", "s" * 32]
    serve += ["--files-dir", str(tmp_path / "served-files"), "--record", f"{recorded}/"]
    with _running(*serve, first="respflow serve: listening on http://127.0.0.1:") as url:
        served = anyio.run(_run_one, url)

    # One file, named by the response; it replays to what the server delivered.
    (fixture,) = recorded.iterdir()
    assert fixture.name == f"{served[0].response_id}.sse"
    wire = fixture.read_bytes()
    replayed = list(respflow.replay(wire))
    assert _unprocessed(replayed) == _unprocessed(served)
    assert any(isinstance(e, respflow.CodeLogs) for e in replayed)
    assert isinstance(replayed[-1], respflow.ResponseCompleted)

    # The mock serves it, ids kept: `respflow stream` gives the same events, and records
    # the very same bytes.
    mock = ["mock-server", "--fixture", str(fixture), "--files", str(FILES), "--port", "0"]
    with _running(*mock, "--keep-ids", first="respflow mock-server: listening on") as base:
        again = _stream(f"{base}/v1", "--record", str(tmp_path / "again.sse"))
        cited = [e for e in replayed if isinstance(e, respflow.FileCited)]
        contents = [_content(base, e.container_id, e.file_id) for e in cited]
    assert again == replayed
    assert (tmp_path / "again.sse").read_bytes() == wire

    # With its container files, under the ids the recording cites.
    assert cited
    for event, content in zip(cited, contents, strict=True):
        assert content == (FILES / str(event.filename)).read_bytes()


def _content(base: str, container_id: str | None, file_id: str | None) -> bytes:
    url = f"{base}/v1/containers/{container_id}/files/{file_id}/content"
    answer = httpx2.get(url, headers={"authorization": "Bearer sk-mock-openai"}, timeout=10)
    assert answer.status_code == 200, answer.text
    content: bytes = answer.content
    return content
