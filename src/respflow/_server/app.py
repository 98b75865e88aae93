"""One ASGI app for a response's whole life: start it, follow it, cancel it, get its files.

=============================================  =========================================
``GET  /healthz``                              200 once the app accepts work
``POST /responses``                            start a response (``responses.create`` args);
                                               201 ``{response_id, events_url, status}``
``GET  /responses/{id}/events?exp=&sig=``      its events as server-sent events, resumable;
                                               ``&format=ag-ui`` or ``vercel`` for a UI
                                               protocol (``respflow`` by default)
``POST /responses/{id}/cancel``                cancel it
``GET  /files/{id}/{filename}?exp=&sig=``      a file it made, as saved
=============================================  =========================================

API callers (the two POSTs) are let in by ``authorize(request)`` or a bearer ``token``.
Browsers follow capability URLs instead: ``events_url`` and each file's URL carry a
signature (see :mod:`signing`), because neither ``EventSource`` nor an ``<img>`` can send
a header. Events leave with served URLs, never a server path: ``file.saved`` gets ``url``
(its ``location`` becomes that URL too), and sandbox links in the text point at the
same URLs.
"""

from __future__ import annotations

import hmac
import inspect
import math
import os
from collections.abc import AsyncGenerator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import anyio
import msgspec

from .. import _events as ev
from .._delivery.redaction import redact_text, redacting_logger
from .._events import encode_event, parse_cursor
from .._exceptions import (
    ConnectionFailed,
    HTTPStatusError,
    RateLimited,
    ResponseNotFound,
    TooOld,
    UsageError,
)
from .._files.readings import FolderReadings
from .._files.serving import file_response
from .._files.storage import LocalStorage
from .._protocols.stream import ProtocolStream
from .pacing import FLUSH, Tick, Ticks, check_flush, paced, paced_response
from .signing import Signer, events_grant, file_grant

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

    from .._delivery.broker import Broker, Subscription
    from .._delivery.runner import Runner

__all__ = ["App", "app"]

AuthorizeCall = Callable[[Any], "bool | Awaitable[bool]"]
"""``(request) -> bool``: may this API caller start and cancel responses?"""

Prepare = Callable[[Any, dict[str, Any]], "dict[str, Any] | Awaitable[dict[str, Any]]"]
"""``(request, arguments) -> arguments``: what a caller sent, made into what is created."""

_SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}
_FILE_URLS_KEPT = 10_000

_log = redacting_logger("respflow")


def app(
    broker: Broker,
    *,
    secret: str | bytes,
    runner: Runner | None = None,
    files: str | os.PathLike[str] | LocalStorage | None = None,
    authorize: AuthorizeCall | None = None,
    token: str | None = None,
    prepare: Prepare | None = None,
    prefix: str = "",
    url_ttl: float = 86_400.0,
    heartbeat: float = 15.0,
    flush: float = FLUSH,
) -> App:
    """The ASGI app serving responses of ``broker``; the whole story is in its module's
    docstring, ``help(respflow._server.app)``.

    Args:
        broker: where the responses' events are (the runner publishes into the same one).
        secret: signs the capability URLs; instances that share a broker share it.
        runner: starts and cancels responses; without one the POST routes answer 404
            and the app only serves what others publish. It may be set later, once it
            runs (``gateway.runner = runner`` in your lifespan).
        files: the folder (or :class:`respflow.LocalStorage`) files are saved into and
            served from; without it files are neither fetched nor served.
        authorize: decides which API callers may start and cancel responses.
        token: a bearer token API callers must send, when ``authorize`` is not given.
            With neither, the POST routes refuse everyone.
        prepare: turns what a caller sent into the arguments of ``responses.create``:
            fix the model and tools, drop what callers may not choose. Without it the
            body is used as it is (fine for trusted callers holding the token).
        prefix: the path the app is mounted at, for the URLs it hands out.
        url_ttl: seconds capability URLs stay valid.
        heartbeat: idle seconds between SSE comment lines that keep proxies open.
        flush: seconds a reader rests after a write while events flow; what arrives
            meanwhile goes out in its next write. The readers of a response rest
            together, so one that joined mid-rest writes with the others. A rest ends
            at the first publish ``flush`` seconds or more after the write that began
            it, or at the response's end (with a :class:`respflow.MemoryBroker`; half a
            flush later still if nothing is published; with other brokers, ``flush``
            seconds after the write). The default, 50 ms, gives a reader up to 20
            updates a second, the pace chat UIs throttle streamed text to, for a
            fraction of the writes of one per event, at about 20 ms more latency at
            p50; ``0`` writes each event as soon as the reader wakes. Changed while
            readers follow, it holds from their next rest.
    """
    return App(
        broker,
        signer=Signer(secret, ttl=url_ttl),
        runner=runner,
        storage=files if isinstance(files, LocalStorage) or files is None else LocalStorage(files),
        authorize=authorize,
        token=token,
        prepare=prepare,
        prefix=prefix,
        heartbeat=heartbeat,
        flush=flush,
    )


