"""The assembler's contract, event type by event type."""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec
import pytest

import respflow
from respflow import Assembler, UsageError
from respflow import _events as ev
from respflow.testing import StreamBuilder, to_jsonl, to_sse

E = TypeVar("E", bound=ev.EventBase)

CSV_LINK = "sandbox:/mnt/data/rolls.csv"
ANSWER = f"Here is [the data]({CSV_LINK}) and the chart sandbox:/mnt/data/chart.png."
CITATION = {
    "type": "container_file_citation",
    "container_id": "cntr_1",
    "file_id": "cfile_1",
    "filename": "rolls.csv",
    "start_index": ANSWER.index(CSV_LINK),
    "end_index": ANSWER.index(CSV_LINK) + len(CSV_LINK),
}


def sample(**kwargs: Any) -> StreamBuilder:
    return (
        StreamBuilder(response_id="resp_1", **kwargs)
        .reasoning("thinking about dice")
        .code_call(
            "print(7)\r\nx = 1",
            logs="7\n",
            images=["data:image/png;base64,AAAA"],
            container_id="cntr_1",
        )
        .message(ANSWER, annotations=[CITATION])
    )


def run(events: list[dict[str, Any]], asm: Assembler | None = None) -> list[respflow.Event]:
    asm = asm or Assembler()
    out: list[respflow.Event] = []
    for event in events:
        out += asm.feed_event(event)
    return out + asm.close()


def only(events: list[respflow.Event], cls: type[E]) -> E:
    found = [e for e in events if isinstance(e, cls)]
    assert len(found) == 1, found
    return found[0]


def of(events: list[respflow.Event], cls: type[E]) -> list[E]:
    return [e for e in events if isinstance(e, cls)]


def test_a_whole_code_interpreter_turn() -> None:
    events = run(sample().events())
    started = only(events, ev.ResponseStarted)
    assert (started.response_id, started.model, started.background) == ("resp_1", "gpt-5", False)
    assert started.cursor == "0-0"
    assert started.sequence_number == 0

    code_started = only(events, ev.CodeStarted)
    assert (code_started.item_id, code_started.output_index) == ("ci_0001", 1)
    assert (code_started.container_id, code_started.tool) == ("cntr_1", "code_interpreter")
    assert "".join(d.delta for d in of(events, ev.CodeDelta)) == "print(7)\r\nx = 1"
    assert only(events, ev.CodeDone).code == "print(7)\r\nx = 1"
    assert only(events, ev.CodeInterpreting).item_id == "ci_0001"
    assert only(events, ev.CodeLogs).logs == "7\n"
    assert only(events, ev.CodeImage).url == "data:image/png;base64,AAAA"
    completed = only(events, ev.CodeCompleted)
    assert completed.status == "completed"
    assert completed.code == "print(7)\r\nx = 1"
    assert completed.container_id == "cntr_1"
    assert completed.outputs == [
        {"type": "image", "url": "data:image/png;base64,AAAA"},
        {"type": "logs", "logs": "7\n"},
    ]

    assert "".join(d.delta for d in of(events, ev.TextDelta)) == ANSWER
    assert only(events, ev.TextDone).text == ANSWER
    cited = only(events, ev.FileCited)
    assert (cited.kind, cited.container_id, cited.file_id, cited.filename) == (
        "container_file_citation",
        "cntr_1",
        "cfile_1",
        "rolls.csv",
    )
    assert ANSWER[cited.start_index : cited.end_index] == CSV_LINK
    link = only(events, ev.FileLink)
    assert link.path == "/mnt/data/chart.png"
    assert ANSWER[link.start_index : link.end_index] == "sandbox:/mnt/data/chart.png"
    assert link.container_id == "cntr_1"
    message = only(events, ev.MessageCompleted)
    assert (message.text, message.annotations, message.status) == (ANSWER, [CITATION], "completed")

    assert "".join(d.delta for d in of(events, ev.ReasoningDelta)) == "thinking about dice"
    assert only(events, ev.ReasoningDone).text == "thinking about dice"
    assert {(d.part, d.index, d.item_id) for d in of(events, ev.ReasoningDelta)} == {
        ("summary", 0, "rs_0000")
    }
    assert only(events, ev.ReasoningDone).part == "summary"
    reasoning = only(events, ev.ItemCompleted)
    assert (reasoning.item_type, reasoning.item_id, reasoning.output_index) == (
        "reasoning",
        "rs_0000",
        0,
    )

    end = events[-1]
    assert isinstance(end, ev.ResponseCompleted)
    assert end.status == "completed"
    assert end.usage == sample().response()["usage"]


