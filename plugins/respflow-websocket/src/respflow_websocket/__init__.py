"""respflow over websockets: a route browsers follow a response on, and a sink that pushes.

See the README beside this package.
"""

from __future__ import annotations

import inspect
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

import anyio
from websockets.exceptions import InvalidURI
from websockets.uri import parse_uri

import respflow
from respflow import Event, Hub, Lagged, Reconnect, TooOld, encode_event, parse_cursor

from ._connection import Closed, Connection

__all__ = [
    "Closed",
    "Connection",
    "WebSocketSink",
    "deny_all",
    "read_events",
    "sink_from_spec",
    "websocket_route",
]

_log = logging.getLogger("respflow.websocket")

FORBIDDEN = 4403
"""Close code for a client that may not follow the response (nothing was sent)."""
LAGGED = 4008
"""Close code for a client that fell too far behind: reconnect with ``?after=<cursor>``."""
BAD_CURSOR = 4400
"""Close code for an ``after`` that is not a cursor, or no longer in the history."""

Authorize = Callable[[Any, str], "bool | Awaitable[bool]"]


def deny_all(websocket: Any, response_id: str) -> bool:
    """The default: nobody may follow any response until the application says who may."""
    return False


def websocket_route(
    hub: Hub, *, authorize: Authorize = deny_all, path: str = "/ws/{response_id}"
) -> Any:
    """A Starlette ``WebSocketRoute`` streaming a response's events from ``hub``.

    Each event is one text message (its JSON). The client may pass ``?after=<cursor>``
    to resume. ``authorize(websocket, response_id)`` runs before anything is sent.
    Refusals are close codes after a completed handshake: 4403 (not allowed), 4400
    (``after`` is no cursor, or older than the history), 4008 (too slow).
    """
    from starlette.routing import WebSocketRoute
    from starlette.websockets import WebSocket

    async def endpoint(websocket: WebSocket) -> None:
        response_id = websocket.path_params["response_id"]
        allowed = authorize(websocket, response_id)
        if inspect.isawaitable(allowed):
            allowed = await allowed
        # A close before the handshake reaches the client as HTTP 403 whatever its code:
        # the handshake completes first (nothing is sent), so the code is what it sees.
        await websocket.accept()
        if allowed is not True:
            await websocket.close(code=FORBIDDEN, reason="forbidden")
            return
        after = websocket.query_params.get("after") or None
        try:
            if after is not None:
                parse_cursor(after)
            reader = hub.subscribe(response_id, after=after)
        except (ValueError, TooOld) as exc:
            await websocket.close(code=BAD_CURSOR, reason=str(exc)[:120])
            return
        try:
            async for event in reader:
                await websocket.send_text(encode_event(event).decode())
        except Lagged as exc:
            await websocket.close(code=LAGGED, reason=str(exc)[:120])
            return
        except TooOld as exc:  # the response came, but only from past the cursor
            await websocket.close(code=BAD_CURSOR, reason=str(exc)[:120])
            return
        await websocket.close(code=1000)

    return WebSocketRoute(path, endpoint)


async def read_events(
    url: str, *, after: str | None = None, headers: Mapping[str, str] | None = None
) -> AsyncIterator[Event]:
    """The events a ``websocket_route`` sends, until the response ends.

    Raises :class:`Closed` with the server's code if it closes early (4403: not
    allowed; 4400: a cursor the server cannot resume after; 4008: too slow, resume with
    the last cursor).
    """
    if after is not None:
        url += ("&" if "?" in url else "?") + "after=" + after
    async with Connection(url, headers=headers) as connection:
        while True:
            try:
                text = await connection.receive_text()
            except Closed as closed:
                if closed.code in (1000, None):
                    return
                raise
            yield respflow.decode_event(text)


class WebSocketSink:
    """Pushes each event to ``url`` as a text message, reconnecting when the link drops.

    A dropped link can swallow the last few messages sent before the drop was seen, so on
    reconnecting the sink sends the last ``resend`` events again: delivery is at least
    once, and receivers drop repeats by ``cursor``. After ``reconnect.attempts`` failed
    connections in a row the sink raises (and the pipeline isolates it).
    """

    def __init__(
        self,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        reconnect: Reconnect | None = None,
        resend: int = 64,
    ) -> None:
        self.url = url
        self.headers = dict(headers or {})
        self.reconnect = reconnect or Reconnect()
        # URLs often carry the credential (?token=, user:pass@): messages show this instead.
        self._shown = _shown_url(url)
        try:
            parse_uri(url)
        except (InvalidURI, ValueError) as exc:
            # InvalidURI's own message repeats the whole URL, credential and all.
            why = "not a valid URI" if isinstance(exc, InvalidURI) else str(exc)
            raise respflow.UsageError(
                f"the websocket sink's URL {self._shown} is unusable ({why}): "
                "use ws://host/path or wss://host/path"
            ) from None
        self._connection: Connection | None = None
        self._recent: deque[str] = deque(maxlen=resend)
        self._dropped = False

    async def send(self, event: Event) -> None:
        text = encode_event(event).decode()
        failures = 0
        while True:
            try:
                if self._connection is not None:
                    await self._connection.poll()  # a close from the server shows here
                    if not self._connection.open:
                        raise Closed(None, "the server closed the connection")
                if self._connection is None:
                    connection = Connection(self.url, headers=self.headers)
                    await connection.__aenter__()
                    self._connection = connection
                    if self._dropped:
                        for again in self._recent:
                            await connection.send_text(again)
                        self._dropped = False
                await self._connection.send_text(text)
                self._recent.append(text)
                return
            except (OSError, Closed, anyio.BrokenResourceError, TimeoutError) as exc:
                await self._drop()
                self._dropped = True
                failures += 1
                if failures > self.reconnect.attempts:
                    raise Closed(
                        None, f"{self._shown} unreachable after {failures} tries: {exc}"
                    ) from exc
                _log.info("respflow: websocket sink reconnecting to %s: %s", self._shown, exc)
                await anyio.sleep(self.reconnect.delay(failures))

    async def aclose(self) -> None:
        await self._drop()

    async def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.aclose()


def _shown_url(url: str) -> str:
    """``url`` fit for a log line: no user or password, and no query values."""
    try:
        parts = urlsplit(url)
        port = f":{parts.port}" if parts.port is not None else ""
    except ValueError:
        return "<a URL that does not parse>"
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 address
        host = f"[{host}]"
    names = parse_qs(parts.query, keep_blank_values=True)
    query = "?" + "&".join(f"{name}=..." for name in names) if parts.query else ""
    return urlunsplit((parts.scheme, host + port, parts.path, "", "")) + query


def sink_from_spec(spec: str) -> WebSocketSink:
    """``ws://host/path`` or ``wss://host/path``: a :class:`WebSocketSink` to that URL."""
    if not spec.startswith(("ws://", "wss://")):
        raise respflow.UsageError(f"a websocket sink needs a ws:// or wss:// URL, not {spec!r}")
    return WebSocketSink(spec)
