"""Async sources: any stream of bytes in, normalized events out."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from typing import TypeVar

from .._core.assembler import Assembler
from .._events import Event
from .._exceptions import UsageError
from .taps import Record, TappedAssembler, assembler_for

__all__ = ["aiter_events", "drive"]

T = TypeVar("T")


def aiter_events(
    chunks: AsyncIterable[bytes],
    *,
    assembler: Assembler | None = None,
    record: Record | None = None,
) -> AsyncIterator[Event]:
    """Normalized events from a byte stream: an HTTP body, a socket, a file.

    A source that fails mid-stream does not raise here: its failure becomes a fatal
    ``stream.error`` followed by the response's end, so what arrived is never lost.
    Cancellation is not caught.

    Works on asyncio and trio: nothing here awaits but the source.

    ``record`` (a :class:`respflow.Recorder`) gets the raw bytes before they are decoded;
    it cannot be combined with ``assembler``.
    """
    if record is None:
        asm = assembler or Assembler()
        return drive(chunks, asm.feed, asm, "the byte source")
    if assembler is not None:
        raise UsageError("pass record= or assembler=, not both: a recorder taps its own")
    tapped = assembler_for(record)
    assert isinstance(tapped, TappedAssembler)

    async def close_tap() -> None:  # also when the consumer leaves early
        tapped.tap.close()

    return drive(chunks, tapped.feed, tapped, "the byte source", cleanup=close_tap)


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
