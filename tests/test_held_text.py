"""Events that carry a text the assembler already holds are read without decoding it again.

The frames that end a message carry its whole text again. When that text is, byte for
byte, the JSON of what streamed (as msgspec writes it, or with ``ensure_ascii`` as the
API does), the Assembler reads the frame with the text cut out and puts the text it holds
back in its place. These tests hold that path to the one that decodes everything: the
same events for any text, any done text (equal, different, missing, null), any encoding
and chunking, and for frames mangled around the text; and they pin the saving: the text
is kept once, and reading the frames that repeat it makes no second copy.
"""

from __future__ import annotations

import json
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import respflow
from respflow import Assembler
from respflow._core import held

from .external import recordings

LINE = "All work and no play makes Jack a dull boy. "


class DecodesEverything(Assembler):
    """The reference: every payload decoded whole, as before held texts were spared."""

    def _holding(self, data: bytes | bytearray) -> tuple[Any, bytes] | None:
        return None


class Spied(Assembler):
    """Counts the payloads read with a held text cut out."""

    spared = 0

    def _holding(self, data: bytes | bytearray) -> tuple[Any, bytes] | None:
        found = super()._holding(data)
        self.spared += found is not None
        return found


@contextmanager
def small_limits() -> Iterator[None]:
    """The limits shrunk so that short generated texts take the path, in tiny chunks."""
    saved = (held.LARGE_PAYLOAD, held.LONG_TEXT, held._CHUNK, held._PREFIX)
    held.LARGE_PAYLOAD, held.LONG_TEXT, held._CHUNK, held._PREFIX = 64, 4, 5, 3
    try:
        yield
    finally:
        held.LARGE_PAYLOAD, held.LONG_TEXT, held._CHUNK, held._PREFIX = saved


def encoder(style: str) -> Any:
    if style == "msgspec":
        return lambda event: msgspec.json.encode(event).decode()
    return lambda event: json.dumps(event, ensure_ascii=style == "ascii")


_MISSING = object()


def wire(
    text: str,
    cuts: list[int],
    done: Any,
    *,
    style: str = "ascii",
    code: bool = False,
) -> list[bytes]:
    """The frames of a response with one message (or code call) whose text streams in
    deltas cut at ``cuts`` and whose done events carry ``done`` (or no such field)."""
    dumps = encoder(style)
    kind = "code_interpreter_call" if code else "message"
    added = {"id": "item_1", "type": kind, "status": "in_progress"}
    ref: dict[str, Any] = {"item_id": "item_1", "output_index": 0}
    if not code:
        ref["content_index"] = 0
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": {"id": "resp_1", "status": "in_progress"}},
        {"type": "response.output_item.added", "output_index": 0, "item": added},
    ]
    edges = sorted({c for c in cuts if 0 < c < len(text)})
    delta_type = (
        "response.code_interpreter_call_code.delta" if code else "response.output_text.delta"
    )
    for a, b in zip([0, *edges], [*edges, len(text)], strict=True):
        events.append({"type": delta_type, **ref, "delta": text[a:b]})
    field = "code" if code else "text"
    carried = {} if done is _MISSING else {field: done}
    if code:
        final = {**added, "status": "completed", **carried, "outputs": []}
        events.append({"type": "response.code_interpreter_call_code.done", **ref, **carried})
    else:
        part = {"type": "output_text", **carried, "annotations": []}
        final = {**added, "status": "completed", "role": "assistant", "content": [part]}
        events.append({"type": "response.output_text.done", **ref, **carried})
        events.append({"type": "response.content_part.done", **ref, "part": part})
    events.append({"type": "response.output_item.done", "output_index": 0, "item": final})
    events.append(
        {
            "type": "response.completed",
            "response": {"id": "resp_1", "status": "completed", "output": [final]},
        }
    )
    return [
        f"event: {event['type']}\ndata: {dumps({**event, 'sequence_number': n})}\n\n".encode()
        for n, event in enumerate(events)
    ]


def fed(assembler: Assembler, body: bytes, cuts: list[int]) -> list[respflow.Event]:
    out: list[respflow.Event] = []
    edges = sorted({c for c in cuts if 0 < c < len(body)})
    for a, b in zip([0, *edges], [*edges, len(body)], strict=True):
        out += assembler.feed(body[a:b])
    return out + assembler.close()