def test_order_of_item_events() -> None:
    names = [
        type(e).__name__
        for e in run(sample().events())
        if not isinstance(e, (ev.CodeDelta, ev.TextDelta, ev.ReasoningDelta))
    ]
    assert names == [
        "ResponseStarted",
        "ReasoningDone",
        "ItemCompleted",
        "CodeStarted",
        "CodeDone",
        "CodeInterpreting",
        "CodeImage",
        "CodeLogs",
        "CodeCompleted",
        "FileCited",
        "TextDone",
        "FileLink",
        "MessageCompleted",
        "ResponseCompleted",
    ]


def test_file_cited_comes_the_moment_the_annotation_arrives() -> None:
    asm = Assembler()
    wire = sample().events()
    for event in wire:
        out = asm.feed_event(event)
        if event["type"] == "response.output_text.annotation.added":
            assert [type(e) for e in out] == [ev.FileCited]
            return
    pytest.fail("no annotation event")


def test_cursors_are_unique_and_ordered() -> None:
    events = run(sample().events())
    cursors = [respflow.parse_cursor(e.cursor) for e in events]
    assert cursors == sorted(cursors)
    assert len(set(cursors)) == len(cursors)
    assert all(e.sequence_number == respflow.parse_cursor(e.cursor)[0] for e in events)


def test_parse_cursor_rejects_garbage() -> None:
    with pytest.raises(ValueError, match="not a respflow cursor"):
        respflow.parse_cursor("abc")


def test_same_events_from_sse_jsonl_and_dicts_in_any_chunks() -> None:
    wire = sample().events()
    from_dicts = run(wire)
    body = to_sse(wire)
    asm = Assembler()
    from_bytes = []
    for i in range(0, len(body), 7):
        from_bytes += asm.feed(body[i : i + 7])
    from_bytes += asm.close()
    from_jsonl = list(respflow.replay(to_jsonl(wire)))
    assert from_bytes == from_dicts == from_jsonl


@pytest.mark.parametrize(
    ("builder", "reason"),
    [
        (StreamBuilder(include_outputs=False), "include_not_requested"),
        (StreamBuilder(background=True), "background_mode"),
        (StreamBuilder(), "empty"),
    ],
)
def test_outputs_missing_says_why(builder: StreamBuilder, reason: str) -> None:
    builder.code_call("x = 1")
    events = run(builder.events())
    missing = only(events, ev.CodeOutputsMissing)
    assert missing.reason == reason
    assert (missing.item_id, missing.output_index) == ("ci_0000", 0)
    if reason == "include_not_requested":
        assert 'include=["code_interpreter_call.outputs"]' in missing.hint
    assert only(events, ev.CodeCompleted).outputs == (
        None if reason == "include_not_requested" else []
    )


def test_background_stream_starts_queued() -> None:
    events = run(StreamBuilder(background=True).message("hi").events())
    assert only(events, ev.ResponseStarted).background is True
    assert isinstance(events[-1], ev.ResponseCompleted)


def test_duplicates_are_dropped_and_gaps_reported() -> None:
    wire = sample().events()
    asm = Assembler()
    # A resumed stream overlaps: events 0..20, then 15..end again, with 30..32 lost.
    replayed = wire[:21] + wire[15:30] + wire[33:]
    events = run(replayed, asm)
    gap = only(events, ev.StreamGap)
    assert (gap.expected, gap.received) == (30, 33)
    assert gap.sequence_number == 33
    assert gap.cursor == "33-0"
    assert asm.duplicates == 6
    assert isinstance(events[-1], ev.ResponseCompleted)


def test_starting_after_expects_the_next_event() -> None:
    wire = sample().events()
    events = run(wire[11:], Assembler(starting_after=10))
    assert of(events, ev.StreamGap) == []


