"""Async sources: any stream of bytes in, normalized events out."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator

from ._assembler import Assembler
from ._events import Event

__all__ = ["aiter_events"]


async def aiter_events(
    chunks: AsyncIterable[bytes], *, assembler: Assembler | None = None
) -> AsyncIterator[Event]:
    """Normalized events from a byte stream: an HTTP body, a socket, a file.

    A source that fails mid-stream does not raise here: its failure becomes a fatal
    ``stream.error`` followed by the response's end, so what arrived is never lost.
    Cancellation is not caught.

    Works on asyncio and trio: nothing here awaits but the source.
    """
    asm = assembler or Assembler()
    try:
        async for chunk in chunks:
            for event in asm.feed(chunk):
                yield event
    except Exception as exc:
        for event in asm.transport_error(f"the byte source failed: {exc!r}"):
            yield event
    for event in asm.close():
        yield event
