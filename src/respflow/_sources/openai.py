"""Live streams through the user's own ``openai`` client.

The request goes out through the client's raw streaming response, so its auth, base URL,
Azure routing, proxies and retry settings apply unchanged; respflow reads the body's bytes
itself and never builds the SDK's per-event models. Background responses are resumed
after a dropped connection from the last sequence number seen.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, cast

import anyio
import msgspec

from .._core.assembler import Assembler
from .._core.items import Json
from .._events import Event
from .._exceptions import (
    AuthenticationFailed,
    ConnectionFailed,
    HTTPStatusError,
    NotFound,
    RateLimited,
    ResumeExpired,
    ServerError,
    UsageError,
)
from .bytes import drive
from .taps import Record, TappedAssembler, assembler_for

if TYPE_CHECKING:
    from openai import AsyncOpenAI

__all__ = [
    "CODE_OUTPUTS",
    "EventStream",
    "Reconnect",
    "cancel",
    "from_response",
    "from_sdk_stream",
    "resume",
    "stream",
]

CODE_OUTPUTS = "code_interpreter_call.outputs"
"""The ``include`` value without which Code Interpreter's logs and images never arrive."""

_log = logging.getLogger("respflow")


@dataclass(frozen=True, slots=True)
class Reconnect:
    """How a dropped background stream is resumed.

    The first retry is immediate, then the wait doubles from ``initial_delay`` up to
    ``max_delay``. A connection that delivers events resets the count, so a long stream
    may survive many drops; ``attempts`` bounds drops in a row with no progress.
    """

    attempts: int = 5
    initial_delay: float = 0.5
    max_delay: float = 8.0

    def delay(self, attempt: int) -> float:
        if attempt <= 1:
            return 0.0
        return float(min(self.max_delay, self.initial_delay * 2 ** (attempt - 2)))


class EventStream:
    """Normalized events of one response; an async iterator and an async context manager.

    ``async with`` closes the HTTP response when the block is left, early or not; a plain
    ``async for`` that stops early leaves the closing to garbage collection. Exceptions
    (:class:`respflow.HTTPStatusError` and its kin, :class:`respflow.ConnectionFailed`)
    come only from the first step; after that every failure is an event.
    """

    def __init__(self, events: AsyncIterator[Event], assembler: Assembler) -> None:
        self._events = events
        self.assembler = assembler
        """The assembler behind the stream: ``output``, ``last_sequence_number`` ..."""

    @property
    def response_id(self) -> str:
        return self.assembler.response_id

    @property
    def last_sequence_number(self) -> int | None:
        """The cursor to resume after, should this process stop following the response."""
        return self.assembler.last_sequence_number

    @property
    def output(self) -> list[Json]:
        """The finished output items so far, in ``response.output`` shape."""
        return self.assembler.output

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> Event:
        return await self._events.__anext__()

    async def aclose(self) -> None:
        """Stop following the response and close its HTTP connection."""
        aclose = getattr(self._events, "aclose", None)
        if aclose is not None:
            await aclose()
        if isinstance(self.assembler, TappedAssembler):  # left early: what arrived is kept
            self.assembler.tap.close()

    async def __aenter__(self) -> EventStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


def stream(
    client: AsyncOpenAI,
    /,
    *,
    include_code_outputs: bool = True,
    reconnect: Reconnect | None = None,
    record: Record | None = None,
    **create: Any,
) -> EventStream:
    """Create a response and follow its stream: ``client.responses.create(stream=True, ...)``.

    ``create`` takes the arguments of ``client.responses.create``. When ``tools`` has a
    ``code_interpreter`` tool, ``"code_interpreter_call.outputs"`` is added to ``include``
    (a copy: the caller's objects are never changed) unless ``include_code_outputs`` is
    False; without it the API never sends what the code printed.

    A background response (``background=True``) whose connection drops is resumed from
    the last sequence number (see :class:`Reconnect`). A foreground one ends in
    ``stream.truncated``: the API cannot resume it.

    ``record`` (a :class:`respflow.Recorder`) gets the body's raw bytes as they arrive,
    before anything decodes them, the resumed connections' too.
    """
    check_async_client(client, "respflow.stream()")
    if create.get("stream") is False:
        raise UsageError("respflow.stream() always streams; leave out stream=False")
    params = _with_include(create) if include_code_outputs else dict(create)
    params["stream"] = True
    include = [str(i) for i in params.get("include") or ()]
    assembler = assembler_for(record)

    def first() -> AbstractAsyncContextManager[Any]:
        return cast(
            AbstractAsyncContextManager[Any],
            client.responses.with_streaming_response.create(**params),
        )

    events = _follow(
        client,
        assembler,
        first,
        include=include,
        background=bool(params.get("background")),
        policy=reconnect or Reconnect(),
        action="creating the response",
    )
    return EventStream(events, assembler)


