"""The recorder: what it writes is the wire, byte for byte, but the secrets; it replays to
the events the live stream gave; it never fails the stream it records."""

from __future__ import annotations

import itertools
import json
from importlib import resources
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import respflow
from respflow._files.names import response_folder
from respflow._sources.taps import TappedAssembler
from respflow.testing import MockServer, Recording, StreamBuilder, to_sse

from .external import ROOT, recordings

SAMPLES = resources.files("respflow").joinpath("samples")
SAMPLE = SAMPLES.joinpath("code_interpreter.sse").read_bytes()
FILES = Path(str(SAMPLES.joinpath("files")))

SECRETS = {
    "mcp_token": "ya29.a0AfB_mcp-oauth-token",
    "header": "Bearer-less-tenant-key-123",
    "domain": "domain-secret-value-456",
    "metadata": "metadata-secret-789",
    "instructions": "sk-proj-instructionsKEY0123456789",
    "url_token": "urltoken0123",
    "url_password": "hunter2",
    "variable": "prompt-variable-secret",
    "error": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl",
}


def _with_secrets(builder: StreamBuilder) -> list[dict[str, Any]]:
    """A stream whose request settings (echoed in every response object) carry secrets,
    and whose answer repeats a key: what the model wrote is not touched."""
    builder.message("Your key sk-proj-modelSaidThis0123456789 is set.")
    events = builder.events()
    settings_ = {
        "instructions": f"Call the API with {SECRETS['instructions']} when asked.",
        "metadata": {"api_key": SECRETS["metadata"], "team": "billing", "prompt_cache": "x"},
        "prompt_cache_key": "tenant-7-cache",
        "safety_identifier": "user-hash-1f2e",
        "prompt": {
            "id": "pmpt_1",
            "variables": {"auth_token": SECRETS["variable"], "city": "Oslo"},
        },
        "tools": [
            {
                "type": "mcp",
                "server_label": "crm",
                "server_url": (
                    f"https://svc:{SECRETS['url_password']}@mcp.example.com/sse"
                    f"?token={SECRETS['url_token']}&region=eu"
                ),
                "authorization": SECRETS["mcp_token"],
                "headers": {"X-Tenant-Key": SECRETS["header"]},
            },
            {
                "type": "code_interpreter",
                "container": {
                    "type": "auto",
                    "network_policy": {
                        "type": "allowlist",
                        "allowed_domains": ["api.example.com"],
                        "domain_secrets": [
                            {
                                "domain": "api.example.com",
                                "name": "API_KEY",
                                "value": SECRETS["domain"],
                            }
                        ],
                    },
                },
            },
            {
                "type": "function",
                "name": "login",
                "parameters": {
                    "type": "object",
                    "properties": {"password": {"type": "string", "description": "the password"}},
                    "required": ["password"],
                },
            },
        ],
    }
    for event in events:
        if isinstance(event.get("response"), dict):
            event["response"].update(settings_)
    error = {
        "type": "error",
        "code": "upstream",
        "message": f"MCP server refused Authorization: Bearer {SECRETS['error']}",
        "param": None,
        "sequence_number": events[-1]["sequence_number"] + 1,
    }
    return [*events[:-1], error, events[-1]]


def _record(data: bytes, target: Path, cuts: list[int] | None = None) -> list[respflow.Event]:
    """Feed ``data`` to a recording assembler, cut at ``cuts``; the events it gave."""
    asm = TappedAssembler(respflow.Recorder(target).open())
    bounds = [0, *sorted(cuts or []), len(data)]
    events: list[respflow.Event] = []
    for start, end in itertools.pairwise(bounds):
        events += asm.feed(data[start:end])
    return events + asm.close()


def test_secrets_are_replaced_and_no_other_byte_changes(tmp_path: Path) -> None:
    wire = to_sse(_with_secrets(StreamBuilder(response_id="resp_secret")))
    events = _record(wire, tmp_path / "run.sse")
    recorded = (tmp_path / "run.sse").read_bytes()

    for name, secret in SECRETS.items():
        assert secret.encode() not in recorded, name
    # Exactly those values became "[redacted]": the rest is the wire, byte for byte.
    expected = wire
    for secret in SECRETS.values():
        expected = expected.replace(secret.encode(), b"[redacted]")
    expected = expected.replace(b"svc:[redacted]@", b"[redacted]@")  # userinfo goes whole
    assert recorded == expected
    # What is no credential stays: the model's words, cache key, end-user id, other metadata.
    for kept in (
        b"sk-proj-modelSaidThis0123456789",
        b'"prompt_cache_key":"tenant-7-cache"',
        b'"safety_identifier":"user-hash-1f2e"',
        b'"team":"billing"',
        b'"city":"Oslo"',
        b'"name":"API_KEY"',
        b'"properties":{"password":{"type":"string","description":"the password"}}',
        b"region=eu",
    ):
        assert recorded.count(kept) == wire.count(kept) > 0, kept
    # It replays to the events the live stream gave, but the error's secret.
    replayed = list(respflow.replay(recorded))
    assert len(replayed) == len(events)
    for live, again in zip(events, replayed, strict=True):
        if isinstance(live, respflow.StreamError):
            assert again == respflow.StreamError(
                **{**_fields(live), "message": live.message.replace(SECRETS["error"], "[redacted]")}
            )
        else:
            assert again == live


