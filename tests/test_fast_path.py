"""The fast path: plain frames go from bytes to events without a Frame, and say the same.

``Assembler.feed`` takes a chunk's plain frames (``event: <type>`` and one ``data:`` line)
as their data alone and handles text and code deltas inline; everything else goes through
the line-by-line rules and the general dispatch. These tests hold it to the general path:
the same events for the real recordings and for generated streams with CRLF, comments,
ids, duplicates, hostile numbering and cut tails, however the bytes are chunked.
"""

from __future__ import annotations

import json
import re
import tracemalloc
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import respflow
from respflow import (
    Assembler,
    Frame,
    LinkRewriter,
    OversizedFrame,
    SandboxLink,
    SSEDecoder,
    find_links,
)
from respflow import _events as ev
from respflow.testing import StreamBuilder, to_sse

from ._deltas import code_delta, pieces, text_delta, text_done
from .external import recordings
from .test_hostile_files_naming import _work

LINK_PATTERN = re.compile(r"(?<![\w/.])(?:sandbox:)?/mnt/data/[^\s)\]\"'<>`]+")


class FrameByFrame(Assembler):
    """The general path: every frame dispatched by SSEDecoder.feed, one at a time."""

    def feed(self, data: bytes) -> list[respflow.Event]:
        self._check_open()
        for frame in self._sse.feed(data):
            self._frame(frame)
        return self._take()


def run(assembler: Assembler, body: bytes, cuts: list[int]) -> list[respflow.Event]:
    out: list[respflow.Event] = []
    edges = sorted({c for c in cuts if 0 < c < len(body)})
    for a, b in zip([0, *edges], [*edges, len(body)], strict=True):
        out += assembler.feed(body[a:b])
    return out + assembler.close()


def every(size: int, body: bytes) -> list[int]:
    return list(range(size, len(body), size))


# -- the framing ------------------------------------------------------------------------


def as_data(items: list[Any]) -> list[tuple[str, bytes, bool]]:
    """What a reader of the data sees: each frame's data and whether it was complete."""
    seen = []
    for item in items:
        if isinstance(item, OversizedFrame):
            seen.append(("oversized", b"%d" % item.limit, True))
        elif isinstance(item, Frame):
            seen.append(("data", item.data, item.complete))
        else:
            seen.append(("data", bytes(item), True))
    return seen


def feed_data(body: bytes, cuts: list[int], max_frame_bytes: int) -> list[Any]:
    decoder = SSEDecoder(max_frame_bytes=max_frame_bytes)
    out: list[Any] = []
    edges = sorted({c for c in cuts if 0 < c < len(body)})
    for a, b in zip([0, *edges], [*edges, len(body)], strict=True):
        out += decoder.feed_data(body[a:b])
    return out + decoder.close()


def frames(body: bytes, max_frame_bytes: int) -> list[Any]:
    decoder = SSEDecoder(max_frame_bytes=max_frame_bytes)
    return decoder.feed(body) + decoder.close()


payload = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\r\n"), max_size=40)
line = st.one_of(
    st.builds(lambda p: "data: " + p, payload),
    st.builds(lambda p: "data:" + p, payload),
    st.sampled_from(
        [
            "event: response.output_text.delta",
            "event:x",
            ": keep-alive",
            "id: 7",
            "id",
            "retry: 100",
            "data",
            "event: ",
            "",
        ]
    ),
)
plain_frame = st.builds(
    lambda name, p: (f"event: {name}\n" if name else "") + "data: " + p + "\n\n",
    st.sampled_from(["", "response.output_text.delta", "x"]),
    payload,
)
any_frame = st.builds(lambda lines: "\n".join(lines) + "\n\n", st.lists(line, max_size=4))


@st.composite
def event_streams(draw: st.DrawFn) -> bytes:
    parts = draw(st.lists(st.one_of(plain_frame, plain_frame, any_frame), max_size=12))
    body = "".join(parts)
    if draw(st.booleans()):
        body = body[: draw(st.integers(0, len(body)))]  # a cut tail
    newline = draw(st.sampled_from(["\n", "\n", "\r\n", "\r"]))
    bom = "\ufeff" if draw(st.booleans()) else ""
    return (bom + body.replace("\n", newline)).encode()


