"""A mock Responses API: a real ASGI app served over loopback HTTP by hypercorn.

It replays a :class:`Recording` the way the API streams, on the OpenAI paths
(``/v1/...``, ``Authorization: Bearer``) and the Azure v1 paths (``/openai/v1/...``,
``api-key`` or a Bearer token), each with its own credential so a test can prove which
went where. Background responses are kept for resuming with ``starting_after``; a test can
cut connections, queue HTTP failures, pace the events and expire containers.
"""

from __future__ import annotations

import itertools
import logging
import re
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs

import anyio
import msgspec

from ._containers import Containers
from ._loopback import LoopbackServer
from ._recorded import Recording

__all__ = ["MockServer", "RecordedRequest"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_log = logging.getLogger("respflow.testing.mock_server")

_ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    ("POST", re.compile(r"/responses"), "create"),
    ("GET", re.compile(r"/responses/(?P<rid>[^/]+)"), "retrieve"),
    ("POST", re.compile(r"/responses/(?P<rid>[^/]+)/cancel"), "cancel"),
    ("GET", re.compile(r"/containers/(?P<cid>[^/]+)/files"), "list_files"),
    ("GET", re.compile(r"/containers/(?P<cid>[^/]+)/files/(?P<fid>[^/]+)"), "file"),
    ("GET", re.compile(r"/containers/(?P<cid>[^/]+)/files/(?P<fid>[^/]+)/content"), "content"),
]


_BATCH = 16384


class _Cut(Exception):
    """Raised inside the app to drop the connection mid-body, as a network failure does."""


def _not_a_cut(record: logging.LogRecord) -> bool:
    # hypercorn logs every exception an app raises; a planned cut is not an error.
    return not (record.exc_info and isinstance(record.exc_info[1], _Cut))


_log.addFilter(_not_a_cut)


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """What the mock server saw of one request (credentials are reduced to who sent them)."""

    method: str
    path: str
    query: dict[str, list[str]]
    api: str
    """``"openai"`` for ``/v1/...``, ``"azure"`` for ``/openai/v1/...``."""
    credential: str | None
    """Which configured credential authenticated it: ``"openai_api_key"``,
    ``"azure_api_key"``, ``"azure_ad_token"``, or None."""
    auth_header: str | None
    """``"authorization"`` or ``"api-key"``: the header that carried the credential."""
    body: Any = None
    status: int = 0


@dataclass(slots=True)
class _Failure:
    status: int
    message: str
    retry_after: float | str | None
    times: int


@dataclass(slots=True)
class _Stored:
    """A background response, kept for resuming and cancelling."""

    recording: Recording
    cancelled: bool = False