def test_cut_off_stream_closes_open_items_with_what_arrived() -> None:
    wire = StreamBuilder(response_id="resp_cut").code_call("print('hello world')", chunk=3).events()
    cut = [e for e in wire if e["sequence_number"] <= 6]  # a few code deltas in
    asm = Assembler()
    events = run(cut, asm)
    completed = only(events, ev.CodeCompleted)
    assert completed.status == "incomplete"
    assert completed.code == "".join(d.delta for d in of(events, ev.CodeDelta)) == "print('he"
    end = events[-1]
    assert isinstance(end, ev.StreamTruncated)
    assert end.last_sequence_number == 6
    assert "only background responses can be resumed" in end.message
    assert asm.output == [
        {
            "id": "ci_0000",
            "type": "code_interpreter_call",
            "status": "incomplete",
            "code": "print('he",
            "container_id": "cntr_sample",
            "outputs": None,
        }
    ]


def test_cut_off_message_keeps_text_and_citations() -> None:
    wire = StreamBuilder().message(ANSWER, annotations=[CITATION]).events(end=None)
    # Stop right after the annotation, before text.done and the part's end.
    stop = next(
        i for i, e in enumerate(wire) if e["type"] == "response.output_text.annotation.added"
    )
    events = run(wire[: stop + 1])
    message = only(events, ev.MessageCompleted)
    assert (message.status, message.text, message.annotations) == ("incomplete", ANSWER, [CITATION])
    assert only(events, ev.FileLink).path == "/mnt/data/chart.png"
    assert isinstance(events[-1], ev.StreamTruncated)


def test_cut_off_background_stream_says_how_to_resume() -> None:
    wire = StreamBuilder(response_id="resp_bg", background=True).message("hello").events(end=None)
    end = run(wire)[-1]
    assert isinstance(end, ev.StreamTruncated)
    assert f"starting_after={len(wire) - 1}" in end.message
    assert "/v1/responses/resp_bg" in end.message


def test_terminal_completes_items_left_open_from_its_output() -> None:
    builder = StreamBuilder().code_call("x = 2", logs="2")
    wire = [e for e in builder.events() if e["type"] != "response.output_item.done"]
    events = run(wire)
    completed = only(events, ev.CodeCompleted)
    assert completed.status == "completed"
    assert completed.outputs == [{"type": "logs", "logs": "2"}]
    assert only(events, ev.CodeLogs).logs == "2"


def test_api_error_is_fatal_and_followed_by_failed() -> None:
    wire: list[dict[str, Any]] = [
        {
            "type": "response.created",
            "sequence_number": 0,
            "response": {"id": "resp_e", "status": "in_progress"},
        },
        {
            "type": "error",
            "sequence_number": 1,
            "error": {
                "type": "insufficient_quota",
                "code": "insufficient_quota",
                "message": "You exceeded your quota.",
            },
        },
        {
            "type": "response.failed",
            "sequence_number": 2,
            "response": {
                "id": "resp_e",
                "status": "failed",
                "error": {"code": "insufficient_quota", "message": "quota"},
            },
        },
    ]
    events = run(wire)
    error = only(events, ev.StreamError)
    assert (error.code, error.message, error.fatal) == (
        "insufficient_quota",
        "You exceeded your quota.",
        True,
    )
    end = events[-1]
    assert isinstance(end, ev.ResponseFailed)
    assert end.error == {"code": "insufficient_quota", "message": "quota"}
    assert end.status == "failed"


def test_flat_error_shape_then_truncated() -> None:
    wire: list[dict[str, Any]] = [
        {"type": "response.created", "sequence_number": 0, "response": {"id": "r"}},
        {
            "type": "error",
            "sequence_number": 1,
            "code": "server_error",
            "message": "boom",
            "param": None,
        },
    ]
    events = run(wire)
    error = only(events, ev.StreamError)
    assert (error.code, error.message, error.fatal) == ("server_error", "boom", True)
    end = events[-1]
    assert isinstance(end, ev.StreamTruncated)
    assert "after an API error" in end.message


def test_incomplete_response() -> None:
    builder = StreamBuilder().message("partial answ")
    wire = builder.events(end="incomplete")
    wire[-1]["response"]["incomplete_details"] = {"reason": "max_output_tokens"}
    end = run(wire)[-1]
    assert isinstance(end, ev.ResponseIncomplete)
    assert end.status == "incomplete"
    assert end.incomplete_details == {"reason": "max_output_tokens"}


