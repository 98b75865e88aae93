"""Recorded streams: telling their format from their content, and replaying them.

Four shapes are read, whatever the file is called:

- ``sse``: the raw ``text/event-stream`` body (``event:``/``data:`` lines);
- ``jsonl``: one wire event per line, as most recorders write them (a JSON array of
  events is read the same way);
- ``response``: one non-streaming ``Response`` object;
- ``events``: respflow's own normalized events, one per line, as ``respflow ... --format
  jsonl`` and a ``JsonlSink`` write them. They are replayed as they were written, once
  checked: a line that is not an event is a ``stream.error`` in its place, an event
  repeated or after its response's end is dropped, and a response the file leaves open
  ends with ``stream.truncated``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

import msgspec

from .. import _events as ev
from .._core import wire
from .._core.assembler import Assembler
from .._events import END_TYPES, Event
from .._exceptions import RecordingError

__all__ = ["RecordingFormat", "detect_format", "replay", "replay_batches"]

RecordingFormat = Literal["sse", "jsonl", "response", "events"]
"""What :func:`detect_format` finds: raw SSE, JSONL of wire events, a non-streaming
Response JSON, or respflow's own normalized events as JSONL."""

FEED_BYTES = 1 << 16
"""How much of an SSE recording the assembler is fed at a time: the same events as the
whole at once (it reads a stream cut anywhere), but the work on a piece this size stays in
the processor's cache (an 11 MB recording replays ~15% faster), and the events of a long
recording are not all held at once."""

_SSE_FIELDS = (b"event:", b"data:", b"id:", b"retry:", b":", b"event\n", b"data\n")


def detect_format(data: bytes) -> RecordingFormat:
    """Which of the recording formats ``data`` is in.

    Raises:
        RecordingError: empty, an API error body, or no format respflow reads.
    """
    return _detect(data)[0]


def _detect(data: bytes) -> tuple[RecordingFormat, list[msgspec.Raw] | None]:
    """The format, and the events of a recording that is one JSON array."""
    body = data.removeprefix(b"\xef\xbb\xbf").lstrip()
    if not body:
        raise RecordingError("the recording is empty")
    if body.startswith(_SSE_FIELDS):
        return "sse", None
    array = _array(body)
    if array is not None:
        return "jsonl", array
    too_deep = False
    if body[:1] == b"{":
        try:
            whole: Any = wire.decode_json(body)
        except wire.NestingTooDeep:
            whole, too_deep = None, True
        except (msgspec.DecodeError, UnicodeDecodeError):
            whole = None
        if isinstance(whole, dict):
            return _json_object_format(whole), None
    # JSONL: a recorder may have mangled a line or two, so look at the first few.
    for line in body.split(b"\n", 8)[:8]:
        try:
            head = wire.decode_json(line)
        except (msgspec.DecodeError, UnicodeDecodeError):
            continue
        if isinstance(head, dict) and isinstance(head.get("type"), str):
            return ("events" if _is_normalized(head) else "jsonl"), None
    if too_deep:
        raise _too_deep()
    raise RecordingError(
        "not a Responses API recording: expected an event stream (event:/data: lines), "
        "JSONL of stream events, or a Response JSON object"
    )


def _array(body: bytes) -> list[msgspec.Raw] | None:
    """The events of a recording that is one JSON array, each still undecoded (so each
    is judged on its own, as a line would be); None if the recording is not one."""
    if body.lstrip()[:1] != b"[":
        return None
    try:
        return msgspec.json.decode(body, type=list[msgspec.Raw])
    except RecursionError:  # even splitting it into events recursed too deep
        raise _too_deep() from None
    except (msgspec.DecodeError, UnicodeDecodeError):
        return None


def _too_deep() -> RecordingError:
    return RecordingError(
        f"the recording nests more than {wire.MAX_DEPTH} levels deep, which no Responses "
        "API recording does: it was not read"
    )


def _is_normalized(obj: dict[str, Any]) -> bool:
    """Whether a JSON object is one of respflow's events: wire events have no cursor."""
    return isinstance(obj.get("cursor"), str) and isinstance(obj.get("response_id"), str)


def _json_object_format(obj: dict[str, Any]) -> RecordingFormat:
    if _is_normalized(obj):
        return "events"
    if obj.get("object") == "response" or "output" in obj:
        return "response"
    if isinstance(obj.get("type"), str):
        return "jsonl"
    error = obj.get("error")
    if isinstance(error, dict):
        raise RecordingError(
            "the recording is an API error body, not a response: "
            f"{error.get('code') or error.get('type')}: {error.get('message')}"
        )
    raise RecordingError("a JSON object that is neither a Response nor a stream event")


def replay(
    data: bytes,
    *,
    format: RecordingFormat | None = None,
    assembler: Assembler | None = None,
) -> Iterator[Event]:
    """Normalized events of a recording, response after response.

    Args:
        data: the whole recording.
        format: skip detection when the format is known.
        assembler: an assembler to drive (for example to read ``output`` afterwards);
            respflow's own events (``events``) are replayed without one.

    Raises:
        RecordingError: as :func:`detect_format`.
    """
    for batch in replay_batches(data, format=format, assembler=assembler):
        yield from batch


