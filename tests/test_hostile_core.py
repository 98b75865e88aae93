"""Hostile input for the core: events built to crash it, to exhaust memory, or to stall it.

Each test feeds what an adversarial review found and checks what a user relies on: no
exception, a typed ``stream.error`` that says what was wrong, everything else kept, and
exactly one end, last.
"""

from __future__ import annotations

import sys
import tracemalloc
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import msgspec
import openai
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import respflow
from respflow import Assembler, RecordingError
from respflow import _events as ev
from respflow._cli import main
from respflow._core import wire
from respflow.testing import MockServer, RecordedEvent, Recording, StreamBuilder

pytestmark = pytest.mark.anyio

DEPTH = 1_000


def clean_events() -> list[dict[str, Any]]:
    return StreamBuilder().code_call("print(1)", logs="1\n").message("all done").events()


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def deep_event(seq: int, depth: int = DEPTH, *, known: bool = True) -> bytes:
    """A valid event whose payload nests ``depth`` arrays; a known type or an unknown one."""
    if known:
        head = b'{"type":"response.output_item.added","output_index":99,"item":{"x":'
    else:
        head = b'{"type":"response.hologram.delta","x":{"y":'
    return head + nested(depth) + b'},"sequence_number":' + str(seq).encode() + b"}"


AT = len(clean_events()) // 2


def payloads_with_deep_event(depth: int = DEPTH, *, known: bool = True) -> list[bytes]:
    """The clean stream with one deep event at ``AT``, numbered densely."""
    events = clean_events()
    events.insert(AT, {"type": "placeholder"})
    out = []
    for seq, event in enumerate(events):
        event["sequence_number"] = seq
        is_deep = event["type"] == "placeholder"
        out.append(deep_event(seq, depth, known=known) if is_deep else msgspec.json.encode(event))
    return out


def sse(payloads: list[bytes]) -> bytes:
    return b"".join(b"data: " + p + b"\n\n" for p in payloads)


def jsonl(payloads: list[bytes]) -> bytes:
    return b"".join(p + b"\n" for p in payloads)


CLEAN = list(respflow.replay(sse([msgspec.json.encode(e) for e in clean_events()])))


def assert_skipped_and_went_on(events: list[respflow.Event]) -> None:
    """One non-fatal error for the deep event; every other event as on the clean stream."""
    errors = [e for e in events if isinstance(e, ev.StreamError)]
    assert [(e.code, e.fatal) for e in errors] == [("too_deeply_nested", False)]
    assert f"more than {wire.MAX_DEPTH} levels" in errors[0].message
    rest = [e for e in events if not isinstance(e, (ev.StreamError, ev.StreamGap))]
    assert [(type(e), e.sequence_number < 0) for e in rest] == [
        (type(e), e.sequence_number < 0) for e in CLEAN
    ]
    assert_ends_once_last(events, ev.ResponseCompleted)
    assert [e.text for e in events if isinstance(e, ev.MessageCompleted)] == ["all done"]
    assert [e.logs for e in events if isinstance(e, ev.CodeLogs)] == ["1\n"]


def assert_ends_once_last(events: list[respflow.Event], end: type[ev.EventBase]) -> None:
    ends = [i for i, e in enumerate(events) if isinstance(e, respflow.END_TYPES)]
    assert ends == [len(events) - 1]
    assert isinstance(events[-1], end)


# -- 1. deeply nested events -----------------------------------------------------------------


@pytest.mark.parametrize("known", [True, False], ids=["known_type", "unknown_type"])
@pytest.mark.parametrize("depth", [wire.MAX_DEPTH, DEPTH, 100_000])
def test_a_deeply_nested_frame_is_a_non_fatal_error_and_the_stream_goes_on(
    depth: int, known: bool
) -> None:
    body = sse(payloads_with_deep_event(depth, known=known))
    for size in (len(body), 4096, 7):
        asm = Assembler()
        events = [e for i in range(0, len(body), size) for e in asm.feed(body[i : i + size])]
        assert_skipped_and_went_on(events + asm.close())