def resume(
    client: AsyncOpenAI,
    response_id: str,
    /,
    *,
    starting_after: int | None = None,
    include: list[str] | None = None,
    reconnect: Reconnect | None = None,
    record: Record | None = None,
) -> EventStream:
    """Follow a background response another connection (or process) started.

    With ``starting_after=N`` the server sends only the events after sequence number N:
    what this process rebuilds starts there. Without it the stream is replayed from the
    start. Raises :class:`respflow.ResumeExpired` if the API no longer has the response.
    ``record`` taps the raw bytes, as in :func:`stream`.
    """
    check_async_client(client, "respflow.resume()")
    _check_response_id(response_id)
    assembler = assembler_for(record, starting_after=starting_after, response_id=response_id)
    wanted = list(include or ())

    def first() -> AbstractAsyncContextManager[Any]:
        return _retrieve(client, response_id, starting_after, wanted)

    events = _follow(
        client,
        assembler,
        first,
        include=wanted,
        background=True,
        policy=reconnect or Reconnect(),
        action=f"resuming response {response_id}",
    )
    return EventStream(events, assembler)


async def cancel(client: AsyncOpenAI, response_id: str, /) -> dict[str, Any]:
    """Cancel a background response; returns the response as the API reports it after.

    Cancelling a finished response is harmless: the API returns it as it ended.
    """
    check_async_client(client, "respflow.cancel()")
    _check_response_id(response_id)
    action = f"cancelling response {response_id}"
    try:
        raw = await client.responses.with_raw_response.cancel(response_id)
    except Exception as exc:
        raise _translate(client, exc, action) or exc from exc
    body: Any = msgspec.json.decode(raw.content)
    return body if isinstance(body, dict) else {"response": body}


def from_sdk_stream(
    sdk_stream: Any, /, *, response_id: str = "", starting_after: int | None = None
) -> EventStream:
    """Events from a stream the SDK already opened (``responses.create(stream=True)``).

    If the stream has not been read yet its raw bytes are used (fast); otherwise its
    remaining typed events are converted one by one. Once its ``response.created`` has
    been read elsewhere, the events before the end cannot know their response: pass its
    ``response_id`` (the ``response.id`` of that event), and ``starting_after``, the last
    ``sequence_number`` read, so that what was read is not reported as a gap.
    """
    assembler = Assembler(response_id=response_id, starting_after=starting_after)
    body = getattr(sdk_stream, "response", None)
    if body is not None and hasattr(body, "aiter_bytes") and not body.is_stream_consumed:
        return EventStream(_from_bytes(sdk_stream, body, assembler), assembler)
    return EventStream(_from_models(sdk_stream, assembler), assembler)


def from_response(response: Any, /) -> list[Event]:
    """The events of a finished non-streaming response: an SDK ``Response``, a dict, or JSON.

    They are the item-level events its stream would have given, and one end.
    """
    if not isinstance(response, bytes | str | Mapping):
        dump: Callable[..., Any] = getattr(response, "to_dict", None) or response.model_dump
        response = dump(mode="json")
    asm = Assembler()
    return [*asm.feed_response(response), *asm.close()]


# -- internals ------------------------------------------------------------------------


def _with_include(create: Mapping[str, Any]) -> dict[str, Any]:
    params = dict(create)
    tools = params.get("tools") or ()
    if any(_tool_type(t) == "code_interpreter" for t in tools):
        include = list(params.get("include") or ())
        if CODE_OUTPUTS not in include:
            include.append(CODE_OUTPUTS)
        params["include"] = include
    return params


def _tool_type(tool: Any) -> Any:
    return tool.get("type") if isinstance(tool, Mapping) else getattr(tool, "type", None)