def by_event(assembler: Assembler, frames: list[bytes]) -> list[respflow.Event]:
    out: list[respflow.Event] = []
    for frame in frames:
        out += assembler.feed_event(frame.split(b"\ndata: ", 1)[1].rstrip(b"\n"))
    return out + assembler.close()


texts = st.text(
    st.one_of(
        st.sampled_from(list('ab "\\/\n\t\x00\x1f\x7f\x80é—\u2028😀')),
        st.characters(codec="utf-8"),
    ),
    min_size=4,
    max_size=60,
)


@st.composite
def done_texts(draw: st.DrawFn, text: str) -> Any:
    """What the done events say: the streamed text, or another, or nothing."""
    how = draw(st.sampled_from(["same", "same", "other", "longer", "shorter", "null", "none"]))
    if how == "same":
        return text
    if how == "other":
        return draw(texts)
    if how == "longer":
        return text + draw(st.text(min_size=1, max_size=3))
    if how == "shorter":
        return text[:-1]
    return None if how == "null" else _MISSING


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_events_are_those_of_decoding_every_payload_whole(data: st.DataObject) -> None:
    text = data.draw(texts)
    delta_cuts = data.draw(st.lists(st.integers(0, len(text)), max_size=8))
    done = data.draw(done_texts(text))
    style = data.draw(st.sampled_from(["ascii", "utf8", "msgspec"]))
    code = data.draw(st.booleans())
    frames = wire(text, delta_cuts, done, style=style, code=code)
    body = b"".join(frames)
    cuts = data.draw(st.lists(st.integers(0, len(body)), max_size=12))
    with small_limits():
        expected = fed(DecodesEverything(), body, cuts)
        assert fed(Assembler(), body, cuts) == expected
        assert by_event(Assembler(), frames) == by_event(DecodesEverything(), frames)


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_frames_mangled_around_the_text_read_as_when_decoded_whole(data: st.DataObject) -> None:
    text = data.draw(texts)
    frames = wire(text, [3], text, style=data.draw(st.sampled_from(["ascii", "utf8"])))
    # Mangle one byte of one frame that carries the text, and maybe put text before it.
    at = data.draw(st.integers(3, len(frames) - 1))
    frame = bytearray(frames[at])
    spot = data.draw(st.integers(frame.index(b"\ndata: ") + 7, len(frame) - 3))
    frame[spot : spot + 1] = data.draw(
        st.sampled_from([b"", b'"', b"\\", b'\\"', b"\xff", b"{", b"[", b":", b",", b" "])
    )
    frames[at] = bytes(frame)
    body = b"".join(frames)
    with small_limits():
        assert fed(Assembler(), body, []) == fed(DecodesEverything(), body, [])
        assert by_event(Assembler(), frames) == by_event(DecodesEverything(), frames)


def test_a_held_text_read_as_a_key_or_inside_another_string_is_decoded_whole() -> None:
    text = LINE * 3
    encoded = json.dumps(text)
    head = (
        'event: response.output_item.done\ndata: {"type":"response.output_item.done",'
        '"sequence_number":%d,"output_index":0,"item":'
    )
    tricky = [
        # the text as a key
        ('{"id":"item_1","type":"message",' + encoded + ':"x"}', 0),
        # after an escaped quote inside another string, which the text's own quote ends
        ('{"id":"item_1","type":"message","note":"x\\' + encoded + "}", 0),
        # a duplicate key: the last one counts, and the text is not read at all
        (
            '{"id":"item_1","type":"message","content":[{"type":"output_text","text":'
            + encoded
            + ',"text":"last"}]}',
            1,
        ),
    ]
    for body, spared in tricky:
        frames = wire(text, [7, 30], text)[:5]  # up to the last delta
        frames.append(((head % 9) + body + "}\n\n").encode())
        stream = b"".join(frames)
        with small_limits():
            spied = Spied()
            assert fed(spied, stream, []) == fed(DecodesEverything(), stream, [])
        assert spied.spared == spared


SSE_RECORDINGS = [
    r for r in recordings() if r.kind == "stream" and respflow.detect_format(r.data) == "sse"
]


