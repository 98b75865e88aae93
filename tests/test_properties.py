"""Properties of the assembler over generated streams: chunking, corruption, truncation."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import respflow
from respflow import Assembler
from respflow import _events as ev
from respflow.testing import StreamBuilder, to_sse

text = st.text(alphabet=st.characters(codec="utf-8"), min_size=0, max_size=60)


@st.composite
def streams(draw: st.DrawFn) -> list[dict[str, Any]]:
    builder = StreamBuilder(background=draw(st.booleans()), include_outputs=draw(st.booleans()))
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["code", "message", "reasoning", "other"]))
        if kind == "code":
            builder.code_call(
                draw(text), logs=draw(st.none() | text), chunk=draw(st.integers(1, 9))
            )
        elif kind == "message":
            body = draw(text) + draw(
                st.sampled_from(
                    ["", " sandbox:/mnt/data/a b.png", " [x](sandbox:/mnt/data/r.csv)."]
                )
            )
            builder.message(body, chunk=draw(st.integers(1, 9)))
        elif kind == "reasoning":
            builder.reasoning(draw(text))
        else:
            builder.item({"id": "ws_1", "type": "web_search_call", "status": "completed"})
    return builder.events(end=draw(st.sampled_from(["completed", "incomplete", "failed", None])))


def replay_chunks(body: bytes, cuts: list[int]) -> list[respflow.Event]:
    asm = Assembler()
    out: list[respflow.Event] = []
    edges = sorted(c for c in cuts if c <= len(body))
    for a, b in zip([0, *edges], [*edges, len(body)], strict=True):
        out += asm.feed(body[a:b])
    return out + asm.close()


def assert_one_end_last(events: list[respflow.Event]) -> None:
    ends = [i for i, e in enumerate(events) if isinstance(e, respflow.END_TYPES)]
    assert ends == [len(events) - 1]


def assert_nothing_internal(events: list[respflow.Event]) -> None:
    assert not [
        e for e in events if isinstance(e, ev.StreamError) and e.code == "unprocessable_event"
    ]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(streams(), st.lists(st.integers(0, 20_000), max_size=20))
def test_chunking_never_changes_the_events(wire: list[dict[str, Any]], cuts: list[int]) -> None:
    body = to_sse(wire)
    whole = replay_chunks(body, [])
    assert replay_chunks(body, cuts) == whole
    assert_one_end_last(whole)
    assert [e for e in whole if isinstance(e, ev.StreamError)] == []


@settings(max_examples=30, deadline=None)
@given(streams())
def test_one_byte_at_a_time(wire: list[dict[str, Any]]) -> None:
    body = to_sse(wire)
    assert replay_chunks(body, list(range(len(body)))) == replay_chunks(body, [])


@settings(max_examples=150, deadline=None)
@given(streams(), st.data())
def test_truncated_anywhere_still_ends_once_and_keeps_what_arrived(
    wire: list[dict[str, Any]], data: st.DataObject
) -> None:
    body = to_sse(wire)
    cut = data.draw(st.integers(0, len(body)))
    events = replay_chunks(body[:cut], [])
    assert_one_end_last(events)
    assert_nothing_internal(events)
    # Every delta that arrived is in the completed item.
    code: dict[int, str] = {}
    for event in events:
        if isinstance(event, ev.CodeDelta):
            code[event.output_index] = code.get(event.output_index, "") + event.delta
    for done in (e for e in events if isinstance(e, ev.CodeCompleted)):
        assert done.code.startswith(code.get(done.output_index, ""))


@settings(max_examples=200, deadline=None)
@given(streams(), st.data())
def test_random_corruption_never_raises(wire: list[dict[str, Any]], data: st.DataObject) -> None:
    body = bytearray(to_sse(wire))
    for _ in range(data.draw(st.integers(1, 8))):
        if not body:
            break
        at = data.draw(st.integers(0, len(body) - 1))
        action = data.draw(st.sampled_from(["flip", "delete", "insert"]))
        if action == "flip":
            body[at] = data.draw(st.integers(0, 255))
        elif action == "delete":
            del body[at : at + data.draw(st.integers(1, 50))]
        else:
            body[at:at] = data.draw(
                st.sampled_from(
                    [b"\n\n", b"\r", b"data: {", b"\xff", b"event: x\n", b'"sequence_number":1']
                )
            )
    events = replay_chunks(bytes(body), data.draw(st.lists(st.integers(0, len(body)), max_size=5)))
    assert events, "close() always ends the response"
    assert isinstance(events[-1], respflow.END_TYPES)
    assert_nothing_internal(events)


@settings(max_examples=100, deadline=None)
@given(streams(), st.data())
def test_shuffled_and_duplicated_events_never_raise(
    wire: list[dict[str, Any]], data: st.DataObject
) -> None:
    mangled = data.draw(
        st.permutations(
            wire + data.draw(st.lists(st.sampled_from(wire), max_size=5)) if wire else []
        )
    )
    asm = Assembler()
    events: list[respflow.Event] = []
    for event in mangled:
        events += asm.feed_event(event)
    events += asm.close()
    assert isinstance(events[-1], respflow.END_TYPES)
    assert_nothing_internal(events)
    cursors = [
        respflow.parse_cursor(e.cursor) for e in events if e.response_id == events[-1].response_id
    ]
    assert len(set(cursors)) == len(cursors)
