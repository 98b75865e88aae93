"""Secrets out of raw wire frames, changing no other byte.

What the Responses stream can carry that is a secret: the request's own settings, which
the API echoes in every ``response`` object (``response.created``, ``.in_progress``,
``.queued`` and the ends): an MCP tool's ``authorization`` and ``headers``, a
container's ``network_policy.domain_secrets``, keys pasted into ``instructions``,
``metadata``, prompt variables or a server URL; and error messages. What the model made
(``response.output``, the deltas, the items) is left as it is: it is what a recording
reproduces, and a key split across two deltas could not be found anyway.

Rules, for those parts only: a string whose field name says it holds a secret
(:func:`is_secret_name`, except ``prompt_cache_key``), every value of a ``headers``
object and the ``value`` of each ``domain_secrets`` entry become ``[redacted]``; any
other string has its secret-shaped parts replaced (:func:`redact_text`). A frame whose
JSON does not decode has the shapes replaced in its text.

The frame is never re-encoded: each redacted string is replaced where it stands in the
raw bytes, so everything else (key order, spacing, escapes, numbers) stays byte for byte.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import msgspec

from .._core import wire
from .redaction import REDACTED, is_secret_name, redact_text

__all__ = ["may_hold_secrets", "redact_frame"]

Path = tuple[str | int, ...]

_NOT_SECRETS = frozenset({"prompt_cache_key"})  # a cache bucket the caller names
_BOM = b"\xef\xbb\xbf"
_LINE = re.compile(rb"([^\r\n]*)(\r\n|\r|\n|$)")
_TOKEN = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}:,]')


# A JSON string of five to eight characters, each a lowercase letter, as it is or as a \u
# escape: every spelling of "response" and "error" (a letter can be written no other way),
# few others. Only escapes near a letter's: a lone surrogate (\ud800) does not decode.
_SHORT_WORD = re.compile(rb'"(?:[a-z]|\\u00[67][0-9A-Fa-f]){5,8}"')
# A lowercase letter escaped (\u0061-\u007a): what any other spelling needs. The API
# escapes what is not ASCII (\u2019), and control characters, never a letter.
_ESCAPED_LETTER = re.compile(rb"\\u00[67]")
_WATCHED = frozenset({"response", "error"})


def may_hold_secrets(data: bytes | bytearray) -> bool:
    """Whether frames in ``data`` may need :func:`redact_frame` (False: none does).

    The rules touch only events with a ``response`` key or of type ``error``, in any
    JSON spelling (``"respons\\u0065"`` is ``response`` to every reader). A key or a
    value is quoted, while in a delta's text the same word is escaped
    (``\\"response\\"``): deltas pass.
    """
    if b'"response"' in data or b'"error"' in data:
        return True
    return any(word in _WATCHED for word in _escaped_words(data))


def _escaped_words(data: bytes | bytearray) -> Iterator[str]:
    """The short words ``data`` quotes with an escaped letter in them, decoded."""
    if _ESCAPED_LETTER.search(data) is None:
        return
    for match in _SHORT_WORD.finditer(data):
        if b"\\" in match.group():
            word: str = msgspec.json.decode(match.group())
            yield word


def _response_keys(data: bytes) -> int:
    """How many times ``data`` quotes the word ``response``, in any spelling."""
    escaped = sum(word == "response" for word in _escaped_words(data))
    return data.count(b'"response"') + escaped


def redact_frame(frame: bytes) -> tuple[bytes, str | None]:
    """The raw frame with its secrets replaced, and the response id it names, if any."""
    if not may_hold_secrets(frame):
        return frame, None
    spans = _data_spans(frame)
    if not spans:
        return frame, None
    data = b"\n".join(frame[start:end] for start, end in spans)
    try:
        body = wire.decode_json(data)
    except (msgspec.DecodeError, UnicodeDecodeError, wire.NestingTooDeep):
        return _redact_text(frame), None
    if not isinstance(body, dict):
        return frame, None
    response = body.get("response")
    rid = response.get("id") if isinstance(response, dict) else None
    rid = rid if isinstance(rid, str) else None
    # The decoded body holds the last of duplicate keys, as every JSON reader takes it;
    # a "response" written twice is walked in the raw bytes, where each copy is seen.
    if _response_keys(data) < 2 and not any(True for _ in _changes(body)):
        return frame, rid
    return _replaced(frame, spans, data), rid


def _redact_text(frame: bytes) -> bytes:
    text = frame.decode("utf-8", "surrogateescape")
    clean = redact_text(text)
    return frame if clean == text else clean.encode("utf-8", "surrogateescape")


def _data_spans(frame: bytes) -> list[tuple[int, int]]:
    """Where each ``data:`` line's value lies in the frame (their join is the data)."""
    spans = []
    for line in _LINE.finditer(frame):
        start, end = line.span(1)
        if start == 0 and frame.startswith(_BOM):  # a stream may open with one: readers drop it
            start = len(_BOM)
        if frame.startswith(b"data:", start):
            start += 5
            if frame.startswith(b" ", start):
                start += 1
            spans.append((start, end))
        if not line.group(0):
            break
    return spans


