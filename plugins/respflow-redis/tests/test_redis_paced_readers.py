"""respflow.app over Redis with readers that rest between writes: a reader from the
start, one resumed mid-way and one speaking a UI protocol each get exactly what they get
without resting, while the response is published event by event; one that leaves while
resting has its subscription closed."""

from __future__ import annotations

import anyio
import httpx2
import pytest
from respflow_redis import RedisBroker, RedisSubscription

import respflow
from respflow import SSEDecoder
from respflow._protocols.stream import ProtocolStream
from respflow.testing import LoopbackServer, make_events

pytestmark = pytest.mark.anyio

SECRET = "a-secret-of-32-bytes-for-tests!!"


def _decoded(body: bytes) -> list[respflow.Event]:
    return [
        respflow.decode_event(frame.data)
        for frame in SSEDecoder().feed(body)
        if isinstance(frame, respflow.Frame) and frame.data
    ]


async def test_paced_readers_over_redis_get_what_unpaced_ones_get(
    redis_url: str, prefix: str
) -> None:
    events = make_events(60)
    rid = events[0].response_id
    resume = events[7].cursor
    ui = ProtocolStream("ag-ui", after=resume, inline_images=True)
    expected_ui = b"".join(ui.feed(event) for event in events) + ui.close()
    async with (
        RedisBroker(redis_url, prefix=prefix) as producer,
        RedisBroker(redis_url, prefix=prefix) as broker,
    ):
        app = respflow.app(broker, secret=SECRET, flush=0.05, heartbeat=0.01)
        await producer.publish(events[:3])
        bodies: dict[str, bytes] = {}
        async with LoopbackServer(app) as server, httpx2.AsyncClient(base_url=server.url) as http:

            async def read(name: str, url: str, headers: dict[str, str]) -> None:
                answer = await http.get(url, headers=headers, timeout=30)
                bodies[name] = answer.content

            url = app.events_url(rid)
            with anyio.fail_after(60):
                async with anyio.create_task_group() as group:
                    group.start_soon(read, "start", url, {})
                    group.start_soon(read, "resumed", url, {"last-event-id": resume})
                    group.start_soon(read, "ui", f"{url}&format=ag-ui", {"last-event-id": resume})
                    for event in events[3:]:
                        await anyio.sleep(0.003)
                        await producer.publish([event])
    assert _decoded(bodies["start"]) == events
    assert _decoded(bodies["resumed"]) == events[8:]
    assert bodies["ui"].replace(b": keepalive\n\n", b"") == b"retry: 1000\n\n" + expected_ui


async def test_a_redis_reader_that_leaves_while_resting_is_let_go(
    redis_url: str, prefix: str
) -> None:
    events = make_events(10)
    rid = events[0].response_id
    closed = anyio.Event()

    class Watched(RedisBroker):
        async def subscribe(
            self, response_id: str, *, after: str | None = None
        ) -> RedisSubscription:
            subscription = await super().subscribe(response_id, after=after)
            close = subscription.aclose

            async def aclose() -> None:
                try:
                    await close()
                finally:  # it is closed in a cancelled scope: its last checkpoint raises
                    closed.set()

            subscription.aclose = aclose  # type: ignore[method-assign]
            return subscription

    async with Watched(redis_url, prefix=prefix) as broker:
        app = respflow.app(broker, secret=SECRET, flush=1.0)
        await broker.publish(events[:1])
        async with LoopbackServer(app) as server:
            host, port = server.url.removeprefix("http://").rstrip("/").split(":")
            async with await anyio.connect_tcp(host, int(port)) as client:
                request = f"GET {app.events_url(rid)} HTTP/1.1\r\nhost: {host}\r\n\r\n"
                await client.send(request.encode())
                got = b""
                while b"data: " not in got:
                    got += await client.receive()
            with anyio.fail_after(10):
                await closed.wait()
        assert broker._followers.get(rid) is None or not broker._followers[rid].readers