@pytest.mark.parametrize("known", [True, False], ids=["known_type", "unknown_type"])
def test_nesting_up_to_the_limit_is_read(known: bool) -> None:
    # The event itself and its item are two levels; the rest is the nested value.
    depth = wire.MAX_DEPTH - 2
    asm = Assembler()
    events = asm.feed_event(deep_event(0, depth, known=known)) + asm.close()
    assert not [e for e in events if isinstance(e, ev.StreamError)]
    if not known:
        (unknown,) = [e for e in events if isinstance(e, ev.Unknown)]
        assert msgspec.json.encode(unknown.raw["x"]["y"]) == nested(depth)


def test_feed_event_skips_a_deep_line_as_bytes_str_or_dict() -> None:
    for convert in (bytes, bytes.decode, msgspec.json.decode):
        asm = Assembler()
        events: list[respflow.Event] = []
        for payload in payloads_with_deep_event():
            try:
                line = convert(payload)
            except RecursionError:  # the test's own decoding of the deep line
                line = deep_dict(DEPTH, seq=AT)
            events += asm.feed_event(line)
        assert_skipped_and_went_on(events + asm.close())


def deep_dict(depth: int, seq: int = 1) -> dict[str, Any]:
    value: Any = []
    for _ in range(depth):
        value = [value]
    return {"type": "response.hologram.delta", "x": value, "sequence_number": seq}


@pytest.mark.parametrize("depth", [wire.MAX_DEPTH + 1, DEPTH, 10 * DEPTH])
def test_feed_event_reports_a_deep_dict(depth: int) -> None:
    asm = Assembler()
    asm.feed_event(msgspec.json.decode(msgspec.json.encode(clean_events()[0])))
    events = asm.feed_event(deep_dict(depth))
    assert [(type(e), getattr(e, "code", "")) for e in events] == [
        (ev.StreamError, "too_deeply_nested")
    ]


def deep_response() -> bytes:
    response = StreamBuilder().message("hello").response()
    body = msgspec.json.encode(response)
    return body.replace(b'"annotations":[]', b'"annotations":' + nested(DEPTH), 1)


def test_feed_response_reports_a_deep_response_and_close_ends_it() -> None:
    asm = Assembler()
    events = asm.feed_response(deep_response())
    events += asm.close()
    assert [e.code for e in events if isinstance(e, ev.StreamError)] == ["too_deeply_nested"]
    assert_ends_once_last(events, ev.StreamTruncated)


def test_detect_format_reads_recordings_with_a_deep_event() -> None:
    deep_first = [deep_event(0), *payloads_with_deep_event()[1:]]
    assert respflow.detect_format(sse(deep_first)) == "sse"
    assert respflow.detect_format(jsonl(deep_first)) == "jsonl"
    with pytest.raises(RecordingError, match=f"more than {wire.MAX_DEPTH} levels"):
        respflow.detect_format(deep_response())


def test_replay_skips_a_deep_event_in_sse_and_jsonl() -> None:
    payloads = payloads_with_deep_event()
    assert_skipped_and_went_on(list(respflow.replay(sse(payloads))))
    assert_skipped_and_went_on(list(respflow.replay(jsonl(payloads))))
    assert_skipped_and_went_on(list(respflow.replay(jsonl(payloads), format="jsonl")))


def test_replay_of_a_json_array_skips_a_deep_event_or_refuses_one_too_deep_to_read() -> None:
    # As far as msgspec can split the array, the deep element is skipped; beyond that
    # the recording as a whole is unreadable, which is said before any event.
    readable = payloads_with_deep_event(wire.MAX_DEPTH + 5)
    assert_skipped_and_went_on(list(respflow.replay(b"[" + b",".join(readable) + b"]")))
    unreadable = b"[" + b",".join(payloads_with_deep_event(100 * DEPTH)) + b"]"
    with pytest.raises(RecordingError, match=f"more than {wire.MAX_DEPTH} levels"):
        list(respflow.replay(unreadable))
    with pytest.raises(RecordingError, match=f"more than {wire.MAX_DEPTH} levels"):
        list(respflow.replay(unreadable, format="jsonl"))


