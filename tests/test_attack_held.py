"""Frames built to trip the held-text path read exactly as when decoded whole.

A second look at :mod:`respflow._core.held`: responses of several items whose texts
repeat one another (two messages with one text, a code call whose code is a message's
text, a refusal), texts that turn up again in annotations, outputs, the instructions or
as a key, texts that are another's prefix or suffix or the markers themselves, frames
written with ``\\/``, uppercase escapes, duplicate keys, CRLF, cut anywhere or cut off;
and the cost of looking for texts that are not there, counted in bytes searched.
"""

from __future__ import annotations

import json
import re
import tracemalloc
from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

import respflow
from respflow import Assembler
from respflow._core import held, wire

from .test_held_text import LINE, DecodesEverything, Spied, fed, small_limits, text_of
from .test_held_text import wire as wire_frames

# Keys, tags and ids are words like these: a text equal to one would be "long" only under
# small_limits, never with the real limits.
_WORD = re.compile(r"[a-z_.0-9]+")

_tricky = st.sampled_from(
    [
        "respflow held text 0 a",
        "respflow held text 0 b",
        "respflow held text 1 a",
        "a/b/c",
        "é\u00e9É",
        "😀😀",
        'say "hi"',
        "back\\slash",
        "line\r\nnext",
        "\u2028\u2029",
        "\x7f\x7f\x7f\x7f",
    ]
)
_base = st.text(
    st.one_of(
        st.sampled_from(list('ab "\\/\n\x00\x7fé—\u2028😀')),
        st.characters(codec="utf-8"),
    ),
    min_size=4,
    max_size=30,
)


@st.composite
def _pools(draw: st.DrawFn) -> list[str]:
    """Texts that are alike: some, their prefixes and suffixes, the markers."""
    base = draw(st.lists(st.one_of(_base, _tricky), min_size=1, max_size=3))
    pool = list(base)
    for text in base:
        pool += [text + "x", "x" + text, text[:-1] + "y", "y" + text[1:]]
    return [text for text in pool if len(text) >= 4 and not _WORD.fullmatch(text)] or ["é—😀!"]