@settings(max_examples=400, deadline=None)
@given(
    event_streams(), st.lists(st.integers(0, 600), max_size=12), st.sampled_from([24, 64, 1 << 20])
)
def test_frames_data_is_the_same_through_feed_data_for_any_chunking(
    body: bytes, cuts: list[int], max_frame_bytes: int
) -> None:
    expected = as_data(frames(body, max_frame_bytes))
    assert as_data(feed_data(body, cuts, max_frame_bytes)) == expected
    assert as_data(feed_data(body, list(range(len(body))), max_frame_bytes)) == expected


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300), st.lists(st.integers(0, 300), max_size=6))
def test_arbitrary_bytes_read_the_same_through_feed_data(body: bytes, cuts: list[int]) -> None:
    assert as_data(feed_data(body, cuts, 64)) == as_data(frames(body, 64))


def test_plain_frames_come_out_as_their_data_alone() -> None:
    decoder = SSEDecoder()
    body = b'event: response.output_text.delta\ndata: {"a":1}\n\ndata: {"b":2}\n\n: ping\n\n'
    assert decoder.feed_data(body) == [b'{"a":1}', b'{"b":2}']


def test_a_large_frame_in_small_chunks_is_gathered_once() -> None:
    # Re-joining what has arrived at every chunk would copy 32 MB 8,000 times over.
    data = b'{"type":"x","text":"' + b"y" * (32 << 20) + b'"}'
    body = b"event: x\ndata: " + data + b"\n\n"
    decoder = SSEDecoder(max_frame_bytes=64 << 20)
    out: list[Any] = []
    for i in range(0, len(body), 4096):
        out += decoder.feed_data(body[i : i + 4096])
    assert as_data(out + decoder.close()) == [("data", data, True)]


# -- the assembler ------------------------------------------------------------------------

SSE_RECORDINGS = [
    r for r in recordings() if r.kind == "stream" and respflow.detect_format(r.data) == "sse"
]


@pytest.mark.skipif(not SSE_RECORDINGS, reason="../shared/fixtures/external is not here")
@pytest.mark.parametrize("recording", SSE_RECORDINGS, ids=lambda r: r.source)
def test_real_recordings_give_the_general_paths_events_for_every_chunking(recording: Any) -> None:
    body = recording.data
    expected = run(FrameByFrame(), body, [])
    for cuts in ([], every(4096, body), every(997, body), every(61, body)):
        assert run(Assembler(), body, cuts) == expected
    assert run(FrameByFrame(), body, every(61, body)) == expected


text = st.text(alphabet=st.characters(codec="utf-8"), max_size=40)


@st.composite
def wire_streams(draw: st.DrawFn) -> list[dict[str, Any]]:
    builder = StreamBuilder(background=draw(st.booleans()))
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["code", "message", "shell", "other"]))
        if kind == "code":
            builder.code_call(
                draw(text), logs=draw(st.none() | text), chunk=draw(st.integers(1, 5))
            )
        elif kind == "message":
            body = draw(text) + draw(st.sampled_from(["", " [x](sandbox:/mnt/data/r.csv)."]))
            builder.message(body, chunk=draw(st.integers(1, 5)))
        elif kind == "shell":
            builder.shell_call(["ls", draw(text)], outputs=[(draw(text), "", 0)])
        else:
            builder.item({"id": "fc_1", "type": "function_call", "arguments": "{}"})
    return builder.events(end=draw(st.sampled_from(["completed", "failed", None])))


