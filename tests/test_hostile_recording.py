"""Recordings that are broken, or that respflow wrote itself: replay says what is wrong,
ends every response once, and reads back its own JSONL as it was written."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import msgspec
import pytest

import respflow
from respflow import _events as ev
from respflow import detect_format, replay
from respflow._cli import main
from respflow.testing import Recording, StreamBuilder, to_jsonl, to_sse

WIRE = StreamBuilder().code_call("print(1)", logs="1\n").message("done").events()


def assert_ends_once_last(events: list[respflow.Event], end: type[ev.EventBase]) -> None:
    ends = [i for i, e in enumerate(events) if isinstance(e, respflow.END_TYPES)]
    assert ends == [len(events) - 1]
    assert isinstance(events[-1], end)


def items(events: list[respflow.Event]) -> list[tuple[str, Any]]:
    return [
        (e.type, getattr(e, "text", None) or getattr(e, "code", None))
        for e in events
        if isinstance(e, (ev.CodeCompleted, ev.MessageCompleted))
    ]


# -- 16. broken recordings ------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b'{"object": "response", "id": "resp_1", "output": "not a list"}',
        b'{"object": "response", "id": "resp_1", "status": 7, "output": []}',
    ],
)
def test_a_response_that_does_not_decode_is_reported_and_ended(body: bytes) -> None:
    events = list(replay(body))
    assert [e.code for e in events if isinstance(e, ev.StreamError)] == ["invalid_response"]
    assert_ends_once_last(events, ev.StreamTruncated)


@pytest.mark.parametrize("fmt", [None, "jsonl"])
def test_a_stray_bracket_before_jsonl_is_one_bad_line_not_an_exception(fmt: Any) -> None:
    body = b"[\n" + to_jsonl(WIRE)
    events = list(replay(body, format=fmt))
    errors = [e for e in events if isinstance(e, ev.StreamError)]
    assert [(e.code, e.fatal) for e in errors] == [("invalid_json", False)]
    assert items(events) == items(list(replay(to_jsonl(WIRE))))
    assert_ends_once_last(events, ev.ResponseCompleted)


# -- respflow's own JSONL replays as it was written ---------------------------------------------

SAMPLE = resources.files("respflow").joinpath("samples", "code_interpreter.sse").read_bytes()
SAMPLE_EVENTS = list(replay(SAMPLE))


def normalized_jsonl(events: list[respflow.Event]) -> bytes:
    return b"".join(respflow.encode_event(e) + b"\n" for e in events)


def assert_well_formed(events: list[respflow.Event]) -> None:
    """Per response: cursors unique and ordered, exactly one end, last."""
    by_response: dict[str, list[respflow.Event]] = {}
    for event in events:
        by_response.setdefault(event.response_id, []).append(event)
    for own in by_response.values():
        cursors = [respflow.parse_cursor(e.cursor) for e in own]
        assert cursors == sorted(set(cursors))
        assert_ends_once_last(own, ev.EventBase)


def test_format_jsonl_output_replays_to_the_same_events(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    recording = tmp_path / "run.sse"
    recording.write_bytes(SAMPLE)
    assert main(["replay", "--format", "jsonl", str(recording)]) == 0
    written = capsysbinary.readouterr().out
    assert detect_format(written) == "events"
    assert list(replay(written)) == SAMPLE_EVENTS
    out = tmp_path / "out.jsonl"
    out.write_bytes(written)
    assert main(["replay", "--format", "jsonl", str(out)]) == 0
    assert capsysbinary.readouterr().out == written


def test_a_jsonl_sink_file_replays_to_the_same_events(tmp_path: Path) -> None:
    recording = tmp_path / "run.sse"
    recording.write_bytes(SAMPLE)
    sink = tmp_path / "sink.jsonl"
    assert main(["replay", "--sink", f"jsonl:{sink}", str(recording)]) == 0
    assert list(replay(sink.read_bytes())) == SAMPLE_EVENTS
    # The sink appends: a second run adds the same response again, and each event still
    # comes back once.
    assert main(["replay", "--sink", f"jsonl:{sink}", str(recording)]) == 0
    assert list(replay(sink.read_bytes())) == SAMPLE_EVENTS


def test_cli_replay_of_its_own_jsonl_prints_what_the_run_printed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recording = tmp_path / "run.sse"
    recording.write_bytes(SAMPLE)
    out = tmp_path / "out.jsonl"
    out.write_bytes(normalized_jsonl(SAMPLE_EVENTS))
    assert main(["replay", str(recording)]) == 0
    original = capsys.readouterr().out
    assert main(["replay", str(out)]) == 0
    assert capsys.readouterr().out == original
    assert "unknown event" not in original


def test_a_bad_line_is_reported_in_place_and_cursors_stay_unique() -> None:
    lines = normalized_jsonl(SAMPLE_EVENTS).splitlines(keepends=True)
    lines.insert(5, b'{"type": "code.delta", "response_id": "resp_x"}\n')
    lines.insert(3, b"not json at all\n")
    events = list(replay(b"".join(lines)))
    errors = [e for e in events if isinstance(e, ev.StreamError)]
    assert [e.code for e in errors] == ["invalid_json", "invalid_event"]
    assert all(not e.fatal for e in errors)
    assert "line 4" in errors[0].message
    assert "line 7" in errors[1].message
    assert [e for e in events if not isinstance(e, ev.StreamError)] == [
        msgspec.structs.replace(e, cursor=got.cursor)
        for e, got in zip(
            SAMPLE_EVENTS, [e for e in events if not isinstance(e, ev.StreamError)], strict=True
        )
    ]
    assert_well_formed(events)


def test_a_jsonl_cut_before_its_end_is_ended() -> None:
    events = list(replay(normalized_jsonl(SAMPLE_EVENTS[:20])))
    assert events[:20] == SAMPLE_EVENTS[:20]
    (end,) = events[20:]
    assert isinstance(end, ev.StreamTruncated)
    assert end.response_id == SAMPLE_EVENTS[0].response_id
    assert end.last_sequence_number == SAMPLE_EVENTS[19].sequence_number
    assert "recording" in end.message
    assert_well_formed(events)


def test_events_after_an_end_or_repeated_are_dropped() -> None:
    body = normalized_jsonl([*SAMPLE_EVENTS[:10], *SAMPLE_EVENTS[5:], SAMPLE_EVENTS[3]])
    assert list(replay(body)) == SAMPLE_EVENTS


def test_two_responses_interleaved_each_end_once() -> None:
    other = [msgspec.structs.replace(e, response_id="resp_other") for e in SAMPLE_EVENTS]
    mixed = [e for pair in zip(SAMPLE_EVENTS, other, strict=True) for e in pair]
    events = list(replay(normalized_jsonl(mixed[:-1])))
    assert_well_formed(events)
    ends = [type(e) for e in events if isinstance(e, respflow.END_TYPES)]
    assert sorted(t.__name__ for t in ends) == ["ResponseCompleted", "StreamTruncated"]


def test_a_deep_line_in_respflows_jsonl_is_skipped() -> None:
    lines = normalized_jsonl(SAMPLE_EVENTS).splitlines(keepends=True)
    deep = b'{"type":"unknown","response_id":"r","sequence_number":1,"cursor":"1-9","raw":{"a":'
    lines.insert(4, deep + b"[" * 1000 + b"]" * 1000 + b"}}\n")
    events = list(replay(b"".join(lines)))
    assert [e.code for e in events if isinstance(e, ev.StreamError)] == ["too_deeply_nested"]
    assert_well_formed(events)


# -- the mock's recordings read what replay reads ---------------------------------------------


def test_a_mock_recording_survives_a_deeply_nested_event() -> None:
    wire = StreamBuilder().message("fine").events()
    deep = b'{"type":"response.brand_new","x":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    body = to_sse(wire[:2]) + b"data: " + deep + b"\n\n" + to_sse(wire[2:])
    recording = Recording.from_bytes(body)
    assert len(recording.events) == len(wire) + 1
    assert recording.in_background().response_id == recording.response_id


def test_a_mock_recording_is_not_made_of_respflows_own_events() -> None:
    events = list(respflow.replay(to_sse(StreamBuilder().message("fine").events())))
    own = b"".join(respflow.encode_event(e) + b"\n" for e in events)
    with pytest.raises(respflow.RecordingError, match="respflow replay"):
        Recording.from_bytes(own)


def test_a_mock_recording_with_a_stray_bracket_line_keeps_the_rest() -> None:
    lines = to_jsonl(StreamBuilder().message("fine").events())
    recording = Recording.from_bytes(b"[\n" + lines)
    assert len(recording.events) == len(lines.splitlines()) + 1
