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

from .._core import wire
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
            return "jsonl", None
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
    if format is None:
        fmt, array = _detect(data)
    else:
        fmt, array = format, None
    asm = assembler or Assembler()
    body = data.removeprefix(b"\xef\xbb\xbf")
    if fmt == "sse":
        yield from asm.feed(body)
    elif fmt == "response":
        yield from asm.feed_response(body)
    else:
        if array is None and format is not None:
            array = _array(body)
        if array is not None:
            for raw in array:
                yield from asm.feed_event(bytes(raw))
        else:
            for line in body.splitlines():
                if line.strip():
                    yield from asm.feed_event(line)
    yield from asm.close()
