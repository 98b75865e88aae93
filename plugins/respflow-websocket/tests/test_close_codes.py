"""The route's close codes, as real websocket clients over loopback see them: a client can
tell "you may not follow this" (4403) from "that cursor is no good" (4400)."""

from __future__ import annotations

import logging
import socket
from importlib import resources
from typing import Any

import pytest
from respflow_websocket import (
    BAD_CURSOR,
    FORBIDDEN,
    Closed,
    Connection,
    WebSocketSink,
    read_events,
    websocket_route,
)
from starlette.applications import Starlette

import respflow
from respflow import Hub, Reconnect
from respflow.testing import LoopbackServer, MemorySink

pytestmark = pytest.mark.anyio

SAMPLE = resources.files("respflow").joinpath("samples", "code_interpreter.sse").read_bytes()
EVENTS = list(respflow.replay(SAMPLE))
RID = EVENTS[0].response_id
ALICE = {"authorization": "Bearer alice"}


def _allow(websocket: Any, response_id: str) -> bool:
    return bool(websocket.headers.get("authorization") == "Bearer alice")


async def _filled() -> Hub:
    hub = Hub(history=10)
    for event in EVENTS:
        await hub.send(event)
    return hub


async def _close_code(url: str, **kwargs: Any) -> tuple[int | None, list[respflow.Event]]:
    received: list[respflow.Event] = []

    async def read() -> None:
        async for event in read_events(url, **kwargs):
            received.append(event)

    with pytest.raises(Closed) as closed:
        await read()
    return closed.value.code, received


async def test_forbidden_and_bad_cursor_are_told_apart(anyio_backend: str) -> None:
    hub = await _filled()
    app = Starlette(routes=[websocket_route(hub, authorize=_allow)])
    async with LoopbackServer(app) as server:
        url = f"ws://127.0.0.1:{server.port}/ws/{RID}"
        assert await _close_code(url, headers={"authorization": "Bearer eve"}) == (FORBIDDEN, [])
        assert await _close_code(url, headers=ALICE, after="nonsense") == (BAD_CURSOR, [])
        too_old = EVENTS[2].cursor  # the hub keeps only the last events
        assert await _close_code(url, headers=ALICE, after=too_old) == (BAD_CURSOR, [])
    assert (FORBIDDEN, BAD_CURSOR) == (4403, 4400)


async def test_the_default_denies_with_4403(anyio_backend: str) -> None:
    hub = await _filled()
    app = Starlette(routes=[websocket_route(hub)])
    async with LoopbackServer(app) as server:
        url = f"ws://127.0.0.1:{server.port}/ws/{RID}"
        assert await _close_code(url, headers=ALICE) == (FORBIDDEN, [])


async def test_a_cursor_the_response_came_without_is_4400(anyio_backend: str) -> None:
    hub = Hub()
    app = Starlette(routes=[websocket_route(hub, authorize=_allow)])
    async with LoopbackServer(app) as server:
        url = f"ws://127.0.0.1:{server.port}/ws/{RID}?after={EVENTS[3].cursor}"
        # Connected: the client waits for a response the hub has not seen yet.
        async with Connection(url, headers=ALICE) as connection:
            for event in EVENTS[10:]:  # it comes, from the middle: the cursor's are gone
                await hub.send(event)
            with pytest.raises(Closed) as closed:
                await connection.receive_text()
    assert closed.value.code == BAD_CURSOR


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_the_websockets_librarys_own_client_sees_the_codes(anyio_backend: str) -> None:
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    hub = await _filled()
    app = Starlette(routes=[websocket_route(hub, authorize=_allow)])
    async with LoopbackServer(app) as server:
        base = f"ws://127.0.0.1:{server.port}/ws/{RID}"
        for url, headers, code in [
            (base, {"authorization": "Bearer eve"}, 4403),
            (base + "?after=nonsense", ALICE, 4400),
        ]:
            async with connect(url, additional_headers=headers) as ws:
                with pytest.raises(ConnectionClosed) as closed:
                    await ws.recv()
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == code


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_a_token_in_the_sink_url_reaches_no_log_and_no_event(
    anyio_backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"ws://alice:userinfosecret@127.0.0.1:{_closed_port()}/in?token=querysecret&x=1"
    sink = WebSocketSink(url, reconnect=Reconnect(attempts=1, initial_delay=0.0))
    other = MemorySink()
    with caplog.at_level(logging.INFO, logger="respflow"):
        failures = await respflow.deliver(_events(), other, sink)
    [(_, error)] = failures
    reports = [e.message for e in other.events if isinstance(e, respflow.StreamError)]
    told = [caplog.text, str(error), *reports]
    assert "reconnecting" in caplog.text
    assert "sink WebSocketSink failed" in caplog.text
    for text in told:
        assert "userinfosecret" not in text
        assert "querysecret" not in text
    assert "127.0.0.1" in str(error)  # still says where it tried


async def _events() -> Any:
    for event in EVENTS:
        yield event


@pytest.mark.parametrize(
    "spec",
    [
        "ws://alice:pwsecret@host:99999/in?token=querysecret",
        "ws://alice:pwsecret@/in?token=querysecret",
    ],
)
def test_an_unusable_sink_url_is_refused_without_repeating_its_credential(spec: str) -> None:
    with pytest.raises(respflow.UsageError, match="use ws://host/path") as refused:
        respflow.sink_from_spec(spec)
    assert "pwsecret" not in str(refused.value)
    assert "querysecret" not in str(refused.value)
