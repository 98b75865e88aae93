from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from respflow import Frame, OversizedFrame, SSEDecoder


def decode_any(*chunks: bytes, max_frame_bytes: int = 1 << 20) -> list[Frame | OversizedFrame]:
    decoder = SSEDecoder(max_frame_bytes=max_frame_bytes)
    frames = []
    for chunk in chunks:
        frames += decoder.feed(chunk)
    return frames + decoder.close()


def decode(*chunks: bytes) -> list[Frame]:
    frames = decode_any(*chunks)
    assert all(isinstance(f, Frame) for f in frames)
    return frames  # type: ignore[return-value]


def test_event_and_data_lines() -> None:
    (frame,) = decode(b'event: response.created\ndata: {"a":1}\n\n')
    assert frame == Frame(data=b'{"a":1}', event="response.created")


@pytest.mark.parametrize("newline", [b"\n", b"\r", b"\r\n"])
def test_every_line_ending(newline: bytes) -> None:
    body = newline.join([b"event: x", b"data: 1", b"", b"data: 2", b"", b""])
    assert [(f.event, f.data) for f in decode(body)] == [("x", b"1"), ("message", b"2")]


def test_multi_line_data_is_joined_with_lf() -> None:
    (frame,) = decode(b"data: first\ndata:second\ndata\n\n")
    assert frame.data == b"first\nsecond\n"


def test_comments_and_unknown_fields_are_ignored() -> None:
    (frame,) = decode(b": keep-alive\nfoo: bar\ndata: x\n: another\n\n")
    assert frame.data == b"x"


def test_only_one_leading_space_is_stripped() -> None:
    (frame,) = decode(b"data:  two spaces\n\n")
    assert frame.data == b" two spaces"


def test_bom_is_dropped_only_at_the_start() -> None:
    frames = decode(b"\xef\xbb", b"\xbfdata: a\n\ndata: \xef\xbb\xbfb\n\n")
    assert [f.data for f in frames] == [b"a", b"\xef\xbb\xbfb"]


def test_id_persists_and_retry_is_read() -> None:
    frames = decode(b"id: 7\nretry: 1500\ndata: a\n\ndata: b\n\nid\ndata: c\n\n")
    assert [(f.id, f.retry) for f in frames] == [("7", 1500), ("7", 1500), ("", 1500)]


def test_id_with_nul_is_ignored_and_bad_retry_too() -> None:
    (frame,) = decode(b"id: a\x00b\nretry: soon\ndata: x\n\n")
    assert (frame.id, frame.retry) == (None, None)


def test_a_frame_without_data_is_not_dispatched() -> None:
    assert decode(b"event: ping\n\n") == []


def test_final_frame_without_blank_line_is_flushed_as_incomplete() -> None:
    frames = decode(b"data: a\n\ndata: b")
    assert [(f.data, f.complete) for f in frames] == [(b"a", True), (b"b", False)]


def test_done_sentinel_is_an_ordinary_frame() -> None:
    (frame,) = decode(b"data: [DONE]\n\n")
    assert frame.data == b"[DONE]"


def test_crlf_split_across_chunks_is_one_line_end() -> None:
    frames = decode(b"data: a\r", b"\n\r", b"\ndata: b\r\n\r\n")
    assert [f.data for f in frames] == [b"a", b"b"]


def test_oversized_frame_is_dropped_and_the_next_one_kept() -> None:
    big = b"data: " + b"x" * 5000 + b"\n\n"
    frames = decode_any(big[:100], big[100:], b"data: small\n\n", max_frame_bytes=1000)
    assert frames[0] == OversizedFrame(size=frames[0].size, limit=1000)  # type: ignore[union-attr]
    assert [f.data for f in frames[1:]] == [b"small"]  # type: ignore[union-attr]


def test_a_line_that_never_ends_does_not_grow_memory() -> None:
    decoder = SSEDecoder(max_frame_bytes=1000)
    out = []
    for _ in range(100):
        out += decoder.feed(b"y" * 100)
    assert len(out) == 1
    assert isinstance(out[0], OversizedFrame)
    assert len(decoder._partial) <= 1000
    out = decoder.feed(b"\n\ndata: ok\n\n")
    assert [f.data for f in out if isinstance(f, Frame)] == [b"ok"]


frame_text = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\r\n"), max_size=30)
frames_strategy = st.lists(
    st.tuples(
        st.sampled_from(["", "response.output_text.delta", "message"]),
        st.lists(frame_text, min_size=1, max_size=3),
    ),
    max_size=8,
)


def _render(
    frames: list[tuple[str, list[str]]], newline: bytes, bom: bool, comments: bool
) -> bytes:
    body = b"\xef\xbb\xbf" if bom else b""
    for event, lines in frames:
        if comments:
            body += b": ping" + newline
        if event:
            body += b"event: " + event.encode() + newline
        for line in lines:
            body += b"data: " + line.encode() + newline
        body += newline
    return body


@settings(max_examples=300, deadline=None)
@given(
    frames=frames_strategy,
    newline=st.sampled_from([b"\n", b"\r", b"\r\n"]),
    bom=st.booleans(),
    comments=st.booleans(),
    data=st.data(),
)
def test_any_chunking_gives_the_same_frames(
    frames: list[tuple[str, list[str]]],
    newline: bytes,
    bom: bool,
    comments: bool,
    data: st.DataObject,
) -> None:
    body = _render(frames, newline, bom, comments)
    whole = decode(body)
    assert [(f.event, f.data) for f in whole] == [
        (event or "message", "\n".join(lines).encode()) for event, lines in frames
    ]
    cuts = sorted(data.draw(st.lists(st.integers(0, len(body)), max_size=12)))
    pieces = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]
    assert decode(*pieces) == whole
    assert decode(*(body[i : i + 1] for i in range(len(body)))) == whole


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300), st.lists(st.integers(0, 300), max_size=6))
def test_arbitrary_bytes_never_raise_and_chunking_does_not_matter(
    body: bytes, cuts: list[int]
) -> None:
    cuts = sorted(c for c in cuts if c <= len(body))
    pieces = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]
    assert decode_any(*pieces, max_frame_bytes=64) == decode_any(body, max_frame_bytes=64)
