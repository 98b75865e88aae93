"""Taps: what a source hands the raw bytes of a stream to before reading them.

A recorder (:class:`respflow.Recorder`) is the tap respflow ships; the sources know it
only by these two protocols, so they sit below it in the layout. A stream with no tap
reads its bytes exactly as before: the tap is chosen once, when the stream is opened,
never checked per chunk.
"""

from __future__ import annotations

from typing import Protocol

from .._core.assembler import Assembler
from .._events import Event

__all__ = ["Record", "Tap", "TappedAssembler", "assembler_for"]


class Tap(Protocol):
    """One stream's raw bytes, as they arrive. A tap never raises: its failure is its own."""

    def feed(self, chunk: bytes) -> None:
        """Bytes of the body, exactly as read, before anything decodes them."""

    def reconnected(self) -> None:
        """The connection dropped and a resumed one follows: a frame it cut off is void."""

    def close(self) -> None:
        """The stream ended (or was left); called at least once, possibly more."""


class Record(Protocol):
    """Something that taps streams: a tap for each stream opened with ``record=``."""

    def open(self) -> Tap:
        """A tap for one new stream."""


class TappedAssembler(Assembler):
    """An assembler that hands each chunk to a tap before reading it, and tells the tap
    when the stream reconnects and ends: every source drives it as it drives any other."""

    def __init__(self, tap: Tap, *, starting_after: int | None = None, response_id: str = ""):
        super().__init__(starting_after=starting_after, response_id=response_id)
        self.tap = tap

    def feed(self, data: bytes) -> list[Event]:
        self.tap.feed(data)
        return super().feed(data)

    def reconnected(self) -> None:
        self.tap.reconnected()
        super().reconnected()

    def close(self) -> list[Event]:
        self.tap.close()
        return super().close()


def assembler_for(
    record: Record | None, *, starting_after: int | None = None, response_id: str = ""
) -> Assembler:
    """A plain assembler, or one that taps the stream into ``record``."""
    if record is None:
        return Assembler(starting_after=starting_after, response_id=response_id)
    return TappedAssembler(record.open(), starting_after=starting_after, response_id=response_id)
