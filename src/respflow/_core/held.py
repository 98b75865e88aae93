"""Reading an event that carries a text the assembler already holds, without decoding it.

The events that end a message (``output_text.done``, ``content_part.done``,
``output_item.done``, ``response.completed``) each carry the whole text again, and for a
long answer that is nearly all of their bytes: decoding it is most of the work, and
briefly a second copy of the text. When the text in the payload is byte for byte the JSON
of a text already held (as msgspec writes it, or as Python's ``json`` writes it with
``ensure_ascii``, which is what the API sends), the payload is decoded with that string
swapped for a short marker, and the marker is swapped back for the held text.

Exact, not a guess: the event is what decoding the whole payload gives. A span is taken
only if its bytes are a JSON string literal that msgspec decodes to the held text, and
the payload is decoded twice, with two different markers; a place where the two decodes
differ by exactly the markers is a place where the payload held the literal as a value
(a marker cut out of the middle of another string, or read as a key, makes the decodes
differ in some other way). Anything else (no span, a decode that fails, a payload too
deeply nested) gives None, and the caller decodes the payload as always, which also
reports whatever is wrong with it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from json.encoder import encode_basestring_ascii
from typing import Any

import msgspec

from . import wire
from .items import Streamed

__all__ = ["LARGE_PAYLOAD", "LONG_TEXT", "Held", "Plain", "decode_holding"]

LARGE_PAYLOAD = 256 * 1024
"""Payloads at least this long are searched for held texts; shorter ones decode quickly."""

LONG_TEXT = 64 * 1024
"""Held texts at least this long are looked for."""

_REST = 256 * 1024
"""The most of a payload left once the held texts are cut out: what is left is decoded
twice and walked, so it must be small beside what was spared."""

_CHUNK = 16 * 1024
"""The fewest characters encoded at a time when a held text is compared; a long text goes
in 64 chunks, so the loop costs little and an encoded chunk is never the size of the
text."""

_PREFIX = 64
"""Characters of a held text looked for first, to find where its literal may start."""

_TRIES = 16
"""Places a held text's first characters are tried at before that text is given up on."""

_SCANS = 4
"""How many times over its length a payload may be searched for held texts."""

_ENCODE = msgspec.json.Encoder().encode

Held = str | Streamed
"""A text the assembler holds: whole, or as it streamed, in pieces."""

Plain = dict[int, str]
"""Held strings (by ``id``) whose JSON is their own bytes: ASCII, nothing escaped."""


class _Differs(Exception):
    """The two decodes differ other than by the markers."""


def decode_holding(
    data: bytes | bytearray, held: Iterable[Held], plain: Plain
) -> tuple[Any, bytes] | None:
    """The event ``data`` decodes to, and the shorter payload it was read from, if the
    texts in ``data`` that are the longest part of it are among ``held``; else None.

    The event's strings at those places are the held texts themselves (a text held in
    pieces is joined, and kept joined), so no second copy of them is made. ``plain``
    remembers the held strings found to be ASCII that JSON writes as they are (kept by the
    caller, with the texts), so that the next frames that repeat them are compared by
    their bytes alone.
    """
    texts = [text for text in _unique(held) if _length(text) >= LONG_TEXT]
    spans = _spans(data, texts, plain) if texts else []
    if not spans or len(data) - sum(end - start for start, end, _ in spans) > _REST:
        return None
    first, second = _spliced(data, spans, "a"), _spliced(data, spans, "b")
    try:
        event = wire.decode_known(first)
        other = wire.decode_known(second)
    except Exception:
        return None
    if wire.kept_too_deep(event, first):
        return None
    markers = {_marker(n, "a"): (_marker(n, "b"), text) for n, (_, _, text) in enumerate(spans)}
    try:
        _restore(event, other, markers)
    except _Differs:
        return None
    return event, first


