"""Following a response from a browser: its events as server-sent events, resumable by cursor."""

from __future__ import annotations

import inspect
import math
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any

from .._delivery.hub import Hub, Lagged, Reader, TooOld
from .._events import Event, encode_event, parse_cursor
from .._exceptions import UsageError
from .pacing import FLUSH, Tick, Ticks, check_flush, paced, paced_response

Authorize = Callable[[Any, str], "bool | Awaitable[bool]"]
"""``(request, response_id) -> bool``: may this request follow this response?"""

__all__ = ["Authorize", "events_app"]


_NO_HOOK = (
    "forbidden: events_app was given no authorize hook, so it lets nobody follow; pass "
    "authorize=(request, response_id) -> bool"
)


def deny_all(request: Any, response_id: str) -> bool:
    """The default: nobody may follow any response until the application says who may."""
    return False


def events_app(
    hub: Hub,
    *,
    authorize: Authorize = deny_all,
    prefix: str = "/events",
    heartbeat: float = 15.0,
    flush: float = FLUSH,
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
    history gets ``event: too_old``. While events flow, a reader rests ``flush`` seconds
    after a write, together with the other readers of its response, and what came
    meanwhile goes out together (``0``: each as soon as the reader wakes); see
    :func:`respflow.app`. Needs Starlette.
    """
    if not heartbeat > 0 or not math.isfinite(heartbeat):
        raise UsageError("heartbeat must be a positive number of seconds")
    problem = check_flush(flush)
    if problem is not None:
        raise UsageError(problem)
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
            return PlainTextResponse(refusal, status_code=403)
        after = request.headers.get("last-event-id") or request.query_params.get("after")
        if after:
            try:
                parse_cursor(after)
            except ValueError as exc:
                return PlainTextResponse(
                    f"bad cursor: {exc}; send the id: of the last frame received, as "
                    "Last-Event-ID or ?after=, or neither to start from the beginning",
                    status_code=400,
                )
        try:
            reader = hub.subscribe(response_id, after=after or None)
        except TooOld as exc:
            return StreamingResponse(
                _once(b"event: too_old\ndata: " + str(exc).encode() + b"\n\n"),
                media_type="text/event-stream",
            )
        return paced_response(
            _frames(reader, heartbeat, ticks(response_id)),
            headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
        )

    # Left with the default, every reader is refused: the developer reading the 403
    # learns why from the body (the browser's user learns nothing about the response).
    refusal = "forbidden" if authorize is not deny_all else _NO_HOOK
    ticks = Ticks(flush)
    route = f"{prefix.rstrip('/')}/{{response_id}}"
    return Starlette(routes=[Route(route, stream, methods=["GET"])])


def _frames(reader: Reader, heartbeat: float, tick: Tick | None) -> AsyncGenerator[bytes, None]:
    def write(events: list[Event]) -> bytes:
        return b"".join(
            [b"id: " + e.cursor.encode() + b"\ndata: " + encode_event(e) + b"\n\n" for e in events]
        )

    def ending(refused: Exception | None) -> bytes:
        if refused is None:
            return b""
        name = b"lagged" if isinstance(refused, Lagged) else b"too_old"
        return b"event: " + name + b"\ndata: " + str(refused).encode() + b"\n\n"

    return paced(
        reader, write, heartbeat=heartbeat, tick=tick, refusals=(Lagged, TooOld), ending=ending
    )


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data