def test_bad_frames_are_reported_and_the_stream_goes_on() -> None:
    wire = StreamBuilder().message("fine").events()
    bad = [
        b"data: {not json\n\n",
        b'data: {"type":"response.output_text.delta","delta":"\xff"}\n\n',
        b'data: {"type":"response.output_text.delta","delta":5}\n\n',
        b"data: [1]\n\n",
    ]
    body = to_sse(wire[:3]) + b"".join(bad) + to_sse(wire[3:])
    events = list(respflow.replay(body))
    errors = of(events, ev.StreamError)
    assert [(e.code, e.fatal) for e in errors] == [
        ("invalid_json", False),
        ("invalid_utf8", False),
        ("invalid_event", False),
        ("invalid_event", False),
    ]
    assert only(events, ev.MessageCompleted).text == "fine"
    assert isinstance(events[-1], ev.ResponseCompleted)


@pytest.mark.parametrize(
    "frame",
    [
        b'data: {"type":"response.output_text.delta","delta":"\xff"}\n\n',
        b'data: {"type":"response.output_text.delta\xc3","delta":"x"}\n\n',
        b'data: {"type":"response.brand_new","note":"\xed\xa0\x80"}\n\n',
        b'data: {"type":"response.output_text.delta","delta":5,"x":"\xff"}\n\n',
    ],
    ids=["in-a-field-read", "in-the-type", "in-an-unknown-event", "after-a-shape-error"],
)
def test_invalid_utf8_is_reported_as_such_whatever_msgspec_says(frame: bytes) -> None:
    # msgspec 0.23 reports bad UTF-8 as a DecodeError, earlier releases as UnicodeDecodeError;
    # the event contract must not move with it.
    wire = StreamBuilder().message("fine").events()
    events = list(respflow.replay(to_sse(wire[:3]) + frame + to_sse(wire[3:])))
    assert [e.code for e in of(events, ev.StreamError)] == ["invalid_utf8"]
    assert isinstance(events[-1], ev.ResponseCompleted)


def test_stream_cut_mid_event() -> None:
    body = to_sse(StreamBuilder().message("fine").events())
    events = list(respflow.replay(body[: body.rindex(b"data:") + 40]))
    assert of(events, ev.StreamError)[-1].code == "cut_off_event"
    assert isinstance(events[-1], ev.StreamTruncated)
    assert only(events, ev.MessageCompleted).text == "fine"


def test_oversized_frame_becomes_a_stream_error() -> None:
    wire = StreamBuilder().message("a" * 5000, chunk=5000).message("ok").events()
    asm = Assembler(max_frame_bytes=4096)
    events = asm.feed(to_sse(wire)) + asm.close()
    # The long text is in the delta, text.done, part.done, item.done and response.completed.
    errors = of(events, ev.StreamError)
    assert [(e.code, e.fatal) for e in errors] == [("frame_too_large", False)] * 5
    assert "max_frame_bytes" in errors[0].message
    ok, cut = of(events, ev.MessageCompleted)  # the cut one is closed at the end
    assert (ok.status, ok.text) == ("completed", "ok")
    assert (cut.status, cut.text, cut.output_index) == ("incomplete", "", 0)
    assert isinstance(events[-1], ev.StreamTruncated)


def test_unknown_event_and_unknown_item() -> None:
    wire: list[dict[str, Any]] = [
        {"type": "response.created", "sequence_number": 0, "response": {"id": "r"}},
        {"type": "response.teleport.delta", "sequence_number": 1, "delta": "zap"},
        {
            "type": "response.output_item.added",
            "sequence_number": 2,
            "output_index": 0,
            "item": {"id": "tp_1", "type": "teleport_call", "status": "in_progress"},
        },
        {
            "type": "response.output_item.done",
            "sequence_number": 3,
            "output_index": 0,
            "item": {"id": "tp_1", "type": "teleport_call", "status": "completed", "where": "moon"},
        },
        {
            "type": "response.completed",
            "sequence_number": 4,
            "response": {"id": "r", "status": "completed"},
        },
    ]
    events = run(wire)
    unknown = only(events, ev.Unknown)
    assert unknown.raw == wire[1]
    assert unknown.sequence_number == 1
    item = only(events, ev.ItemCompleted)
    assert (item.item_type, item.status, item.item) == (
        "teleport_call",
        "completed",
        wire[3]["item"],
    )


