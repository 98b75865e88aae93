"""The file fetcher: saves every file a response cites, links or shows, before it expires.

It sits between the events and their consumer. Events pass through unchanged; a download
starts the moment a citation, a bare sandbox link or an image is seen (not at the end),
several at once; each ends in ``file.saved`` or ``file.failed``. A response's end event
is held until its downloads are done, so the end stays the response's last event.
"""

from __future__ import annotations

import base64
import binascii
import logging
import mimetypes
import posixpath
from collections.abc import AsyncIterable, AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import anyio
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from .. import _events as ev
from .._core.stamp import Stamper
from .._sources.openai import Reconnect, _retry_after, _run_out
from .names import FileNames
from .storage import FileTooLarge, LocalStorage, Storage, StoredFile

if TYPE_CHECKING:
    from openai import AsyncOpenAI

__all__ = ["FileFetcher", "fetch_files"]

_log = logging.getLogger("respflow")
_RETRY_STATUSES = frozenset({408, 409, 429}) | frozenset(range(500, 600))


@dataclass(frozen=True, slots=True)
class _Made:
    """A file event the fetcher made; its place in the stream is stamped on the way out."""

    event: ev.FileSaved | ev.FileFailed


@dataclass(slots=True)
class _Response:
    """What the fetcher tracks of the response being followed."""

    response_id: str
    containers: dict[str, None]
    item_containers: dict[str, str]
    keys: set[str]
    pending: int = 0
    idle: anyio.Event | None = None
    names: FileNames = field(default_factory=FileNames)
    """Names files as the link rewriter does, from the same events, so links meet files."""


