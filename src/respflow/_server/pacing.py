"""When a reader's server-sent events go out: the writes of one SSE connection.

Both SSE apps (:func:`respflow.app` over a broker, :func:`respflow.events_app` over a hub)
pace their readers the same way, because on a busy server the cost is per write (a
syscall and the HTTP server's framing), not per event:

- what is there when the reader wakes goes out in one write (``ready``), so a reader
  woken late or catching up pays one write, not one per event;
- after a write the reader rests until its response's next tick, ``flush`` seconds after
  the write that started the rest, so a stream of many small events costs one write per
  ``flush``; the first event after a quiet spell goes out at once, and a reader with a
  full batch (catching up) or at the end does not rest;
- the readers of one response in a process share its ticks (:class:`Ticks`): one timer
  per response, not one per reader, and they write together;
- the heartbeat's timer runs only while the reader waits for more.
"""

from __future__ import annotations

import functools
import math
import weakref
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

import anyio

from .. import _events as ev

if TYPE_CHECKING:
    from starlette.responses import StreamingResponse

__all__ = [
    "BATCH",
    "FLUSH",
    "MOST_FLUSH",
    "Tick",
    "Ticks",
    "check_flush",
    "paced",
    "paced_response",
]

BATCH = 256
"""The most events one write carries."""

FLUSH = 0.05
"""The default rest after a reader's write, in seconds: up to 20 updates a second, the
pace chat UIs throttle streamed text to, at a fifth of the writes of one per event at
100 events a second (a write costs a busy server more than the events in it)."""

MOST_FLUSH = 1.0
"""A longer rest between writes would make a stream visibly stutter."""

RETRY = b"retry: 1000\n\n"
KEEPALIVE = b": keepalive\n\n"


def check_flush(flush: float) -> str | None:
    """What is wrong with ``flush``, if anything."""
    if not 0 <= flush <= MOST_FLUSH:
        return f"flush must be 0 to {MOST_FLUSH:g} seconds, not {flush!r}"
    return None


class Tick:
    """The rests of one response's readers, shared.

    A rest ends at the response's next tick: ``flush`` seconds after the first write that
    found no rest under way. Readers woken together (by one publish, or one tick) rest
    together, so a thousand readers of a response cost one timer per tick rather than a
    thousand. Only one of them sleeps; the others wait for it, and if it leaves (a
    browser gone), one of them sleeps the rest of the way in its place.
    """

    __slots__ = ("__weakref__", "_due", "_reached", "_sleeping", "_woken", "flush")

    def __init__(self, flush: float) -> None:
        self.flush = flush
        self._due = -math.inf
        """When the rest under way ends (``anyio.current_time()``)."""
        self._reached = -math.inf
        """The ``_due`` of the last tick that came."""
        self._sleeping = False
        self._woken = anyio.Event()

    async def rest(self) -> None:
        """Wait for the response's next tick, starting one if none is under way."""
        if not self._sleeping:  # else a rest is under way: join it, no clock needed
            now = anyio.current_time()
            if self._due <= now:  # (a sleeper that left may leave a rest to finish)
                self._due = now + self.flush
        due = self._due
        while self._reached < due:
            if self._sleeping:
                await self._woken.wait()
                continue
            self._sleeping = True
            try:
                await anyio.sleep_until(due)
                self._reached = due
            finally:  # a tick, or the sleeper leaving: either way the others look again
                self._sleeping = False
                woken, self._woken = self._woken, anyio.Event()
                woken.set()


class Ticks:
    """The :class:`Tick` of each response that has readers resting here.

    A response's tick lives as long as one of its readers holds it: the last reader
    leaving frees it, and with it everything the response's pacing held.
    """

    def __init__(self, flush: float) -> None:
        self.flush = flush
        self._ticks: weakref.WeakValueDictionary[str, Tick] = weakref.WeakValueDictionary()

    def __call__(self, response_id: str) -> Tick | None:
        """The tick readers of ``response_id`` rest on (``None`` when they never rest)."""
        if not self.flush:
            return None
        tick = self._ticks.get(response_id)
        if tick is None:
            tick = self._ticks[response_id] = Tick(self.flush)
        return tick

    def __len__(self) -> int:
        """How many responses have readers holding a tick."""
        return len(self._ticks)


async def paced(
    reader: Any,
    write: Callable[[list[ev.Event]], bytes],
    *,
    heartbeat: float,
    tick: Tick | None,
    refusals: tuple[type[Exception], ...],
    ending: Callable[[Exception | None], bytes],
    close: Callable[[], Awaitable[object]] | None = None,
) -> AsyncGenerator[bytes, None]:
    """The bodies to send one reader: ``write(events)`` for what it gets at each wake-up
    (nothing is sent when that is empty), a comment while idle, and ``ending(refused)``
    when the events end (``None``) or the reader gets one of ``refusals``. After a write
    it rests on ``tick`` (never, when ``None``). ``close()``, if given, is awaited when
    the bodies end or are closed.

    ``reader`` is an async iterator of events; a ``ready(limit)`` method, if it has one,
    gives the events it holds now without waiting.
    """
    try:
        yield RETRY
        ready: Callable[[int], list[ev.Event]] | None = getattr(reader, "ready", None)
        if ready is None:  # one event per wake-up: resting would only delay it
            ready, tick = _nothing_ready, None
        while True:
            events = ready(BATCH)
            if not events:
                event: ev.Event | None = None
                refused: Exception | None = None
                over = False
                with anyio.move_on_after(heartbeat):  # nothing is yielded inside the scope
                    try:
                        event = await reader.__anext__()
                    except StopAsyncIteration:
                        over = True
                    except refusals as exc:
                        refused = exc
                if over or refused is not None:
                    last = ending(refused)
                    if last:
                        yield last
                    return
                if event is None:
                    yield KEEPALIVE
                    continue
                events = [event, *ready(BATCH - 1)]
            body = write(events)
            if not body:  # a resumed reader's events skipped: no write to rest after
                continue
            yield body
            if (
                tick is not None
                and len(events) < BATCH
                and not isinstance(events[-1], ev.END_TYPES)
            ):
                await tick.rest()
    finally:
        if close is not None:
            await close()


def _nothing_ready(limit: int) -> list[ev.Event]:
    return []


CLOSE_TIMEOUT = 5.0
"""The most seconds a reader's bodies get to close once its connection is gone."""


def paced_response(
    bodies: AsyncGenerator[bytes, None], headers: Mapping[str, str] | None = None
) -> StreamingResponse:
    """A Starlette response streaming ``bodies`` as server-sent events, which closes them
    however the response ends.

    Starlette stops iterating a body when the connection breaks (a write raising
    ``OSError``) but does not close it: left to the garbage collector, a reader's
    subscription and its response's tick were held until a collection, and on trio the
    collection warned of an async generator left unfinished.
    """
    response: StreamingResponse = _closing_response()(
        bodies, media_type="text/event-stream", headers=headers
    )
    return response


@functools.cache
def _closing_response() -> Any:
    from starlette.responses import StreamingResponse  # only serving needs starlette

    class ClosingResponse(StreamingResponse):
        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            try:
                await super().__call__(scope, receive, send)
            finally:
                close = getattr(self.body_iterator, "aclose", None)
                if close is not None:  # a no-op for bodies that ran to their end
                    with anyio.CancelScope(shield=True), anyio.move_on_after(CLOSE_TIMEOUT):
                        await close()

    return ClosingResponse