def _unique(held: Iterable[Held]) -> Iterator[Held]:
    """Each text once; one held as a single string, as that string (the one it stands
    for, whichever holds it)."""
    seen: set[int] = set()
    for text in held:
        if not isinstance(text, str) and len(text.blocks) == 1 and text.joined():
            text = text.blocks[0]
        if id(text) not in seen:
            seen.add(id(text))
            yield text


def _length(text: Held) -> int:
    return len(text) if isinstance(text, str) else sum(map(len, text))


def _marker(n: int, which: str) -> str:
    # Starts with a letter none of JSON's words starts with: read anywhere but as a
    # string, it is not JSON.
    return f"respflow held text {n} {which}"


def _spliced(data: bytes | bytearray, spans: list[tuple[int, int, Held]], which: str) -> bytes:
    pieces: list[Any] = []
    at = 0
    with memoryview(data) as view:
        for n, (start, end, _) in enumerate(spans):
            pieces += [view[at:start], _ENCODE(_marker(n, which))]
            at = end
        pieces.append(view[at:])
        return b"".join(pieces)


def _spans(data: bytes | bytearray, texts: list[Held], plain: Plain) -> list[tuple[int, int, Held]]:
    """Where in ``data`` a string literal of one of ``texts`` is, in order, not overlapping.

    The texts are looked for in the order given, each from where the last was found (the
    items of a response come in order), until what is left could not hold another; the
    search gives up once it has passed over the payload :data:`_SCANS` times.
    """
    found = []
    left, budget, cursor = len(data), _SCANS * len(data), 0
    for text in texts:
        for prefix in _prefixes(text):
            if left < LONG_TEXT or budget < 0:
                break
            at, tries = _find(data, prefix, cursor), 0
            budget -= len(data) if at < 0 else at - cursor if at >= cursor else len(data)
            while at >= 0 and tries < _TRIES and budget >= 0:
                end = _literal_end(data, at, text, plain)
                if end < 0:
                    tries += 1
                    after = data.find(prefix, at + 1)
                    budget -= (after if after >= 0 else len(data)) - at
                    at = after
                    continue
                found.append((at, end, text))
                left -= end - at
                cursor = end
                break
            if found and found[-1][2] is text:
                break  # found; the other way of writing it need not be looked for
    found.sort(key=lambda span: span[0])
    spans: list[tuple[int, int, Held]] = []
    for span in found:
        if not spans or span[0] >= spans[-1][1]:
            spans.append(span)
    return spans


def _find(data: bytes | bytearray, prefix: bytes, cursor: int) -> int:
    """Where ``prefix`` is, from ``cursor`` on, else before it."""
    at = data.find(prefix, cursor)
    return at if at >= 0 or not cursor else data.find(prefix, 0, cursor + len(prefix) - 1)


def _prefixes(text: Held) -> set[bytes]:
    """How a literal of ``text`` may begin, in each of the encodings compared."""
    head = next(_chunks(text, _PREFIX), "")
    return {
        encoded[:-1] for ascii_first in (False, True) for encoded in _encodings(head, ascii_first)
    }


