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
import math
import mimetypes
import posixpath
from collections.abc import AsyncIterable, AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import quote, urlsplit

import anyio
import msgspec
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from .. import _events as ev
from .._core.provenance import IMAGE_OUTPUT, Origin, Producers
from .._core.stamp import Stamper
from .._exceptions import sole_exception
from .._sources.openai import Reconnect, _retry_after, _run_out, check_async_client
from .names import FileNames
from .storage import FileTooLarge, KeepsManifest, LocalStorage, Storage, StoredFile

if TYPE_CHECKING:
    from openai import AsyncOpenAI

__all__ = ["FileFetcher", "fetch_files"]

_log = logging.getLogger("respflow")
_RETRY_STATUSES = frozenset({408, 409, 429}) | frozenset(range(500, 600))
_LISTING_PAGE_SIZE = 100
# What ``with_streaming_response`` asks of the SDK: hand back the body unread, so a large
# file streams to storage. Were the SDK to stop honouring it, the body would be read into
# memory first: slower for large files, still correct.
_UNREAD_BODY = {"X-Stainless-Raw-Response": "stream"}
# A response's end waits for its downloads: a longer Retry-After fails the file rather
# than hold the end (and the container's ~20 idle minutes run meanwhile).
_LONGEST_WAIT = 60.0
_CAPS_HINT = "raise the storage's max_file_bytes / max_response_bytes"
_STORAGE_HINT = (
    "check the storage: its folder must be writable, have free space and hold no links "
    "out of its root"
)


@dataclass(frozen=True, slots=True)
class _Made:
    """A file event the fetcher made; its place in the stream is stamped on the way out."""

    event: ev.FileSaved | ev.FileFailed


@dataclass(frozen=True, slots=True)
class _Origin:
    """Where a file came from: the call that made it, how that was decided, and the
    message that cited or linked it."""

    produced_by: str | None
    provenance: str
    cited_by: str | None

    @classmethod
    def of(cls, origin: Origin, cited_by: str | None) -> _Origin:
        return cls(origin.produced_by, origin.provenance, cited_by)


@dataclass(frozen=True, slots=True)
class _Failure:
    """Why a file could not be saved: the status, reason and hint of its ``file.failed``."""

    status: int | None
    reason: str
    hint: str


@dataclass(frozen=True, slots=True)
class _Entry:
    """A file of a container's listing, as far as the fetcher needs it."""

    id: str
    path: str
    by_assistant: bool