def _fields(event: respflow.Event) -> dict[str, Any]:
    return {f: getattr(event, f) for f in event.__struct_fields__}


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_any_chunking_records_the_same_bytes_and_replays_to_the_live_events(
    tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    line_end = data.draw(st.sampled_from([b"\n", b"\r\n", b"\r"]), label="line end")
    wire = data.draw(
        st.sampled_from(
            [SAMPLE, to_sse(_with_secrets(StreamBuilder(response_id="resp_p")))],
        ),
        label="stream",
    ).replace(b"\n", line_end)
    cuts = data.draw(st.lists(st.integers(0, len(wire)), max_size=40), label="cuts")
    folder = tmp_path_factory.mktemp("chunked")
    live = _record(wire, folder / "run.sse", cuts)
    whole = tmp_path_factory.mktemp("whole")
    _record(wire, whole / "run.sse")

    recorded = (folder / "run.sse").read_bytes()
    assert recorded == (whole / "run.sse").read_bytes()  # a secret split across reads is found
    replayed = list(respflow.replay(recorded))
    if b"resp_sample_dice" in wire:  # no secret in it: the wire itself, the same events
        assert recorded == wire
        assert replayed == live
    else:
        assert b"[redacted]" in recorded
        assert [type(e) for e in replayed] == [type(e) for e in live]


@pytest.mark.skipif(not ROOT.exists(), reason="../shared/fixtures/external absent")
def test_real_recordings_pass_through_byte_for_byte(tmp_path: Path) -> None:
    streams = [
        r for r in recordings() if r.kind == "stream" and respflow.detect_format(r.data) == "sse"
    ]
    assert streams
    for number, recording in enumerate(streams):
        target = tmp_path / f"{number}.sse"
        live = _record(recording.data, target, list(range(0, len(recording.data), 977)))
        assert target.read_bytes() == recording.data, recording.source
        assert list(respflow.replay(target.read_bytes())) == live, recording.source


def test_a_frame_that_does_not_decode_is_recorded_as_it_came(tmp_path: Path) -> None:
    wire = SAMPLE.replace(
        b'"type":"response.in_progress"', b'"type":"response.in_progress"\xff,,', 1
    )
    cut = wire[: wire.index(b"event: response.output_item.added") + 60]  # ends inside a frame
    live = _record(cut, tmp_path / "run.sse", [17, 400])
    recorded = (tmp_path / "run.sse").read_bytes()
    assert recorded == cut
    assert list(respflow.replay(recorded)) == live
    assert any(isinstance(e, respflow.StreamError) and e.code == "invalid_utf8" for e in live)
    assert isinstance(live[-1], respflow.StreamTruncated)


def test_a_folder_gets_one_file_per_response_named_safely(tmp_path: Path) -> None:
    folder = tmp_path / "incidents"
    recorder = respflow.Recorder(f"{folder}/")
    hostile = to_sse(StreamBuilder(response_id="../../escape").message("hi").events())
    for wire in (SAMPLE, SAMPLE, hostile):
        asm = TappedAssembler(recorder.open())
        asm.feed(wire)
        asm.close()
    names = sorted(p.name for p in folder.iterdir())
    # An id that had to be made safe gets a hash of itself: no other id gets its name.
    escaped = f"{response_folder('../../escape')}.sse"
    assert escaped.startswith("escape~")
    assert names == [escaped, "resp_sample_dice (2).sse", "resp_sample_dice.sse"]
    assert recorder.files == [folder / n for n in (names[2], names[1], names[0])]
    assert not (tmp_path / "escape.sse").exists()
    assert (folder / "resp_sample_dice (2).sse").read_bytes() == SAMPLE


def test_a_file_gets_responses_that_ran_at_once_each_whole(tmp_path: Path) -> None:
    recorder = respflow.Recorder(tmp_path / "all.sse")
    other = SAMPLE.replace(b"resp_sample_dice", b"resp_other")
    first, second = TappedAssembler(recorder.open()), TappedAssembler(recorder.open())
    for start in range(0, len(SAMPLE), 1000):  # both streams arrive at the same time
        first.feed(SAMPLE[start : start + 1000])
        second.feed(other[start : start + 1000])
    second.close()
    first.close()
    assert (tmp_path / "all.sse").read_bytes() == other + SAMPLE
    ends = [e for e in respflow.replay(other + SAMPLE) if isinstance(e, respflow.ResponseCompleted)]
    assert [e.response_id for e in ends] == ["resp_other", "resp_sample_dice"]


def test_a_recording_that_cannot_be_written_never_fails_the_stream(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    recorder = respflow.Recorder(blocker / "run.sse")
    events = list(respflow.replay(SAMPLE))
    asm = TappedAssembler(recorder.open())
    assert asm.feed(SAMPLE) + asm.close() == events
    assert len(recorder.failures) == 1
    assert "recording to" in recorder.failures[0]
    assert "a-file" in recorder.failures[0]


@pytest.mark.anyio
async def test_a_resumed_background_stream_is_recorded_once_whole(tmp_path: Path) -> None:
    recording = Recording.from_bytes(SAMPLE)
    recorder = respflow.Recorder(tmp_path / "bg.sse")
    async with MockServer(recording, files=FILES, cut_after=7, max_cuts=2) as mock:
        client = openai.AsyncOpenAI(base_url=mock.openai_base_url, api_key=mock.openai_api_key)
        reconnect = respflow.Reconnect(initial_delay=0.01)
        async with (
            client,
            respflow.stream(
                client,
                model="gpt-5",
                input="x",
                background=True,
                record=recorder,
                reconnect=reconnect,
            ) as events,
        ):
            live = [event async for event in events]
        assert mock.cuts == 2
    recorded = (tmp_path / "bg.sse").read_bytes()
    assert recorded == recording.in_background().to_sse()
    assert list(respflow.replay(recorded)) == live


@pytest.mark.anyio
async def test_leaving_a_stream_early_keeps_what_arrived(tmp_path: Path) -> None:
    async def chunks() -> Any:
        for start in range(0, len(SAMPLE), 512):
            yield SAMPLE[start : start + 512]

    recorder = respflow.Recorder(tmp_path / "early.sse")
    source = chunks()
    events = respflow.aiter_events(source, record=recorder)
    async for event in events:
        if isinstance(event, respflow.CodeDelta):
            break
    await events.aclose()  # type: ignore[attr-defined]
    await source.aclose()
    recorded = (tmp_path / "early.sse").read_bytes()
    assert recorded
    assert SAMPLE.startswith(recorded)


def test_json_of_a_secret_frame_still_parses(tmp_path: Path) -> None:
    wire = to_sse(_with_secrets(StreamBuilder(response_id="resp_json")))
    _record(wire, tmp_path / "run.sse")
    for frame in Recording.from_file(tmp_path / "run.sse").events:
        json.loads(frame.payload)


@pytest.mark.anyio
async def test_the_mock_serves_a_recording_byte_for_byte_whatever_its_framing() -> None:
    odd = b"\xef\xbb\xbf: recorded by a proxy\r\n\r\n" + SAMPLE.replace(b"\n", b"\r\n").replace(
        b"event: response.in_progress\r\n", b"id: 7\r\nevent: response.in_progress\r\n"
    )
    odd += b"data: [DONE]\r\n\r\n"
    recording = Recording.from_bytes(odd)
    assert recording.to_sse() == odd
    async with (
        MockServer(recording) as mock,
        httpx2.AsyncClient(base_url=mock.openai_base_url) as http,
    ):
        headers = {"authorization": f"Bearer {mock.openai_api_key}"}
        body = {"model": "gpt-5", "input": "x", "stream": True}
        answer = await http.post("/responses", json=body, headers=headers)
    assert answer.content == odd
    assert list(respflow.replay(answer.content)) == list(respflow.replay(SAMPLE))


def test_the_mock_server_refuses_a_file_of_several_responses_and_says_what_to_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from respflow._cli.main import main

    appended = tmp_path / "all.sse"
    appended.write_bytes(SAMPLE + SAMPLE.replace(b"resp_sample_dice", b"resp_other"))
    assert main(["mock-server", "--fixture", str(appended)]) == 1
    said = capsys.readouterr().err
    assert "holds 2 responses" in said
    assert "--record DIR/" in said
    assert len(said.splitlines()) == 1