class FileFetcher:
    """Saves the files a response produced into ``storage`` through the user's client.

    Args:
        client: the ``openai.AsyncOpenAI`` / ``AsyncAzureOpenAI`` the response came from;
            downloads go to its base URL with its credentials and nowhere else.
        storage: where files go (default: ``LocalStorage("respflow-files")``).
        concurrency: downloads at once, at most.
        images: save ``code.image`` data URLs too.
        links: resolve ``sandbox:/mnt/data/...`` links no annotation covers, through the
            container's file listing.
        all_assistant_files: at the end of a response, also save every file the assistant
            created in its containers, cited or not.
        retry: attempts and backoff for 429, 5xx, timeouts and cut downloads
            (``Retry-After`` is honoured). A download cut halfway can only be retried
            here: the SDK retries requests, not bodies.
    """

    def __init__(
        self,
        client: AsyncOpenAI,
        storage: Storage | None = None,
        *,
        concurrency: int = 4,
        images: bool = True,
        links: bool = True,
        all_assistant_files: bool = False,
        retry: Reconnect | None = None,
    ) -> None:
        self.client = client
        self.storage: Storage = storage if storage is not None else LocalStorage()
        self.images = images
        self.links = links
        self.all_assistant_files = all_assistant_files
        self.retry = retry or Reconnect(attempts=3)
        self._limiter = anyio.CapacityLimiter(concurrency)
        self._listings: dict[str, list[dict[str, Any]]] = {}
        self._listing_lock = anyio.Lock()

    @asynccontextmanager
    async def process(
        self, events: AsyncIterable[ev.Event]
    ) -> AsyncIterator[AsyncIterator[ev.Event]]:
        """``async with fetcher.process(events) as out: async for event in out: ...``"""
        send, receive = anyio.create_memory_object_stream[ev.Event | _Made](64)
        async with anyio.create_task_group() as group:
            group.start_soon(self._pump, events, send, group)
            try:
                yield _stamped(receive)
            finally:
                group.cancel_scope.cancel()
                receive.close()

    # -- the event pump ----------------------------------------------------------------

    async def _pump(
        self,
        events: AsyncIterable[ev.Event],
        send: MemoryObjectSendStream[ev.Event | _Made],
        group: TaskGroup,
    ) -> None:
        state = _Response("", {}, {}, set())
        async with send:
            async for event in events:
                if event.response_id != state.response_id:
                    await self._settle(state)
                    state = _Response(event.response_id, {}, {}, set())
                if isinstance(event, ev.END_TYPES):
                    if self.all_assistant_files:
                        for container_id in state.containers:
                            self._start(group, send, state, self._save_container, container_id)
                    await self._settle(state)
                    await send.send(event)
                    continue
                await send.send(event)
                self._notice(event, state, group, send)
            await self._settle(state)

    def _notice(
        self,
        event: ev.Event,
        state: _Response,
        group: TaskGroup,
        send: MemoryObjectSendStream[ev.Event | _Made],
    ) -> None:
        state.names.see(event)
        match event:
            case ev.CodeStarted(item_id=item_id, container_id=cid) if cid:
                state.containers[cid] = None
                state.item_containers[item_id] = cid
            case ev.CodeCompleted(item_id=item_id, container_id=cid) if cid:
                state.containers[cid] = None
                state.item_containers[item_id] = cid
            case ev.FileCited(kind="container_file_citation", container_id=cid) if cid:
                if self._claim(state, f"{cid}/{event.file_id}"):
                    filename = state.names.name(cid, event.filename or event.file_id)
                    self._start(
                        group,
                        send,
                        state,
                        self._download,
                        cid,
                        event.file_id,
                        filename,
                        None,
                        "citation",
                    )
            case ev.FileLink(container_id=cid, path=path) if self.links and cid:
                if self._claim(state, f"link:{cid}:{path}"):
                    self._start(group, send, state, self._resolve_link, cid, path)
            case ev.CodeImage(item_id=item_id, url=url) if self.images and url.startswith("data:"):
                if self._claim(state, f"image:{event.cursor}"):
                    self._start(
                        group,
                        send,
                        state,
                        self._save_image,
                        state.item_containers.get(item_id),
                        item_id,
                        event.cursor,
                        url,
                    )
            case _:
                pass

    @staticmethod
    def _claim(state: _Response, key: str) -> bool:
        if key in state.keys:
            return False
        state.keys.add(key)
        return True

    def _start(
        self,
        group: TaskGroup,
        send: MemoryObjectSendStream[ev.Event | _Made],
        state: _Response,
        job: Any,
        *args: Any,
    ) -> None:
        state.pending += 1
        if state.idle is None or state.idle.is_set():
            state.idle = anyio.Event()

        async def run() -> None:
            try:
                async for made in job(state, *args):
                    await send.send(_Made(made))
            finally:
                state.pending -= 1
                if state.pending == 0 and state.idle is not None:
                    state.idle.set()

        group.start_soon(run)

    @staticmethod
    async def _settle(state: _Response) -> None:
        """Wait for the response's downloads to finish."""
        if state.pending and state.idle is not None:
            await state.idle.wait()

    # -- jobs: each yields the file events it made ---------------------------------------

    async def _download(
        self,
        state: _Response,
        container_id: str,
        file_id: str,
        filename: str,
        path: str | None,
        resolved_by: str,
    ) -> AsyncIterator[ev.FileSaved | ev.FileFailed]:
        key = f"{container_id}/{file_id}"
        outcome: StoredFile | tuple[int | None, str, str] | None
        outcome = await self.storage.find(state.response_id, key)  # saved by an earlier run
        if outcome is None:
            async with self._limiter:
                outcome = await self._fetch(state, container_id, file_id, filename, key)
        if isinstance(outcome, StoredFile):
            yield _saved(state, container_id, file_id, outcome, path, resolved_by)
        else:
            status, reason, hint = outcome
            yield _failed(state, container_id, file_id, status, reason, hint, path)

    async def _fetch(
        self, state: _Response, container_id: str, file_id: str, filename: str, key: str
    ) -> StoredFile | tuple[int | None, str, str]:
        import openai

        files = self.client.containers.files.content.with_streaming_response
        attempt = 0
        while True:
            attempt += 1
            wait: float | None = None
            try:
                async with files.retrieve(file_id, container_id=container_id) as response:
                    chunks = response.http_response.aiter_bytes()
                    try:
                        return await self.storage.save(
                            state.response_id,
                            key,
                            filename,
                            chunks,
                            media_type=_media_type(response.headers, filename),
                        )
                    finally:
                        await response.http_response.aclose()
                        await _run_out(chunks)
            except FileTooLarge as exc:
                return None, str(exc), "raise the storage's max_file_bytes / max_response_bytes"
            except openai.APIStatusError as exc:
                status = exc.status_code
                if status not in _RETRY_STATUSES or attempt >= self.retry.attempts:
                    return status, _api_message(exc), _hint(status, exc.request.url)
                wait = _retry_after(exc.response.headers)
            except (openai.APIConnectionError, OSError) as exc:
                if attempt >= self.retry.attempts:
                    return None, f"the download failed: {exc}", _hint(None, None)
            except Exception as exc:  # a body cut halfway, from the HTTP library
                if attempt >= self.retry.attempts:
                    return None, f"the download was cut off: {exc!r}", _hint(None, None)
            delay = max(self.retry.delay(attempt + 1), wait or 0.0)
            _log.info("respflow: retrying %s in %.2f s (attempt %d)", file_id, delay, attempt)
            await anyio.sleep(delay)

    async def _resolve_link(
        self, state: _Response, container_id: str, path: str
    ) -> AsyncIterator[ev.FileSaved | ev.FileFailed]:
        import openai

        try:
            listing = await self._listing(container_id)
        except openai.APIStatusError as exc:
            yield _unlisted(state, container_id, exc, path)
            return
        match = _match(listing, path)
        if match is None:
            yield _failed(
                state,
                container_id,
                None,
                None,
                f"the answer links {path}, but container {container_id} has no such file",
                "the model may have named a file it never saved; ask it to save the file "
                "under /mnt/data and cite it",
                path,
            )
            return
        if not self._claim(state, f"{container_id}/{match['id']}"):
            return  # cited too: that download reports it
        name = state.names.name(container_id, path)  # the link's path: what its target names
        async for made in self._download(
            state, container_id, str(match["id"]), name, str(match.get("path") or path), "link"
        ):
            yield made

    async def _save_container(
        self, state: _Response, container_id: str
    ) -> AsyncIterator[ev.FileSaved | ev.FileFailed]:
        import openai

        try:
            listing = await self._listing(container_id, fresh=True)
        except openai.APIStatusError as exc:
            yield _unlisted(state, container_id, exc, None)
            return
        for entry in listing:
            if entry.get("source") != "assistant":
                continue
            if not self._claim(state, f"{container_id}/{entry['id']}"):
                continue
            path = str(entry.get("path") or "")
            name = state.names.name(container_id, path or str(entry["id"]))
            async for made in self._download(
                state, container_id, str(entry["id"]), name, path or None, "container"
            ):
                yield made

    async def _save_image(
        self, state: _Response, container_id: str | None, item_id: str, place: str, url: str
    ) -> AsyncIterator[ev.FileSaved | ev.FileFailed]:
        header, _, payload = url.partition(",")
        media_type = header[5:].split(";", 1)[0] or "application/octet-stream"
        try:
            data = (
                base64.b64decode(payload, validate=True)
                if header.endswith(";base64")
                else payload.encode()
            )
        except (binascii.Error, ValueError) as exc:
            yield _failed(
                state,
                container_id,
                None,
                None,
                f"the image of {item_id} is not valid base64: {exc}",
                "nothing to do: the API sent a broken data URL",
            )
            return
        ext = mimetypes.guess_extension(media_type) or ".bin"
        filename = f"{item_id}-image-{place.replace('-', '_')}{ext}"

        async def one() -> AsyncIterator[bytes]:
            yield data

        try:
            stored = await self.storage.save(
                state.response_id, f"image:{place}", filename, one(), media_type=media_type
            )
        except FileTooLarge as exc:
            yield _failed(state, container_id, None, None, str(exc), "raise the storage's caps")
            return
        yield _saved(state, container_id, None, stored, None, "image")

    async def _listing(self, container_id: str, *, fresh: bool = False) -> list[dict[str, Any]]:
        async with self._listing_lock:
            if fresh or container_id not in self._listings:
                entries = []
                async for entry in self.client.containers.files.list(container_id, limit=100):
                    entries.append(entry.to_dict(mode="json"))
                self._listings[container_id] = entries
            return self._listings[container_id]