def test_legacy_dotted_code_events() -> None:
    wire: list[dict[str, Any]] = [
        {"type": "response.created", "sequence_number": 0, "response": {"id": "r"}},
        {
            "type": "response.output_item.added",
            "sequence_number": 1,
            "output_index": 0,
            "item": {
                "id": "ci",
                "type": "code_interpreter_call",
                "container_id": "c",
                "code": "",
                "outputs": None,
            },
        },
        {
            "type": "response.code_interpreter_call.code.delta",
            "sequence_number": 2,
            "output_index": 0,
            "item_id": "ci",
            "delta": "1+",
        },
        {
            "type": "response.code_interpreter_call.code.delta",
            "sequence_number": 3,
            "output_index": 0,
            "item_id": "ci",
            "delta": "1",
        },
        {
            "type": "response.code_interpreter_call.code.done",
            "sequence_number": 4,
            "output_index": 0,
            "item_id": "ci",
            "code": "1+1",
        },
    ]
    events = run(wire)
    assert [d.delta for d in of(events, ev.CodeDelta)] == ["1+", "1"]
    assert only(events, ev.CodeDone).code == "1+1"
    assert only(events, ev.CodeCompleted).code == "1+1"


def test_delta_for_an_item_never_added() -> None:
    wire: list[dict[str, Any]] = [
        {"type": "response.created", "sequence_number": 0, "response": {"id": "r"}},
        {
            "type": "response.code_interpreter_call_code.delta",
            "sequence_number": 1,
            "output_index": 0,
            "item_id": "ci",
            "delta": "x",
        },
    ]
    events = run(wire)
    error = only(events, ev.StreamError)
    assert error.code == "unexpected_event"
    assert not error.fatal
    assert only(events, ev.CodeStarted).item_id == "ci"
    assert only(events, ev.CodeCompleted).code == "x"


def test_several_responses_in_turn() -> None:
    first = StreamBuilder(response_id="resp_a").message("one").events()
    second = StreamBuilder(response_id="resp_b").message("two").events()
    events = run(first + second)
    ends = [e for e in events if isinstance(e, respflow.END_TYPES)]
    assert [(e.response_id, type(e)) for e in ends] == [
        ("resp_a", ev.ResponseCompleted),
        ("resp_b", ev.ResponseCompleted),
    ]
    assert [m.text for m in of(events, ev.MessageCompleted)] == ["one", "two"]


def test_a_new_response_before_the_end_truncates_the_first() -> None:
    first = StreamBuilder(response_id="resp_a").message("one").events(end=None)
    second = StreamBuilder(response_id="resp_b").message("two").events()
    events = run(first + second)
    ends = [e for e in events if isinstance(e, respflow.END_TYPES)]
    assert [(e.response_id, type(e)) for e in ends] == [
        ("resp_a", ev.StreamTruncated),
        ("resp_b", ev.ResponseCompleted),
    ]


def test_events_after_the_end_are_dropped() -> None:
    wire = StreamBuilder().message("one").events()
    late = {
        "type": "response.output_text.delta",
        "sequence_number": 99,
        "output_index": 0,
        "item_id": "msg_0000",
        "delta": "!",
    }
    asm = Assembler()
    events = run([*wire, late], asm)
    assert isinstance(events[-1], ev.ResponseCompleted)
    assert asm.ignored_after_end == 1


def test_non_streaming_response_yields_the_same_item_events() -> None:
    builder = sample()
    streamed = run(builder.events())
    asm = Assembler()
    finished = asm.feed_response(msgspec.json.encode(builder.response()))
    kinds = (
        ev.CodeLogs,
        ev.CodeImage,
        ev.CodeCompleted,
        ev.FileCited,
        ev.FileLink,
        ev.MessageCompleted,
        ev.ItemCompleted,
        ev.ResponseCompleted,
    )

    def strip(events: list[respflow.Event]) -> list[dict[str, Any]]:
        out = []
        for e in events:
            if isinstance(e, kinds):
                d = msgspec.to_builtins(e)
                del d["cursor"], d["sequence_number"]
                out.append(d)
        return out

    assert strip(finished) == strip(streamed)
    assert isinstance(finished[0], ev.ResponseStarted)
    assert asm.output == builder.response()["output"]
    assert asm.feed_response(builder.response())[-1] == finished[-1]


