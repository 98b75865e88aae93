"""Recorded streams: telling their format from their content, and replaying them.

Three shapes are read, whatever the file is called:

- ``sse``: the raw ``text/event-stream`` body (``event:``/``data:`` lines);
- ``jsonl``: one wire event per line, as most recorders write them (a JSON array of
  events is read the same way);
- ``response``: one non-streaming ``Response`` object.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

import msgspec

from .._core.assembler import Assembler
from .._events import Event
from .._exceptions import RecordingError

__all__ = ["RecordingFormat", "detect_format", "replay"]

RecordingFormat = Literal["sse", "jsonl", "response"]

_SSE_FIELDS = (b"event:", b"data:", b"id:", b"retry:", b":", b"event\n", b"data\n")


def detect_format(data: bytes) -> RecordingFormat:
    """Which of the recording formats ``data`` is in.

    Raises:
        RecordingError: empty, an API error body, or no format respflow reads.
    """
    body = data.removeprefix(b"\xef\xbb\xbf").lstrip()
    if not body:
        raise RecordingError("the recording is empty")
    if body.startswith(_SSE_FIELDS):
        return "sse"
    if body[:1] in (b"{", b"["):
        try:
            whole: Any = msgspec.json.decode(body)
        except (msgspec.DecodeError, UnicodeDecodeError):
            whole = None
        if isinstance(whole, list):
            return "jsonl"
        if isinstance(whole, dict):
            return _json_object_format(whole)
    # JSONL: a recorder may have mangled a line or two, so look at the first few.
    for line in body.split(b"\n", 8)[:8]:
        try:
            head = msgspec.json.decode(line)
        except (msgspec.DecodeError, UnicodeDecodeError):
            continue
        if isinstance(head, dict) and isinstance(head.get("type"), str):
            return "jsonl"
    raise RecordingError(
        "not a Responses API recording: expected an event stream (event:/data: lines), "
        "JSONL of stream events, or a Response JSON object"
    )


def _json_object_format(obj: dict[str, Any]) -> RecordingFormat:
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
        assembler: an assembler to drive (for example to read ``output`` afterwards).

    Raises:
        RecordingError: as :func:`detect_format`.
    """
    fmt = format or detect_format(data)
    asm = assembler or Assembler()
    if fmt == "sse":
        yield from asm.feed(data)
    elif fmt == "response":
        body = data.removeprefix(b"\xef\xbb\xbf")
        yield from asm.feed_response(body)
        return
    else:
        body = data.removeprefix(b"\xef\xbb\xbf").lstrip()
        if body[:1] == b"[":
            events = msgspec.json.decode(body)
            for raw in events:
                yield from asm.feed_event(raw if isinstance(raw, dict) else {"type": None})
        else:
            for line in body.splitlines():
                if line.strip():
                    yield from asm.feed_event(line)
    yield from asm.close()