def _literal_end(data: bytes | bytearray, at: int, text: Held, plain: Plain) -> int:
    """Where the literal of ``text`` that starts at ``at`` ends, or -1 if none does."""
    size = max(_CHUNK, _length(text) // 64)
    if isinstance(text, str) and plain.get(id(text)) is text:
        return _plain_literal_end(data, at, text, size)
    at += 1
    escapes = False  # whether any chunk needed an escape
    ascii_first = False  # whichever way the last chunk of non-ASCII text was written
    for chunk in _chunks(text, size):
        for encoded in _encodings(chunk, ascii_first):
            with memoryview(encoded) as view, view[1:-1] as inside:
                if data.startswith(inside, at):
                    at += len(inside)
                    escapes = escapes or len(inside) != len(chunk)
                    if not chunk.isascii():
                        ascii_first = encoded.isascii()
                    break
        else:
            return -1
    if not data.startswith(b'"', at):
        return -1
    if isinstance(text, str) and text.isascii() and not escapes:
        plain[id(text)] = text
    return at + 1


def _plain_literal_end(data: bytes | bytearray, at: int, text: str, size: int) -> int:
    """:func:`_literal_end` for ASCII text that needs no escape: its literal is its bytes,
    copied a chunk at a time (far quicker than encoding it again)."""
    at += 1
    for start in range(0, len(text), size):
        encoded = text[start : start + size].encode("ascii")
        if not data.startswith(encoded, at):
            return -1
        at += len(encoded)
    return at + 1 if data.startswith(b'"', at) else -1


def _encodings(chunk: str, ascii_first: bool = False) -> Iterator[bytes]:
    """The JSON of ``chunk`` as msgspec writes it and as Python's ``json`` writes it with
    ``ensure_ascii`` (the API's way), when they differ; ``ascii_first``: that one first."""
    if chunk.isascii() and "\x7f" not in chunk:
        yield from _as_msgspec_writes(chunk)  # both write such text the same way
        return
    if ascii_first:
        yield from _as_python_writes(chunk)
        yield from _as_msgspec_writes(chunk)
    else:
        yield from _as_msgspec_writes(chunk)
        yield from _as_python_writes(chunk)


def _as_msgspec_writes(chunk: str) -> Iterator[bytes]:
    try:
        yield _ENCODE(chunk)
    except UnicodeEncodeError:
        return  # a lone surrogate, which no literal msgspec reads holds


def _as_python_writes(chunk: str) -> Iterator[bytes]:
    encoded = encode_basestring_ascii(chunk).encode("ascii")
    if b"\\ud" in encoded and _SURROGATE.search(chunk):
        return  # written as an escape msgspec refuses to read
    yield encoded


_SURROGATE = re.compile("[\ud800-\udfff]")


def _chunks(text: Held, size: int) -> Iterator[str]:
    """``text`` in pieces of at most ``size`` characters (as it streamed, cut smaller).

    msgspec keeps a UTF-8 copy inside a non-ASCII ``str`` it encodes, so a long one is
    always cut: what it encodes are copies, never the text held.
    """
    for piece in (text,) if isinstance(text, str) else text:
        if len(piece) <= size and (len(piece) < 256 or piece.isascii()):
            if piece:
                yield piece
            continue
        step = min(size, len(piece) - 1)
        for at in range(0, len(piece), step):
            yield piece[at : at + step]


def _restore(first: Any, second: Any, markers: dict[str, tuple[str, Held]]) -> Any:
    """``first`` with each marker ``second`` has the other marker of in its place put
    back as the held text; raises :class:`_Differs` if they differ otherwise."""
    kind = type(first)
    if kind is not type(second):
        raise _Differs
    if kind is str:
        if first == second:
            return first
        other, text = markers.get(first, ("", ""))
        if not other or second != other:
            raise _Differs
        return text if isinstance(text, str) else text.text()
    if kind is dict:
        if len(first) != len(second):
            raise _Differs
        for (key, value), (other_key, other_value) in zip(
            first.items(), second.items(), strict=True
        ):
            if key != other_key:
                raise _Differs
            if not _same_scalar(value, other_value):
                first[key] = _restore(value, other_value, markers)
        return first
    if kind is list:
        if len(first) != len(second):
            raise _Differs
        for n, (value, other_value) in enumerate(zip(first, second, strict=True)):
            if not _same_scalar(value, other_value):
                first[n] = _restore(value, other_value, markers)
        return first
    if isinstance(first, msgspec.Struct):
        for name in first.__struct_fields__:
            value, other_value = getattr(first, name), getattr(second, name)
            if not _same_scalar(value, other_value):
                setattr(first, name, _restore(value, other_value, markers))
        return first
    if first != second:
        raise _Differs
    return first


def _same_scalar(first: Any, second: Any) -> bool:
    """Whether two decoded values are the same number, bool, None or string; False for
    a container (which is walked) and for a string that may be a marker."""
    kind = type(first)
    return kind is type(second) and kind in _SCALARS and first == second


_SCALARS = frozenset({int, float, bool, type(None), str})
