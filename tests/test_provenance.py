"""Which code call made each saved file, on the bundled sample and on real recordings.

Each recording is served by the mock Responses API (its cited files stand in as small
local files of the cited names) and run through the real file fetcher over loopback
HTTP; the producer each ``file.saved`` names is checked against what the recording's code
shows. The real recordings are read from ``../shared/fixtures/external/`` (skipped when
absent).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import msgspec
import openai
import pytest

import respflow
from respflow import FileSaved, LocalStorage
from respflow.testing import MockServer, Recording

from . import external

pytestmark = pytest.mark.anyio

SAMPLES = resources.files("respflow").joinpath("samples")
SAMPLE = SAMPLES.joinpath("code_interpreter.sse").read_bytes()
FILES = Path(str(SAMPLES.joinpath("files")))


async def _fetched(
    data: bytes, files: Path, storage: Path
) -> tuple[list[FileSaved], dict[str, str]]:
    """The files a recording's run saves, and its code calls (item id -> code)."""
    recording = Recording.from_bytes(data)
    async with (
        MockServer(recording, files=files) as mock,
        openai.AsyncOpenAI(
            base_url=mock.openai_base_url, api_key=mock.openai_api_key, max_retries=0
        ) as client,
        respflow.stream(client, model="m", input="x") as events,
        respflow.fetch_files(events, client, LocalStorage(storage)) as out,
    ):
        got = [event async for event in out]
    saved = [e for e in got if isinstance(e, FileSaved)]
    calls = {e.item_id: e.code for e in got if isinstance(e, respflow.CodeCompleted)}
    return saved, calls


async def test_the_sample_says_which_call_made_each_file(tmp_path: Path) -> None:
    saved, calls = await _fetched(SAMPLE, FILES, tmp_path)
    assert list(calls) == ["ci_0001"]
    by_how = {e.resolved_by: e for e in saved}
    assert set(by_how) == {"citation", "link", "image"}
    csv, chart, image = by_how["citation"], by_how["link"], by_how["image"]
    # rolls.to_csv("/mnt/data/dice_rolls.csv"), cited by the answer
    assert (csv.filename, csv.produced_by, csv.provenance) == (
        "dice_rolls.csv",
        "ci_0001",
        "code_names_path",
    )
    assert csv.cited_by == "msg_0002"
    # plt.savefig("/mnt/data/dice_chart.png"), linked without an annotation
    assert (chart.produced_by, chart.provenance, chart.cited_by) == (
        "ci_0001",
        "code_names_path",
        "msg_0002",
    )
    # the figure plt.show() displayed: the call's own image output
    assert (image.produced_by, image.provenance, image.cited_by) == (
        "ci_0001",
        "image_output",
        None,
    )


# What each real recording that cites container files shows: for a cited name (a
# "cfile_" name is an image the code showed, cited under its file id), a piece of the
# code of the call that made it, and how that is known.
EXPECTED: dict[str, list[tuple[str, str, str]]] = {
    # outputs were not requested: no image output to go by, so the plotting call, the
    # last in the container before the answer
    "openai__openai-dotnet/CodeInterpreterToolStreamingWithFiles.json#1": [
        ("cfile_", "plt.show()", "last_call_in_container"),
    ],
    "openai__openai-dotnet/CodeInterpreterToolStreamingWithFilesAsync.json#1": [
        ("cfile_", "plt.show()", "last_call_in_container"),
    ],
    "openai__openai-dotnet/CodeInterpreterToolWithEmptyFileIds.json": [
        ("matplotlib_debug.log", "logging.basicConfig", "code_names_path"),
        ("sine_wave_chart.png", "plt.savefig('/mnt/data/sine_wave_chart.png')", "code_names_path"),
    ],
    "openai__openai-dotnet/CodeInterpreterToolWithEmptyFileIdsAsync.json": [
        ("sine_wave_chart.png", "plt_path = '/mnt/data/sine_wave_chart.png'", "code_names_path"),
        ("debug_log.txt", "logging.basicConfig", "code_names_path"),
    ],
    # a later call runs an uploaded script: the latest call is not the one that made it
    "openai__openai-dotnet/CodeInterpreterToolWithUploadedFileIds.json#2": [
        ("ages_bar_chart.png", "plt_path = '/mnt/data/ages_bar_chart.png'", "code_names_path"),
    ],
    # cited between the plotting call and two later ones, which it must not name
    "openai__openai-dotnet/CodeInterpreterToolWithUploadedFileIdsAsync.json#2": [
        ("cfile_", "plt.tight_layout()", "last_call_in_container"),
    ],
    "pydantic__pydantic-ai/test_openai_responses_code_execution_download_file.yaml#0": [
        ("numbers_and_squares.csv", "numbers_and_squares.csv", "code_names_path"),
    ],
    "pydantic__pydantic-ai/test_openai_responses_code_execution_download_file_stream.yaml#0": [
        ("numbers_and_squares.csv", "numbers_and_squares.csv", "code_names_path"),
    ],
    "pydantic__pydantic-ai/test_openai_responses_code_execution_return_image.yaml#0": [
        ("cfile_", "y_equals_x_squared.png", "image_output"),
        ("y_equals_x_squared.png", "y_equals_x_squared.png", "code_names_path"),
    ],
    "pydantic__pydantic-ai/test_openai_responses_code_execution_return_image.yaml#1": [
        ("cfile_", "neon", "image_output"),
        ("y_equals_x_squared_futuristic.png", "neon", "code_names_path"),
    ],
    "pydantic__pydantic-ai/test_openai_responses_code_execution_return_image_stream.yaml": [
        ("cfile_", "y_eq_x_squared_plot.png", "image_output"),
        (
            "y_eq_x_squared_plot.png",
            "out_path = '/mnt/data/y_eq_x_squared_plot.png'",
            "code_names_path",
        ),
    ],
    # the first call only rolled the dice; the second wrote the CSV
    "vercel__ai/openai-code-interpreter-tool.1.chunks.txt": [
        ("roll2dice_sums_10000.csv", "csv.writer", "code_names_path"),
    ],
    # two calls write the file (the first fails after writing it): the latest one
    "vercel__ai/openai-code-interpreter-tool.1.json": [
        ("two_dice_sums_10000.txt", "import os", "code_names_path"),
    ],
}