@asynccontextmanager
async def fetch_files(
    events: AsyncIterable[ev.Event],
    client: AsyncOpenAI,
    storage: Storage | None = None,
    **options: Any,
) -> AsyncIterator[AsyncIterator[ev.Event]]:
    """The events with ``file.saved`` / ``file.failed`` added; see :class:`FileFetcher`.

    ``async with respflow.fetch_files(events, client) as events: async for e in events:``
    """
    async with FileFetcher(client, storage, **options).process(events) as out:
        yield out


async def _stamped(
    receive: MemoryObjectReceiveStream[ev.Event | _Made],
) -> AsyncIterator[ev.Event]:
    stamper = Stamper()
    async with receive:
        async for item in receive:
            if isinstance(item, _Made):
                yield stamper.made(item.event)
            else:
                yield stamper.passed(item)


def _saved(
    state: _Response,
    container_id: str | None,
    file_id: str | None,
    stored: StoredFile,
    path: str | None,
    resolved_by: str,
) -> ev.FileSaved:
    return ev.FileSaved(
        response_id=state.response_id,
        sequence_number=-1,
        cursor="",
        container_id=container_id,
        file_id=file_id,
        filename=stored.filename,
        location=stored.location,
        size=stored.size,
        sha256=stored.sha256,
        media_type=stored.media_type,
        resolved_by=resolved_by,
        path=path,
    )