@pytest.mark.parametrize(
    ("status", "end"),
    [
        ("failed", ev.ResponseFailed),
        ("cancelled", ev.ResponseFailed),
        ("incomplete", ev.ResponseIncomplete),
        ("queued", ev.StreamTruncated),
    ],
)
def test_non_streaming_status_maps_to_an_end(status: str, end: type[ev.EventBase]) -> None:
    response = StreamBuilder().message("x").response(status=status)
    events = Assembler().feed_response(response)
    assert type(events[-1]) is end


def test_invalid_response_object() -> None:
    events = Assembler().feed_response(b"[]")
    assert only(events, ev.StreamError).code == "invalid_response"


def test_feed_after_close_is_a_usage_error() -> None:
    asm = Assembler()
    asm.close()
    assert asm.close() == []
    with pytest.raises(UsageError, match="create a new Assembler"):
        asm.feed(b"data: {}\n\n")


def test_empty_input_still_ends() -> None:
    (end,) = Assembler().close()
    assert isinstance(end, ev.StreamTruncated)
    assert end.last_sequence_number is None
    assert "before any event" in end.message


def test_events_encode_and_decode() -> None:
    for event in run(sample().events()):
        data = respflow.encode_event(event)
        assert data.startswith(b'{"type":"')
        assert respflow.decode_event(data) == event


def test_file_saved_and_failed_round_trip() -> None:
    """Produced by the file fetcher; the contract is fixed here."""
    saved = ev.FileSaved(
        response_id="r",
        sequence_number=3,
        cursor="3-1",
        container_id="c",
        file_id="f",
        filename="a.csv",
        location="/tmp/a.csv",
        size=3,
        sha256="ab",
        media_type="text/csv",
    )
    failed = ev.FileFailed(
        response_id="r",
        sequence_number=3,
        cursor="3-2",
        container_id="c",
        file_id="f",
        status=404,
        reason="container expired",
        hint="download sooner",
    )
    for event in (saved, failed):
        assert respflow.decode_event(respflow.encode_event(event)) == event
    assert msgspec.json.decode(respflow.encode_event(saved))["type"] == "file.saved"


def test_a_resumed_stream_may_start_inside_items_without_complaint() -> None:
    wire = sample().events()
    types = [w["type"] for w in wire]
    cut = types.index("response.code_interpreter_call_code.delta") + 1  # inside the code
    after = wire[cut - 1]["sequence_number"]
    resumed = Assembler(starting_after=after, response_id="resp_1")
    got = run(wire[cut:], resumed)
    assert not of(got, ev.StreamError)
    assert not of(got, ev.StreamGap)
    assert got[0].sequence_number == after + 1
    assert all(e.response_id == "resp_1" for e in got)
    # The same events with no cursor given are a stream that skipped its items' start.
    assert of(run(wire[cut:]), ev.StreamError)


