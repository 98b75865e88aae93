"""Where a response lives in Redis: its keys, and its cursors as stream entry ids.

A public cursor ``"<seq>-<k>"`` is the entry id ``"<seq + 2>-<k>"``. Stream ids are two
unsigned 64-bit numbers and ``0-0`` is refused by ``XADD``, while respflow's sequence
numbers start at -1 (events made before any wire event): the offset of two keeps every
cursor respflow makes a valid id, in the same order. The event stored under an id keeps
its own cursor, so what readers see never changes.
"""

from __future__ import annotations

from dataclasses import dataclass

from respflow import UsageError, parse_cursor

__all__ = [
    "OFFSET",
    "ResponseKeys",
    "StreamId",
    "after_id",
    "cursor_of",
    "entry_id",
    "format_id",
    "parse_id",
    "response_keys",
]

StreamId = tuple[int, int]

OFFSET = 2
"""Added to a cursor's sequence number: -1, the lowest respflow makes, becomes 1."""
MAX_PART = 2**64 - 1
LAST_ID: StreamId = (MAX_PART, MAX_PART - 1)
"""The highest id a reader may read after (``XRANGE (<id>`` refuses the very last one)."""


def entry_id(cursor: str) -> StreamId:
    """The stream id an event with ``cursor`` is stored under.

    Raises:
        UsageError: the cursor is not one respflow makes (sequence number below -1, or
            too large for a stream id).
    """
    seq, k = parse_cursor(cursor)
    ms = seq + OFFSET
    # The very last id is refused too: no reader could resume after it ("(<id>" of it
    # is an error), so it would be read again by every reader that had seen it.
    if not (1 <= ms <= MAX_PART and 0 <= k <= MAX_PART and (ms, k) <= LAST_ID):
        raise UsageError(
            f"cannot store an event with cursor {cursor!r} in Redis: cursors are "
            "'<seq>-<k>' with seq from -1 and k from 0, as respflow makes them"
        )
    return ms, k


def after_id(cursor: str | None) -> StreamId:
    """The id a reader resuming after ``cursor`` reads after (exclusive).

    Any cursor is accepted: one below every stored event reads from the start, one above
    them all reads nothing until newer events come.

    Raises:
        ValueError: ``cursor`` is not a cursor at all.
    """
    if cursor is None:
        return (0, 0)
    seq, k = parse_cursor(cursor)  # k is never negative: the last "-" splits it off
    ms = seq + OFFSET
    if ms < 0:
        return (0, 0)
    return min((ms, min(k, MAX_PART)), LAST_ID)


def format_id(stream_id: StreamId) -> str:
    return f"{stream_id[0]}-{stream_id[1]}"


def parse_id(raw: bytes | str) -> StreamId:
    text = raw.decode() if isinstance(raw, bytes) else raw
    ms, _, seq = text.partition("-")
    return int(ms), int(seq)


def cursor_of(stream_id: StreamId) -> str:
    """The public cursor stored under ``stream_id`` (the inverse of :func:`entry_id`)."""
    return f"{stream_id[0] - OFFSET}-{stream_id[1]}"


@dataclass(frozen=True, slots=True)
class ResponseKeys:
    """A response's keys. They share one hash tag, so in a Cluster they share a slot and
    one script may touch them all."""

    log: str
    """The stream of its events."""
    last: str
    """The id of its newest event, followed by `` end`` once that is its end event."""
    lease: str
    """``"<token> <owner>"`` of the producer holding its lease (expires with the lease)."""


def response_keys(prefix: str, response_id: str) -> ResponseKeys:
    # The id comes from the network (a URL path): braces in it would move the hash tag,
    # and "%" is escaped too so that no two ids share keys. An empty tag would make
    # Redis hash each whole key (three slots): the empty id gets "%", which no escaped
    # id can be.
    tag = response_id.replace("%", "%25").replace("{", "%7B").replace("}", "%7D") or "%"
    base = f"{prefix}{{{tag}}}"
    return ResponseKeys(log=f"{base}:log", last=f"{base}:last", lease=f"{base}:lease")