def test_replay_of_a_deep_response_ends_it() -> None:
    events = list(respflow.replay(deep_response(), format="response"))
    assert [e.code for e in events if isinstance(e, ev.StreamError)] == ["too_deeply_nested"]
    assert_ends_once_last(events, ev.StreamTruncated)


def test_cli_replay_of_a_recording_with_a_deep_event(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    path = tmp_path / "deep.sse"
    path.write_bytes(sse(payloads_with_deep_event()))
    assert main(["replay", "--format", "jsonl", str(path)]) == 0
    events = [respflow.decode_event(line) for line in capsysbinary.readouterr().out.splitlines()]
    assert_skipped_and_went_on(events)
    assert main(["replay", str(path)]) == 0
    out = capsysbinary.readouterr().out.decode()
    assert "too_deeply_nested" in out
    assert "all done" in out


async def body_chunks(data: bytes, size: int) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        await anyio.sleep(0)
        yield data[i : i + size]


async def test_aiter_events_skips_a_deep_event_and_keeps_the_rest() -> None:
    body = sse(payloads_with_deep_event())
    events = [e async for e in respflow.aiter_events(body_chunks(body, 1000))]
    assert_skipped_and_went_on(events)


async def test_stream_over_http_skips_a_deep_event_and_ends() -> None:
    payloads = payloads_with_deep_event(known=False)
    types = [e["type"] for e in clean_events()]
    types.insert(AT, "response.hologram.delta")
    # Two data: lines, which SSE joins with a newline, so the event is still one valid
    # JSON object; the mock's own reading of the recording passes it by.
    payloads[AT] = payloads[AT].replace(b',"x":', b',\ndata: "x":', 1)
    recording = Recording(
        events=tuple(
            RecordedEvent(p, t, seq) for seq, (p, t) in enumerate(zip(payloads, types, strict=True))
        )
    )
    async with (
        MockServer(recording) as mock,
        openai.AsyncOpenAI(
            base_url=mock.openai_base_url, api_key=mock.openai_api_key, max_retries=0
        ) as client,
        respflow.stream(client, model="gpt-5", input="hi") as stream,
    ):
        events = [e async for e in stream]
    assert_skipped_and_went_on(events)


# -- 5. index fields that would size memory ---------------------------------------------------


def shell_events() -> list[dict[str, Any]]:
    return (
        StreamBuilder().shell_call(["ls", "pwd"], outputs=[("a\n", "", 0), ("/\n", "", 0)]).events()
    )


def fed_with_peak(asm: Assembler, payload: bytes) -> tuple[list[respflow.Event], int]:
    """The events one payload makes, and the most memory feeding it took at once."""
    tracemalloc.start()
    try:
        events = asm.feed_event(payload)
        return events, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("command_index", [10**7, 2 * 10**8, 2**63 - 1, 10**30])
def test_a_huge_command_index_costs_no_memory(command_index: int) -> None:
    events = shell_events()
    at = next(i for i, e in enumerate(events) if e["type"] == "response.shell_call_command.delta")
    asm = Assembler()
    for event in events[:at]:
        asm.feed_event(event)
    hostile = {**events[at], "command_index": command_index}
    rest, peak = fed_with_peak(asm, msgspec.json.encode(hostile))
    assert peak < 64 * 1024
    rest += [e for event in events[at + 1 :] for e in asm.feed_event(event)] + asm.close()
    assert_ends_once_last(rest, ev.ResponseCompleted)
    (completed,) = [e for e in rest if isinstance(e, ev.CodeCompleted)]
    assert completed.code == "ls\npwd"  # the finished call is the truth


INDEX_FIELDS = {
    "output_index": "response.output_text.delta",
    "content_index": "response.output_text.delta",
    "annotation_index": "response.output_text.annotation.added",
    "summary_index": "response.reasoning_summary_text.delta",
    "command_index": "response.shell_call_command.delta",
}


def every_kind_of_item() -> list[dict[str, Any]]:
    annotation = {"type": "url_citation", "url": "https://example.com", "start_index": 0}
    return (
        StreamBuilder()
        .reasoning("think")
        .shell_call(["ls"], outputs=[("a\n", "", 0)])
        .message("hello there", annotations=[{**annotation, "end_index": 5}])
        .events()
    )


@pytest.mark.parametrize("value", [-1, -(2**63), 2 * 10**8, 2**64 - 1])
@pytest.mark.parametrize("field", INDEX_FIELDS)
def test_an_index_field_out_of_range_is_reported_or_costs_nothing(field: str, value: int) -> None:
    events = every_kind_of_item()
    at = next(i for i, e in enumerate(events) if e["type"] == INDEX_FIELDS[field])
    asm = Assembler()
    out = [e for event in events[:at] for e in asm.feed_event(event)]
    hostile = msgspec.json.encode({**events[at], field: value})
    made, peak = fed_with_peak(asm, hostile)
    assert peak < 64 * 1024
    out += made
    out += [e for event in events[at + 1 :] for e in asm.feed_event(event)] + asm.close()
    errors = [e for e in out if isinstance(e, ev.StreamError)]
    if value < 0:
        assert [e.code for e in errors] == ["invalid_event"]
        assert f"$.{field}" in errors[0].message
    else:
        assert "unprocessable_event" not in [e.code for e in errors]
    assert_ends_once_last(out, ev.ResponseCompleted)
    texts = [e.text for e in out if isinstance(e, ev.MessageCompleted)]
    assert texts == ["hello there"]


# -- 17. a negative output_index ---------------------------------------------------------------


def test_a_negative_output_index_never_takes_another_items_text() -> None:
    builder = StreamBuilder().message("first", item_id="msg_a").message("second", item_id="msg_b")
    terminal = builder.events()[-1]
    # A message that streams but is never done: the terminal output completes it.
    streamed = StreamBuilder().message("mine", item_id="msg_x").events()[:-2]
    for event in streamed:
        if "output_index" in event:
            event["output_index"] = -1
    events = run([*streamed, {**terminal, "sequence_number": len(streamed)}])
    completed = [(e.output_index, e.text) for e in events if isinstance(e, ev.MessageCompleted)]
    assert completed == [(0, "first"), (1, "second")]
    errors = [e for e in events if isinstance(e, ev.StreamError)]
    assert errors
    assert all(e.code == "invalid_event" for e in errors)
    assert all("$.output_index" in e.message for e in errors)
    assert_ends_once_last(events, ev.ResponseCompleted)


def run(wire_events: list[dict[str, Any]], asm: Assembler | None = None) -> list[respflow.Event]:
    asm = asm or Assembler()
    return [e for event in wire_events for e in asm.feed_event(event)] + asm.close()


# -- 6. work that grows faster than the input ---------------------------------------------------

CORE = str(Path(respflow.__file__).parent / "_core")


def core_lines_run(work: Any) -> int:
    """How many lines of respflow's core Python runs for ``work()``: a count of the work
    done that no machine's speed changes (C loops inside a line count once)."""
    count = 0

    def local(frame: Any, event: str, arg: Any) -> Any:
        nonlocal count
        count += event == "line"
        return local

    def scope(frame: Any, event: str, arg: Any) -> Any:
        return local if frame.f_code.co_filename.startswith(CORE) else None

    sys.settrace(scope)
    try:
        work()
    finally:
        sys.settrace(None)
    return count


def assert_linear(cost: Any, n: int) -> None:
    """Doubling the input at most doubles the work (plus a little: the fixed part)."""
    once, twice = cost(n), cost(2 * n)
    assert twice <= 2.05 * once, (once, twice)


def many_items_then_a_terminal_output(n: int) -> list[dict[str, Any]]:
    builder = StreamBuilder()
    for i in range(n):
        builder.item({"id": f"fc_{i}", "type": "function_call", "status": "completed"})
    events = builder.events()
    # Streamed items left open: the terminal output completes every one of them.
    return [e for e in events if e["type"] != "response.output_item.done"]


def test_completing_many_items_from_the_terminal_output_is_linear() -> None:
    def cost(n: int) -> int:
        wire_events = many_items_then_a_terminal_output(n)
        asm = Assembler()
        for event in wire_events[:-1]:
            asm.feed_event(event)
        terminal = msgspec.json.encode(wire_events[-1])
        made: list[respflow.Event] = []
        lines = core_lines_run(lambda: made.extend(asm.feed_event(terminal)))
        assert len([e for e in made if isinstance(e, ev.ItemCompleted)]) == n
        return lines

    assert_linear(cost, 500)


def text_with_links_and_annotations(n: int) -> dict[str, Any]:
    text = " ".join(f"sandbox:/mnt/data/f{i}.csv" for i in range(n)) + " " + "cited " * n
    start = len(text) - len("cited ") * n
    annotations = [
        {
            "type": "url_citation",
            "url": "https://x",
            "start_index": start + 6 * i,
            "end_index": start + 6 * i + 5,
        }
        for i in range(n)
    ]
    return {"type": "output_text", "text": text, "annotations": annotations}


def test_judging_many_links_against_many_annotations_is_linear() -> None:
    def cost(n: int) -> int:
        part = text_with_links_and_annotations(n)
        events = StreamBuilder().message(part["text"], annotations=part["annotations"]).events()
        at = next(i for i, e in enumerate(events) if e["type"] == "response.content_part.done")
        asm = Assembler()
        for event in events[:at]:
            asm.feed_event(event)
        done = msgspec.json.encode(events[at])
        made: list[respflow.Event] = []
        lines = core_lines_run(lambda: made.extend(asm.feed_event(done)))
        assert len([e for e in made if isinstance(e, ev.FileLink)]) == n
        return lines

    assert_linear(cost, 300)


def test_many_deltas_for_items_nobody_named_take_linear_time() -> None:
    # No output_index, no item id: each delta is an item of its own. These 100,000 took
    # about two minutes when each looked through every item for the highest index.
    n = 100_000
    body = b"".join(
        b'data: {"type":"response.reasoning_summary_text.delta","sequence_number":%d,'
        b'"delta":"x"}\n\n' % seq
        for seq in range(n)
    )
    asm = Assembler()
    events = asm.feed(body) + asm.close()
    assert len([e for e in events if isinstance(e, ev.ReasoningDelta)]) == n
    assert len([e for e in events if isinstance(e, ev.ItemCompleted)]) == n
    assert_ends_once_last(events, ev.StreamTruncated)


def test_annotations_that_are_not_objects_cover_nothing() -> None:
    events = StreamBuilder().message("see sandbox:/mnt/data/a.csv").events()
    for event in events:
        if event["type"] == "response.content_part.done":
            event["part"]["annotations"] = [1, "x", None, ["start_index", 0]]
    out = run(events)
    assert not [e for e in out if isinstance(e, ev.StreamError)]
    assert [e.path for e in out if isinstance(e, ev.FileLink)] == ["/mnt/data/a.csv"]
    assert_ends_once_last(out, ev.ResponseCompleted)


def test_repeated_text_done_without_text_shares_the_text_it_rebuilds() -> None:
    # 1 MB in 1,000 deltas, then 200 small text.done events that leave the text to
    # respflow: each joined the deltas into a fresh megabyte, 200 MB held by the events.
    events = StreamBuilder().message("x" * 1_000_000, chunk=1_000).events()
    at = next(i for i, e in enumerate(events) if e["type"] == "response.output_text.done")
    asm = Assembler()
    for event in events[:at]:
        asm.feed_event(event)
    first = events[at]["sequence_number"]
    dones = [{**events[at], "text": None, "sequence_number": first + k} for k in range(200)]
    tracemalloc.start()
    try:
        made = [e for done in dones for e in asm.feed_event(done)]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [len(e.text) for e in made if isinstance(e, ev.TextDone)] == [1_000_000] * 200
    assert peak < 20_000_000


# -- 7. implausible sequence numbers -------------------------------------------------------------


def texts_and_code(events: list[respflow.Event]) -> list[str]:
    return [
        e.text if isinstance(e, ev.MessageCompleted) else e.code
        for e in events
        if isinstance(e, (ev.MessageCompleted, ev.CodeCompleted))
    ]


CLEAN_WIRE = clean_events()
CLEAN_RUN = run(clean_events())


def with_sequence_number(at: int, seq: int) -> list[dict[str, Any]]:
    events = clean_events()
    events[at]["sequence_number"] = seq
    return events


def implausible(events: list[respflow.Event]) -> list[ev.StreamError]:
    return [
        e
        for e in events
        if isinstance(e, ev.StreamError) and e.code == "implausible_sequence_number"
    ]


@pytest.mark.parametrize("seq", [2**63 - 1, 2**64 - 1, 10**30, -1, -(2**63)])
@pytest.mark.parametrize("at", [0, 5, AT, len(CLEAN_WIRE) - 1])
def test_one_implausible_sequence_number_is_reported_and_swallows_nothing(
    at: int, seq: int
) -> None:
    asm = Assembler()
    events = run(with_sequence_number(at, seq), asm)
    (error,) = implausible(events)
    assert not error.fatal
    assert str(seq) in error.message
    assert "max_sequence_jump" in error.message
    assert texts_and_code(events) == texts_and_code(CLEAN_RUN)
    assert_ends_once_last(events, ev.ResponseCompleted)
    assert asm.duplicates == 0
    last = len(CLEAN_WIRE) - 1
    assert asm.last_sequence_number == (last - 1 if at == last else last)
    # Its events keep the cursor order: they take the position of the event before it.
    cursors = [respflow.parse_cursor(e.cursor) for e in events]
    assert cursors == sorted(cursors)
    assert len(set(cursors)) == len(cursors)


def test_the_resume_cursor_is_never_an_implausible_number() -> None:
    events = StreamBuilder(background=True).message("all done").events(end=None)
    events[4]["sequence_number"] = 2**63 - 1
    asm = Assembler()
    out = run(events, asm)
    assert asm.last_sequence_number == len(events) - 1
    end = out[-1]
    assert isinstance(end, ev.StreamTruncated)
    assert end.last_sequence_number == len(events) - 1
    assert f"starting_after={len(events) - 1}" in end.message


def test_a_resumed_stream_keeps_its_cursor_past_an_implausible_number() -> None:
    events = clean_events()
    asm = Assembler(starting_after=5, response_id="resp_sample")
    tail = [*events[6:9], {**events[9], "sequence_number": 10**12}, *events[10:]]
    out = run(tail, asm)
    assert len(implausible(out)) == 1
    # The event's own number never arrived: that is a gap of one, no more.
    gaps = [(e.expected, e.received) for e in out if isinstance(e, ev.StreamGap)]
    assert gaps == [(9, 10)]
    assert asm.last_sequence_number == len(events) - 1
    assert_ends_once_last(out, ev.ResponseCompleted)


def test_a_server_that_really_jumps_is_followed_after_one_report() -> None:
    # Numbering that moves on for good is confirmed by the event after the jump.
    base = 10**9
    events = clean_events()
    for event in events[AT:]:
        event["sequence_number"] += base
    asm = Assembler()
    out = run(events, asm)
    assert len(implausible(out)) == 1
    (gap,) = [e for e in out if isinstance(e, ev.StreamGap)]
    assert (gap.expected, gap.received) == (AT, AT + base + 1)
    assert asm.last_sequence_number == len(events) - 1 + base
    assert texts_and_code(out) == texts_and_code(CLEAN_RUN)
    assert_ends_once_last(out, ev.ResponseCompleted)


def test_a_jump_within_max_sequence_jump_is_a_gap() -> None:
    skipped = 1_000
    events = clean_events()
    for event in events[AT:]:
        event["sequence_number"] += skipped
    jump = skipped + 1
    for limit, errors in ((jump, 0), (jump - 1, 1)):
        out = run(events, Assembler(max_sequence_jump=limit))
        assert len(implausible(out)) == errors
        assert_ends_once_last(out, ev.ResponseCompleted)


# -- properties over hostile numbers -----------------------------------------------------------

HOSTILE_NUMBERS = (
    st.integers(min_value=-(2**64), max_value=-1)
    | st.integers(min_value=2**40, max_value=2**64 - 1)
    | st.sampled_from([-1, 2**31, 2**63 - 1, 2**64 - 1, 10**30])
)
INDEXES = ("output_index", "content_index", "annotation_index", "summary_index", "command_index")


def hostile_stream() -> list[dict[str, Any]]:
    annotation = {"type": "url_citation", "url": "https://x", "start_index": 0, "end_index": 4}
    return (
        StreamBuilder()
        .reasoning("think")
        .code_call("print(1)", logs="1\n")
        .shell_call(["ls", "pwd"], outputs=[("a\n", "", 0), ("/\n", "", 0)])
        .message("done sandbox:/mnt/data/x.csv", annotations=[annotation])
        .events()
    )


HOSTILE_STREAM = hostile_stream()
HOSTILE_CLEAN = run(hostile_stream())


@settings(max_examples=300, deadline=None)
@given(st.data(), HOSTILE_NUMBERS)
def test_any_hostile_sequence_number_loses_nothing(data: st.DataObject, seq: int) -> None:
    events = hostile_stream()
    at = data.draw(st.integers(0, len(events) - 1))
    events[at]["sequence_number"] = seq
    asm = Assembler()
    out = run(events, asm)
    assert len(implausible(out)) == 1
    assert texts_and_code(out) == texts_and_code(HOSTILE_CLEAN)
    assert_ends_once_last(out, ev.ResponseCompleted)
    assert asm.last_sequence_number is not None
    assert 0 <= asm.last_sequence_number < len(events)
    assert not [e for e in out if isinstance(e, ev.StreamError) and e.fatal]


@settings(max_examples=300, deadline=None)
@given(st.data(), HOSTILE_NUMBERS, st.sampled_from(INDEXES))
def test_any_hostile_index_is_reported_or_harmless(
    data: st.DataObject, value: int, field: str
) -> None:
    events = hostile_stream()
    carriers = [i for i, e in enumerate(events) if field in e]
    at = data.draw(st.sampled_from(carriers))
    events[at][field] = value
    out = run(events)
    codes = [e.code for e in out if isinstance(e, ev.StreamError)]
    if value < 0:
        # Refused; what followed for an item never added says so too.
        assert codes[0] == "invalid_event"
        assert set(codes) <= {"invalid_event", "unexpected_event"}
    else:
        assert "unprocessable_event" not in codes
    assert_ends_once_last(out, ev.ResponseCompleted)
    # The finished items are the truth: whatever the streamed events claimed, each item
    # completes once, with its own content; an event for an item never added is rebuilt
    # as one of its own, and said to be.
    completed, clean = Counter(texts_and_code(out)), Counter(texts_and_code(HOSTILE_CLEAN))
    assert clean - completed == Counter()
    if completed != clean:
        assert "unexpected_event" in codes


def test_an_item_added_under_another_index_completes_once() -> None:
    events = StreamBuilder().code_call("print(1)", logs="1\n").events()
    added = next(e for e in events if e["type"] == "response.output_item.added")
    added["output_index"] = 2**40
    out = run(events)
    assert [(e.output_index, e.code) for e in out if isinstance(e, ev.CodeCompleted)] == [
        (2**40, "print(1)")
    ]
    assert_ends_once_last(out, ev.ResponseCompleted)