def test_reconnected_drops_the_frame_the_old_connection_cut() -> None:
    body = to_sse(sample().events())
    whole = list(respflow.replay(body))
    frames = body.split(b"\n\n")
    head = b"\n\n".join(frames[:5]) + b"\n\n"
    asm = Assembler()
    got = asm.feed(head + frames[5][: len(frames[5]) // 2])  # cut inside frame 5
    asm.reconnected()
    got += asm.feed(b"\n\n".join(frames[5:]))  # the resumed stream sends frame 5 again
    got += asm.close()
    assert got == whole
    assert asm.duplicates == 0


def _shell_turn(environment: dict[str, Any], *, with_output: bool = True) -> list[dict[str, Any]]:
    """A hosted shell call of two commands, and (unless local) its streamed output."""
    created = {"id": "resp_sh", "status": "in_progress", "output": []}
    call = {"id": "sh_1", "type": "shell_call", "call_id": "call_1", "environment": environment}
    done_call = {
        **call,
        "status": "completed",
        "action": {"commands": ["ls /mnt/data", "cat notes.txt"]},
    }
    results = [
        {"stdout": "notes.txt\n", "stderr": "", "outcome": {"type": "exit", "exit_code": 0}},
        {"stdout": "hi\n", "stderr": "warn\n", "outcome": {"type": "exit", "exit_code": 0}},
    ]
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": created},
        {
            "type": "response.output_item.added",
            "output_index": 0,
            "item": {**call, "status": "in_progress"},
        },
        {
            "type": "response.shell_call_command.added",
            "output_index": 0,
            "command_index": 0,
            "command": "",
        },
        {
            "type": "response.shell_call_command.delta",
            "output_index": 0,
            "command_index": 0,
            "delta": "ls ",
        },
        {
            "type": "response.shell_call_command.delta",
            "output_index": 0,
            "command_index": 0,
            "delta": "/mnt/data",
        },
        {
            "type": "response.shell_call_command.done",
            "output_index": 0,
            "command_index": 0,
            "command": "ls /mnt/data",
        },
        {
            "type": "response.shell_call_command.added",
            "output_index": 0,
            "command_index": 1,
            "command": "",
        },
        {
            "type": "response.shell_call_command.delta",
            "output_index": 0,
            "command_index": 1,
            "delta": "cat notes.txt",
        },
        {"type": "response.output_item.done", "output_index": 0, "item": done_call},
    ]
    output_item = {"id": "sho_1", "type": "shell_call_output", "call_id": "call_1", "output": []}
    if with_output:
        events += [
            {"type": "response.output_item.added", "output_index": 1, "item": output_item},
            {
                "type": "response.shell_call_output_content.delta",
                "output_index": 1,
                "item_id": "sho_1",
                "command_index": 0,
                "delta": {"stdout": "notes.txt\n"},
            },
            {
                "type": "response.shell_call_output_content.done",
                "output_index": 1,
                "item_id": "sho_1",
                "command_index": 0,
                "output": results[:1],
            },
            {
                "type": "response.shell_call_output_content.delta",
                "output_index": 1,
                "item_id": "sho_1",
                "command_index": 1,
                "delta": {"stdout": "hi\n", "stderr": "warn\n"},
            },
            {
                "type": "response.shell_call_output_content.done",
                "output_index": 1,
                "item_id": "sho_1",
                "command_index": 1,
                "output": results[1:],
            },
            {
                "type": "response.output_item.done",
                "output_index": 1,
                "item": {**output_item, "status": "completed", "output": results},
            },
        ]
    for seq, event in enumerate(events):
        event["sequence_number"] = seq
    return events


def test_the_hosted_shell_maps_onto_code_events_with_live_output() -> None:
    wire = _shell_turn({"type": "container_reference", "container_id": "cntr_sh"})
    events = run(
        [
            *wire,
            {
                "type": "response.completed",
                "response": {"id": "resp_sh", "status": "completed"},
                "sequence_number": len(wire),
            },
        ]
    )
    started = only(events, ev.CodeStarted)
    assert (started.tool, started.container_id) == ("shell", "cntr_sh")
    deltas = "".join(e.delta for e in of(events, ev.CodeDelta))
    assert deltas == "ls /mnt/data\ncat notes.txt" == only(events, ev.CodeDone).code
    live = [(e.command_index, e.stream, e.delta) for e in of(events, ev.CodeOutput)]
    assert live == [(0, "stdout", "notes.txt\n"), (1, "stdout", "hi\n"), (1, "stderr", "warn\n")]
    assert [e.logs for e in of(events, ev.CodeLogs)] == ["notes.txt\n", "hi\nwarn\n"]
    completed = only(events, ev.CodeCompleted)
    assert completed.tool == "shell"
    assert completed.item_id == "sh_1"
    assert completed.outputs is not None
    assert [o["stdout"] for o in completed.outputs] == ["notes.txt\n", "hi\n"]
    types = [e.type for e in events]
    assert types.index("code.completed") > types.index("code.logs")  # waits for its output
    assert only(events, ev.ItemCompleted).item_type == "shell_call_output"


def test_a_local_shell_call_completes_at_once_and_a_cut_one_still_completes() -> None:
    local = run(_shell_turn({"type": "local"}, with_output=False))
    assert only(local, ev.CodeCompleted).outputs is None
    assert local[-1].type == "stream.truncated"
    cut = run(_shell_turn({"type": "container_auto"}, with_output=False))
    completed = only(cut, ev.CodeCompleted)  # never got its output: completed at the end
    assert (completed.outputs, completed.code) == (None, "ls /mnt/data\ncat notes.txt")
    assert [e.type for e in cut][-2:] == ["code.completed", "stream.truncated"]


def test_an_unreadable_frame_after_the_end_never_follows_it() -> None:
    asm = Assembler()
    body = to_sse(sample().events()) + b"data: {not json\n\n" + b"data: \xff\xfe\n\n"
    events = [*asm.feed(body), *asm.close()]
    assert events[-1].type == "response.completed"
    assert asm.ignored_after_end == 2
