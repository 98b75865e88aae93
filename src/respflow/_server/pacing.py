"""When a reader's server-sent events go out: the writes of one SSE connection.

Both SSE apps (:func:`respflow.app` over a broker, :func:`respflow.events_app` over a hub)
pace their readers the same way, because on a busy server the cost is per write (a
syscall and the HTTP server's framing), not per event:

- what is there when the reader wakes goes out in one write (``ready``), so a reader
  woken late or catching up pays one write, not one per event;
- after a write the reader rests ``flush`` seconds, so a stream of many small events
  costs one write per ``flush``; the first event after a quiet spell goes out at once,
  and a reader with a full batch (catching up) or at the end does not rest;
- the heartbeat's timer runs only while the reader waits for more.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from typing import Any

import anyio

from .. import _events as ev

__all__ = ["BATCH", "MOST_FLUSH", "check_flush", "paced"]

BATCH = 256
"""The most events one write carries."""

MOST_FLUSH = 1.0
"""A longer rest between writes would make a stream visibly stutter."""

RETRY = b"retry: 1000\n\n"
KEEPALIVE = b": keepalive\n\n"


def check_flush(flush: float) -> str | None:
    """What is wrong with ``flush``, if anything."""
    if not 0 <= flush <= MOST_FLUSH:
        return f"flush must be 0 to {MOST_FLUSH:g} seconds, not {flush!r}"
    return None


async def paced(
    reader: Any,
    write: Callable[[list[ev.Event]], bytes],
    *,
    heartbeat: float,
    flush: float,
    refusals: tuple[type[Exception], ...],
    ending: Callable[[Exception | None], bytes],
) -> AsyncGenerator[bytes, None]:
    """The bodies to send one reader: ``write(events)`` for what it gets at each wake-up
    (nothing is sent when that is empty), a comment while idle, and ``ending(refused)``
    when the events end (``None``) or the reader gets one of ``refusals``.

    ``reader`` is an async iterator of events; a ``ready(limit)`` method, if it has one,
    gives the events it holds now without waiting.
    """
    yield RETRY
    ready: Callable[[int], list[ev.Event]] | None = getattr(reader, "ready", None)
    if ready is None:  # one event per wake-up: resting would only delay it
        ready, flush = _nothing_ready, 0.0
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
        if flush and len(events) < BATCH and not isinstance(events[-1], ev.END_TYPES):
            await anyio.sleep(flush)


def _nothing_ready(limit: int) -> list[ev.Event]:
    return []
