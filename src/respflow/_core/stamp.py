"""Cursors for a stream a processor has added events to.

The core numbers events ``<sequence_number>-<k>``. A processor that inserts its own events
(``file.saved``, a flushed ``text.delta``) gives each the sequence number of the event
before it and renumbers ``k`` so cursors stay unique and ordered.
"""

from __future__ import annotations

import msgspec

from .. import _events as ev

__all__ = ["Stamper"]


class Stamper:
    __slots__ = ("k", "seq")

    def __init__(self) -> None:
        self.seq = -1
        """The sequence number of the last event out."""
        self.k = 0
        """How many events out carry it (the next one's ``k``)."""

    def passed(self, event: ev.Event) -> ev.Event:
        """An event from upstream, in its place."""
        seq = event.sequence_number
        if seq != self.seq:  # most events are the first of their wire event
            self.seq = seq
            self.k = 1
            cursor = f"{seq}-0"
        else:
            k = self.k
            self.k = k + 1
            cursor = f"{seq}-{k}"
        return event if event.cursor == cursor else msgspec.structs.replace(event, cursor=cursor)

    def made(self, event: ev.Event) -> ev.Event:
        """An event the processor made, after the last one out."""
        return self._stamp(event, self.seq)

    def _stamp(self, event: ev.Event, seq: int) -> ev.Event:
        cursor = f"{seq}-{self.k}"
        self.k += 1
        if event.cursor == cursor and event.sequence_number == seq:
            return event
        return msgspec.structs.replace(event, sequence_number=seq, cursor=cursor)
