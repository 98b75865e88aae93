"""The file fetcher against the mock Responses API over real loopback HTTP."""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator
from importlib import resources
from pathlib import Path
from typing import Any

import openai
import pytest

import respflow
from respflow import FileFailed, FileSaved, LocalStorage, Reconnect
from respflow.testing import MockServer, Recording, StreamBuilder, to_sse

pytestmark = pytest.mark.anyio

SAMPLES = resources.files("respflow").joinpath("samples")
SAMPLE = Recording.from_bytes(SAMPLES.joinpath("code_interpreter.sse").read_bytes())
FILES = Path(str(SAMPLES.joinpath("files")))
OPENAI_KEY = "sk-mock-openai"
FAST = Reconnect(attempts=3, initial_delay=0.01)


async def _run(
    client: openai.AsyncOpenAI, storage: LocalStorage, **options: Any
) -> list[respflow.Event]:
    async with (
        respflow.stream(client, model="m", input="x") as events,
        respflow.fetch_files(events, client, storage, **options) as out,
    ):
        return [event async for event in out]


@pytest.fixture
async def mock(anyio_backend: str) -> AsyncIterator[MockServer]:
    async with MockServer(SAMPLE, files=FILES) as server:
        yield server


@pytest.fixture
async def client(mock: MockServer) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(
        base_url=mock.openai_base_url, api_key=OPENAI_KEY, max_retries=0
    ) as sdk:
        yield sdk


def _saved(events: list[respflow.Event]) -> dict[str, FileSaved]:
    return {e.resolved_by: e for e in events if isinstance(e, FileSaved)}


async def test_cited_linked_and_shown_files_are_saved_before_the_end(
    client: openai.AsyncOpenAI, tmp_path: Path
) -> None:
    got = await _run(client, LocalStorage(tmp_path))
    saved = _saved(got)
    assert set(saved) == {"citation", "link", "image"}
    csv = saved["citation"]
    data = (FILES / "dice_rolls.csv").read_bytes()
    assert Path(csv.location).read_bytes() == data
    assert (csv.sha256, csv.size) == (hashlib.sha256(data).hexdigest(), len(data))
    assert (csv.container_id, csv.file_id, csv.media_type) == (
        "cntr_sample",
        "cfile_sample_rolls",
        "text/csv",
    )
    chart = saved["link"]  # no annotation: found through the container's listing
    assert chart.path == "/mnt/data/dice_chart.png"
    assert Path(chart.location).read_bytes() == (FILES / "dice_chart.png").read_bytes()
    assert Path(saved["image"].location).read_bytes().startswith(b"\x89PNG")
    for event in saved.values():
        assert Path(event.location).is_relative_to(tmp_path)
    assert got[-1].type == "response.completed"  # the end stays last
    cursors = [respflow.parse_cursor(e.cursor) for e in got]
    assert cursors == sorted(cursors)
    assert len(set(cursors)) == len(cursors)


async def test_an_expired_container_gives_file_failed_with_the_reason(
    mock: MockServer, client: openai.AsyncOpenAI, tmp_path: Path
) -> None:
    mock.expire_containers()
    got = await _run(client, LocalStorage(tmp_path), retry=FAST)
    failed = [e for e in got if isinstance(e, FileFailed)]
    assert len(failed) == 2  # the citation and the link; the inline image still saves
    for event in failed:
        assert event.status == 404
        assert "expire after about 20 idle minutes" in event.hint
        assert f"{mock.url}/v1/containers/cntr_sample/files" in event.hint
    assert [e.resolved_by for e in got if isinstance(e, FileSaved)] == ["image"]
    assert got[-1].type == "response.completed"


@pytest.mark.parametrize("auth", ["api_key", "azure_ad_token"])
async def test_azure_downloads_use_the_azure_paths_and_credentials(
    mock: MockServer, tmp_path: Path, auth: str
) -> None:
    mock.azure_ad_token = "entra-token"
    credential = (
        {"api_key": "mock-azure-key"} if auth == "api_key" else {"azure_ad_token": "entra-token"}
    )
    async with openai.AsyncAzureOpenAI(
        base_url=mock.azure_base_url, api_version="preview", max_retries=0, **credential
    ) as azure:
        got = await _run(azure, LocalStorage(tmp_path))
    assert set(_saved(got)) == {"citation", "link", "image"}
    downloads = [r for r in mock.requests if "/containers/" in r.path]
    assert downloads
    assert all(r.path.startswith("/openai/v1/containers/cntr_sample/") for r in downloads)
    assert {r.credential for r in downloads} == {"azure_api_key" if auth == "api_key" else auth}