def _citations(recording: external.Recording) -> list[respflow.FileCited]:
    if recording.kind == "response":
        events = respflow.replay(recording.data, format="response")
    else:
        events = respflow.replay(recording.data)
    return [
        e
        for e in events
        if isinstance(e, respflow.FileCited) and e.kind == "container_file_citation"
    ]


CITING = [r for r in external.recordings() if not r.suspect and _citations(r)]


def test_every_real_recording_that_cites_files_is_checked() -> None:
    if not external.ROOT.exists():
        pytest.skip("the shared fixtures are not here (../shared/fixtures/external)")
    assert {r.source for r in CITING} == set(EXPECTED)


@pytest.mark.parametrize("recording", CITING, ids=lambda r: r.source)
async def test_real_recordings_name_the_call_that_made_each_file(
    recording: external.Recording, tmp_path: Path
) -> None:
    cited = {e.filename or e.file_id for e in _citations(recording)}
    files = tmp_path / "container"
    files.mkdir()
    for name in cited:
        (files / name).write_bytes(f"stands in for {name}\n".encode())
    saved, calls = await _fetched(recording.data, files, tmp_path / "saved")

    shown = [e for e in saved if e.resolved_by == "image"]
    for image in shown:  # what the code showed, saved from its data URL
        assert image.produced_by in calls
        assert image.provenance == "image_output"
    saved = [e for e in saved if e.resolved_by != "image"]
    assert len(saved) == len(cited)
    for name, code, how in EXPECTED[recording.source]:
        [event] = [e for e in saved if e.filename.startswith(name)]
        assert event.produced_by in calls, f"{name}: made by {event.produced_by}"
        assert code in calls[event.produced_by], f"{name}: made by the wrong call"
        assert event.provenance == how, name
        assert event.cited_by is not None


def test_a_file_event_from_before_provenance_still_decodes() -> None:
    old = (
        b'{"type":"file.saved","response_id":"r","sequence_number":3,"cursor":"3-1",'
        b'"container_id":"c","file_id":"f","filename":"a.csv","location":"/tmp/a.csv",'
        b'"size":3,"sha256":"ab","media_type":"text/csv","resolved_by":"citation"}'
    )
    saved = respflow.decode_event(old)
    assert isinstance(saved, FileSaved)
    assert (saved.produced_by, saved.provenance, saved.cited_by) == (None, "unknown", None)
    assert respflow.decode_event(respflow.encode_event(saved)) == saved


def test_ui_protocols_attach_a_file_to_the_call_that_made_it() -> None:
    writer = respflow.CodeCompleted(
        response_id="r",
        sequence_number=1,
        cursor="1-0",
        item_id="ci_1",
        output_index=0,
        status="completed",
        code="df.to_csv('/mnt/data/a.csv')",
        outputs=[],
        container_id="cntr",
    )
    later = msgspec.structs.replace(
        writer, cursor="1-1", item_id="ci_2", output_index=1, code="print(1)"
    )
    saved = FileSaved(
        response_id="r",
        sequence_number=1,
        cursor="1-2",
        container_id="cntr",
        file_id="cfile_1",
        filename="a.csv",
        location="/files/r/a.csv",
        size=1,
        sha256="00",
        url="/files/r/a.csv",
        produced_by="ci_1",
        provenance="code_names_path",
    )
    encoder = respflow.VercelEncoder()
    chunks = [chunk for event in (writer, later, saved) for chunk in encoder.feed(event)]
    calls = {c["input"]["code"]: c["toolCallId"] for c in chunks if "input" in c}
    [file] = [c for c in chunks if c["type"] == "file"]
    # not the latest call in the container: the one whose code wrote it
    assert file["providerMetadata"]["respflow"]["toolCallId"] == calls[writer.code]
