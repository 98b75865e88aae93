"""`respflow serve --allow-origin`: a page on another origin may call the server, and only
the origins given may; run as a user runs it, against the bundled mock API."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx2
import pytest
from hypothesis import given
from hypothesis import strategies as st

import respflow
from respflow._cli.main import _parser
from respflow._cli.workers import _worker_command
from respflow._server.cors import origin

TOKEN = "cors-test-token"
PAGE = "https://chat.example.com"
BODY = {
    "model": "gpt-5",
    "input": "Roll two dice 100 times",
    "tools": [{"type": "code_interpreter", "container": {"type": "auto"}}],
}
PREFLIGHT_POST = {
    "access-control-request-method": "POST",
    "access-control-request-headers": "authorization, content-type",
}


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "AZURE_"))}


def _serve(files: Path, *options: str) -> Iterator[str]:
    command = [sys.executable, "-m", "respflow", "serve", "--mock", "--port", "0"]
    command += ["--token", TOKEN, "--secret", "s" * 32, "--files-dir", str(files), *options]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env()
    ) as process:
        try:
            assert process.stdout is not None
            first = process.stdout.readline()
            assert first.startswith("respflow serve: listening on http://127.0.0.1:"), first
            yield first.rsplit(" ", 1)[-1].strip()
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                code = process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                raise
    assert code == 0


@pytest.fixture(scope="module")
def allowing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Serving pages of chat.example.com (given as a user might type it) and localhost:3000."""
    files = tmp_path_factory.mktemp("cors-files")
    options = (
        "--allow-origin",
        "https://Chat.Example.com:443",
        "--allow-origin=http://localhost:3000",
    )
    yield from _serve(files, *options)