@pytest.mark.skipif(not SSE_RECORDINGS, reason="../shared/fixtures/external is not here")
def test_the_real_recordings_read_the_same() -> None:
    spared = 0
    for recording in SSE_RECORDINGS:
        with small_limits():
            spied = Spied()
            assert fed(spied, recording.data, []) == fed(DecodesEverything(), recording.data, [])
        spared += spied.spared
    assert spared  # the path was taken, with the texts the API wrote


def text_of(length: int, line: str = LINE) -> str:
    return (line * (length // len(line) + 1))[:length]


def test_the_done_events_carry_the_text_held_the_api_way() -> None:
    # Non-ASCII text written with ensure_ascii, as the API writes it.
    text = text_of(300_000, "Tout va très bien — madame la marquise ☃ 😀 ")
    frames = wire(text, list(range(0, len(text), 97)), text, style="ascii")
    spied = Spied()
    events = fed(spied, b"".join(frames), [])
    assert spied.spared == 4  # the four done frames
    [done] = [e for e in events if isinstance(e, respflow.TextDone)]
    [message] = [e for e in events if isinstance(e, respflow.MessageCompleted)]
    assert done.text == text
    assert message.text is done.text  # one string, not a copy per event
    assert spied.output[0]["content"][0]["text"] is done.text
    assert events == fed(DecodesEverything(), b"".join(frames), [])


def _peak_reading_the_done_frames(assembler: Assembler, text: str) -> float:
    """The most memory traced while the four frames that repeat ``text`` were fed in
    64 KiB reads, as a multiple of the text; the text streamed in 256-character deltas."""
    frames = wire(text, list(range(0, len(text), 256)), text, style="ascii")
    reads = [frame[at : at + 65536] for frame in frames[-4:] for at in range(0, len(frame), 65536)]
    tracemalloc.start()
    try:
        for frame in frames[:-4]:
            assembler.feed(frame)
        before, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        for read in reads:
            events = assembler.feed(read)
        del events
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert before < 1.1 * len(text)  # the text as it streamed
    return peak / len(text)


def test_frames_that_repeat_a_long_text_make_no_second_copy_of_it() -> None:
    text = text_of(2 << 20)
    # Held, then one frame at a time (up to an eighth more than its bytes as it fills):
    # decoding each frame whole made a third copy, read 3.1 times the text.
    assert _peak_reading_the_done_frames(DecodesEverything(), text) > 2.9
    assert _peak_reading_the_done_frames(Assembler(), text) < 2.4


def test_a_response_of_several_long_messages_is_read_sparing_every_text() -> None:
    texts = [text_of(300_000, f"{n}: {LINE}") for n in range(3)]
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": {"id": "resp_1", "status": "in_progress"}}
    ]
    finals = []
    for n, text in enumerate(texts):
        added = {"id": f"msg_{n}", "type": "message", "status": "in_progress"}
        ref = {"item_id": f"msg_{n}", "output_index": n, "content_index": 0}
        part = {"type": "output_text", "text": text, "annotations": []}
        final = {**added, "status": "completed", "role": "assistant", "content": [part]}
        finals.append(final)
        events.append({"type": "response.output_item.added", "output_index": n, "item": added})
        for at in range(0, len(text), 1000):
            events.append(
                {"type": "response.output_text.delta", **ref, "delta": text[at : at + 1000]}
            )
        events.append({"type": "response.output_text.done", **ref, "text": text})
        events.append({"type": "response.content_part.done", **ref, "part": part})
        events.append({"type": "response.output_item.done", "output_index": n, "item": final})
    events.append(
        {
            "type": "response.completed",
            "response": {"id": "resp_1", "status": "completed", "output": finals},
        }
    )
    body = b"".join(
        f"event: {e['type']}\ndata: {json.dumps({**e, 'sequence_number': n})}\n\n".encode()
        for n, e in enumerate(events)
    )
    spied = Spied()
    cuts = list(range(65536, len(body), 65536))
    out = fed(spied, body, cuts)
    assert spied.spared == 3 * 3 + 1  # every frame that repeats a text
    assert out == fed(DecodesEverything(), body, cuts)
    completed = [e for e in out if isinstance(e, respflow.MessageCompleted)]
    assert [e.text for e in completed] == texts
