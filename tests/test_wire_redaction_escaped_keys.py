"""A key the rules look for, written with JSON escapes: the secret in it is redacted.

``"respons\\u0065"`` is the key ``response`` to every JSON reader, and so to whatever
reads the recording back; the quick look for frames that may hold secrets only knew the
plain spelling, and such a frame went into the recording as it came.
"""

from __future__ import annotations

import itertools
import json
import tempfile
from pathlib import Path

from hypothesis import example, given
from hypothesis import strategies as st

import respflow
from respflow._delivery.wire_redaction import may_hold_secrets, redact_frame
from respflow._sources.taps import TappedAssembler
from respflow.testing import StreamBuilder, to_sse

SECRET = "sk-proj-" + "E" * 24


def spellings(word: str) -> st.SearchStrategy[str]:
    """``word`` as a JSON string's inside, each letter as it is or as a \\u escape
    (either case of hex digits)."""
    letters = [st.sampled_from([ch, f"\\u{ord(ch):04x}", f"\\u{ord(ch):04X}"]) for ch in word]
    return st.tuples(*letters).map("".join)


def created_frame(key: str) -> bytes:
    response = {"id": "resp_esc", "status": "in_progress", "instructions": f"use {SECRET}"}
    data = '{"type":"response.created","' + key + '":' + json.dumps(response) + "}"
    return b"event: response.created\ndata: " + data.encode() + b"\n\n"


def error_frame(type_key: str, error: str) -> bytes:
    data = (
        f'{{"{type_key}":"{error}","code":"upstream",'
        f'"message":"refused Authorization: Bearer {SECRET}","sequence_number":3}}'
    )
    return b"event: error\ndata: " + data.encode() + b"\n\n"


def recorded(frame: bytes, target: Path, cut: int) -> bytes:
    """``frame`` fed to a recording assembler in two chunks, then what it wrote."""
    asm = TappedAssembler(respflow.Recorder(target).open())
    for start, end in itertools.pairwise([0, cut % (len(frame) + 1), len(frame)]):
        asm.feed(frame[start:end])
    asm.close()
    return target.read_bytes()


@given(spellings("response"))
@example("respons\\u0065")
@example("\\u0072esponse")
def test_a_secret_in_a_response_key_spelled_with_escapes_is_redacted(key: str) -> None:
    frame = created_frame(key)
    assert may_hold_secrets(frame)
    redacted, rid = redact_frame(frame)
    assert SECRET.encode() not in redacted
    assert rid == "resp_esc"


@given(spellings("response"), st.integers(0, 10_000))
def test_the_recording_of_such_a_frame_holds_no_secret(key: str, cut: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        wire = created_frame(key) + to_sse(StreamBuilder(response_id="resp_esc").events()[1:])
        assert SECRET.encode() not in recorded(wire, Path(folder) / "run.sse", cut)


@given(spellings("type"), spellings("error"))
@example("type", "erro\\u0072")
def test_a_secret_in_an_error_event_spelled_with_escapes_is_redacted(
    type_key: str, error: str
) -> None:
    frame = error_frame(type_key, error)
    assert may_hold_secrets(frame)
    redacted, _ = redact_frame(frame)
    assert SECRET.encode() not in redacted


@given(spellings("response"), spellings("response"))
def test_a_response_written_twice_in_two_spellings_is_redacted_in_either(
    first: str, second: str
) -> None:
    holder = {"id": "resp_esc", "instructions": f"use {SECRET}"}
    plain = {"id": "resp_esc"}
    for one, other in ((holder, plain), (plain, holder)):
        data = (
            f'{{"type":"response.created","{first}":{json.dumps(one)},'
            f'"{second}":{json.dumps(other)}}}'
        )
        redacted, _ = redact_frame(b"data: " + data.encode() + b"\n\n")
        assert SECRET.encode() not in redacted


def test_text_that_only_mentions_the_word_escaped_is_no_reason_to_look() -> None:
    delta = {"type": "response.output_text.delta", "delta": 'say \\"respons\\u0065\\" \u00e9'}
    frame = b"data: " + json.dumps(delta).encode() + b"\n\n"
    assert not may_hold_secrets(frame)