@pytest.fixture(scope="module")
def allowing_any(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from _serve(tmp_path_factory.mktemp("cors-any-files"), "--allow-origin", "*")


def _listed(value: str | None) -> set[str]:
    return {part.strip().lower() for part in (value or "").split(",") if part.strip()}


@pytest.mark.anyio
async def test_a_preflight_from_an_allowed_origin_is_answered(
    allowing: str, anyio_backend: str
) -> None:
    async with httpx2.AsyncClient(base_url=allowing) as http:
        for page in (PAGE, "http://localhost:3000"):
            answer = await http.options("/responses", headers={"origin": page, **PREFLIGHT_POST})
            assert answer.status_code == 200
            assert answer.headers["access-control-allow-origin"] == page
            assert {"get", "head", "post"} <= _listed(
                answer.headers["access-control-allow-methods"]
            )
            allowed = _listed(answer.headers["access-control-allow-headers"])
            assert {"authorization", "content-type", "last-event-id"} <= allowed
            # The app needs no cookies: credentialed requests are never allowed.
            assert "access-control-allow-credentials" not in answer.headers

        # A reader resuming with fetch asks to send Last-Event-ID on its GET.
        resume = {
            "origin": PAGE,
            "access-control-request-method": "GET",
            "access-control-request-headers": "last-event-id",
        }
        answer = await http.options("/responses/resp_x/events", headers=resume)
        assert answer.status_code == 200
        assert answer.headers["access-control-allow-origin"] == PAGE


@pytest.mark.anyio
async def test_a_preflight_from_another_origin_is_not(allowing: str, anyio_backend: str) -> None:
    async with httpx2.AsyncClient(base_url=allowing) as http:
        for page in (
            "https://evil.example.com",
            "http://chat.example.com",  # another scheme is another origin
            "https://chat.example.com:8443",
            "http://localhost:3001",
            "null",
        ):
            answer = await http.options("/responses", headers={"origin": page, **PREFLIGHT_POST})
            assert answer.status_code == 400, page
            assert "access-control-allow-origin" not in answer.headers
            # Nor does the real request carry what would let the page read the answer.
            started = await http.post(
                "/responses",
                json=BODY,
                headers={"origin": page, "authorization": f"Bearer {TOKEN}"},
            )
            assert started.status_code == 201
            assert "access-control-allow-origin" not in started.headers


@pytest.mark.anyio
async def test_a_page_starts_and_follows_a_response_across_origins(
    allowing: str, anyio_backend: str
) -> None:
    page = {"origin": PAGE}
    async with httpx2.AsyncClient(base_url=allowing) as http:
        started = await http.post(
            "/responses", json=BODY, headers={**page, "authorization": f"Bearer {TOKEN}"}
        )
        assert started.status_code == 201
        assert started.headers["access-control-allow-origin"] == PAGE
        assert "origin" in _listed(started.headers.get("vary"))
        exposed = _listed(started.headers["access-control-expose-headers"])
        assert {"retry-after", "content-disposition"} <= exposed
        url = started.json()["events_url"]

        events = await _follow(http, url, page)
        assert isinstance(events[-1], respflow.ResponseCompleted)
        # Resumed with Last-Event-ID, as a fetch-based reader does after a drop.
        middle = events[len(events) // 2].cursor
        rest = await _follow(http, url, {**page, "last-event-id": middle})
        assert rest == events[len(events) // 2 + 1 :]
        # A file the page links to is readable by its script too, name included.
        saved = next(e for e in events if isinstance(e, respflow.FileSaved) and e.url)
        assert saved.url is not None
        got = await http.get(saved.url, headers=page)
        assert got.status_code == 200
        assert got.headers["access-control-allow-origin"] == PAGE

        # Refusals carry the header too, so the page can read why.
        refused = await http.post("/responses", json=BODY, headers=page)
        assert refused.status_code == 401
        assert refused.headers["access-control-allow-origin"] == PAGE
        assert "Bearer" in refused.json()["error"]["message"]


async def _follow(
    http: httpx2.AsyncClient, url: str, headers: dict[str, str]
) -> list[respflow.Event]:
    events = []
    decoder = respflow.SSEDecoder()
    with anyio.fail_after(30):
        async with http.stream("GET", url, headers=headers) as answer:
            assert answer.status_code == 200
            assert answer.headers["content-type"].startswith("text/event-stream")
            assert answer.headers["access-control-allow-origin"] == headers["origin"]
            async for chunk in answer.aiter_bytes():
                for frame in decoder.feed(chunk):
                    assert isinstance(frame, respflow.Frame)
                    if frame.data:
                        events.append(respflow.decode_event(frame.data))
    return events


@pytest.mark.anyio
async def test_a_star_lets_any_page_in_without_credentials(
    allowing_any: str, anyio_backend: str
) -> None:
    async with httpx2.AsyncClient(base_url=allowing_any) as http:
        answer = await http.options(
            "/responses", headers={"origin": "https://anywhere.example", **PREFLIGHT_POST}
        )
        assert answer.status_code == 200
        assert answer.headers["access-control-allow-origin"] == "*"
        assert "access-control-allow-credentials" not in answer.headers
        assert "authorization" in _listed(answer.headers["access-control-allow-headers"])
        health = await http.get("/healthz", headers={"origin": "https://anywhere.example"})
        assert health.headers["access-control-allow-origin"] == "*"


def test_what_is_not_an_origin_is_refused_in_one_line() -> None:
    for given_origin, why in [
        (
            "https://chat.example.com/",
            "no path, query or trailing slash (pass https://chat.example.com)",
        ),
        ("https://chat.example.com/app", "(pass https://chat.example.com)"),
        ("chat.example.com", "needs a scheme (pass https://chat.example.com or http://"),
        ("localhost:3000", "needs a scheme (pass https://localhost:3000 or http://"),
        ("null", "sandboxed frames and local files"),
        ("https://user@chat.example.com", "it has a user name"),
        ("http://localhost:70000", "is not an origin"),
        ("https://chat example.com", "is not a host name"),
    ]:
        done = subprocess.run(
            [sys.executable, "-m", "respflow", "serve", "--mock", "--allow-origin", given_origin],
            capture_output=True,
            text=True,
            env=_env(),
            timeout=60,
        )
        assert done.returncode == 2
        assert done.stderr.count("\n") == 1, done.stderr
        assert done.stderr.startswith(f"respflow serve: --allow-origin {given_origin!r}")
        assert why in done.stderr, done.stderr


def test_workers_are_given_the_same_origins(tmp_path: Path) -> None:
    argv = ["serve", "--allow-origin", "https://a.example", "--allow-origin", "*"]
    args = _parser(["serve"]).parse_args(argv)
    command = _worker_command(args, 7)
    index = command.index("serve")
    again = _parser(["serve"]).parse_args(command[index:])
    assert again.allow_origin == ["https://a.example", "*"]
    assert again.worker_fd == 7


_HOSTS = st.from_regex(r"[a-zA-Z0-9]([a-zA-Z0-9-]{0,20}\.)*[a-zA-Z0-9]{1,10}", fullmatch=True)
_ORIGIN = re.compile(r"[a-z][a-z0-9+.-]*://([a-z0-9._-]+|\[[0-9a-f:.]+\])(:[0-9]{1,5})?")


@given(
    scheme=st.sampled_from(["http", "https", "HTTPS", "capacitor"]),
    host=_HOSTS,
    port=st.none() | st.integers(0, 65535),
)
def test_an_origin_is_kept_as_a_browser_sends_it(scheme: str, host: str, port: int | None) -> None:
    text = f"{scheme}://{host}" + ("" if port is None else f":{port}")
    kept = origin(text)
    assert kept == kept.lower()
    assert _ORIGIN.fullmatch(kept)
    assert origin(kept) == kept
    default = {"http": 80, "https": 443}.get(scheme.lower())
    assert kept.endswith(f":{port}") == (port is not None and port != default)
    with pytest.raises(ValueError, match="pass "):
        origin(text + "/")


@given(st.text(max_size=40))
def test_any_text_is_an_origin_or_a_reason(text: str) -> None:
    why = None
    try:
        kept = origin(text)
    except ValueError as exc:
        why = str(exc)
    if why is None:
        assert kept == "*" or _ORIGIN.fullmatch(kept)
    else:  # one line, naming what was given
        assert repr(text) in why
        assert "\n" not in why
