"""The SSE decoder against the event-stream rules read plainly, on streams made of the
pieces that decide framing: every line end (mixed in one stream, CRLF split anywhere), a
BOM, NUL, field names with and without a colon or space, digits for ``retry``.

``reference`` is the WHATWG algorithm written for clarity, one line at a time, with
respflow's one departure (a frame cut off by the end of the stream is handed over,
marked incomplete). The decoder's fast paths must read every stream as it does, through
``feed`` and ``feed_data``, however the bytes are chunked.
"""

from __future__ import annotations

import re
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from respflow import Frame, OversizedFrame, SSEDecoder

_LINE_END = re.compile(rb"\r\n|\r|\n")


Seen = tuple[str, bytes, str | None, int | None, bool]


def reference(body: bytes) -> list[Seen]:
    """(event, data, id, retry, complete) of each frame the rules dispatch."""
    body = body.removeprefix(b"\xef\xbb\xbf")
    *lines, tail = _LINE_END.split(body)
    out: list[Seen] = []
    data: list[bytes] = []
    event = b""
    last_id: str | None = None
    retry: int | None = None

    def dispatch(complete: bool) -> None:
        nonlocal data, event
        out.append(
            (
                event.decode("utf-8", "replace") or "message",
                b"\n".join(data),
                last_id,
                retry,
                complete,
            )
        )
        data, event = [], b""

    for line in [*lines, tail] if tail else lines:
        if not line:
            if data:
                dispatch(True)
            event = b""
            continue
        if line.startswith(b":"):
            continue
        name, _, value = line.partition(b":")
        value = value.removeprefix(b" ")
        if name == b"data":
            data.append(value)
        elif name == b"event":
            event = value
        elif name == b"id" and b"\x00" not in value:
            last_id = value.decode("utf-8", "replace")
        elif name == b"retry" and value.isdigit() and _below_2_64(value):
            retry = int(value.lstrip(b"0") or b"0")
    if data:
        dispatch(False)
    return out


def _below_2_64(digits: bytes) -> bool:
    """Compared as text: int() refuses more than 4,300 digits."""
    digits = digits.lstrip(b"0") or b"0"
    return len(digits) < 20 or (len(digits) == 20 and digits < b"18446744073709551616")


def seen(items: list[Any]) -> list[Seen]:
    return [(f.event, f.data, f.id, f.retry, f.complete) for f in items]


def chunked(body: bytes, cuts: list[int]) -> list[bytes]:
    edges = sorted({c for c in cuts if 0 < c < len(body)})
    return [body[a:b] for a, b in zip([0, *edges], [*edges, len(body)], strict=True)]


def through_feed(pieces: list[bytes], max_frame_bytes: int = 1 << 20) -> list[Any]:
    decoder = SSEDecoder(max_frame_bytes=max_frame_bytes)
    out: list[Any] = []
    for piece in pieces:
        out += decoder.feed(piece)
    return out + decoder.close()


def through_feed_data(pieces: list[bytes], max_frame_bytes: int = 1 << 20) -> list[Any]:
    decoder = SSEDecoder(max_frame_bytes=max_frame_bytes)
    out: list[Any] = []
    for piece in pieces:
        out += decoder.feed_data(piece)
    return out + decoder.close()


def as_data(items: list[Any]) -> list[tuple[str, bytes, bool]]:
    """What a reader of the data sees (feed_data hands a plain frame over as its data)."""
    result = []
    for item in items:
        if isinstance(item, OversizedFrame):
            result.append(("oversized", b"%d" % item.limit, True))
        elif isinstance(item, Frame):
            result.append(("data", item.data, item.complete))
        else:
            result.append(("data", bytes(item), True))
    return result


TOKENS = [
    b"data:",
    b"data: ",
    b"data",
    b"event: ",
    b"event:",
    b"event",
    b"id: ",
    b"id:",
    b"id",
    b"retry: ",
    b"retry:",
    b":",
    b": ping",
    b" ",
    b"x",
    b"response.output_text.delta",
    b'{"a":1}',
    b"7",
    b"1500",
    b"\x00",
    b"\xff",
    "é😀".encode(),
    b"\xef\xbb\xbf",
    b"\n",
    b"\n",
    b"\n\n",
    b"\r",
    b"\r\n",
    b"\r\n\r\n",
]
streams = st.lists(st.sampled_from(TOKENS), max_size=40).map(b"".join)
plain_frames = st.lists(
    st.sampled_from(
        [
            b'event: response.output_text.delta\ndata: {"a":1}\n\n',
            b"data: x\n\n",
            b"event: x\ndata: \n\n",
            b": ping\n\n",
        ]
    ),
    max_size=4,
).map(b"".join)


@settings(max_examples=500, deadline=None)
@given(plain_frames, streams, plain_frames, st.lists(st.integers(0, 400), max_size=12))
@example(b"", b"retry: " + b"1" * 5000 + b"\ndata: x\n\n", b"", [])
@example(b"", b"retry: 18446744073709551616\ndata: x\n\n", b"", [])
@example(b"", b"retry: 18446744073709551615\ndata: x\n\n", b"", [])
@example(b"", b"retry: " + b"0" * 5000 + b"15\ndata: x\n\n", b"", [])
@example(b"", b'event: \ndata: x\n\nevent: a\ndata: {"a":1}\n\n', b"", [])  # "" is "message"
def test_the_decoder_reads_any_stream_as_the_rules_do(
    before: bytes, middle: bytes, after: bytes, cuts: list[int]
) -> None:
    body = before + middle + after
    expected = reference(body)
    assert seen(through_feed([body])) == expected
    pieces = chunked(body, cuts)
    assert seen(through_feed(pieces)) == expected
    assert as_data(through_feed_data(pieces)) == as_data(
        [Frame(data, complete=complete) for _, data, _, _, complete in expected]
    )


@settings(max_examples=500, deadline=None)
@given(plain_frames, streams, plain_frames, st.lists(st.integers(0, 400), max_size=12))
def test_one_byte_at_a_time_reads_as_the_rules_do(
    before: bytes, middle: bytes, after: bytes, cuts: list[int]
) -> None:
    body = before + middle + after
    expected = reference(body)
    singles = [body[i : i + 1] for i in range(len(body))]
    assert seen(through_feed(singles)) == expected
    assert as_data(through_feed_data(singles)) == as_data(through_feed([body]))


@settings(max_examples=500, deadline=None)
@given(
    plain_frames,
    streams,
    plain_frames,
    st.lists(st.integers(0, 400), max_size=12),
    st.integers(1, 80),
)
def test_the_size_cap_reads_the_same_however_the_bytes_are_chunked(
    before: bytes, middle: bytes, after: bytes, cuts: list[int], max_frame_bytes: int
) -> None:
    body = before + middle + after
    # An oversized frame's size is how much had arrived when the cap was passed, which
    # depends on the reads; which frames are dropped does not.
    whole = as_data(through_feed([body], max_frame_bytes))
    pieces = chunked(body, cuts)
    assert as_data(through_feed(pieces, max_frame_bytes)) == whole
    assert as_data(through_feed_data(pieces, max_frame_bytes)) == whole