class App:
    """The app :func:`app` builds; an ASGI callable."""

    def __init__(
        self,
        broker: Broker,
        *,
        signer: Signer,
        runner: Runner | None,
        storage: LocalStorage | None,
        authorize: AuthorizeCall | None,
        token: str | None,
        prepare: Prepare | None,
        prefix: str,
        heartbeat: float,
        flush: float = FLUSH,
    ) -> None:
        if not heartbeat > 0 or not math.isfinite(heartbeat):
            raise UsageError("heartbeat must be a positive number of seconds")
        problem = check_flush(flush)
        if problem is not None:
            raise UsageError(problem)
        self.broker = broker
        self.runner = runner
        self.storage = storage
        self.signer = signer
        self.prefix = prefix.rstrip("/")
        self.heartbeat = heartbeat
        self._authorize = authorize
        self._token = token
        self._prepare = prepare
        self._file_urls: dict[tuple[str, str], str] = {}
        self._readings = FolderReadings()  # what was read of each folder, per change
        self._frame = _SharedFrames(self.browser_view)
        self._ticks = Ticks(flush)
        self._asgi = self._build()
        self._mount_checked = False

    @property
    def flush(self) -> float:
        """Seconds a reader rests after a write (see :func:`app`). Set, it holds from each
        reader's next rest on (a reader that came while it was ``0`` never rests)."""
        return self._ticks.flush

    @flush.setter
    def flush(self, flush: float) -> None:
        problem = check_flush(flush)
        if problem is not None:
            raise UsageError(problem)
        self._ticks.flush = flush

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if not self._mount_checked and scope.get("type") == "http":
            self._check_mount(str(scope.get("root_path", "")))
        await self._asgi(scope, receive, send)

    def _check_mount(self, root_path: str) -> None:
        """Warn, once, when the app is mounted somewhere its ``prefix`` does not say: every
        URL it hands out (events, files, the links in the answer) would miss the mount."""
        self._mount_checked = True
        # No root path says nothing: a proxy that strips the prefix before the app sees
        # the request (nginx's location /api/) is what prefix= is for.
        if root_path and root_path.rstrip("/") != self.prefix:
            _log.warning(
                "respflow: the app is mounted at %r but was given prefix=%r, so the URLs it "
                "hands out (events_url, file links) lack the mount: pass prefix=%r to "
                "respflow.app",
                root_path,
                self.prefix,
                root_path.rstrip("/"),
            )

    # -- URLs ---------------------------------------------------------------------------

    def events_url(self, response_id: str) -> str:
        """The capability URL that lets a browser follow ``response_id``."""
        path = f"{self.prefix}/responses/{quote(response_id, safe='')}/events"
        return f"{path}?{self.signer.query(events_grant(response_id))}"

    def file_url(self, response_id: str, filename: str) -> str:
        """The capability URL of a saved file.

        The same file gets the same URL while the app runs, so the links the rewriter
        wrote while the text streamed and the ``url`` of ``file.saved`` are one string.
        """
        key = (response_id, filename)
        url = self._file_urls.pop(key, None)
        if url is None:
            path = f"{self.prefix}/files/{quote(response_id, safe='')}/{quote(filename, safe='')}"
            url = f"{path}?{self.signer.query(file_grant(response_id, filename))}"
            if len(self._file_urls) >= _FILE_URLS_KEPT:
                del self._file_urls[next(iter(self._file_urls))]
        self._file_urls[key] = url  # most recently used last
        return url

    def processors(self) -> list[Any]:
        """A response's processors: save its files, point its links at their URLs, and
        give ``file.saved`` its URL."""
        if self.storage is None or self.runner is None:
            return []
        from .._files.fetcher import FileFetcher
        from .._files.rewrite import LinkRewriter

        return [
            FileFetcher(self.runner.client, self.storage),
            LinkRewriter(file_url=self.file_url, markdown=True),
            _FileUrls(self.file_url),
        ]

    def browser_view(self, event: ev.Event) -> ev.Event:
        """``event`` as a browser may see it: no server paths."""
        if isinstance(event, ev.FileSaved):
            url = event.url or self.file_url(event.response_id, event.filename)
            return msgspec.structs.replace(event, url=url, location=url)
        return event

    # -- routes -------------------------------------------------------------------------

    def _build(self) -> Any:
        from starlette.applications import Starlette
        from starlette.routing import Route

        return Starlette(
            routes=[
                Route("/healthz", self._healthz, methods=["GET"]),
                Route("/responses", self._start, methods=["POST"]),
                Route("/responses/{response_id}/events", self._events, methods=["GET"]),
                Route("/responses/{response_id}/cancel", self._cancel, methods=["POST"]),
                Route("/files/{response_id}/{filename}", self._file, methods=["GET", "HEAD"]),
            ]
        )

    async def _healthz(self, request: Request) -> Response:
        return _json(200, {"status": "ok"})

    def _refused(self) -> Response:
        """The 401 for a caller who may not start or cancel, saying what would let one."""
        if self._authorize is not None:
            why = "the app's authorize hook refused this caller"
        elif self._token is not None:
            why = "send Authorization: Bearer <token>"
        else:
            why = (
                "this app lets nobody start or cancel responses: it was given neither "
                "authorize= nor token="
            )
        return _error(401, "unauthorized", why)

    async def _caller_allowed(self, request: Request) -> bool:
        if self._authorize is not None:
            allowed = self._authorize(request)
            if inspect.isawaitable(allowed):
                allowed = await allowed
            return allowed is True
        if self._token is None:
            return False
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            given.strip().encode(), self._token.encode()
        )

    async def _start(self, request: Request) -> Response:
        if not await self._caller_allowed(request):
            return self._refused()
        if self.runner is None:
            return _error(
                404,
                "no_runner",
                "this app does not start responses: it has no runner (pass runner= to "
                "respflow.app, or set app.runner to a respflow.Runner once it is running)",
            )
        try:
            params = msgspec.json.decode(await request.body())
        except msgspec.DecodeError:
            return _error(400, "invalid_json", "the body must be a JSON object")
        if not isinstance(params, dict):
            return _error(400, "invalid_request", "the body must be a JSON object")
        if self._prepare is not None:
            prepared = self._prepare(request, params)
            params = await prepared if inspect.isawaitable(prepared) else prepared
        if "model" not in params:
            return _error(400, "invalid_request", "the arguments must name a model")
        if params.pop("stream", True) is False:
            return _error(400, "invalid_request", "responses started here always stream")
        try:
            response_id = await self.runner.start(processors=self.processors(), **params)
        except HTTPStatusError as exc:
            return _upstream_error(exc)
        except ConnectionFailed as exc:
            return _error(502, "upstream_unreachable", redact_text(str(exc)))
        return _json(
            201,
            {
                "response_id": response_id,
                "events_url": self.events_url(response_id),
                "status": "running",
            },
        )

    async def _cancel(self, request: Request) -> Response:
        if not await self._caller_allowed(request):
            return self._refused()
        response_id = request.path_params["response_id"]
        if self.runner is None or not await self.runner.cancel(response_id):
            return _error(404, "not_running", f"{response_id} is not running here")
        return _json(200, {"response_id": response_id, "status": "cancelled"})

    async def _events(self, request: Request) -> Response:
        response_id = request.path_params["response_id"]
        denied = self._check(events_grant(response_id), request)
        if denied is not None:
            return denied
        after = request.headers.get("last-event-id") or request.query_params.get("after")
        form = request.query_params.get("format", "respflow")
        protocol = None
        try:
            if form == "ag-ui" or form == "vercel":
                # Made from the whole log: a protocol's resume needs what came before the
                # reader's id (AG-UI's snapshot), and its frame ids go below one event.
                protocol = ProtocolStream(form, after=after, inline_images=self.storage is None)
            elif form != "respflow":
                return _error(400, "bad_format", "format is one of respflow, ag-ui, vercel")
            elif after:
                parse_cursor(after)
        except ValueError:
            return _error(
                400,
                "bad_cursor",
                f"{after!r} is not a frame id of this stream; send the id: of the last frame "
                "received, as Last-Event-ID or ?after=, or neither to start from the beginning",
            )
        try:
            subscription = await self.broker.subscribe(
                response_id, after=None if protocol else after or None
            )
        except ResponseNotFound as exc:
            return _error(404, "not_found", str(exc))
        except TooOld as exc:
            return _error(410, "too_old", str(exc))
        return paced_response(
            _frames(
                subscription,
                self.heartbeat,
                self._frame,
                protocol,
                self.browser_view,
                self._ticks(response_id),
            ),
            headers=dict(protocol.headers) if protocol else _SSE_HEADERS,
        )

    async def _file(self, request: Request) -> Response:
        response_id = request.path_params["response_id"]
        filename = request.path_params["filename"]
        denied = self._check(file_grant(response_id, filename), request)
        if denied is not None:
            return denied
        found = None
        if self.storage is not None:
            root = Path(self.storage.root).resolve()
            found = await anyio.to_thread.run_sync(  # see files_app
                file_response, root, response_id, filename, self._readings
            )
        return found or _error(404, "not_found", "no such file")

    def _check(self, grant: str, request: Request) -> Response | None:
        verdict = self.signer.check(grant, request.query_params)
        if verdict == "missing":
            return _error(401, "signature_missing", "this URL needs its exp and sig parameters")
        if verdict == "expired":
            return _error(403, "signature_expired", "this URL has expired; ask for a new one")
        if verdict == "invalid":
            return _error(403, "signature_invalid", "this URL's signature does not match it")
        return None