def _in_scope(body: dict[str, Any], path: Path) -> bool:
    """The parts of an event the rules touch: all of an ``error`` event; of the others,
    the ``response`` object but its ``output``."""
    if body.get("type") == "error":
        return True
    return bool(path) and path[0] == "response" and (len(path) < 2 or path[1] != "output")


def _redacted(path: Path, value: str) -> str:
    name = path[-1] if path else None
    parent = path[-2] if len(path) > 1 else None
    if not value or value == REDACTED:
        return value
    if isinstance(name, str):
        if (is_secret_name(name) and name not in _NOT_SECRETS) or parent == "headers":
            return REDACTED
        if name == "value" and len(path) > 2 and path[-3] == "domain_secrets":
            return REDACTED
    return redact_text(value)


def _changes(body: dict[str, Any]) -> Iterator[Path]:
    """The paths of the strings the rules change (the model's output is not walked)."""
    stack: list[tuple[Path, Any]]
    if body.get("type") == "error":
        stack = [((), body)]
    else:
        response = body.get("response")
        if not isinstance(response, dict):
            return
        stack = [(("response", k), v) for k, v in response.items() if k != "output"]
    while stack:
        here, value = stack.pop()
        if isinstance(value, dict):
            stack.extend(((*here, k), v) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend(((*here, i), v) for i, v in enumerate(value))
        elif isinstance(value, str) and _redacted(here, value) != value:
            yield here


def _replaced(frame: bytes, spans: list[tuple[int, int]], data: bytes) -> bytes:
    """``frame`` with each string the rules change replaced in place."""
    body = wire.decode_json(data)
    out = bytearray()
    done = 0
    for start, end, new in _string_edits(body, data):
        raw_start, raw_end = _raw(spans, start), _raw(spans, end)
        out += frame[done:raw_start] + new
        done = raw_end
    return bytes(out + frame[done:])


def _raw(spans: list[tuple[int, int]], offset: int) -> int:
    """Where an offset into the joined data lies in the frame (a JSON string never
    spans two data lines, so its ends map into one line each)."""
    for start, end in spans:
        if offset <= end - start:
            return start + offset
        offset -= end - start + 1
    return spans[-1][1]


def _string_edits(body: dict[str, Any], data: bytes) -> Iterator[tuple[int, int, bytes]]:
    """Each string value to change: its span in ``data`` and its new JSON."""
    path: list[str | int | None] = []
    containers: list[bytes] = []
    want_key = False
    for token in _TOKEN.finditer(data):
        text = token.group()
        first = text[:1]
        if first == b'"':
            if want_key:
                path[-1] = _key(text)
                continue
            here: Path = tuple(p for p in path if p is not None)
            if _in_scope(body, here):
                value = msgspec.json.decode(text)
                new = _redacted(here, value)
                if new != value:
                    yield token.start(), token.end(), msgspec.json.encode(new)
        elif first in b"{[":
            containers.append(first)
            path.append(None if first == b"{" else 0)
            want_key = first == b"{"
        elif first in b"}]":
            containers.pop()
            path.pop()
            want_key = False
        elif first == b":":
            want_key = False
        elif containers[-1] == b"{":  # a comma in an object: a key comes next
            want_key = True
        else:  # a comma in an array: the next element
            index = path[-1]
            assert isinstance(index, int)
            path[-1] = index + 1


def _key(text: bytes) -> str:
    if b"\\" not in text:
        return text[1:-1].decode()
    key: str = msgspec.json.decode(text)
    return key