def _retrieve(
    client: AsyncOpenAI, response_id: str, after: int | None, include: list[str]
) -> AbstractAsyncContextManager[Any]:
    extra: dict[str, Any] = {}
    if after is not None:
        extra["starting_after"] = after
    if include:
        extra["include"] = include
    return cast(
        AbstractAsyncContextManager[Any],
        client.responses.with_streaming_response.retrieve(response_id, stream=True, **extra),
    )


async def _follow(
    client: AsyncOpenAI,
    asm: Assembler,
    first: Callable[[], AbstractAsyncContextManager[Any]],
    *,
    include: list[str],
    background: bool,
    policy: Reconnect,
    action: str,
) -> AsyncIterator[Event]:
    opener = first
    attempt = 0
    yielded = False
    while True:
        try:
            manager = opener()
            response = await manager.__aenter__()
        except Exception as exc:
            error = _translate(client, exc, action)
            if not yielded:
                if error is None:
                    raise
                raise error from exc
            if error is None:  # once events flow nothing raises: the stream ends instead
                for event in asm.transport_error(f"{action} failed: {exc!r}", code="resume_failed"):
                    yield event
                for event in asm.close():
                    yield event
                return
            attempt += 1
            if isinstance(error, NotFound | AuthenticationFailed) or attempt > policy.attempts:
                code = "resume_expired" if isinstance(error, NotFound) else "resume_failed"
                for event in asm.transport_error(str(error), code=code):
                    yield event
                for event in asm.close():
                    yield event
                return
            wait = error.retry_after if isinstance(error, HTTPStatusError) else None
            await anyio.sleep(max(policy.delay(attempt), wait or 0.0))
            continue
        failure: Exception | None = None
        # Read to the end of the body even after the response ended: the server closes
        # it right after, and an abandoned body iterator is a resource leak on trio.
        chunks = response.http_response.aiter_bytes()
        try:
            while True:
                try:
                    chunk = await chunks.__anext__()
                except StopAsyncIteration:
                    break
                except Exception as exc:  # any failure of the source: it is reported below
                    failure = exc
                    break
                events = asm.feed(chunk)
                if events:
                    attempt = 0
                for event in events:
                    yielded = True
                    yield event
        finally:
            await manager.__aexit__(None, None, None)
            await _run_out(chunks)
        if asm.ended:
            for event in asm.close():
                yield event
            return
        resumable = (
            (background or asm.background)
            and bool(asm.response_id)
            and asm.last_sequence_number is not None
        )
        if not resumable:
            if failure is not None:
                for event in asm.transport_error(f"the connection failed: {failure!r}"):
                    yield event
            for event in asm.close():
                yield event
            return
        unusable = _unusable_id(asm.response_id)
        if unusable is not None:
            message = f"the connection dropped and {unusable}"
            for event in asm.transport_error(message, code="resume_failed"):
                yield event
            for event in asm.close():
                yield event
            return
        attempt += 1
        if attempt > policy.attempts:
            why = f" ({failure!r})" if failure is not None else ""
            message = (
                f"the connection dropped{why} and {policy.attempts} attempts to resume "
                "in a row brought no new event"
            )
            for event in asm.transport_error(message, code="resume_failed"):
                yield event
            for event in asm.close():
                yield event
            return
        rid, after = asm.response_id, asm.last_sequence_number
        _log.info(
            "respflow: resuming %s after sequence number %s (attempt %d)", rid, after, attempt
        )
        await anyio.sleep(policy.delay(attempt))
        asm.reconnected()
        action = f"resuming response {rid}"

        def opener(rid: str = rid, after: int | None = after) -> AbstractAsyncContextManager[Any]:
            return _retrieve(client, rid, after, include)


def _unusable_id(response_id: str) -> str | None:
    """Why ``response_id`` cannot name a response in a URL, or None if it can.

    The id comes from the server; as a path segment, ``..`` or a slash would address
    another resource than the response (and the SDK refuses dot segments with a bare
    ValueError).
    """
    if response_id in ("", ".", ".."):
        return f"the response id {response_id!r} cannot be put in a URL, so it cannot be resumed"
    if any(c in response_id for c in "/\\?#") or not response_id.isprintable():
        return (
            f"the response id {response_id!r} holds characters a URL path segment cannot, "
            "so it cannot be resumed"
        )
    return None