async def test_429_with_retry_after_is_honoured(
    mock: MockServer, client: openai.AsyncOpenAI, tmp_path: Path
) -> None:
    storage = LocalStorage(tmp_path)
    async with respflow.stream(client, model="m", input="x") as events:
        wire = [event async for event in events]  # the stream first, then the failures

    async def replayed() -> AsyncIterator[respflow.Event]:
        for event in wire:
            yield event

    mock.fail_next(429, retry_after=0.3)
    started = time.monotonic()
    async with respflow.fetch_files(
        replayed(), client, storage, links=False, images=False, retry=FAST
    ) as out:
        got = [event async for event in out]
    assert time.monotonic() - started >= 0.3
    assert [e.file_id for e in got if isinstance(e, FileSaved)] == ["cfile_sample_rolls"]
    assert [r.status for r in mock.requests if "/containers/" in r.path] == [429, 200]


async def test_a_download_cut_halfway_is_retried_and_leaves_no_partial_file(
    mock: MockServer, client: openai.AsyncOpenAI, tmp_path: Path
) -> None:
    mock.cut_files_after, mock.max_cuts = 5, 1
    got = await _run(client, LocalStorage(tmp_path), links=False, images=False, retry=FAST)
    saved = [e for e in got if isinstance(e, FileSaved)]
    assert len(saved) == 1
    assert Path(saved[0].location).read_bytes() == (FILES / "dice_rolls.csv").read_bytes()
    assert mock.cuts == 1
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == [
        ".respflow-index.json",
        "dice_rolls.csv",
        "manifest.json",
    ]


async def test_a_download_that_keeps_failing_leaves_nothing(
    mock: MockServer, client: openai.AsyncOpenAI, tmp_path: Path
) -> None:
    mock.cut_files_after = 5
    got = await _run(client, LocalStorage(tmp_path), links=False, images=False, retry=FAST)
    [failed] = [e for e in got if isinstance(e, FileFailed)]
    assert "cut off" in failed.reason
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]


def _many_files(tmp_path: Path, n: int) -> tuple[Recording, Path]:
    folder = tmp_path / "container"
    folder.mkdir()
    citations = []
    for i in range(n):
        (folder / f"part{i}.txt").write_bytes(f"part {i}\n".encode())
        citations.append(
            {
                "type": "container_file_citation",
                "container_id": "cntr_many",
                "file_id": f"cfile_{i}",
                "filename": f"part{i}.txt",
                "start_index": 0,
                "end_index": 0,
            }
        )
    builder = (
        StreamBuilder(response_id="resp_many")
        .code_call("save()", logs="", container_id="cntr_many")
        .message("Here are the parts.", annotations=citations)
    )
    return Recording.from_bytes(to_sse(builder.events())), folder


async def test_at_most_n_downloads_run_at_once(anyio_backend: str, tmp_path: Path) -> None:
    recording, folder = _many_files(tmp_path, 6)
    async with (
        MockServer(recording, files=folder, file_delay=0.05) as mock,
        openai.AsyncOpenAI(base_url=mock.openai_base_url, api_key=OPENAI_KEY) as sdk,
    ):
        got = await _run(sdk, LocalStorage(tmp_path / "out"), concurrency=2)
    assert len([e for e in got if isinstance(e, FileSaved)]) == 6
    assert mock.peak_downloads == 2


async def test_every_assistant_file_can_be_saved(
    mock: MockServer, client: openai.AsyncOpenAI, tmp_path: Path
) -> None:
    got = await _run(
        client, LocalStorage(tmp_path), links=False, images=False, all_assistant_files=True
    )
    saved = sorted((e.filename, e.resolved_by) for e in got if isinstance(e, FileSaved))
    assert saved == [("dice_chart.png", "container"), ("dice_rolls.csv", "citation")]
    assert got[-1].type == "response.completed"


async def test_a_link_to_a_file_the_container_lacks_fails_clearly(
    mock: MockServer, client: openai.AsyncOpenAI, tmp_path: Path
) -> None:
    text = "Get it at sandbox:/mnt/data/never_saved.pdf now."
    builder = (
        StreamBuilder(response_id="resp_dead")
        .code_call("x = 1", logs="", container_id="cntr_sample")
        .message(text)
    )
    mock.recording = Recording.from_bytes(to_sse(builder.events()))
    got = await _run(client, LocalStorage(tmp_path), images=False)
    [failed] = [e for e in got if isinstance(e, FileFailed)]
    assert "/mnt/data/never_saved.pdf" in failed.reason
    assert failed.container_id == "cntr_sample"
