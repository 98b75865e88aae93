"""Serving saved files to browsers: a small Starlette app for the links the rewriter writes."""

from __future__ import annotations

import inspect
import mimetypes
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import msgspec

from ._events import encode_event, parse_cursor
from ._hub import Hub, Lagged, TooOld
from ._names import safe_filename

Authorize = Callable[[Any, str], "bool | Awaitable[bool]"]
"""``(request, response_id) -> bool``: may this request follow this response?"""

__all__ = ["Authorize", "events_app", "files_app"]

# Types a browser may show in the page's origin without running anything.
_INLINE = frozenset(
    {
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/webp",
        "text/plain",
        "text/csv",
        "application/pdf",
    }
)


def files_app(root: str | os.PathLike[str] = "respflow-files", *, prefix: str = "/files") -> Any:
    """An ASGI app serving ``root/<response_id>/<filename>`` at
    ``<prefix>/{response_id}/{filename}``, the layout of :class:`respflow.LocalStorage` and
    the default target of :class:`respflow.LinkRewriter`.

    Only names that are already safe (as :func:`respflow.safe_filename` makes them) are
    served, never hidden files, never a directory and never a path outside ``root``.
    Images, text, CSV and PDF are shown inline; everything else (HTML above all: the
    model wrote it) is a download, with ``nosniff`` and a sandboxing CSP. Needs Starlette
    (``pip install 'respflow[serve]'``); mount it in a larger app with ``Mount``.
    """
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import FileResponse, PlainTextResponse, Response
    from starlette.routing import Route

    base = Path(root).resolve()

    def find(response_id: str, filename: str) -> Path | None:
        for part in (response_id, filename):
            if not part or part.startswith(".") or safe_filename(part) != part:
                return None
        path = (base / response_id / filename).resolve()
        if not path.is_relative_to(base) or not path.is_file():
            return None
        return path

    async def serve(request: Request) -> Response:
        path = find(request.path_params["response_id"], request.path_params["filename"])
        if path is None:
            return PlainTextResponse("not found", status_code=404)
        media_type = _media_type(path)
        disposition = "inline" if media_type in _INLINE else "attachment"
        return FileResponse(
            path,
            media_type=media_type,
            filename=path.name,
            content_disposition_type=disposition,
            headers={
                "x-content-type-options": "nosniff",
                "content-security-policy": "sandbox; default-src 'none'; img-src 'self'",
                "cache-control": "private, max-age=3600",
            },
        )

    route = f"{prefix.rstrip('/')}/{{response_id}}/{{filename}}"
    return Starlette(routes=[Route(route, serve, methods=["GET", "HEAD"])])


def _media_type(path: Path) -> str:
    """The type the fetcher recorded for the file, else one guessed from its name."""
    try:
        index = msgspec.json.decode((path.parent / ".respflow-index.json").read_bytes())
    except (OSError, msgspec.DecodeError):
        index = {}
    if isinstance(index, dict):
        for stored in index.values():
            if isinstance(stored, dict) and stored.get("filename") == path.name:
                media = stored.get("media_type")
                if isinstance(media, str) and "/" in media:
                    return media
    return mimetypes.guess_type(path.name)[0] or "application/octet-stream"


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
        event = lagged = None
        finished = False
        with anyio.move_on_after(heartbeat):  # nothing is yielded inside the scope
            try:
                event = await reader.__anext__()
            except StopAsyncIteration:
                finished = True
            except Lagged as exc:
                lagged = exc
        if finished:
            return
        if lagged is not None:
            yield b"event: lagged\ndata: " + str(lagged).encode() + b"\n\n"
            return
        if event is None:
            yield b": keepalive\n\n"
            continue
        yield b"id: " + event.cursor.encode() + b"\ndata: " + encode_event(event) + b"\n\n"


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data
