"""Recordings attacked as a hostile network would: a stream that opens with a BOM, strings
no JSON reader of respflow decodes, keys and secret-named fields in any spelling, frames
cut anywhere. No secret reaches the file; a frame with none is recorded byte for byte."""

from __future__ import annotations

import itertools
import json
import tempfile
from pathlib import Path

from hypothesis import example, given, settings
from hypothesis import strategies as st

import respflow
from respflow._sources.taps import TappedAssembler
from respflow.testing import StreamBuilder, to_sse

SECRET = "sk-proj-" + "E" * 24
PLAIN_HEADER = "opaque-header-value-42"  # not secret-shaped: only its place says it is one
BOM = b"\xef\xbb\xbf"


def spelled(word: str, escape: list[bool]) -> str:
    """``word`` inside a JSON string, the letters ``escape`` picks as \\u escapes."""
    return "".join(
        f"\\u{ord(ch):04x}" if escaped else ch
        for ch, escaped in zip(word, escape + [False] * len(word), strict=False)
    )


def created(instructions_key: str = "instructions", headers_key: str = "headers") -> bytes:
    response = (
        '{"id":"resp_atk","status":"in_progress",'
        f'"{instructions_key}":"use {SECRET}",'
        f'"tools":[{{"type":"mcp","{headers_key}":{{"X-Key":"{PLAIN_HEADER}"}}}}]}}'
    )
    data = '{"type":"response.created","sequence_number":0,"response":' + response + "}"
    return b"data: " + data.encode() + b"\n\n"


def record(wire: bytes, cuts: list[int]) -> tuple[bytes, list[str]]:
    """``wire`` fed to a recording assembler in the pieces ``cuts`` make: the file, and
    the recorder's failures."""
    with tempfile.TemporaryDirectory() as folder:
        recorder = respflow.Recorder(Path(folder) / "run.sse")
        asm = TappedAssembler(recorder.open())
        bounds = [0, *sorted(c % (len(wire) + 1) for c in cuts), len(wire)]
        for start, end in itertools.pairwise(bounds):
            asm.feed(wire[start:end])
        asm.close()
        path = Path(folder) / "run.sse"
        return (path.read_bytes() if path.exists() else b""), recorder.failures


def rest_of_a_response() -> bytes:
    return to_sse(StreamBuilder(response_id="resp_atk").message("fine", chunk=2).events()[1:])


@given(st.lists(st.integers(0, 10_000), max_size=3))
@example([1])
@example([3])
def test_a_stream_that_opens_with_a_bom_has_its_secrets_redacted(cuts: list[int]) -> None:
    # Every SSE reader drops the BOM a stream opens with, so the frame after it is
    # data to them; the recording looked for "data:" at the start of the line and
    # wrote the frame, secret and all, as it came.
    file, failures = record(BOM + created() + rest_of_a_response(), cuts)
    assert SECRET.encode() not in file
    assert PLAIN_HEADER.encode() not in file
    assert file.startswith(BOM)
    assert failures == []


def test_a_string_no_reader_decodes_does_not_stop_the_recording() -> None:
    # A lone surrogate (\ud800) is valid JSON text to some readers, not to msgspec: the
    # look for escaped keys decoded it and raised, and the recording gave up there.
    odd = b'data: {"type":"response.output_text.delta","delta":"\\ud800abcd","id":"\\u0061"}\n\n'
    wire = odd + created() + rest_of_a_response()
    file, failures = record(wire, [])
    assert failures == []
    assert file.startswith(odd)
    assert SECRET.encode() not in file
    assert b"response.completed" in file


@given(
    st.lists(st.booleans(), max_size=12),
    st.lists(st.booleans(), max_size=7),
    st.lists(st.integers(0, 10_000), max_size=3),
)
def test_secret_named_fields_in_any_spelling_are_redacted_wherever_the_cuts_fall(
    instructions: list[bool], headers: list[bool], cuts: list[int]
) -> None:
    frame = created(spelled("instructions", instructions), spelled("headers", headers))
    file, failures = record(frame + rest_of_a_response(), cuts)
    assert SECRET.encode() not in file
    assert PLAIN_HEADER.encode() not in file
    assert failures == []


words = st.sampled_from(
    ["response", "error", "type", '"response"', "respons\u0065", "\\u0065", "\ud800", "é", "]"]
)
texts = st.lists(words | st.text(max_size=6), max_size=8).map("".join)


@settings(max_examples=150)
@given(texts, st.booleans(), st.lists(st.integers(0, 10_000), max_size=3))
def test_frames_without_secrets_are_recorded_byte_for_byte(
    text: str, ascii_only: bool, cuts: list[int]
) -> None:
    delta = {"type": "response.output_text.delta", "delta": text, "sequence_number": 4}
    body = json.dumps(delta, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
    frame = b"event: response.output_text.delta\ndata: " + body + b"\n\n"
    wire = frame * 3
    file, failures = record(wire, cuts)
    assert file == wire
    assert failures == []


@given(
    st.sampled_from([b"\n", b"\r\n", b"\r"]),
    st.booleans(),
    st.lists(st.integers(0, 10_000), max_size=4),
)
def test_secrets_are_redacted_whatever_ends_the_lines(
    eol: bytes, bom: bool, cuts: list[int]
) -> None:
    frame = created().replace(b"\n", eol)
    wire = (BOM if bom else b"") + b": a comment" + eol + frame + rest_of_a_response()
    file, failures = record(wire, cuts)
    assert SECRET.encode() not in file
    assert PLAIN_HEADER.encode() not in file
    assert failures == []
