"""The hub's history and its readers, directly and as server-sent events to HTTP clients."""

from __future__ import annotations

from collections.abc import AsyncIterator
from importlib import resources
from typing import Any

import anyio
import httpx2
import pytest

import respflow
from respflow import Hub, Lagged, TooOld, events_app
from respflow.testing import LoopbackServer

pytestmark = pytest.mark.anyio

SAMPLE = resources.files("respflow").joinpath("samples", "code_interpreter.sse").read_bytes()
EVENTS = list(respflow.replay(SAMPLE))
RID = EVENTS[0].response_id


async def _fill(hub: Hub, events: list[respflow.Event] = EVENTS, pause: float = 0.0) -> None:
    for event in events:
        await hub.send(event)
        if pause:
            await anyio.sleep(pause)


async def _read(reader: AsyncIterator[respflow.Event]) -> list[respflow.Event]:
    return [event async for event in reader]


async def test_readers_get_the_response_from_any_cursor(anyio_backend: str) -> None:
    hub = Hub()
    await _fill(hub)
    assert await _read(hub.subscribe(RID)) == EVENTS
    for cut in (0, 1, 40, len(EVENTS) - 1):
        after = EVENTS[cut].cursor
        assert await _read(hub.subscribe(RID, after=after)) == EVENTS[cut + 1 :]


async def test_a_reader_that_comes_first_waits_for_the_events(anyio_backend: str) -> None:
    hub = Hub()
    got: list[respflow.Event] = []

    async def read() -> None:
        got.extend(await _read(hub.subscribe(RID)))

    async with anyio.create_task_group() as group:
        group.start_soon(read)
        group.start_soon(read)
        await anyio.sleep(0.01)
        await _fill(hub, pause=0.0005)
    assert got == EVENTS + EVENTS


async def test_a_reader_too_far_behind_is_let_go(anyio_backend: str) -> None:
    hub = Hub(max_lag=10)
    reader = hub.subscribe(RID)
    await _fill(hub, EVENTS[:30])
    with pytest.raises(Lagged, match="reconnect with its last cursor"):
        await _read(reader)


async def test_catching_up_on_the_history_is_not_falling_behind(anyio_backend: str) -> None:
    hub = Hub(max_lag=10)
    await _fill(hub)
    assert await _read(hub.subscribe(RID)) == EVENTS  # 119 events behind, none of them new


async def test_a_cursor_older_than_the_history(anyio_backend: str) -> None:
    hub = Hub(history=10)
    await _fill(hub)
    with pytest.raises(TooOld):
        hub.subscribe(RID, after=EVENTS[2].cursor)
    assert len(await _read(hub.subscribe(RID, after=EVENTS[-5].cursor))) == 4


def _parse(body: str) -> list[dict[str, str]]:
    frames = []
    for block in body.split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            name, _, value = line.partition(":")
            fields[name or "comment"] = value.removeprefix(" ")
        if fields:
            frames.append(fields)
    return frames


def _allow(request: Any, response_id: str) -> bool:
    return request.headers.get("authorization") == "Bearer alice" and response_id == RID


async def test_sse_streams_with_cursors_and_resumes_from_last_event_id(
    anyio_backend: str,
) -> None:
    hub = Hub()
    await _fill(hub)
    app = events_app(hub, authorize=_allow)
    async with (
        LoopbackServer(app) as server,
        httpx2.AsyncClient(base_url=server.url, headers={"authorization": "Bearer alice"}) as http,
    ):
        whole = await http.get(f"/events/{RID}")
        assert whole.headers["content-type"].startswith("text/event-stream")
        frames = [f for f in _parse(whole.text) if "data" in f]
        assert [respflow.decode_event(f["data"]) for f in frames] == EVENTS
        assert [f["id"] for f in frames] == [e.cursor for e in EVENTS]
        # A browser that reconnects sends the last id it saw and gets the rest, exactly.
        seen = frames[50]["id"]
        rest = await http.get(f"/events/{RID}", headers={"last-event-id": seen})
        again = [respflow.decode_event(f["data"]) for f in _parse(rest.text) if "data" in f]
        assert again == EVENTS[51:]
        bad = await http.get(f"/events/{RID}", headers={"last-event-id": "nonsense"})
        assert bad.status_code == 400
        assert "'nonsense'" in bad.text
        assert "Last-Event-ID" in bad.text


async def test_sse_denies_by_default_and_when_the_hook_says_no(anyio_backend: str) -> None:
    hub = Hub()
    await _fill(hub)
    async with LoopbackServer(events_app(hub)) as server, httpx2.AsyncClient() as http:
        denied = await http.get(f"{server.url}/events/{RID}")
        assert denied.status_code == 403
        assert "no authorize hook" in denied.text
        assert "authorize=" in denied.text
    async with (
        LoopbackServer(events_app(hub, authorize=_allow)) as server,
        httpx2.AsyncClient(headers={"authorization": "Bearer mallory"}) as http,
    ):
        other = await http.get(f"{server.url}/events/{RID}")
        assert (other.status_code, other.text) == (403, "forbidden")
        assert RID not in other.text


async def test_sse_heartbeats_while_the_response_is_quiet(anyio_backend: str) -> None:
    hub = Hub()
    app = events_app(hub, authorize=_allow, heartbeat=0.05)
    body = ""
    async with (
        LoopbackServer(app) as server,
        httpx2.AsyncClient(base_url=server.url, headers={"authorization": "Bearer alice"}) as http,
        anyio.create_task_group() as group,
    ):

        async def later() -> None:
            await anyio.sleep(0.3)
            await _fill(hub)

        group.start_soon(later)
        async with http.stream("GET", f"/events/{RID}") as response:
            async for text in response.aiter_text():
                body += text
    frames = _parse(body)
    assert any(f.get("comment") == "keepalive" for f in frames)
    assert [respflow.decode_event(f["data"]) for f in frames if "data" in f] == EVENTS


@pytest.mark.parametrize("limits", [{"history": 0}, {"max_lag": 0}, {"max_responses": -1}])
def test_a_hub_that_could_deliver_nothing_is_refused_when_made(limits: dict[str, int]) -> None:
    with pytest.raises(respflow.UsageError, match="at least 1"):
        Hub(**limits)