class MockServer:
    """A Responses API on ``127.0.0.1`` at a free port; ``async with`` starts and stops it.

    Args:
        recording: what every ``POST /responses`` replays (change :attr:`recording`
            between requests to serve another).
        files: a folder whose files are served as the recording's container files.
        pace: seconds between streamed events (0: as fast as the socket takes them).
        cut_after: drop every streaming connection after this many events.
        max_cuts: how many connections :attr:`cut_after` may drop (None: all).
        honour_starting_after: False to replay a resumed stream from its first event,
            as some servers do; the client must then drop the repeats.
        container_ttl: seconds a container lives without use (None: forever).
        file_delay: seconds each file download waits before its answer.
        cut_files_after: drop file downloads after this many bytes (``max_cuts`` counts
            these too).
        listing_delay: seconds each container file listing waits before its answer.
        cut_listings_after: drop container file listings after this many bytes of their
            body (``max_cuts`` counts these too).
        listing_body: answer every container file listing with these bytes, status 200,
            whatever they are (a broken gateway, a hostile server).
        endless_listing: every listing page says ``has_more``, with a new file on each.
        redirect_containers_to: answer every container request with a redirect
            (``redirect_status``) to this URL followed by the request's path and query.
        openai_api_key: the Bearer key ``/v1/...`` accepts.
        azure_api_key: the key ``/openai/v1/...`` accepts (``api-key`` header or Bearer).
        azure_ad_token: an Entra token ``/openai/v1/...`` accepts as Bearer.
        port: 0 for any free port.
        fresh_ids: give every ``POST /responses`` new response, container and file ids
            (its container files served under them too), so runs never collide; False
            (the default) replays the recording's own ids, byte for byte.
    """

    def __init__(
        self,
        recording: Recording,
        *,
        files: Path | str | None = None,
        pace: float = 0.0,
        cut_after: int | None = None,
        max_cuts: int | None = None,
        honour_starting_after: bool = True,
        container_ttl: float | None = None,
        file_delay: float = 0.0,
        cut_files_after: int | None = None,
        listing_delay: float = 0.0,
        cut_listings_after: int | None = None,
        listing_body: bytes | None = None,
        endless_listing: bool = False,
        redirect_containers_to: str | None = None,
        redirect_status: int = 302,
        openai_api_key: str = "sk-mock-openai",
        azure_api_key: str = "mock-azure-key",
        azure_ad_token: str | None = None,
        port: int = 0,
        fresh_ids: bool = False,
    ) -> None:
        self.recording = recording
        self.fresh_ids = fresh_ids
        self.pace = pace
        self.cut_after = cut_after
        self.max_cuts = max_cuts
        self.honour_starting_after = honour_starting_after
        self.openai_api_key = openai_api_key
        self.azure_api_key = azure_api_key
        self.azure_ad_token = azure_ad_token
        self.requests: list[RecordedRequest] = []
        """Every request served, in order."""
        self.cuts = 0
        """How many connections were dropped on purpose."""
        self.disconnects = 0
        """How many streams the client closed before their end."""
        self.file_delay = file_delay
        self.cut_files_after = cut_files_after
        self.active_downloads = 0
        self.peak_downloads = 0
        """The most file downloads that were served at once."""
        self.listing_delay = listing_delay
        self.cut_listings_after = cut_listings_after
        self.listing_body = listing_body
        self.endless_listing = endless_listing
        self.redirect_containers_to = redirect_containers_to
        self.redirect_status = redirect_status
        self.listing_pages = 0
        """How many container file listing pages were asked for."""
        self.containers = Containers(
            Path(files) if files is not None else None, recording, ttl=container_ttl
        )
        self._port = port
        self._stored: dict[str, _Stored] = {}
        self._failures: list[_Failure] = []
        self._ids = itertools.count(1)
        self._minted = itertools.count(1)
        self._recorded_containers = list(self.containers.containers())
        self._server: LoopbackServer

    # -- controls -----------------------------------------------------------------------

    def fail_next(
        self,
        status: int,
        *,
        times: int = 1,
        retry_after: float | str | None = None,
        message: str | None = None,
    ) -> None:
        """Answer the next ``times`` requests with ``status`` (and ``Retry-After``: seconds,
        or a string sent as it is)."""
        text = message or {
            401: "Incorrect API key provided.",
            404: "Not found.",
            429: "Rate limit reached for requests.",
        }.get(status, "The server had an error while processing your request.")
        self._failures.append(_Failure(status, text, retry_after, times))

    def expire_containers(self) -> None:
        """Every container expires now: its files answer 404."""
        self.containers.expire()

    # -- addresses ----------------------------------------------------------------------

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self._port}"

    @property
    def openai_base_url(self) -> str:
        """For ``AsyncOpenAI(base_url=...)``."""
        return f"{self.url}/v1"

    @property
    def azure_base_url(self) -> str:
        """The Azure v1 base, for ``AsyncOpenAI(base_url=...)`` with an Azure key."""
        return f"{self.url}/openai/v1/"

    # -- lifecycle ----------------------------------------------------------------------

    async def __aenter__(self) -> MockServer:
        app: Any = self  # hypercorn types scopes as TypedDicts; the app reads them as mappings
        self._server = LoopbackServer(app, port=self._port, log=_log)
        await self._server.__aenter__()
        self._port = self._server.port
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._server.__aexit__(exc_type, exc, tb)

    async def serve_forever(self) -> None:
        """Run until cancelled (the ``respflow mock-server`` command)."""
        async with self:
            await anyio.sleep_forever()

    # -- the ASGI app -------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        await self._handle(_Request(scope, body, receive), send)

    async def _handle(self, request: _Request, send: Send) -> None:
        path: str = request.scope["path"]
        if path.startswith("/openai/v1/"):
            api, rest = "azure", path[len("/openai/v1") :]
        elif path.startswith("/openai/") and "api-version" in request.query:
            # The pre-v1 Azure layout AsyncAzureOpenAI(azure_endpoint=...) uses.
            api, rest = "azure", path[len("/openai") :]
        elif path.startswith("/v1/"):
            api, rest = "openai", path[len("/v1") :]
        else:
            await self._answer(request, send, 404, _error("Unknown path: " + path), api="")
            return
        credential, header = self._credential(request.headers, api)
        if credential is None:
            await self._answer(request, send, 401, _auth_error(api), api=api)
            return
        request.api, request.credential, request.auth_header = api, credential, header
        if self._failures:
            failure = self._failures[0]
            failure.times -= 1
            if failure.times <= 0:
                self._failures.pop(0)
            extra = []
            if failure.retry_after is not None:
                extra.append((b"retry-after", _number(failure.retry_after).encode()))
            await self._answer(
                request, send, failure.status, _error(failure.message, failure.status), extra=extra
            )
            return
        if self.redirect_containers_to and rest.startswith("/containers/"):
            await self._redirect(request, send, self.redirect_containers_to)
            return
        for method, pattern, name in _ROUTES:
            match = pattern.fullmatch(rest)
            if match and request.scope["method"] == method:
                handler = getattr(self, f"_on_{name}")
                await handler(request, send, **match.groupdict())
                return
        method = request.scope["method"]
        await self._answer(request, send, 404, _error(f"Unknown route: {method} {path}"))

    def _credential(self, headers: dict[str, str], api: str) -> tuple[str | None, str | None]:
        bearer = headers.get("authorization", "")
        token = bearer[7:] if bearer.lower().startswith("bearer ") else None
        if api == "openai":
            if token is not None and token == self.openai_api_key:
                return "openai_api_key", "authorization"
            return None, None
        if headers.get("api-key") == self.azure_api_key:
            return "azure_api_key", "api-key"
        if token is not None and token == self.azure_api_key:
            return "azure_api_key", "authorization"
        if token is not None and self.azure_ad_token and token == self.azure_ad_token:
            return "azure_ad_token", "authorization"
        return None, None

    async def _answer(
        self,
        request: _Request,
        send: Send,
        status: int,
        payload: Any,
        *,
        extra: list[tuple[bytes, bytes]] | None = None,
        api: str | None = None,
    ) -> None:
        body = msgspec.json.encode(payload)
        self._log(request, status, api)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"x-request-id", self._request_id()),
                    *(extra or []),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    def _log(self, request: _Request, status: int, api: str | None = None) -> None:
        self.requests.append(
            RecordedRequest(
                method=request.scope["method"],
                path=request.scope["path"],
                query=request.query,
                api=request.api if api is None else api,
                credential=request.credential,
                auth_header=request.auth_header,
                body=request.json(),
                status=status,
            )
        )

    def _request_id(self) -> bytes:
        return f"req_mock_{next(self._ids):06d}".encode()

    # -- responses ----------------------------------------------------------------------

    async def _on_create(self, request: _Request, send: Send) -> None:
        params = request.json()
        if not isinstance(params, dict):
            await self._answer(request, send, 400, _error("The body must be a JSON object.", 400))
            return
        recording = self._fresh(self.recording) if self.fresh_ids else self.recording
        background = bool(params.get("background"))
        if background:
            recording = recording.in_background()
            if recording.response_id:
                self._stored[recording.response_id] = _Stored(recording)
        self.containers.touch()
        if params.get("stream"):
            await self._stream(request, send, recording, starting_after=None)
        elif background:
            queued = {**(recording.response or {}), "status": "queued", "output": []}
            await self._answer(request, send, 200, queued)
        else:
            await self._answer(request, send, 200, recording.response or {})

    def _fresh(self, recording: Recording) -> Recording:
        """The recording under new response, container and file ids, its container files
        served under them too: two runs never share an id."""
        n = next(self._minted)
        ids: dict[str, str] = {}
        if recording.response_id:
            ids[recording.response_id] = f"resp_mock_{n:04d}_{secrets.token_hex(6)}"
        for cid in self._recorded_containers:
            new_cid = f"cntr_mock_{n:04d}_{secrets.token_hex(4)}"
            files = {
                fid: f"cfile_mock_{n:04d}_{secrets.token_hex(4)}"
                for fid in self.containers.file_ids(cid)
            }
            self.containers.copy_as(cid, new_cid, files)
            ids[cid] = new_cid
            ids.update(files)
        return recording.with_ids(ids)

    async def _on_retrieve(self, request: _Request, send: Send, rid: str) -> None:
        stored = self._stored.get(rid)
        if stored is None:
            await self._answer(request, send, 404, _error(f"Response with id '{rid}' not found."))
            return
        if request.query.get("stream", [""])[0] != "true":
            response = dict(stored.recording.response or {})
            if stored.cancelled:
                response["status"] = "cancelled"
            await self._answer(request, send, 200, response)
            return
        after = request.query.get("starting_after", [""])[0]
        starting_after = int(after) if after.lstrip("-").isdigit() else None
        if not self.honour_starting_after:
            starting_after = None
        await self._stream(request, send, stored.recording, starting_after=starting_after)

    async def _on_cancel(self, request: _Request, send: Send, rid: str) -> None:
        stored = self._stored.get(rid)
        if stored is None:
            await self._answer(request, send, 404, _error(f"Response with id '{rid}' not found."))
            return
        stored.cancelled = True
        await self._answer(
            request, send, 200, {**(stored.recording.response or {}), "status": "cancelled"}
        )

    async def _stream(
        self, request: _Request, send: Send, recording: Recording, *, starting_after: int | None
    ) -> None:
        self._log(request, 200)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/event-stream; charset=utf-8"),
                    (b"cache-control", b"no-cache"),
                    (b"x-request-id", self._request_id()),
                ],
            }
        )
        cut = self.cut_after
        if self.max_cuts is not None and self.cuts >= self.max_cuts:
            cut = None
        events = [
            e
            for e in recording.events
            if starting_after is None or e.sequence_number > starting_after
        ]
        outcome = "done"
        async with anyio.create_task_group() as group:

            async def watch() -> None:
                nonlocal outcome
                while (await request.receive())["type"] != "http.disconnect":
                    pass
                outcome = "gone"
                group.cancel_scope.cancel()

            group.start_soon(watch)
            # Unpaced, frames go out in batches, as a busy server flushes them; paced,
            # each goes out on its own.
            batch = bytearray()
            for sent, event in enumerate(events):
                if cut is not None and sent >= cut:
                    outcome = "cut"
                    break
                batch += event.frame()
                if self.pace or len(batch) >= _BATCH:
                    if self.pace:
                        await anyio.sleep(self.pace)
                    await send(
                        {"type": "http.response.body", "body": bytes(batch), "more_body": True}
                    )
                    batch.clear()
            if batch:
                await send({"type": "http.response.body", "body": bytes(batch), "more_body": True})
            group.cancel_scope.cancel()
        if outcome == "gone":
            self.disconnects += 1
        elif outcome == "cut":
            self.cuts += 1
            raise _Cut(f"dropped the connection after {cut} events, as configured (cut_after)")
        else:
            await send({"type": "http.response.body", "body": b""})

    # -- containers ---------------------------------------------------------------------

    async def _on_list_files(self, request: _Request, send: Send, cid: str) -> None:
        self.listing_pages += 1
        if self.listing_delay:
            await anyio.sleep(self.listing_delay)
        if not self.containers.alive(cid):
            await self._answer(request, send, 404, _error(f"Container with id '{cid}' not found."))
            return
        if self.listing_body is not None:
            await self._send_listing(request, send, self.listing_body)
            return
        if self.endless_listing:
            entry = {
                "id": f"cfile_page_{self.listing_pages:06d}",
                "object": "container.file",
                "container_id": cid,
                "path": f"/mnt/data/page_{self.listing_pages:06d}.txt",
                "bytes": 1,
                "created_at": 0,
                "source": "assistant",
            }
            page = {
                "object": "list",
                "data": [entry],
                "first_id": entry["id"],
                "last_id": entry["id"],
                "has_more": True,
            }
            await self._send_listing(request, send, msgspec.json.encode(page))
            return
        files = [f.to_json() for f in self.containers.files(cid)]
        ids = [f["id"] for f in files]
        after = request.query.get("after", [""])[0]
        if after in ids:
            files = files[ids.index(after) + 1 :]
        limit = request.query.get("limit", ["20"])[0]
        size = min(max(int(limit), 1), 100) if limit.isdigit() else 20
        data = files[:size]
        page = {
            "object": "list",
            "data": data,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
            "has_more": len(files) > size,
        }
        await self._send_listing(request, send, msgspec.json.encode(page))

    async def _send_listing(self, request: _Request, send: Send, body: bytes) -> None:
        self._log(request, 200)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"x-request-id", self._request_id()),
                ],
            }
        )
        cut = self.cut_listings_after
        if cut is not None and (self.max_cuts is None or self.cuts < self.max_cuts):
            await send({"type": "http.response.body", "body": body[:cut], "more_body": True})
            self.cuts += 1
            raise _Cut(f"dropped the listing after {cut} bytes (cut_listings_after)")
        await send({"type": "http.response.body", "body": body})

    async def _redirect(self, request: _Request, send: Send, base: str) -> None:
        query = request.scope.get("query_string", b"")
        target = base.rstrip("/") + request.scope["path"] + ("?" + query.decode() if query else "")
        self._log(request, self.redirect_status)
        await send(
            {
                "type": "http.response.start",
                "status": self.redirect_status,
                "headers": [
                    (b"location", target.encode()),
                    (b"content-length", b"0"),
                    (b"x-request-id", self._request_id()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": b""})

    async def _on_file(self, request: _Request, send: Send, cid: str, fid: str) -> None:
        found = self.containers.file(cid, fid) if self.containers.alive(cid) else None
        if found is None:
            await self._answer(request, send, 404, _error(f"File with id '{fid}' not found."))
            return
        await self._answer(request, send, 200, found.to_json())

    async def _on_content(self, request: _Request, send: Send, cid: str, fid: str) -> None:
        found = self.containers.file(cid, fid) if self.containers.alive(cid) else None
        if found is None:
            await self._answer(request, send, 404, _error(f"File with id '{fid}' not found."))
            return
        data = found.local.read_bytes()
        self._log(request, 200)
        self.active_downloads += 1
        self.peak_downloads = max(self.peak_downloads, self.active_downloads)
        try:
            if self.file_delay:
                await anyio.sleep(self.file_delay)
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        (b"content-type", found.media_type.encode()),
                        (b"content-length", str(len(data)).encode()),
                        (b"x-request-id", self._request_id()),
                    ],
                }
            )
            cut = self.cut_files_after
            if cut is not None and (self.max_cuts is None or self.cuts < self.max_cuts):
                await send({"type": "http.response.body", "body": data[:cut], "more_body": True})
                self.cuts += 1
                raise _Cut(f"dropped the download after {cut} bytes (cut_files_after)")
            await send({"type": "http.response.body", "body": data})
        finally:
            self.active_downloads -= 1


class _Request:
    def __init__(self, scope: Scope, body: bytes, receive: Receive) -> None:
        self.scope = scope
        self.body = body
        self.receive = receive
        self.headers = {
            k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]
        }
        self.query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        self.api = ""
        self.credential: str | None = None
        self.auth_header: str | None = None

    def json(self) -> Any:
        if not self.body:
            return None
        try:
            return msgspec.json.decode(self.body)
        except msgspec.DecodeError:
            return None


def _error(message: str, status: int = 404) -> dict[str, Any]:
    kind = {
        401: "invalid_request_error",
        429: "requests",
        400: "invalid_request_error",
        404: "invalid_request_error",
    }.get(status, "server_error")
    code = {401: "invalid_api_key", 429: "rate_limit_exceeded"}.get(status)
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def _auth_error(api: str) -> dict[str, Any]:
    if api == "azure":
        return {
            "error": {
                "code": "401",
                "message": "Access denied due to invalid subscription key or wrong API endpoint. "
                "Make sure to provide a valid key for an active subscription and use a "
                "correct regional API endpoint for your resource.",
            }
        }
    return _error("Incorrect API key provided.", 401)


def _number(value: float | str) -> str:
    if isinstance(value, str):  # sent as it is: an HTTP date, or anything a server might say
        return value
    return str(int(value)) if value == int(value) else str(value)