class _FileUrls:
    """Gives ``file.saved`` its served URL as it passes (a ``feed`` processor)."""

    def __init__(self, url: Callable[[str, str], str]) -> None:
        self._url = url

    def feed(self, event: ev.Event) -> list[ev.Event]:
        if isinstance(event, ev.FileSaved) and event.url is None:
            return [
                msgspec.structs.replace(event, url=self._url(event.response_id, event.filename))
            ]
        return [event]


def _frames(
    subscription: Subscription,
    heartbeat: float,
    frame: Callable[[ev.Event], bytes],
    protocol: ProtocolStream | None = None,
    view: Callable[[ev.Event], ev.Event] = lambda event: event,
    tick: Tick | None = None,
) -> AsyncGenerator[bytes, None]:
    """SSE frames, paced (see :mod:`pacing`): ``frame(event)`` for each event (or the
    ``protocol``'s frames of the ``view`` of it, and its end); a comment while idle.
    The subscription is closed when they end or are closed."""

    def write(events: list[ev.Event]) -> bytes:
        if protocol is None:
            return b"".join(map(frame, events))
        return b"".join([protocol.feed(view(event)) for event in events])

    def ending(gone: Exception | None) -> bytes:  # the reader reconnects with its last id
        if protocol is not None:
            return protocol.close(None if gone is None else str(gone))
        return b"" if gone is None else b"event: gone\ndata: " + str(gone).encode() + b"\n\n"

    # paced itself is the body: a generator around it would cost an await per write
    return paced(
        subscription,
        write,
        heartbeat=heartbeat,
        tick=tick,
        refusals=(TooOld, ResponseNotFound),
        ending=ending,
        close=subscription.aclose,
    )