def _failed(
    state: _Response,
    container_id: str | None,
    file_id: str | None,
    status: int | None,
    reason: str,
    hint: str,
    path: str | None = None,
) -> ev.FileFailed:
    return ev.FileFailed(
        response_id=state.response_id,
        sequence_number=-1,
        cursor="",
        container_id=container_id,
        file_id=file_id,
        status=status,
        reason=reason,
        hint=hint,
        path=path,
    )


def _unlisted(state: _Response, container_id: str, exc: Any, path: str | None) -> ev.FileFailed:
    """The container's file listing was refused (expired, or not served on this API)."""
    wanted = f" to find {path}" if path else ""
    return _failed(
        state,
        container_id,
        None,
        exc.status_code,
        f"could not list container {container_id}{wanted}: {_api_message(exc)}",
        _hint(exc.status_code, exc.request.url),
        path,
    )


def _match(listing: list[dict[str, Any]], path: str) -> dict[str, Any] | None:
    """The listed file a sandbox path names: the same path, else the one file of that name."""
    for entry in listing:
        if entry.get("path") == path:
            return entry
    name = posixpath.basename(path)
    for fold in (str, str.casefold):
        same = [
            e for e in listing if fold(posixpath.basename(str(e.get("path") or ""))) == fold(name)
        ]
        if len(same) == 1:
            return same[0]
    return None


def _media_type(headers: Any, filename: str) -> str | None:
    declared = headers.get("content-type")
    if declared and not declared.startswith(("application/octet-stream", "application/binary")):
        return cast(str, declared.split(";", 1)[0].strip())
    return mimetypes.guess_type(filename)[0] or declared


def _api_message(exc: Any) -> str:
    body = exc.body if isinstance(exc.body, dict) else {}
    nested = body.get("error")
    if isinstance(nested, dict):
        body = nested
    return str(body.get("message") or f"HTTP {exc.status_code}")


def _hint(status: int | None, url: Any) -> str:
    tried = f" (tried GET {url.copy_with(query=None)})" if url is not None else ""
    azure = url is not None and "/openai/" in str(url.path)
    if status == 404:
        hint = (
            "the container or the file is gone: containers expire after about 20 idle "
            "minutes, so files must be fetched while the response runs (respflow starts on "
            "the citation) or the request run again"
        )
        if azure:
            hint += (
                "; on Azure, container files are served under /openai/v1/containers/..., so "
                "the client's base_url must be the resource's /openai/v1/ URL"
            )
        return hint + tried
    if status in (401, 403):
        return "the client's credentials were refused for container files" + tried
    if status == 429:
        return "rate limited after every retry; fetch again later" + tried
    if status is not None and status >= 500:
        return "the API failed after every retry; fetch again later" + tried
    if status is None:
        return "the network failed after every retry; fetch again later" + tried
    return "see the API's message" + tried
