"""When a reader's server-sent events go out: the writes of one SSE connection.

Both SSE apps (:func:`respflow.app` over a broker, :func:`respflow.events_app` over a hub)
pace their readers the same way, because on a busy server the cost is per write (a
syscall and the HTTP server's framing), not per event:

- what is there when the reader wakes goes out in one write (``ready``), so a reader
  woken late or catching up pays one write, not one per event;
- after a write the reader rests until its response's next tick, ``flush`` seconds after
  the write that started the rest, so a stream of many small events costs one write per
  ``flush`` or more; the first event after a quiet spell goes out at once, and a reader
  with a full batch (catching up) or at the end does not rest;
- where the reader's subscription says when events are published (``on_publish``: a
  :class:`respflow.MemoryBroker`'s, a :class:`respflow.Hub`'s), the tick is the first
  publish at or after that moment, or the response's end, whichever comes first; if
  neither comes, ``LATE`` flushes later (75 ms after the write, by default). The
  producer wakes for the publish anyway, so the readers write in that wake-up, not in
  one of a timer's own, and each write carries the newest event. Other subscriptions
  (Redis's) tick on a timer;
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
    "LATE",
    "MOST_FLUSH",
    "OnPublish",
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


OnPublish = Callable[[Callable[[bool], None]], Callable[[], None]]
"""A subscription's ``on_publish(callback)``: ``callback(final)`` is called in the
publisher's task each time events are published to the response (``final``: none will
follow), until the function it returns is called."""

LATE = 0.5
"""How long past its tick, in flushes, a rest ended by a publish waits for one."""


class Tick:
    """The rests of one response's readers, shared.

    A rest is due ``flush`` seconds after the first write that found no rest under way.
    Readers woken together (by one publish, or one tick) rest together, so a thousand
    readers of a response cost one timer per tick rather than a thousand. Only one of
    them sleeps; the others wait for it, and if it leaves (a browser gone), one of them
    sleeps the rest of the way in its place.

    A sleeper whose subscription says when events are published (``on_publish``) ends
    the rest at the first publish once it is due, or at the response's end, and else
    ``LATE`` flushes past it: the producer wakes for that publish anyway, so the readers
    write in that wake-up rather than in one of a timer's own.
    """

    __slots__ = ("__weakref__", "_due", "_reached", "_sleeping", "_woken", "flush")

    def __init__(self, flush: float) -> None:
        self.flush = flush
        self._due = -math.inf
        """When the rest under way is due (``anyio.current_time()``)."""
        self._reached = -math.inf
        """The ``_due`` of the last rest that ended."""
        self._sleeping: object | None = None
        """The sleeper's token while one sleeps: a publish that ends the rest frees the
        place, so a sleeper that wakes late to find another in it leaves it alone."""
        self._woken = anyio.Event()

    async def rest(self, on_publish: OnPublish | None = None) -> None:
        """Wait for the end of the response's rest under way, starting one if none is."""
        if self._sleeping is None:  # else a rest is under way: join it, no clock needed
            now = anyio.current_time()
            if self._due <= now:  # (a sleeper that left may leave a rest to finish)
                self._due = now + self.flush
        due = self._due
        while self._reached < due:
            if self._sleeping is not None:
                await self._woken.wait()
                continue
            token = self._sleeping = object()
            try:
                if on_publish is None:
                    await anyio.sleep_until(due)
                else:
                    await self._until_published(due, on_publish)
                self._reached = max(self._reached, due)
            finally:  # an end, or the sleeper leaving: either way the others look again
                if self._sleeping is token:
                    self._sleeping = None
                    self._wake()

    async def _until_published(self, due: float, on_publish: OnPublish) -> None:
        woken = self._woken
        stop = on_publish(self._published)
        try:  # a deadline cancelled before it comes wakes nobody, on asyncio and trio
            with anyio.CancelScope(deadline=due + LATE * self.flush):
                await woken.wait()
        finally:
            stop()

    def _published(self, final: bool) -> None:
        """Events were published: end the rest if it is due (or no more will come)."""
        if self._sleeping is None or self._reached >= self._due:
            return
        if final or anyio.current_time() >= self._due:
            self._reached = self._due
            self._sleeping = None
            self._wake()  # the sleeper and the others together, in the publisher's wake-up

    def _wake(self) -> None:
        woken, self._woken = self._woken, anyio.Event()
        woken.set()


class Ticks:
    """The :class:`Tick` of each response that has readers resting here.

    A response's tick lives as long as one of its readers holds it: the last reader
    leaving frees it, and with it everything the response's pacing held.
    """

    def __init__(self, flush: float) -> None:
        self._flush = flush
        self._ticks: weakref.WeakValueDictionary[str, Tick] = weakref.WeakValueDictionary()

    @property
    def flush(self) -> float:
        return self._flush

    @flush.setter
    def flush(self, flush: float) -> None:
        """Readers resting now finish their rest; their next one is ``flush`` long (none
        when ``0``)."""
        self._flush = flush
        for tick in list(self._ticks.values()):
            tick.flush = flush

    def __call__(self, response_id: str) -> Tick | None:
        """The tick readers of ``response_id`` rest on (``None`` when they never rest)."""
        if not self._flush:
            return None
        tick = self._ticks.get(response_id)
        if tick is None:
            tick = self._ticks[response_id] = Tick(self._flush)
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
    gives the events it holds now without waiting; an ``on_publish`` method (see
    :data:`OnPublish`), if it has one, lets its rests end at a publish (see :class:`Tick`).
    """
    try:
        yield RETRY
        ready: Callable[[int], list[ev.Event]] | None = getattr(reader, "ready", None)
        if ready is None:  # one event per wake-up: resting would only delay it
            ready, tick = _nothing_ready, None
        on_publish: OnPublish | None = getattr(reader, "on_publish", None)
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
                and tick.flush  # (set to 0 while the reader followed: no more rests)
                and len(events) < BATCH
                and not isinstance(events[-1], ev.END_TYPES)
            ):
                await tick.rest(on_publish)
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