class _SharedFrames:
    """Each event's SSE frame, made once for all the readers of a response.

    A MemoryBroker hands every reader the same event objects, so the frame made for the
    first reader serves the rest; the last ``size`` events' frames are kept (each with its
    event, so an id is never taken for another object's). A frame longer than
    ``largest`` (a long answer's text, again at its end) is not kept: held for later
    readers that may never come, it would cost more memory than the encoding saves."""

    def __init__(
        self, view: Callable[[ev.Event], ev.Event], size: int = 4096, largest: int = 64 * 1024
    ) -> None:
        self._view = view
        self._size = size
        self._largest = largest
        self._kept: dict[int, tuple[ev.Event, bytes]] = {}

    def __call__(self, event: ev.Event) -> bytes:
        kept = self._kept.get(id(event))
        if kept is not None and kept[0] is event:
            return kept[1]
        data = encode_event(self._view(event))
        frame = b"id: " + event.cursor.encode() + b"\ndata: " + data + b"\n\n"
        if len(frame) <= self._largest:
            if len(self._kept) >= self._size:
                del self._kept[next(iter(self._kept))]
            self._kept[id(event)] = (event, frame)
        return frame


def _json(status: int, body: Any) -> Response:
    from starlette.responses import Response

    return Response(msgspec.json.encode(body), status, media_type="application/json")


def _error(status: int, code: str, message: str) -> Response:
    return _json(status, {"error": {"code": code, "message": message}})


def _upstream_error(exc: HTTPStatusError) -> Response:
    status = exc.status_code if exc.status_code in {400, 401, 403, 404, 409, 422, 429} else 502
    headers = {}
    if isinstance(exc, RateLimited) and exc.retry_after is not None:
        headers["retry-after"] = str(math.ceil(exc.retry_after))
    response = _json(
        status,
        {
            "error": {
                "code": "upstream_error",
                # The API's words go to whoever called this app: a key it echoes must not.
                "message": redact_text(str(exc)),
                "upstream_status": exc.status_code,
                "request_id": exc.request_id,
            }
        },
    )
    response.headers.update(headers)
    return response