def mangle(wire: list[dict[str, Any]], data: st.DataObject) -> list[dict[str, Any]]:
    """Duplicates, reordering, hostile sequence numbers and indices, now and then."""
    events = [dict(e) for e in wire]
    for _ in range(data.draw(st.integers(0, 4))):
        if not events:
            break
        at = data.draw(st.integers(0, len(events) - 1))
        action = data.draw(st.sampled_from(["repeat", "swap", "seq", "no_seq", "index", "drop"]))
        if action == "repeat":
            events.insert(data.draw(st.integers(at, len(events))), events[at])
        elif action == "swap":
            other = data.draw(st.integers(0, len(events) - 1))
            events[at], events[other] = events[other], events[at]
        elif action == "seq":
            events[at] = {**events[at], "sequence_number": data.draw(st.integers(-3, 3_000_000))}
        elif action == "no_seq":
            events[at] = {k: v for k, v in events[at].items() if k != "sequence_number"}
        elif action == "index":
            events[at] = {**events[at], "output_index": data.draw(st.integers(0, 4))}
        else:
            del events[at]
    return events


def render(wire: list[dict[str, Any]], data: st.DataObject) -> bytes:
    """SSE as servers write it, with what some of them add."""
    parts = []
    for event in wire:
        frame = f"event: {event['type']}\ndata: {json.dumps(event)}\n\n"
        extra = data.draw(st.sampled_from(["", "", "", ": keep-alive\n\n", "id: 5\n", "\n"]))
        parts.append(
            extra + frame if extra != "id: 5\n" else frame.replace("data:", extra + "data:", 1)
        )
    body = "".join(parts)
    if data.draw(st.booleans()):
        body = body.replace("\n", "\r\n")
    if data.draw(st.booleans()):
        body = body[: data.draw(st.integers(0, len(body)))]
    return body.encode()


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(wire_streams(), st.data())
def test_generated_streams_give_the_general_paths_events_for_every_chunking(
    wire: list[dict[str, Any]], data: st.DataObject
) -> None:
    body = render(mangle(wire, data), data)
    expected = run(FrameByFrame(), body, [])
    cuts = data.draw(st.lists(st.integers(0, len(body)), max_size=20))
    assert run(Assembler(), body, cuts) == expected
    assert run(Assembler(), body, every(data.draw(st.integers(1, 300)), body)) == expected


def test_the_sse_builders_stream_goes_through_the_fast_path_unchanged() -> None:
    builder = StreamBuilder().code_call("print(1)\n" * 50, logs="1\n", chunk=3)
    body = to_sse(builder.message("done " * 100, chunk=2).events())
    assert run(Assembler(), body, every(4096, body)) == run(FrameByFrame(), body, [])


def test_a_whole_recording_at_once_with_a_keep_alive_now_and_then() -> None:
    # Read in one piece (as respflow replay does), plain frames are cut some tens of
    # kilobytes at a time; the frames that are not plain fall anywhere among them.
    builder = StreamBuilder().code_call("print(1)\n" * 3000, logs="1\n", chunk=3)
    frames = to_sse(builder.message("done " * 3000, chunk=2).events()).split(b"\n\n")
    for at in range(7, len(frames), 97):
        frames[at] = b": keep-alive\n\n" + frames[at]
    for at in range(50, len(frames), 389):
        frames[at] = frames[at].replace(b"\ndata:", b"\nid: 9\ndata:", 1)
    body = b"\n\n".join(frames)
    assert len(body) > 300_000
    assert run(Assembler(), body, []) == run(FrameByFrame(), body, [])


def test_a_large_event_is_decoded_from_the_bytes_it_was_gathered_in() -> None:
    # A 16 MB text.done in 4 KiB reads: the frame is gathered once, and not copied again
    # on its way to the decoder (the decoded text is the one other copy). Cut into lines,
    # joined and sliced, it was copied three times: 3.0 times the text.
    text = "z" * (16 << 20)
    body = to_sse(StreamBuilder().message(text, chunk=len(text)).events())
    done = body.index(b"event: response.output_text.done")
    start = body.rindex(b"\n\n", 0, done) + 2
    end = body.index(b"\n\n", done) + 2
    asm = Assembler()
    asm.feed(body[:start])
    reads = [body[at : min(at + 4096, end)] for at in range(start, end, 4096)]
    tracemalloc.start()
    try:
        for read in reads:
            asm.feed(read)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2.5 * len(text)


# -- the link rewriter --------------------------------------------------------------------