def check_async_client(client: Any, what: str) -> None:
    """Refuse the SDK's synchronous client, whose calls would fail later and obscurely
    (an AttributeError about ``__aenter__``) rather than saying what to pass instead."""
    if any(
        cls.__name__ == "SyncAPIClient" and cls.__module__.startswith("openai")
        for cls in type(client).__mro__
    ):
        raise UsageError(
            f"{what} needs the SDK's async client: openai.AsyncOpenAI or "
            f"openai.AsyncAzureOpenAI, not openai.{type(client).__name__} "
            "(it is awaited on an event loop, asyncio or trio)"
        )


def _check_response_id(response_id: str) -> None:
    unusable = _unusable_id(response_id)
    if unusable is not None:
        raise UsageError(unusable + "; pass the id the API gave (resp_...)")


async def _run_out(chunks: AsyncIterator[bytes]) -> None:
    """Finish a body iterator whose response is closed: it fails at once.

    Left unfinished, httpx2's nested body generators are each a ResourceWarning on trio.
    """
    with contextlib.suppress(Exception):
        async for _ in chunks:
            pass


def _translate(client: Any, exc: Exception, action: str) -> Exception | None:
    """The respflow exception for an SDK one, or None if ``exc`` is not the SDK's."""
    import openai

    if isinstance(exc, openai.APIStatusError):
        body = exc.body if isinstance(exc.body, Mapping) else {}
        nested = body.get("error")
        if isinstance(nested, Mapping):  # some gateways do not unwrap "error"
            body = nested
        message = str(body.get("message") or "")
        code = body.get("code") or body.get("type")
        status = exc.status_code
        kind: type[HTTPStatusError]
        if status in (401, 403):
            kind = AuthenticationFailed
        elif status == 404:
            kind = ResumeExpired if action.startswith("resuming") else NotFound
        elif status == 429:
            kind = RateLimited
        elif status >= 500:
            kind = ServerError
        else:
            kind = HTTPStatusError
        return kind(
            status,
            message,
            code=str(code) if code is not None else None,
            request_id=exc.request_id,
            retry_after=_retry_after(exc.response.headers),
            action=action,
        )
    if isinstance(exc, openai.APIConnectionError):
        retries = getattr(client, "max_retries", None)
        tried = f" after {retries} retries (the client's max_retries)" if retries else ""
        return ConnectionFailed(
            f"{action} failed: no answer from {_origin(client)}{tried}: {exc}; check the "
            "base URL, the network and any proxy"
        )
    return None


def _origin(client: Any) -> str:
    url = getattr(client, "base_url", None)
    if url is None:
        return "the API"
    return f"{url.scheme}://{url.host}" + (f":{url.port}" if url.port else "")


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds the server asks to wait (``retry-after-ms``, or ``retry-after`` in seconds
    or as an HTTP date); None when it says nothing usable (NaN, infinite, negative)."""
    ms = headers.get("retry-after-ms")
    if ms is not None:
        seconds = _seconds(ms)
        if seconds is not None:
            return seconds / 1000
    value = headers.get("retry-after")
    if value is None:
        return None
    seconds = _seconds(value)
    if seconds is not None:
        return seconds
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    from datetime import datetime

    if when.tzinfo is None:  # "-0000" dates parse without a zone; HTTP dates are GMT
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _seconds(text: str) -> float | None:
    try:
        seconds = float(text)
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _from_bytes(sdk_stream: Any, body: Any, asm: Assembler) -> AsyncIterator[Event]:
    chunks = body.aiter_bytes()

    async def cleanup() -> None:
        await _close(sdk_stream)
        await _run_out(chunks)

    return drive(chunks, asm.feed, asm, "the byte source", cleanup=cleanup)


def _from_models(sdk_stream: Any, asm: Assembler) -> AsyncIterator[Event]:
    async def payloads() -> AsyncGenerator[Any, None]:
        async for model in sdk_stream:
            dump: Callable[..., Any] = getattr(model, "to_dict", None) or model.model_dump
            yield dump(mode="json")

    source = payloads()

    async def cleanup() -> None:
        await source.aclose()
        await _close(sdk_stream)

    return drive(source, asm.feed_event, asm, "the SDK stream", cleanup=cleanup)


async def _close(sdk_stream: Any) -> None:
    close: Callable[[], Awaitable[None]] | None = getattr(sdk_stream, "close", None)
    if close is not None:
        await close()