@dataclass(frozen=True, slots=True)
class _Listing:
    """What a container's listing gave; ``failure`` says why it stopped before its end."""

    entries: list[_Entry]
    failure: _Failure | None = None


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
    producers: Producers = field(default_factory=Producers)
    """The response's code calls so far: which one made a file cited now."""
    # Per response: a container outlives a response and gains files between them.
    listings: dict[str, _Listing] = field(default_factory=dict)
    listing_lock: anyio.Lock = field(default_factory=anyio.Lock)
    citing: list[tuple[ev.FileCited, _Origin]] = field(default_factory=list)
    """Citations whose downloads start once their files are named: see _start_cited."""


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
        max_listing_pages: pages of a container's file listing read at most (100 files
            each); a listing that goes on is cut there, and what it gave is used.
        listing_timeout: seconds a container's file listing may take, all pages together.

    Each ``file.saved`` names the code call that made the file (``produced_by``, with
    ``provenance`` saying how that was decided; see ``respflow._core.provenance``) and the
    message that cited or linked it (``cited_by``). A storage that keeps a manifest
    (:class:`LocalStorage`) lists the file there before its ``file.saved`` goes out.

    Anything that goes wrong with one file (the network, the API's answer, the storage)
    is that file's ``file.failed``; nothing raises out of the events. A redirect is never
    followed, so no request, and no credential, goes to a host the client was not
    configured with.
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
        max_listing_pages: int = 100,
        listing_timeout: float = 60.0,
    ) -> None:
        check_async_client(client, "FileFetcher")
        self.client = client
        self.storage: Storage = storage if storage is not None else LocalStorage()
        self.images = images
        self.links = links
        self.all_assistant_files = all_assistant_files
        self.retry = retry or Reconnect(attempts=3)
        self.max_listing_pages = max_listing_pages
        self.listing_timeout = listing_timeout
        self._limiter = anyio.CapacityLimiter(concurrency)

    @asynccontextmanager
    async def process(
        self, events: AsyncIterable[ev.Event]
    ) -> AsyncIterator[AsyncIterator[ev.Event]]:
        """``async with fetcher.process(events) as out: async for event in out: ...``"""
        send, receive = anyio.create_memory_object_stream[ev.Event | _Made](64)
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(self._pump, events, send, group)
                try:
                    yield _stamped(receive)
                finally:
                    group.cancel_scope.cancel()
                    receive.close()
        except BaseExceptionGroup as failed:
            # A lone error is the stream's own (a wrong key before the first event): it
            # reaches the caller as itself, not inside a group.
            sole = sole_exception(failed)
            if sole is None:
                raise
            raise sole from sole.__cause__

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
                    self._start_cited(state, group, send)
                    await self._settle(state)
                    state = _Response(event.response_id, {}, {}, set())
                if isinstance(event, ev.END_TYPES):
                    self._start_cited(state, group, send)
                    if self.all_assistant_files:
                        for cid in state.containers:
                            job = self._save_container(state, cid)
                            self._start(group, send, state, job, (cid, None, None))
                    await self._settle(state)
                    await send.send(event)
                    continue
                await send.send(event)
                self._notice(event, state, group, send)
            self._start_cited(state, group, send)
            await self._settle(state)

    def _notice(
        self,
        event: ev.Event,
        state: _Response,
        group: TaskGroup,
        send: MemoryObjectSendStream[ev.Event | _Made],
    ) -> None:
        state.names.see(event)
        state.producers.see(event)
        if state.citing and not isinstance(event, ev.FileCited | ev.FileLink | ev.TextDone):
            self._start_cited(state, group, send)
        match event:
            case ev.CodeStarted(item_id=item_id, container_id=cid) if cid:
                state.containers[cid] = None
                state.item_containers[item_id] = cid
            case ev.CodeCompleted(item_id=item_id, container_id=cid) if cid:
                state.containers[cid] = None
                state.item_containers[item_id] = cid
            case ev.FileCited(kind="container_file_citation", container_id=cid) if cid:
                if self._claim(state, f"{cid}/{event.file_id}"):
                    origin = _Origin.of(
                        state.producers.producer(
                            cid, filename=event.filename, file_id=event.file_id
                        ),
                        event.item_id,
                    )
                    state.citing.append((event, origin))
            case ev.FileLink(container_id=cid, path=path) if self.links and cid:
                if self._claim(state, f"link:{cid}:{path}"):
                    origin = _Origin.of(state.producers.producer(cid, path=path), event.item_id)
                    job = self._resolve_link(state, cid, path, origin)
                    self._start(group, send, state, job, (cid, None, path))
            case ev.CodeImage(item_id=item_id, url=url) if self.images and url.startswith("data:"):
                if self._claim(state, f"image:{event.cursor}"):
                    cid = state.item_containers.get(item_id)
                    job = self._save_image(state, cid, item_id, event.cursor, url)
                    self._start(group, send, state, job, (cid, None, None))
            case _:
                pass

    def _start_cited(
        self,
        state: _Response,
        group: TaskGroup,
        send: MemoryObjectSendStream[ev.Event | _Made],
    ) -> None:
        """Start the downloads of the files cited since the last event of another kind.

        They wait that long (no longer than the events of one message part) to be named:
        a part's bare links come after its citations, and the file the text names first
        keeps its name when another differs from it only in case (see FileNames).
        """
        state.names.settle()
        cited, state.citing = state.citing, []
        for event, origin in cited:
            cid = event.container_id or ""
            filename = state.names.name(cid, event.filename or event.file_id)
            job = self._download(
                state, cid, event.file_id, filename, None, "citation", None, origin
            )
            self._start(group, send, state, job, (cid, event.file_id, None))

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
        job: AsyncIterator[ev.FileSaved | ev.FileFailed],
        about: tuple[str | None, str | None, str | None],
    ) -> None:
        """Run ``job``; ``about`` (container, file id, path) names what it saves, should it
        fail in a way nobody foresaw."""
        state.pending += 1
        if state.idle is None or state.idle.is_set():
            state.idle = anyio.Event()

        async def run() -> None:
            try:
                try:
                    async for made in job:
                        if isinstance(made, ev.FileSaved):
                            await self._record(made)
                        await send.send(_Made(made))
                except Exception as exc:  # a failure not foreseen must still end the file
                    _log.warning("respflow: saving a file failed unexpectedly: %r", exc)
                    cid, fid, path = about
                    reason = f"saving the file failed unexpectedly: {exc!r}"
                    hint = "please report this as a respflow bug; fetch the file again later"
                    await send.send(_Made(_failed(state, cid, fid, None, reason, hint, path)))
            finally:
                state.pending -= 1
                if state.pending == 0 and state.idle is not None:
                    state.idle.set()

        group.start_soon(run)

    async def _record(self, saved: ev.FileSaved) -> None:
        """Add the file to its folder's manifest, if the storage keeps one, before anyone
        hears it was saved."""
        if not isinstance(self.storage, KeepsManifest):
            return
        try:
            await self.storage.record(saved)
        except Exception as exc:  # the file is saved all the same; only its listing failed
            _log.warning("respflow: could not add %r to its manifest: %r", saved.filename, exc)

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
        link: str | None,
        origin: _Origin,
    ) -> AsyncIterator[ev.FileSaved | ev.FileFailed]:
        """Save one container file; a failure names ``link``, the path the answer gave, if
        the file was found through one."""
        outcome = await self._saved_or_why_not(state, container_id, file_id, filename)
        if isinstance(outcome, StoredFile):
            yield _saved(state, container_id, file_id, outcome, path, resolved_by, origin)
        else:
            status, reason, hint = outcome.status, outcome.reason, outcome.hint
            yield _failed(state, container_id, file_id, status, reason, hint, link or path)

    async def _saved_or_why_not(
        self, state: _Response, container_id: str, file_id: str, filename: str
    ) -> StoredFile | _Failure:
        refused = _refused_ids(container_id, file_id)
        if refused is not None:
            return refused
        key = f"{container_id}/{file_id}"
        try:
            found = await self.storage.find(state.response_id, key)  # saved by an earlier run
        except Exception as exc:
            return _storage_failure(filename, exc)
        if found is not None:
            return found
        async with self._limiter:
            return await self._fetch(state, container_id, file_id, filename, key)

    async def _fetch(
        self, state: _Response, container_id: str, file_id: str, filename: str, key: str
    ) -> StoredFile | _Failure:
        import openai

        attempt = 0
        while True:
            attempt += 1
            wait: float | None = None
            try:
                return await self._fetch_once(state, container_id, file_id, filename, key)
            except openai.APIStatusError as exc:
                status = exc.status_code
                if 300 <= status < 400:
                    return _redirected(exc)
                if status not in _RETRY_STATUSES or attempt >= self.retry.attempts:
                    return _Failure(status, _api_message(exc), _hint(status, exc.request.url))
                wait = _asked_wait(exc.response.headers)
                if wait is not None and wait > _LONGEST_WAIT:
                    reason = f"{_api_message(exc)} (the API asks to wait {wait:g} s)"
                    return _Failure(status, reason, _hint(status, exc.request.url))
            except (openai.APIConnectionError, OSError) as exc:
                if attempt >= self.retry.attempts:
                    return _Failure(None, f"the download failed: {exc}", _hint(None, None))
            except Exception as exc:  # a body cut halfway, from the HTTP library
                if attempt >= self.retry.attempts:
                    return _Failure(None, f"the download was cut off: {exc!r}", _hint(None, None))
            delay = max(self.retry.delay(attempt + 1), wait or 0.0)
            _log.info("respflow: retrying %s in %.2f s (attempt %d)", file_id, delay, attempt)
            await anyio.sleep(delay)

    async def _fetch_once(
        self, state: _Response, container_id: str, file_id: str, filename: str, key: str
    ) -> StoredFile | _Failure:
        """One try: what the network does raises (to be retried); what the storage does
        is the outcome."""
        import httpx2

        path = f"{_container_path(container_id)}/files/{quote(file_id, safe='')}/content"
        response = await self.client.get(
            path,
            cast_to=httpx2.Response,
            options={
                "headers": {"Accept": "application/binary", **_UNREAD_BODY},
                "follow_redirects": False,
            },
        )
        body = _Body(response.aiter_bytes())
        try:
            return await self.storage.save(
                state.response_id,
                key,
                filename,
                body,
                media_type=_media_type(response.headers, filename),
            )
        except Exception as exc:
            if body.error is not None:
                raise  # the network's: the download is tried again
            return _storage_failure(filename, exc)
        finally:
            await response.aclose()
            await _run_out(body.chunks)

    async def _resolve_link(
        self, state: _Response, container_id: str, path: str, origin: _Origin
    ) -> AsyncIterator[ev.FileSaved | ev.FileFailed]:
        refused = _refused_ids(container_id)
        if refused is not None:
            yield _failed(state, container_id, None, None, refused.reason, refused.hint, path)
            return
        listing = await self._listing(state, container_id)
        match = _match(listing.entries, path)
        if match is None:
            yield _unlisted(state, container_id, listing.failure, path)
            return
        if not self._claim(state, f"{container_id}/{match.id}"):
            return  # cited too: that download reports it
        name = state.names.name(container_id, path)  # the link's path: what its target names
        async for made in self._download(
            state, container_id, match.id, name, match.path or path, "link", path, origin
        ):
            yield made

    async def _save_container(
        self, state: _Response, container_id: str
    ) -> AsyncIterator[ev.FileSaved | ev.FileFailed]:
        refused = _refused_ids(container_id)
        if refused is not None:
            yield _failed(state, container_id, None, None, refused.reason, refused.hint)
            return
        listing = await self._listing(state, container_id, fresh=True)
        if listing.failure is not None:
            yield _unlisted(state, container_id, listing.failure, None)
        for entry in listing.entries:
            if not entry.by_assistant:
                continue
            if not self._claim(state, f"{container_id}/{entry.id}"):
                continue
            name = state.names.name(container_id, entry.path or entry.id)
            found = state.producers.producer(container_id, path=entry.path or None)
            async for made in self._download(
                state,
                container_id,
                entry.id,
                name,
                entry.path or None,
                "container",
                None,
                _Origin.of(found, None),
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

        try:
            stored = await self.storage.save(
                state.response_id,
                f"image:{place}",
                filename,
                _InMemory(data),
                media_type=media_type,
            )
        except Exception as exc:
            failure = _storage_failure(filename, exc)
            yield _failed(state, container_id, None, None, failure.reason, failure.hint)
            return
        origin = _Origin(item_id, IMAGE_OUTPUT, None)
        yield _saved(state, container_id, None, stored, None, "image", origin)

    # -- container listings --------------------------------------------------------------

    async def _listing(
        self, state: _Response, container_id: str, *, fresh: bool = False
    ) -> _Listing:
        async with state.listing_lock:
            listing = state.listings.get(container_id)
            if fresh or listing is None:
                listing = state.listings[container_id] = await self._list(container_id)
            return listing

    async def _list(self, container_id: str) -> _Listing:
        """Every page of the listing, within ``max_listing_pages`` and ``listing_timeout``;
        a failure keeps what the pages before it gave."""
        import openai

        entries: list[_Entry] = []
        after: str | None = None
        with anyio.move_on_after(self.listing_timeout):
            for _ in range(self.max_listing_pages):
                try:
                    page, more, cursor = await self._list_page(container_id, after)
                except openai.APIStatusError as exc:
                    status = exc.status_code
                    if 300 <= status < 400:
                        return _Listing(entries, _redirected(exc))
                    failure = _Failure(status, _api_message(exc), _hint(status, exc.request.url))
                    return _Listing(entries, failure)
                except Exception as exc:  # no answer, or one that is not a listing
                    return _Listing(entries, _bad_listing(exc))
                entries += page
                if not more:
                    return _Listing(entries)
                if cursor is None or cursor == after:
                    reason = "its listing says more files follow but gives no way to ask for them"
                    return _Listing(entries, _Failure(None, reason, _LISTING_HINT))
                after = cursor
            reason = (
                f"its listing goes on past {self.max_listing_pages} pages "
                f"({self.max_listing_pages * _LISTING_PAGE_SIZE} files); the rest was not read"
            )
            hint = "raise FileFetcher(max_listing_pages=...) if the container holds that many"
            return _Listing(entries, _Failure(None, reason, hint))
        reason = f"its listing took longer than {self.listing_timeout:g} s; the rest was not read"
        hint = "raise FileFetcher(listing_timeout=...) if the API is that slow; try again later"
        return _Listing(entries, _Failure(None, reason, hint))

    async def _list_page(
        self, container_id: str, after: str | None
    ) -> tuple[list[_Entry], bool, str | None]:
        """One page: its usable entries, whether more follow, and where they start."""
        params: dict[str, object] = {"limit": _LISTING_PAGE_SIZE}
        if after is not None:
            params["after"] = after
        body = await self.client.get(
            f"{_container_path(container_id)}/files",
            cast_to=bytes,
            options={"params": params, "follow_redirects": False},
        )
        return _page(body)


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
    origin: _Origin,
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
        produced_by=origin.produced_by,
        provenance=origin.provenance,
        cited_by=origin.cited_by,
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


def _unlisted(
    state: _Response, container_id: str, failure: _Failure | None, path: str | None
) -> ev.FileFailed:
    """A link the listing does not resolve, or the part of a container it did not list."""
    if failure is None:
        return _failed(
            state,
            container_id,
            None,
            None,
            f"the answer links {path}, but container {container_id} has no such file",
            "the model may have named a file it never saved; ask it to save the file "
            "under /mnt/data and cite it",
            path,
        )
    wanted = f" to find {path}" if path else ""
    return _failed(
        state,
        container_id,
        None,
        failure.status,
        f"could not list container {container_id}{wanted}: {failure.reason}",
        failure.hint,
        path,
    )


def _match(listing: list[_Entry], path: str) -> _Entry | None:
    """The listed file a sandbox path names: the same path, else the one file of that name."""
    for entry in listing:
        if entry.path == path:
            return entry
    name = posixpath.basename(path)
    for fold in (str, str.casefold):
        same = [e for e in listing if fold(posixpath.basename(e.path)) == fold(name)]
        if len(same) == 1:
            return same[0]
    return None


def _page(body: bytes) -> tuple[list[_Entry], bool, str | None]:
    """A listing page's files that can be fetched (an entry without a usable id cannot),
    whether more follow, and the cursor to ask for them.

    Raises:
        ValueError: the body is not a listing page.
    """
    try:
        page = msgspec.json.decode(body)
    except msgspec.DecodeError:
        raise ValueError("the answer is not JSON") from None
    data = page.get("data") if isinstance(page, dict) else None
    if not isinstance(data, list):
        raise ValueError("the answer is not a list of files")
    entries = [
        _Entry(raw["id"], _text(raw.get("path")), raw.get("source") == "assistant")
        for raw in data
        if isinstance(raw, dict) and _usable_id(raw.get("id"))
    ]
    last = page.get("last_id")
    cursor = last if _usable_id(last) else (entries[-1].id if entries else None)
    return entries, page.get("has_more") is True, cursor


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _usable_id(value: Any) -> bool:
    """An id that names one thing in a URL path: not empty, not a path step like ``..``."""
    return (
        isinstance(value, str)
        and value not in ("", ".", "..")
        and value.isprintable()
        and value.isascii()
    )


def _refused_ids(container_id: str, file_id: str | None = None) -> _Failure | None:
    """Ids from the network that must not become a request (``..`` would reach another
    endpoint of the API)."""
    for what, value in (("container", container_id), ("file", file_id)):
        if value is not None and not _usable_id(value):
            return _Failure(
                None,
                f"the response names {what} id {value!r}, which cannot be fetched",
                "nothing to do: the API gave an id that is not one; no request was sent",
            )
    return None


def _container_path(container_id: str) -> str:
    return f"/containers/{quote(container_id, safe='')}"


class _Body:
    """A download's bytes, remembering whether reading them failed: a network failure is
    tried again, the storage's own is not."""

    def __init__(self, chunks: AsyncIterator[bytes]) -> None:
        self.chunks = chunks
        self.error: Exception | None = None

    def __aiter__(self) -> _Body:
        return self

    async def __anext__(self) -> bytes:
        try:
            return await self.chunks.__anext__()
        except StopAsyncIteration:
            raise
        except Exception as exc:
            self.error = exc
            raise


class _InMemory:
    """Bytes already at hand, as one chunk. Not a generator: a storage that stops reading
    early (a cap) must not leave one unfinished, which trio reports."""

    def __init__(self, data: bytes) -> None:
        self._data: bytes | None = data

    def __aiter__(self) -> _InMemory:
        return self

    async def __anext__(self) -> bytes:
        if self._data is None:
            raise StopAsyncIteration
        data, self._data = self._data, None
        return data


def _storage_failure(filename: str, exc: Exception) -> _Failure:
    if isinstance(exc, FileTooLarge):
        return _Failure(None, str(exc), _CAPS_HINT)
    return _Failure(None, f"could not store {filename!r}: {exc}", _STORAGE_HINT)


def _redirected(exc: Any) -> _Failure:
    """A redirect is refused: only the host the client was configured with is asked."""
    where = _redirect_target(exc.request.url, exc.response.headers.get("location"))
    return _Failure(
        exc.status_code,
        f"the API answered {exc.status_code}, a redirect {where}; respflow does not follow it",
        "respflow never follows a redirect, so no request and no credential leaves the host "
        "the client was configured with; point the client's base_url at the host that "
        "serves the files" + _tried(exc.request.url),
    )


def _redirect_target(base: Any, location: str | None) -> str:
    """Where a redirect points: scheme, host and port only, as its path, query or user
    part may hold a secret."""
    if not location:
        return "with no location"
    try:
        target = urlsplit(str(base.join(location)))
        port = f":{target.port}" if target.port else ""
    except Exception:  # a Location that is not a URL
        return "to a location that is not a URL"
    return f"to {target.scheme}://{target.hostname}{port}"


_LISTING_HINT = (
    "the API, or a gateway before it, answered with something that is not a container "
    "file listing; check the client's base_url"
)


def _bad_listing(exc: Exception) -> _Failure:
    import openai

    if isinstance(exc, openai.APIConnectionError | OSError):
        return _Failure(None, str(exc), _hint(None, None))
    if isinstance(exc, ValueError):
        return _Failure(None, str(exc), _LISTING_HINT)
    return _Failure(None, repr(exc), _LISTING_HINT)


def _asked_wait(headers: Any) -> float | None:
    """The seconds ``Retry-After`` asks for, if it can be read."""
    try:
        wait = _retry_after(headers)
    except Exception:  # an HTTP date with no time zone, for one
        return None
    return None if wait is None or math.isnan(wait) else wait


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


def _tried(url: Any) -> str:
    return f" (tried GET {url.copy_with(query=None)})" if url is not None else ""


def _hint(status: int | None, url: Any) -> str:
    tried = _tried(url)
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