def test_a_delta_with_nothing_to_rewrite_passes_as_it_is_for_a_few_lines_of_work() -> None:
    rewriter = LinkRewriter()
    rewriter.feed(text_delta(0, "The answer: "))
    deltas: list[respflow.Event] = [
        text_delta(1 + n, "squares grow quickly, see the CSV; ") for n in range(100)
    ]
    deltas += [code_delta(101 + n, "x = [i ** 2 for i in range(9)]\n") for n in range(100)]
    with _work() as work:
        out = [event for delta in deltas for event in rewriter.feed(delta)]
    assert all(a is b for a, b in zip(out, deltas, strict=True))
    # The general path ran 63 lines of respflow's code per text delta, 21 per code delta.
    assert work[0] < 25 * 200, work[0]


class Unhurried(LinkRewriter):
    """Every delta through the general path."""

    def _without_links(self, event: ev.TextDelta) -> ev.TextDelta | None:
        return None


words = st.lists(
    st.sampled_from(
        [
            "sandbox:/mnt/data/a.csv",
            "/mnt/data/b c.png",
            "sandbox:",
            "sand",
            "s",
            "xs",
            " s",
            "(s",
            "_s",
            ".s",
            "/",
            "box:",
            ":/mnt",
            "/data/",
            " ",
            "\n",
            ")",
            "[f](",
            "word",
            "é",
            "😀",
            "q" * 30,
        ]
    ),
    max_size=30,
).map("".join)


@settings(max_examples=300, deadline=None)
@given(words, st.lists(st.integers(min_value=0), max_size=25), st.booleans(), st.data())
def test_the_rewriters_fast_path_says_what_the_general_path_says(
    text: str, cuts: list[int], markdown: bool, data: st.DataObject
) -> None:
    events: list[respflow.Event] = [
        text_delta(n, piece, content_index=data.draw(st.integers(0, 1)))
        for n, piece in enumerate(pieces(text, cuts))
    ]
    events.insert(data.draw(st.integers(0, len(events))), code_delta(500, "print(1)"))
    events += [
        text_done(
            900 + ci,
            "".join(
                e.delta for e in events if isinstance(e, ev.TextDelta) and e.content_index == ci
            ),
            content_index=ci,
        )
        for ci in (0, 1)
    ]
    max_hold = data.draw(st.integers(18, 60))
    fast, general = (
        LinkRewriter(max_hold=max_hold, markdown=markdown),
        Unhurried(max_hold=max_hold, markdown=markdown),
    )
    assert [e for event in events for e in fast.feed(event)] == [
        e for event in events for e in general.feed(event)
    ]


def test_the_link_scan_finds_what_a_scan_of_every_character_finds() -> None:
    text = "a sandbox:/mnt/data/x.csv, b xsandbox:/mnt/data/y c/mnt/data/z /mnt/data/ end"
    text += " w/mnt/data//mnt/data/v (sandbox:/mnt/data/w.png). sandbox:/mnt/data/q"
    assert list(find_links(text)) == list(_every_character(text))
    for start in range(len(text)):
        assert list(find_links(text, start, len(text) - start // 2)) == list(
            _every_character(text, start, len(text) - start // 2)
        )


@settings(max_examples=500, deadline=None)
@given(words, st.integers(0, 200), st.integers(0, 200))
def test_the_link_scan_finds_what_a_scan_of_every_character_finds_in_any_text(
    text: str, start: int, length: int
) -> None:
    end = min(len(text), start + length)
    assert list(find_links(text)) == list(_every_character(text))
    assert list(find_links(text, start, end)) == list(_every_character(text, start, end))


def _every_character(text: str, start: int = 0, end: int | None = None) -> Iterator[SandboxLink]:
    """find_links as it was: the link pattern tried at every character."""
    for match in LINK_PATTERN.finditer(text, start, len(text) if end is None else end):
        target = match.group().rstrip(".,;:!?")
        path = target.removeprefix("sandbox:")
        if path != "/mnt/data/":
            yield SandboxLink(unquote(path), match.start(), match.start() + len(target))
