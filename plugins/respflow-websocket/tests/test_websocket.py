"""The websocket route and sink over real loopback connections, on asyncio and trio."""

from __future__ import annotations

from importlib import resources
from typing import Any

import anyio
import pytest
from respflow_websocket import Closed, WebSocketSink, read_events, websocket_route
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

import respflow
from respflow import Hub, Reconnect
from respflow.testing import LoopbackServer

pytestmark = pytest.mark.anyio

SAMPLE = resources.files("respflow").joinpath("samples", "code_interpreter.sse").read_bytes()
EVENTS = list(respflow.replay(SAMPLE))
RID = EVENTS[0].response_id
ALICE = {"authorization": "Bearer alice"}


def _allow(websocket: Any, response_id: str) -> bool:
    return websocket.headers.get("authorization") == "Bearer alice" and response_id == RID


async def _filled(events: list[respflow.Event] = EVENTS) -> Hub:
    hub = Hub()
    for event in events:
        await hub.send(event)
    return hub


async def _read(url: str, **kwargs: Any) -> list[respflow.Event]:
    return [event async for event in read_events(url, **kwargs)]


async def test_a_client_gets_the_response_and_resumes_with_its_cursor(
    anyio_backend: str,
) -> None:
    hub = await _filled()
    app = Starlette(routes=[websocket_route(hub, authorize=_allow)])
    async with LoopbackServer(app) as server:
        url = f"ws://127.0.0.1:{server.port}/ws/{RID}"
        assert await _read(url, headers=ALICE) == EVENTS
        # Reconnecting after the 30th event gets exactly the events it missed.
        missing = await _read(url, headers=ALICE, after=EVENTS[29].cursor)
        assert missing == EVENTS[30:]


async def test_a_live_response_reaches_every_connected_client(anyio_backend: str) -> None:
    hub = Hub()
    app = Starlette(routes=[websocket_route(hub, authorize=_allow)])
    got: list[list[respflow.Event]] = []

    async def client(url: str) -> None:
        got.append(await _read(url, headers=ALICE))

    async with LoopbackServer(app) as server, anyio.create_task_group() as group:
        url = f"ws://127.0.0.1:{server.port}/ws/{RID}"
        for _ in range(3):
            group.start_soon(client, url)
        await anyio.sleep(0.1)
        for event in EVENTS:
            await hub.send(event)
            await anyio.sleep(0)
    assert got == [EVENTS, EVENTS, EVENTS]


async def test_an_unauthorized_client_receives_nothing(anyio_backend: str) -> None:
    hub = await _filled()
    for app in (
        Starlette(routes=[websocket_route(hub)]),  # the default denies everyone
        Starlette(routes=[websocket_route(hub, authorize=_allow)]),
    ):
        async with LoopbackServer(app) as server:
            url = f"ws://127.0.0.1:{server.port}/ws/{RID}"
            received: list[respflow.Event] = []
            with pytest.raises(Closed, match="forbidden") as closed:
                await _read_into(received, url, headers={"authorization": "Bearer eve"})
            assert closed.value.code == 4403
            assert received == []


async def test_the_sink_pushes_every_event_and_reconnects(anyio_backend: str) -> None:
    received: list[str] = []
    drops = {"left": 2}

    async def collect(websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            while True:
                received.append(await websocket.receive_text())
                if drops["left"] and len(received) % 40 == 0:
                    drops["left"] -= 1
                    await websocket.close()  # the link drops; the sink must come back
                    return
        except WebSocketDisconnect:
            return

    app = Starlette(routes=[WebSocketRoute("/in", collect)])
    async with LoopbackServer(app) as server:
        sink = WebSocketSink(
            f"ws://127.0.0.1:{server.port}/in", reconnect=Reconnect(initial_delay=0.01)
        )
        await respflow.deliver(_events(), sink)
        with anyio.fail_after(5):
            while len({respflow.decode_event(t).cursor for t in received}) < len(EVENTS):
                await anyio.sleep(0.01)
    unique: dict[str, respflow.Event] = {}
    for text in received:
        event = respflow.decode_event(text)
        unique.setdefault(event.cursor, event)
    assert list(unique.values()) == EVENTS  # at least once, in order, nothing missing


async def _read_bursting(hub: Hub, url: str, got: list[respflow.Event]) -> None:
    async for event in read_events(url, headers=ALICE):
        got.append(event)
        if len(got) == 1:
            for later in EVENTS[1:]:  # a burst the connection cannot keep up with
                await hub.send(later)


async def _read_into(into: list[respflow.Event], url: str, **kwargs: Any) -> None:
    async for event in read_events(url, **kwargs):
        into.append(event)


async def _events() -> Any:
    for event in EVENTS:
        yield event


def test_the_sink_is_found_by_its_url() -> None:
    sink = respflow.sink_from_spec("ws://127.0.0.1:9/events")
    assert isinstance(sink, WebSocketSink)
    assert "ws" in respflow.available_sinks()


async def test_a_client_that_falls_behind_is_let_go_and_resumes(anyio_backend: str) -> None:
    hub = Hub(max_lag=10)
    app = Starlette(routes=[websocket_route(hub, authorize=_allow)])
    await hub.send(EVENTS[0])
    got: list[respflow.Event] = []
    async with LoopbackServer(app) as server:
        url = f"ws://127.0.0.1:{server.port}/ws/{RID}"
        with pytest.raises(Closed) as closed:
            await _read_bursting(hub, url, got)
        assert closed.value.code == 4008
        rest = await _read(url, headers=ALICE, after=got[-1].cursor)
    assert got + rest == EVENTS
