"""Async sources: any stream of bytes in, normalized events out."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from typing import TypeVar

from .._core.assembler import Assembler
from .._events import Event

__all__ = ["aiter_events", "drive"]

T = TypeVar("T")


def aiter_events(
    chunks: AsyncIterable[bytes], *, assembler: Assembler | None = None
) -> AsyncIterator[Event]:
    """Normalized events from a byte stream: an HTTP body, a socket, a file.

    A source that fails mid-stream does not raise here: its failure becomes a fatal
    ``stream.error`` followed by the response's end, so what arrived is never lost.
    Cancellation is not caught.

    Works on asyncio and trio: nothing here awaits but the source.
    """
    asm = assembler or Assembler()
    return drive(chunks, asm.feed, asm, "the byte source")


async def drive(
    source: AsyncIterable[T],
    feed: Callable[[T], list[Event]],
    asm: Assembler,
    what: str,
    cleanup: Callable[[], Awaitable[None]] | None = None,
) -> AsyncIterator[Event]:
    """Feed each item of ``source`` to ``asm``; a failure of the source ends the response.

    ``cleanup`` runs however the iteration ends. Callers return this generator itself
    rather than wrapping it: an inner generator left unfinished is a ResourceWarning on trio.
    """
    try:
        try:
            async for item in source:
                for event in feed(item):
                    yield event
        except Exception as exc:
            for event in asm.transport_error(f"{what} failed: {exc!r}"):
                yield event
        for event in asm.close():
            yield event
    finally:
        if cleanup is not None:
            await cleanup()
