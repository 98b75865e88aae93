"""Following a response from a browser: its events as server-sent events, resumable by cursor."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio

from .._delivery.hub import Hub, Lagged, TooOld
from .._events import encode_event, parse_cursor

Authorize = Callable[[Any, str], "bool | Awaitable[bool]"]
"""``(request, response_id) -> bool``: may this request follow this response?"""

__all__ = ["Authorize", "events_app"]


def deny_all(request: Any, response_id: str) -> bool:
    """The default: nobody may follow any response until the application says who may."""
    return False


def events_app(
    hub: Hub,
    *,
    authorize: Authorize = deny_all,
    prefix: str = "/events",
    heartbeat: float = 15.0,
) -> Any:
    """An ASGI app streaming a response's events to browsers as server-sent events.

    ``GET <prefix>/{response_id}`` streams the events of ``hub`` for that response, each
    with ``id:`` set to its cursor, so a browser's ``EventSource`` that reconnects (it
    sends ``Last-Event-ID``) gets exactly the events it missed, from the hub's history.
    ``?after=<cursor>`` does the same for other clients. A comment line goes out after
    ``heartbeat`` idle seconds so proxies keep the connection. ``authorize(request,
    response_id)`` decides who may follow what, and the default denies everyone: give
    one that checks your session. A reader too far behind is let go with an
    ``event: lagged`` frame (reconnect with the last id); a cursor no longer in the
    history gets ``event: too_old``. Needs Starlette.
    """
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse, Response, StreamingResponse
    from starlette.routing import Route

    async def stream(request: Request) -> Response:
        response_id = request.path_params["response_id"]
        allowed = authorize(request, response_id)
        if inspect.isawaitable(allowed):
            allowed = await allowed
        if allowed is not True:
            return PlainTextResponse("forbidden", status_code=403)
        after = request.headers.get("last-event-id") or request.query_params.get("after")
        if after:
            try:
                parse_cursor(after)
            except ValueError:
                return PlainTextResponse("bad cursor", status_code=400)
        try:
            reader = hub.subscribe(response_id, after=after or None)
        except TooOld as exc:
            return StreamingResponse(
                _once(b"event: too_old\ndata: " + str(exc).encode() + b"\n\n"),
                media_type="text/event-stream",
            )
        return StreamingResponse(
            _frames(reader, heartbeat),
            media_type="text/event-stream",
            headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
        )

    route = f"{prefix.rstrip('/')}/{{response_id}}"
    return Starlette(routes=[Route(route, stream, methods=["GET"])])


async def _frames(reader: Any, heartbeat: float) -> AsyncIterator[bytes]:
    yield b"retry: 1000\n\n"
    while True:
        event = refused = None
        finished = False
        with anyio.move_on_after(heartbeat):  # nothing is yielded inside the scope
            try:
                event = await reader.__anext__()
            except StopAsyncIteration:
                finished = True
            except (Lagged, TooOld) as exc:  # TooOld: the response came, past the cursor
                refused = exc
        if finished:
            return
        if refused is not None:
            name = b"lagged" if isinstance(refused, Lagged) else b"too_old"
            yield b"event: " + name + b"\ndata: " + str(refused).encode() + b"\n\n"
            return
        if event is None:
            yield b": keepalive\n\n"
            continue
        yield b"id: " + event.cursor.encode() + b"\ndata: " + encode_event(event) + b"\n\n"


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data
