"""respflow.app over real loopback HTTP: start, follow, resume, cancel, files."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

import anyio
import httpx2
import openai
import pytest

import respflow
from respflow import Event, MemoryBroker, Runner, SSEDecoder
from respflow.testing import LoopbackServer, MockServer, Recording

pytestmark = pytest.mark.anyio

SAMPLES = resources.files("respflow").joinpath("samples")
SAMPLE = Recording.from_bytes(SAMPLES.joinpath("code_interpreter.sse").read_bytes())
FILES = Path(str(SAMPLES.joinpath("files")))
TOKEN = "test-token-123"
SECRET = "a-secret-of-32-bytes-for-tests!!"
CI_TOOLS = [{"type": "code_interpreter", "container": {"type": "auto"}}]
BODY = {"model": "gpt-5", "input": "Roll two dice 100 times", "tools": CI_TOOLS}


@dataclass
class Gateway:
    http: httpx2.AsyncClient
    mock: MockServer
    broker: MemoryBroker
    app: respflow.App
    files: Path

    async def start(self, **body: object) -> dict[str, str]:
        answer = await self.http.post(
            "/responses", json=body or BODY, headers={"authorization": f"Bearer {TOKEN}"}
        )
        assert answer.status_code == 201, answer.text
        started: dict[str, str] = answer.json()
        return started

    async def follow(self, url: str, **headers: str) -> list[tuple[str | None, Event]]:
        """(id, event) of every frame of an events URL, until the server closes it."""
        frames: list[tuple[str | None, Event]] = []
        decoder = SSEDecoder()
        with anyio.fail_after(20):
            async with self.http.stream("GET", url, headers=headers) as answer:
                assert answer.status_code == 200, await answer.aread()
                assert answer.headers["content-type"].startswith("text/event-stream")
                async for chunk in answer.aiter_bytes():
                    for frame in decoder.feed(chunk):
                        assert isinstance(frame, respflow.Frame)
                        if frame.data:
                            frames.append((frame.id, respflow.decode_event(frame.data)))
        return frames


@pytest.fixture
async def gateway(anyio_backend: str, tmp_path: Path) -> AsyncIterator[Gateway]:
    broker = MemoryBroker(max_events=1_000)
    async with (
        MockServer(SAMPLE, files=FILES) as mock,
        openai.AsyncOpenAI(
            base_url=mock.openai_base_url, api_key="sk-mock-openai", max_retries=0
        ) as client,
        Runner(client, broker) as runner,
    ):
        app = respflow.app(broker, runner=runner, files=tmp_path, secret=SECRET, token=TOKEN)
        async with (
            LoopbackServer(app) as server,
            httpx2.AsyncClient(base_url=server.url) as http,
        ):
            yield Gateway(http, mock, broker, app, tmp_path)


async def test_healthz(gateway: Gateway) -> None:
    answer = await gateway.http.get("/healthz")
    assert answer.status_code == 200


async def test_starting_needs_the_token(gateway: Gateway) -> None:
    for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": TOKEN}):
        answer = await gateway.http.post("/responses", json=BODY, headers=headers)
        assert answer.status_code == 401
        assert answer.json()["error"]["code"] == "unauthorized"


async def test_a_refusal_says_what_would_let_the_caller_in(anyio_backend: str) -> None:
    def by_header(request: object) -> bool:
        return False

    broker = MemoryBroker()
    answers = {}
    for name, options in {
        "token": {"token": TOKEN},
        "hook": {"authorize": by_header},
        "neither": {},
    }.items():
        app = respflow.app(broker, secret=SECRET, **options)  # type: ignore[arg-type]
        async with LoopbackServer(app) as server, httpx2.AsyncClient(base_url=server.url) as http:
            answer = await http.post("/responses", json=BODY)
            assert answer.status_code == 401
            answers[name] = answer.json()["error"]["message"]
            cancel = await http.post("/responses/resp_1/cancel")
            assert cancel.json()["error"]["message"] == answers[name]
    assert answers["token"] == "send Authorization: Bearer <token>"
    assert "authorize hook refused" in answers["hook"]
    assert "Bearer" not in answers["hook"]
    assert "neither authorize= nor token=" in answers["neither"]


async def test_an_app_without_a_runner_says_how_to_give_it_one(anyio_backend: str) -> None:
    app = respflow.app(MemoryBroker(), secret=SECRET, token=TOKEN)
    async with LoopbackServer(app) as server, httpx2.AsyncClient(base_url=server.url) as http:
        answer = await http.post(
            "/responses", json=BODY, headers={"authorization": f"Bearer {TOKEN}"}
        )
    assert answer.status_code == 404
    assert "app.runner" in answer.json()["error"]["message"]


async def test_a_mount_its_prefix_does_not_name_is_warned_of_once(
    anyio_backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    from starlette.applications import Starlette
    from starlette.routing import Mount

    warned = []
    for prefix in ("", "/respflow"):
        caplog.clear()
        gateway = respflow.app(MemoryBroker(), secret=SECRET, token=TOKEN, prefix=prefix)
        server_app = Starlette(routes=[Mount("/respflow", gateway)])
        async with (
            LoopbackServer(server_app) as server,
            httpx2.AsyncClient(base_url=server.url) as http,
        ):
            for _ in range(2):
                assert (await http.get("/respflow/healthz")).status_code == 200
        warned.append([r.getMessage() for r in caplog.records if "mounted at" in r.getMessage()])
    assert len(warned[0]) == 1
    assert "pass prefix='/respflow'" in warned[0][0]
    assert warned[1] == []


async def test_an_app_at_the_root_with_a_prefix_is_not_warned_of(
    anyio_backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Behind a proxy that strips /api before the app sees the request, prefix="/api" is
    # what makes the URLs the app hands out right: nothing to warn of.
    gateway = respflow.app(MemoryBroker(), secret=SECRET, token=TOKEN, prefix="/api")
    async with (
        LoopbackServer(gateway) as server,
        httpx2.AsyncClient(base_url=server.url) as http,
    ):
        assert (await http.get("/healthz")).status_code == 200
    assert not [r for r in caplog.records if "mounted at" in r.getMessage()]


async def test_a_started_response_is_followed_to_its_end(gateway: Gateway) -> None:
    started = await gateway.start()
    assert started["status"] == "running"
    assert started["events_url"].startswith(f"/responses/{started['response_id']}/events?")
    frames = await gateway.follow(started["events_url"])
    events = [event for _, event in frames]
    assert all(frame_id == event.cursor for frame_id, event in frames)
    assert {e.response_id for e in events} == {started["response_id"]}
    assert isinstance(events[-1], respflow.ResponseCompleted)
    assert [e.type for e in events].count("response.completed") == 1


async def test_a_reconnecting_reader_gets_exactly_the_events_after_its_cursor(
    gateway: Gateway,
) -> None:
    started = await gateway.start()
    every = [event for _, event in await gateway.follow(started["events_url"])]
    for k in (0, 5, len(every) // 2, len(every) - 2, len(every) - 1):
        cursor = every[k].cursor
        by_header = await gateway.follow(started["events_url"], **{"last-event-id": cursor})
        assert [e for _, e in by_header] == every[k + 1 :]
        by_query = await gateway.follow(f"{started['events_url']}&after={cursor}")
        assert [e for _, e in by_query] == every[k + 1 :]


async def test_an_events_url_grants_one_response_only_and_only_signed(gateway: Gateway) -> None:
    started = await gateway.start()
    path, _, query = started["events_url"].partition("?")
    params = dict(parse_qsl(query))
    unsigned = await gateway.http.get(path)
    assert unsigned.status_code == 401
    tampered = {
        **params,
        "sig": params["sig"][:-2] + ("AA" if params["sig"][-2:] != "AA" else "BB"),
    }
    assert (await gateway.http.get(f"{path}?{urlencode(tampered)}")).status_code == 403
    later = {**params, "exp": str(int(params["exp"]) + 3600)}
    assert (await gateway.http.get(f"{path}?{urlencode(later)}")).status_code == 403
    other = f"/responses/resp_someone_else/events?{query}"
    assert (await gateway.http.get(other)).status_code == 403


async def test_an_expired_events_url_is_refused(gateway: Gateway) -> None:
    started = await gateway.start()
    expired = respflow.app(gateway.broker, secret=SECRET, url_ttl=-10)
    url = expired.events_url(started["response_id"])
    async with LoopbackServer(expired) as server, httpx2.AsyncClient(base_url=server.url) as http:
        answer = await http.get(url)
        assert answer.status_code == 403
        assert answer.json()["error"]["code"] == "signature_expired"
        # Another instance with the same secret honours the first one's URL.
        fresh = await http.get(started["events_url"])
        assert fresh.status_code == 200


async def test_a_cursor_older_than_the_history_is_410(anyio_backend: str) -> None:
    broker = MemoryBroker(max_events=5)
    events = list(respflow.replay(SAMPLE.to_sse()))
    await broker.publish(events)
    app = respflow.app(broker, secret=SECRET)
    rid = events[0].response_id
    async with LoopbackServer(app) as server, httpx2.AsyncClient(base_url=server.url) as http:
        old = await http.get(app.events_url(rid), headers={"last-event-id": events[1].cursor})
        assert old.status_code == 410
        assert old.json()["error"]["code"] == "too_old"
        unknown = await http.get(app.events_url("resp_unknown"))
        assert unknown.status_code == 404
        bad = await http.get(app.events_url(rid), headers={"last-event-id": "nope"})
        assert bad.status_code == 400


async def test_files_are_served_by_the_urls_events_carry_and_no_server_path_leaks(
    gateway: Gateway,
) -> None:
    started = await gateway.start()
    frames = await gateway.follow(started["events_url"])
    events = [event for _, event in frames]
    saved = {e.filename: e for e in events if isinstance(e, respflow.FileSaved)}
    assert {"dice_rolls.csv", "dice_chart.png"} <= set(saved)
    for event in events:
        assert str(gateway.files) not in respflow.encode_event(event).decode()
    for name in ("dice_rolls.csv", "dice_chart.png"):
        url = saved[name].url
        assert url is not None
        assert saved[name].location == url
        answer = await gateway.http.get(url)
        assert answer.status_code == 200
        assert answer.content == (FILES / name).read_bytes()
        assert answer.headers["x-content-type-options"] == "nosniff"
    # The answer's links point at the same URLs.
    answer_text = [e for e in events if isinstance(e, respflow.MessageCompleted)][-1].text
    assert "sandbox:" not in answer_text
    for name in ("dice_rolls.csv", "dice_chart.png"):
        url = saved[name].url
        assert url is not None
        assert f"]({url})" in answer_text  # bare links too become Markdown links
    # A file URL signs one file: another name or a changed signature is refused.
    csv_url = saved["dice_rolls.csv"].url
    assert csv_url is not None
    path, _, query = csv_url.partition("?")
    swapped = path.replace("dice_rolls.csv", "dice_chart.png") + "?" + query
    assert (await gateway.http.get(swapped)).status_code == 403
    assert (await gateway.http.get(path)).status_code == 401


@pytest.mark.parametrize(
    ("upstream", "status"), [(401, 401), (404, 404), (429, 429), (500, 502), (503, 502)]
)
async def test_a_failure_before_the_first_event_has_the_upstream_status(
    gateway: Gateway, upstream: int, status: int
) -> None:
    gateway.mock.fail_next(upstream, retry_after=7 if upstream == 429 else None)
    answer = await gateway.http.post(
        "/responses", json=BODY, headers={"authorization": f"Bearer {TOKEN}"}
    )
    assert answer.status_code == status
    error = answer.json()["error"]
    assert error["upstream_status"] == upstream
    if upstream == 429:
        assert answer.headers["retry-after"] == "7"


async def test_a_bad_cursor_is_400_and_says_what_a_cursor_is(gateway: Gateway) -> None:
    started = await gateway.start()
    for form in ("", "&format=vercel", "&format=ag-ui"):
        answer = await gateway.http.get(
            started["events_url"] + form, headers={"last-event-id": "yesterday"}
        )
        assert answer.status_code == 400
        message = answer.json()["error"]["message"]
        assert "'yesterday'" in message
        assert "Last-Event-ID" in message


async def test_an_upstream_error_reaches_the_caller_without_a_key_it_echoes(
    gateway: Gateway,
) -> None:
    key = "sk-proj-" + "a1B2c3D4" * 5
    gateway.mock.fail_next(401, message=f"Incorrect API key provided: {key}.")
    answer = await gateway.http.post(
        "/responses", json=BODY, headers={"authorization": f"Bearer {TOKEN}"}
    )
    assert answer.status_code == 401
    message = answer.json()["error"]["message"]
    assert "Incorrect API key provided: [redacted]" in message
    assert "a1B2c3D4" not in answer.text


async def test_bad_bodies_are_400(gateway: Gateway) -> None:
    auth = {"authorization": f"Bearer {TOKEN}"}
    for body in (
        b"{not json",
        b"[1]",
        b'{"input": "no model"}',
        b'{"model": "m", "stream": false}',
    ):
        answer = await gateway.http.post("/responses", content=body, headers=auth)
        assert answer.status_code == 400, body


async def test_cancel_ends_a_running_response(anyio_backend: str, tmp_path: Path) -> None:
    broker = MemoryBroker()
    async with (
        MockServer(SAMPLE, files=FILES, pace=0.05) as mock,
        openai.AsyncOpenAI(base_url=mock.openai_base_url, api_key="sk-mock-openai") as client,
        Runner(client, broker) as runner,
    ):
        app = respflow.app(broker, runner=runner, files=tmp_path, secret=SECRET, token=TOKEN)
        auth = {"authorization": f"Bearer {TOKEN}"}
        async with LoopbackServer(app) as server, httpx2.AsyncClient(base_url=server.url) as http:
            started = (await http.post("/responses", json=BODY, headers=auth)).json()
            rid = started["response_id"]
            assert (await http.post(f"/responses/{rid}/cancel")).status_code == 401
            with anyio.fail_after(15):
                cancelled = await http.post(f"/responses/{rid}/cancel", headers=auth)
            assert cancelled.status_code == 200
            again = await http.post(f"/responses/{rid}/cancel", headers=auth)
            assert again.status_code == 404
            events = [e async for e in await broker.subscribe(rid)]
    assert isinstance(events[-1], respflow.StreamTruncated)