def _item_frames(
    n: int, kind: str, text: str, done: str, extra: str | None, cuts: list[int]
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The events of output item ``n`` and its final form."""
    item_id = f"item_{n}"
    events: list[dict[str, Any]] = []
    edges = sorted({c for c in cuts if 0 < c < len(text)})
    pieces = [text[a:b] for a, b in zip([0, *edges], [*edges, len(text)], strict=True)]
    if kind == "code":
        added = {"id": item_id, "type": "code_interpreter_call", "status": "in_progress"}
        ref: dict[str, Any] = {"item_id": item_id, "output_index": n}
        events.append({"type": "response.output_item.added", "output_index": n, "item": added})
        for piece in pieces:
            events.append(
                {"type": "response.code_interpreter_call_code.delta", **ref, "delta": piece}
            )
        events.append({"type": "response.code_interpreter_call_code.done", **ref, "code": done})
        outputs = [] if extra is None else [{"type": "logs", "logs": extra}]
        final = {**added, "status": "completed", "code": done, "outputs": outputs}
    else:
        field = "refusal" if kind == "refusal" else "text"
        part_type = "refusal" if kind == "refusal" else "output_text"
        added = {"id": item_id, "type": "message", "status": "in_progress", "role": "assistant"}
        ref = {"item_id": item_id, "output_index": n, "content_index": 0}
        events.append({"type": "response.output_item.added", "output_index": n, "item": added})
        events.append(
            {"type": "response.content_part.added", **ref, "part": {"type": part_type, field: ""}}
        )
        prefix = "response.refusal" if kind == "refusal" else "response.output_text"
        for piece in pieces:
            events.append({"type": f"{prefix}.delta", **ref, "delta": piece})
        events.append({"type": f"{prefix}.done", **ref, field: done})
        part: dict[str, Any] = {"type": part_type, field: done}
        if kind == "message":
            part["annotations"] = (
                []
                if extra is None
                else [{"type": "url_citation", "url": extra, "title": extra, "start_index": 0}]
            )
        events.append({"type": "response.content_part.done", **ref, "part": part})
        final = {**added, "status": "completed", "content": [part]}
    events.append({"type": "response.output_item.done", "output_index": n, "item": final})
    return events, final


def _encode(event: dict[str, Any], style: str) -> str:
    if style == "msgspec":
        return msgspec.json.encode(event).decode()
    data = json.dumps(event, ensure_ascii=style != "utf8")
    if style == "slashes":
        return data.replace("/", "\\/")
    if style == "upper":
        return re.sub(r"\\u([0-9a-f]{4})", lambda m: "\\u" + m[1].upper(), data)
    return data


@st.composite
def _responses(draw: st.DrawFn) -> bytes:
    """The SSE body of a response of a few items made from one pool of texts."""
    pool = draw(_pools())
    texts = st.sampled_from(pool)
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": {"id": "resp_1", "status": "in_progress"}}
    ]
    finals = []
    for n in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["message", "message", "refusal", "code"]))
        text = draw(texts)
        done = draw(st.one_of(st.just(text), texts))
        extra = draw(st.one_of(st.none(), texts))
        cuts = draw(st.lists(st.integers(0, len(text)), max_size=4))
        item, final = _item_frames(n, kind, text, done, extra, cuts)
        events += item
        finals.append(final)
    response: dict[str, Any] = {"id": "resp_1", "status": "completed", "output": finals}
    if draw(st.booleans()):
        response["instructions"] = draw(texts)
    if draw(st.booleans()):
        response["metadata"] = {draw(texts): draw(texts)}
    events.append({"type": "response.completed", "response": response})
    lines = []
    for seq, event in enumerate(events):
        data = _encode({**event, "sequence_number": seq}, draw(_styles))
        if draw(st.integers(0, 9)) == 0:  # a duplicate key: the last one counts
            data = data.replace('"type":', '"type":"x","type":', 1)
        lines.append(f"event: {event['type']}\ndata: {data}\n\n")
    return "".join(lines).encode()


_styles = st.sampled_from(["ascii", "ascii", "utf8", "msgspec", "slashes", "upper"])


@settings(max_examples=400, deadline=None)
@given(data=st.data())
def test_responses_whose_texts_repeat_read_as_when_decoded_whole(data: st.DataObject) -> None:
    body = data.draw(_responses())
    if data.draw(st.booleans()):
        body = body.replace(b"\n", b"\r\n")
    if data.draw(st.integers(0, 3)) == 0:  # the stream cut off anywhere
        body = body[: data.draw(st.integers(0, len(body)))]
    cuts = data.draw(
        st.one_of(
            st.lists(st.integers(0, len(body)), max_size=12),
            st.just(list(range(len(body)))),  # a byte at a time
        )
    )
    with small_limits():
        assert fed(Assembler(), body, cuts) == fed(DecodesEverything(), body, cuts)


# -- with the real limits ------------------------------------------------------------------


def _message_stream(text: str, done_frames: list[str], *, deltas: int = 4096) -> bytes:
    """A message streamed in ``deltas``-character pieces, then ``done_frames`` (JSON with
    ``{seq}`` where its sequence number goes, ``{text}`` where the text's JSON goes)."""
    head: list[dict[str, Any]] = [
        {"type": "response.created", "response": {"id": "resp_1", "status": "in_progress"}},
        {
            "type": "response.output_item.added",
            "output_index": 0,
            "item": {"id": "msg_1", "type": "message", "status": "in_progress"},
        },
    ]
    ref = {"item_id": "msg_1", "output_index": 0, "content_index": 0}
    for at in range(0, len(text), deltas):
        head.append({"type": "response.output_text.delta", **ref, "delta": text[at : at + deltas]})
    frames = [
        f"event: {e['type']}\ndata: {json.dumps({**e, 'sequence_number': n})}\n\n"
        for n, e in enumerate(head)
    ]
    for n, frame in enumerate(done_frames, start=len(head)):
        frames.append("data: " + frame.replace("{seq}", str(n)) + "\n\n")
    return "".join(frames).encode()


def _done(literal: str) -> str:
    return (
        '{"type":"response.output_text.done","sequence_number":{seq},"item_id":"msg_1",'
        '"output_index":0,"content_index":0,"text":' + literal + "}"
    )


def _item_done(item: str) -> str:
    return (
        '{"type":"response.output_item.done","sequence_number":{seq},"output_index":0,'
        '"item":' + item + "}"
    )


def _both(body: bytes, cuts: list[int] | None = None) -> tuple[list[respflow.Event], int]:
    """The events of ``body`` and how many frames were read sparing a text; asserted the
    same as decoding every frame whole."""
    cuts = list(range(65536, len(body), 65536)) if cuts is None else cuts
    spied = Spied()
    events = fed(spied, body, cuts)
    assert events == fed(DecodesEverything(), body, cuts)
    return events, spied.spared


def test_a_text_repeated_in_two_fields_and_as_a_key_reads_whole() -> None:
    text = text_of(300_000, "Tout va très bien — la marquise ☃ 😀 / ")
    literal = json.dumps(text)
    item = (
        '{"id":"msg_1","type":"message","status":"completed","role":"assistant","note":'
        + literal
        + ',"content":[{"type":"output_text","text":'
        + literal
        + ',"annotations":[{"type":"x","title":'
        + literal
        + "}]}],"
        + literal
        + ":1}"
    )
    events, spared = _both(_message_stream(text, [_done(literal), _item_done(item)]))
    [done] = [e for e in events if isinstance(e, respflow.TextDone)]
    assert done.text == text
    assert spared == 1  # the done text; the item holds the text as a key too: read whole


def test_a_held_text_under_a_duplicate_key_reads_as_the_last_key_says() -> None:
    text = text_of(300_000, LINE)
    literal = json.dumps(text)
    for frame, expected in (
        (_done(literal)[:-1] + ',"text":"last"}', "last"),
        (_done('"first"')[:-1] + ',"text":' + literal + "}", text),
        (_done(literal)[:-1] + "," + literal + ":" + literal + "}", text),
    ):
        events, _ = _both(_message_stream(text, [frame]))
        assert [e.text for e in events if isinstance(e, respflow.TextDone)] == [expected]


def test_done_texts_one_character_off_at_either_end_are_read_as_sent() -> None:
    text = text_of(300_000, LINE)
    for other in ("#" + text[1:], text[:-1] + "#", text[1:], text[:-1], text + " ", " " + text):
        events, spared = _both(_message_stream(text, [_done(json.dumps(other))]))
        [done] = [e for e in events if isinstance(e, respflow.TextDone)]
        assert done.text == other
        assert spared == 0


def test_escapes_the_held_text_is_not_written_with_are_read_as_sent() -> None:
    text = text_of(300_000, "a/b é 😀 ")
    ascii_literal = json.dumps(text)
    for literal in (
        ascii_literal.replace("/", "\\/"),
        ascii_literal.replace("\\u00e9", "\\u00E9"),
        ascii_literal.replace("\\ud83d\\ude00", "\\uD83D\\uDE00"),
    ):
        events, spared = _both(_message_stream(text, [_done(literal)]))
        [done] = [e for e in events if isinstance(e, respflow.TextDone)]
        assert done.text == text
        assert spared == 0


def test_a_lone_surrogate_where_the_text_ends_is_reported_as_before() -> None:
    text = text_of(300_000, LINE)
    literal = json.dumps(text)
    for broken in (literal[:-1] + '\\ud83d"', literal[:-1] + '\\ude00\\ud83d"'):
        events, _ = _both(_message_stream(text, [_done(broken)]))
        assert [e.code for e in events if isinstance(e, respflow.StreamError)] == ["invalid_json"]


def test_payloads_either_side_of_the_threshold_read_the_same() -> None:
    for length in (held.LONG_TEXT - 1, held.LONG_TEXT, held.LARGE_PAYLOAD - 200):
        for pad in range(150, 260, 9):  # the frame just below, at and above LARGE_PAYLOAD
            text = text_of(length, LINE)
            frame = _done(json.dumps(text))
            filler = "x" * max(0, held.LARGE_PAYLOAD - len(frame) - 170 + pad)
            frame = frame[:-1] + ',"pad":"' + filler + '"}'
            events, _ = _both(_message_stream(text, [frame]))
            [done] = [e for e in events if isinstance(e, respflow.TextDone)]
            assert done.text == text


def test_a_done_frame_cut_off_inside_the_held_text_is_reported_cut_off() -> None:
    text = text_of(300_000, LINE)
    body = _message_stream(text, [_done(json.dumps(text))])
    for end in (len(body) - 1000, len(body) - 160_000, len(body) - 5):
        events, _ = _both(body[:end])
        codes = [e.code for e in events if isinstance(e, respflow.StreamError)]
        assert codes == ["cut_off_event"]
        assert not [e for e in events if isinstance(e, respflow.TextDone)]


def test_a_done_frame_fed_in_tiny_pieces_with_crlf_is_spared() -> None:
    text = text_of(300_000, LINE)
    body = _message_stream(text, [_done(json.dumps(text))]).replace(b"\n", b"\r\n")
    events, spared = _both(body, list(range(0, len(body), 997)))
    assert spared == 1
    assert [e.text for e in events if isinstance(e, respflow.TextDone)] == [text]


def test_nesting_too_deep_just_outside_the_held_text_is_refused_as_before() -> None:
    text = text_of(300_000, LINE)
    literal = json.dumps(text)
    for depth in (wire.MAX_DEPTH - 10, wire.MAX_DEPTH - 4, wire.MAX_DEPTH + 1, 5000):
        item = (
            '{"id":"msg_1","type":"message","status":"completed","role":"assistant",'
            '"content":[{"type":"output_text","text":'
            + literal
            + ',"annotations":'
            + "[" * depth
            + "]" * depth
            + "}]}"
        )
        events, _ = _both(_message_stream(text, [_item_done(item)]))
        codes = [e.code for e in events if isinstance(e, respflow.StreamError)]
        assert codes == ([] if depth + 4 <= wire.MAX_DEPTH else ["too_deeply_nested"])


def test_two_messages_and_a_code_call_with_one_text_each_keep_their_own() -> None:
    text = text_of(300_000, LINE)
    out: list[dict[str, Any]] = [
        {"type": "response.created", "response": {"id": "resp_1", "status": "in_progress"}}
    ]
    finals = []
    for n, kind in enumerate(["message", "message", "code", "refusal"]):
        items, final = _item_frames(n, kind, text, text, text, list(range(0, len(text), 5000)))
        out += items
        finals.append(final)
    response = {"id": "resp_1", "status": "completed", "output": finals, "instructions": text}
    out.append({"type": "response.completed", "response": response})
    body = b"".join(
        f"event: {e['type']}\ndata: {json.dumps({**e, 'sequence_number': n})}\n\n".encode()
        for n, e in enumerate(out)
    )
    events, spared = _both(body)
    assert spared >= 4
    completed = [e for e in events if isinstance(e, respflow.ResponseCompleted)]
    assert len(completed) == 1


# -- what looking costs --------------------------------------------------------------------


class _Counted(bytes):
    """A payload that counts the bytes its searches and comparisons pass over."""

    passed = 0

    def find(self, sub: Any, start: Any = 0, end: Any = None) -> int:
        stop = len(self) if end is None else end
        at = bytes.find(self, sub, start, stop)
        type(self).passed += (at + len(sub) if at >= 0 else stop) - start
        return at

    def startswith(self, prefix: Any, start: Any = 0, end: Any = None) -> bool:
        type(self).passed += len(prefix) if isinstance(prefix, (bytes, memoryview)) else 0
        return bytes.startswith(self, prefix, start, *(() if end is None else (end,)))


def _passed_over(count: int, off_by_one: bool) -> tuple[float, bool]:
    """Bytes searched reading a ``response.completed`` that lists ``count`` messages of
    300 KB each, as a multiple of its length, and whether it was spared; its texts are
    the ones held, or each one byte off at its end."""
    texts = [text_of(300_000, f"{n}: {LINE}") for n in range(count)]
    output = [
        {
            "id": f"msg_{n}",
            "type": "message",
            "status": "completed",
            "role": "assistant",
            "content": [
                {
                    "type": "output_text",
                    "text": text[:-1] + "#" if off_by_one else text,
                    "annotations": [],
                }
            ],
        }
        for n, text in enumerate(texts)
    ]
    payload = {
        "type": "response.completed",
        "sequence_number": 1,
        "response": {"id": "resp_1", "status": "completed", "output": output},
    }
    data = _Counted(json.dumps(payload).encode())
    _Counted.passed = 0
    found = held.decode_holding(data, texts[-1:] + texts[:-1], {})
    return _Counted.passed / len(data), found is not None


def test_texts_that_are_not_there_are_searched_for_a_bounded_number_of_times() -> None:
    # Each held text found one byte off was searched for again from where it was, to the
    # end of the payload: 37 times its length for 200 texts (19 for 50), and growing.
    few, spared = _passed_over(20, off_by_one=True)
    many, spared_many = _passed_over(200, off_by_one=True)
    assert not spared
    assert not spared_many
    assert many <= held._SCANS + 1.5
    assert many <= few + 0.5
    held_all, spared_all = _passed_over(200, off_by_one=False)
    assert spared_all
    assert held_all <= held._SCANS + 1.5


# -- lone surrogates handed in as Python text ----------------------------------------------


def _surrogate_stream() -> list[dict[str, Any]]:
    """A message whose middle delta holds a lone surrogate, as Python's ``json`` (the
    SDK's) reads ``"\\ud83d"``: bytes that no UTF-8 encoder writes."""
    ref = {"item_id": "msg_1", "output_index": 0, "content_index": 0}
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": {"id": "resp_1", "status": "in_progress"}},
        {
            "type": "response.output_item.added",
            "output_index": 0,
            "item": {"id": "msg_1", "type": "message", "status": "in_progress"},
        },
        {"type": "response.output_text.delta", **ref, "delta": "Hel"},
        {"type": "response.output_text.delta", **ref, "delta": json.loads('"\\ud83d"')},
        {"type": "response.output_text.delta", **ref, "delta": "lo"},
    ]
    return [{**event, "sequence_number": n} for n, event in enumerate(events)]


def test_a_lone_surrogate_in_an_event_handed_in_is_reported_and_the_rest_read() -> None:
    for form in ("dict", "str"):
        assembler = Assembler()
        out: list[respflow.Event] = []
        for event in _surrogate_stream():
            payload = event if form == "dict" else json.dumps(event, ensure_ascii=False)
            out += assembler.feed_event(payload)  # raised UnicodeEncodeError
        out += assembler.close()
        errors = [e for e in out if isinstance(e, respflow.StreamError)]
        assert [e.code for e in errors] == ["invalid_event" if form == "dict" else "invalid_utf8"]
        assert "\\ud83d" in errors[0].message
        assert [e.delta for e in out if isinstance(e, respflow.TextDelta)] == ["Hel", "lo"]


def test_a_lone_surrogate_in_a_response_handed_in_is_reported() -> None:
    text = json.loads('"a\\ud83d"')
    response = {
        "id": "resp_1",
        "status": "completed",
        "output": [
            {"id": "m", "type": "message", "content": [{"type": "output_text", "text": text}]}
        ],
    }
    for payload in (response, json.dumps(response, ensure_ascii=False)):
        out = Assembler().feed_response(payload)  # raised UnicodeEncodeError
        assert [e.code for e in out if isinstance(e, respflow.StreamError)] in (
            ["invalid_event"],
            ["invalid_response"],
        )


def _peak_reading(assembler: Assembler, text: str, done: str) -> float:
    """The most memory traced while the four done frames (carrying ``done``) were fed in
    64 KiB reads, as a multiple of the text; the text streamed in 256-character deltas."""
    frames = wire_frames(text, list(range(0, len(text), 256)), done, style="ascii")
    reads = [frame[at : at + 65536] for frame in frames[-4:] for at in range(0, len(frame), 65536)]
    for frame in frames[:-4]:
        assembler.feed(frame)
    tracemalloc.start()
    try:
        for read in reads:
            events = assembler.feed(read)
        del events
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak / len(text)


def test_done_texts_that_differ_from_the_held_one_cost_no_more_memory_than_before() -> None:
    text = text_of(1 << 20)
    for done in (text[:-1] + "#", "#" + text[1:], text_of(1 << 20, "other words ")):
        assert _peak_reading(Assembler(), text, done) <= _peak_reading(
            DecodesEverything(), text, done
        )