def replay_batches(
    data: bytes,
    *,
    format: RecordingFormat | None = None,
    assembler: Assembler | None = None,
) -> Iterator[list[Event]]:
    """:func:`replay`'s events in the lists the assembler hands them out in, for a reader
    that does one thing to many events at once (``respflow replay --format jsonl`` encodes
    a list in one call). Same arguments, same events, same errors."""
    if format is None:
        fmt, array = _detect(data)
    else:
        fmt, array = format, None
    body = data.removeprefix(b"\xef\xbb\xbf")
    if fmt == "events":
        yield from _replay_normalized(body)
        return
    asm = assembler or Assembler()
    if fmt == "sse":
        for start in range(0, len(body), FEED_BYTES):
            yield asm.feed(body[start : start + FEED_BYTES])
    elif fmt == "response":
        yield asm.feed_response(body)
    else:
        if array is None and format is not None:
            array = _array(body)
        if array is not None:
            for raw in array:
                yield asm.feed_event(bytes(raw))
        else:
            for line in body.splitlines():
                if line.strip():
                    yield asm.feed_event(line)
    yield asm.close()


def _replay_normalized(body: bytes) -> Iterator[list[Event]]:
    own = _NormalizedEvents()
    for number, line in enumerate(body.splitlines(), 1):
        if line.strip():
            yield own.line(number, line)
    yield own.close()


class _Response:
    """One response in a file of normalized events: where its cursors are."""

    __slots__ = ("out", "written")

    def __init__(self) -> None:
        self.written: tuple[int, int] | None = None
        """The last cursor read for it, as written."""
        self.out = (-1, -1)
        """The last cursor given out for it."""


class _NormalizedEvents:
    """respflow's own events, read back: each as written, unless it breaks the contract.

    Events are kept per response, so a file several responses were written to at once
    reads back too. An event's cursor changes only when an error had to be put before
    it (cursors stay unique and ordered within each response).
    """

    def __init__(self) -> None:
        self._open: dict[str, _Response] = {}
        self._ended: set[str] = set()
        self._current: str | None = None  # the response of the last event read
        self._orphans = _Response()  # errors before any event: response_id "", as the Assembler
        self.dropped = 0
        """Events dropped: repeated, or after their response's end."""

    def line(self, number: int, line: bytes) -> list[Event]:
        try:
            event = wire.decode_bounded(ev.decode_event, line)
        except wire.NestingTooDeep:
            return self._error(
                "too_deeply_nested",
                f"line {number} nests more than {wire.MAX_DEPTH} levels deep and was skipped",
            )
        except msgspec.ValidationError as exc:  # a DecodeError subclass: first
            return self._error(
                "invalid_event", f"line {number} is not a respflow event ({exc}); it was skipped"
            )
        except (msgspec.DecodeError, UnicodeDecodeError) as exc:
            return self._error("invalid_json", f"line {number} is not JSON ({exc}); it was skipped")
        try:
            written = ev.parse_cursor(event.cursor)
        except ValueError as exc:
            return self._error("invalid_event", f"line {number}: {exc}; it was skipped")
        if written[0] != event.sequence_number:
            return self._error(
                "invalid_event",
                f"line {number}: cursor {event.cursor!r} does not match sequence_number "
                f"{event.sequence_number}; it was skipped",
            )
        rid = event.response_id
        state = self._open.get(rid)
        if state is None:
            if rid in self._ended:
                self.dropped += 1
                return []
            state = self._open[rid] = _Response()
        if state.written is not None and written <= state.written:
            self.dropped += 1  # written twice (a file appended to again), or out of order
            return []
        state.written = written
        self._current = rid
        if isinstance(event, END_TYPES):
            del self._open[rid]
            self._ended.add(rid)
        return [_placed(event, state, written)]

    def close(self) -> list[Event]:
        """Each response the file left open ends; a file with no event at all, too."""
        out: list[Event] = []
        for rid, state in self._open.items():
            last = state.written[0] if state.written is not None else None
            out.append(
                _after(
                    ev.StreamTruncated(
                        response_id=rid,
                        sequence_number=0,
                        cursor="",
                        last_sequence_number=last,
                        message=(
                            "the recording ended before this response's end: it was cut off, "
                            "or written while the response ran"
                        ),
                    ),
                    state,
                )
            )
        if self._current is None:
            out.append(
                _after(
                    ev.StreamTruncated(
                        response_id="",
                        sequence_number=0,
                        cursor="",
                        last_sequence_number=None,
                        message="the recording held no event respflow could read",
                    ),
                    self._orphans,
                )
            )
        self._open.clear()
        return out

    def _error(self, code: str, message: str) -> list[Event]:
        if self._current is None:
            state = self._orphans
            rid = ""
        else:
            rid = self._current
            if rid in self._ended:  # nothing may follow an end
                self.dropped += 1
                return []
            state = self._open[rid]
        error = ev.StreamError(
            response_id=rid, sequence_number=0, cursor="", code=code, message=message, fatal=False
        )
        return [_after(error, state)]


def _placed(event: Event, state: _Response, written: tuple[int, int]) -> Event:
    """The event under its own cursor, unless an error put before it took that one."""
    if written > state.out:
        state.out = written
        return event
    return _after(event, state)


def _after(event: Event, state: _Response) -> Event:
    """The event under the next cursor after the last one given out for its response."""
    seq, k = state.out
    state.out = (seq, k + 1)
    return msgspec.structs.replace(event, sequence_number=seq, cursor=f"{seq}-{k + 1}")
