"""respflow against every real recorded stream in ``../shared/fixtures/external/``.

For each recording: replay raises nothing, every response gets exactly one end and it is
its last event, and (for recordings not marked SUSPECT) the rebuilt code interpreter calls
and messages equal the items the API itself reported in the recording's terminal event.
"""

from __future__ import annotations

from typing import Any

import pytest

import respflow
from respflow import Assembler, replay

from .external import ROOT, Recording, recordings, wire_events

RECORDINGS = recordings()
STREAMS = [r for r in RECORDINGS if r.kind == "stream"]
RESPONSES = [r for r in RECORDINGS if r.kind == "response"]

pytestmark = pytest.mark.skipif(not ROOT.exists(), reason="../shared/fixtures/external absent")

_TERMINAL_WIRE = ("response.completed", "response.incomplete", "response.failed")


def _responses(events: list[respflow.Event]) -> list[list[respflow.Event]]:
    """Split the events at each end; fails if anything follows the last end."""
    groups: list[list[respflow.Event]] = [[]]
    for event in events:
        groups[-1].append(event)
        if isinstance(event, respflow.END_TYPES):
            groups.append([])
    assert groups[-1] == [], f"events after the last end: {groups[-1][:3]}"
    return groups[:-1]


def _expected_message(item: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    text, annotations = "", []
    for part in item.get("content") or []:
        if part.get("type") != "output_text":
            continue
        for annotation in part.get("annotations") or []:
            shifted = dict(annotation)
            for key in ("start_index", "end_index", "index"):
                if isinstance(shifted.get(key), int):
                    shifted[key] += len(text)
            annotations.append(shifted)
        text += part["text"]
    return text, annotations


def _check_items(
    group: list[respflow.Event], output: list[dict[str, Any]], *, stable_ids: bool = True
) -> int:
    """Compare one response's completion events with the API's own items; returns checks."""
    # Matched by id where ids are stable; by position where they are not (trimmed
    # recordings shift positions, id-rotating servers change ids).
    code: dict[Any, respflow.CodeCompleted] = {}
    messages: dict[Any, respflow.MessageCompleted] = {}
    for event in group:
        if isinstance(event, respflow.CodeCompleted):
            code[event.item_id if stable_ids else event.output_index] = event
        elif isinstance(event, respflow.MessageCompleted):
            messages[event.item_id if stable_ids else event.output_index] = event
    checked = 0
    for index, item in enumerate(output):
        key = item.get("id") if stable_ids else index
        if item.get("type") == "code_interpreter_call":
            got = code[key]
            assert got.item_id == item["id"] or not stable_ids
            assert got.code == (item.get("code") or "")
            assert got.outputs == item.get("outputs")
            assert got.status == item["status"]
            assert got.container_id == item.get("container_id")
            checked += 1
        elif item.get("type") == "shell_call":
            got = code[key]
            assert got.tool == "shell"
            assert got.code == "\n".join(item["action"]["commands"])
            assert got.status == item["status"]
            checked += 1
        elif item.get("type") == "message":
            got_message = messages[key]
            text, annotations = _expected_message(item)
            assert got_message.item_id == item["id"] or not stable_ids
            assert got_message.text == text
            assert got_message.annotations == annotations
            assert got_message.status == item.get("status", "completed")
            checked += 1
    return checked


def _check_deltas(group: list[respflow.Event]) -> None:
    """What streamed adds up to what was finished (unless events were cut out)."""
    if any(isinstance(e, respflow.StreamGap) for e in group):
        return
    code: dict[int, str] = {}
    text: dict[tuple[int, int], str] = {}
    for event in group:
        if isinstance(event, respflow.CodeDelta):
            code[event.output_index] = code.get(event.output_index, "") + event.delta
        elif isinstance(event, respflow.CodeDone) and event.output_index in code:
            assert code[event.output_index] == event.code
        elif isinstance(event, respflow.TextDelta):
            key = (event.output_index, event.content_index)
            text[key] = text.get(key, "") + event.delta
        elif isinstance(event, respflow.TextDone) and text:
            assert text.get((event.output_index, event.content_index), "") == event.text


@pytest.mark.parametrize("recording", STREAMS, ids=lambda r: r.id)
def test_stream(recording: Recording) -> None:
    events = list(replay(recording.data))
    groups = _responses(events)
    wire = wire_events(recording)
    created = sum(1 for e in wire if e.get("type") == "response.created")
    assert len(groups) == max(created, 1)
    bugs = [
        e for e in events if isinstance(e, respflow.StreamError) and e.code == "unprocessable_event"
    ]
    assert bugs == []
    if recording.suspect:
        return
    # Real recordings decode cleanly: the only errors are the API's own error events.
    assert [e for e in events if isinstance(e, respflow.StreamError) and not e.fatal] == []
    terminals = [e["response"] for e in wire if e.get("type") in _TERMINAL_WIRE]
    ended = [g for g in groups if not isinstance(g[-1], respflow.StreamTruncated)]
    assert len(ended) == len(terminals)
    for group, response in zip(ended, terminals, strict=True):
        assert group[-1].status == response["status"]  # type: ignore[union-attr]
        stable = "id-rotation" not in recording.source
        _check_items(group, response.get("output") or [], stable_ids=stable)
        _check_deltas(group)


@pytest.mark.parametrize("recording", RESPONSES, ids=lambda r: r.id)
def test_non_streaming_response(recording: Recording) -> None:
    asm = Assembler()
    events = list(replay(recording.data, assembler=asm))
    (group,) = _responses(events)
    assert isinstance(group[0], respflow.ResponseStarted)
    if recording.suspect:
        return
    response = wire_events_of_response(recording)
    _check_items(group, response["output"])
    assert asm.output == response["output"]


def wire_events_of_response(recording: Recording) -> dict[str, Any]:
    import json

    body: dict[str, Any] = json.loads(recording.data)
    return body


def test_single_response_streams_rebuild_the_api_output() -> None:
    """The assembler's ``output`` is the terminal response's ``output``, item for item."""
    compared = 0
    for recording in STREAMS:
        if recording.suspect:
            continue
        wire = wire_events(recording)
        terminals = [e for e in wire if e.get("type") in _TERMINAL_WIRE]
        if len(terminals) != 1 or sum(e.get("type") == "response.created" for e in wire) != 1:
            continue
        if "id-rotation" in recording.source:
            continue  # see test_finding_ids_rotate
        asm = Assembler()
        list(replay(recording.data, assembler=asm))
        expected = terminals[0]["response"].get("output") or []
        assert len(asm.output) == len(expected), recording.id
        for got, want in zip(asm.output, expected, strict=True):
            if want.get("type") in ("code_interpreter_call", "message"):
                assert got == want, recording.id
                compared += 1
    assert compared >= 30


def test_finding_reasoning_is_reencrypted_at_the_end() -> None:
    """Real data: a reasoning item's ``encrypted_content`` in ``response.completed`` differs
    from the one in its ``output_item.done``, so items are compared only where the API is
    stable (code interpreter calls and messages); respflow reports the done item's."""
    (recording,) = [
        r
        for r in STREAMS
        if r.source.startswith(
            "pydantic__pydantic-ai/test_openai_responses_code_execution_download_file_stream"
        )
    ]
    wire = wire_events(recording)
    done = next(
        e["item"]
        for e in wire
        if e["type"] == "response.output_item.done" and e["item"]["type"] == "reasoning"
    )
    final = next(e for e in wire if e["type"] == "response.completed")["response"]["output"][0]
    assert done["id"] == final["id"]
    assert done["encrypted_content"] != final["encrypted_content"]


def test_corpus_covers_code_interpreter() -> None:
    """The corpus really exercises what matters: calls with logs, images, citations."""
    kinds: set[str] = set()
    for recording in STREAMS + RESPONSES:
        for event in replay(recording.data):
            kinds.add(event.__struct_config__.tag)  # type: ignore[arg-type]
    assert {
        "code.started",
        "code.delta",
        "code.logs",
        "code.image",
        "code.outputs_missing",
        "file.cited",
        "message.completed",
        "reasoning.delta",
        "item.completed",
        "response.failed",
        "stream.error",
    } <= kinds


def test_finding_ids_rotate_but_output_index_does_not() -> None:
    """Real data (GitHub Copilot's Responses endpoint): the response id and the item ids
    change on every event. respflow keys items by ``output_index`` and keeps the id an item
    was added with, so a consumer can match every delta to its completion."""
    (recording,) = [r for r in STREAMS if "id-rotation" in r.source]
    wire = wire_events(recording)
    text_ids = {e["item_id"] for e in wire if e["type"] == "response.output_text.delta"}
    assert len(text_ids) > 1
    events = list(replay(recording.data))
    deltas = [e for e in events if isinstance(e, respflow.TextDelta)]
    (message,) = [e for e in events if isinstance(e, respflow.MessageCompleted)]
    assert {d.item_id for d in deltas} == {message.item_id}
    assert "".join(d.delta for d in deltas) == message.text
    assert len({e.response_id for e in events}) == 1


def test_finding_error_event_nests_its_payload() -> None:
    """Real data: the ``error`` event carries ``error: {type, code, message, param}``, not the
    documented flat ``code``/``message``; then ``response.failed`` ends the response."""
    (recording,) = [r for r in STREAMS if r.source == "vercel__ai/openai-error.1.chunks.txt"]
    (error_event,) = [e for e in wire_events(recording) if e["type"] == "error"]
    assert "code" not in error_event
    assert isinstance(error_event["error"], dict)
    events = list(replay(recording.data))
    (error,) = [e for e in events if isinstance(e, respflow.StreamError)]
    assert error.fatal
    assert error.code == error_event["error"]["code"]
    assert error.message == error_event["error"]["message"]
    assert isinstance(events[-1], respflow.ResponseFailed)
