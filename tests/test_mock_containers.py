"""The mock server's container files, read through the openai SDK as users read them."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import anyio
import openai
import pytest

import respflow
from respflow.testing import MockServer, Recording

pytestmark = pytest.mark.anyio

SAMPLES = resources.files("respflow").joinpath("samples")
SAMPLE = Recording.from_bytes(SAMPLES.joinpath("code_interpreter.sse").read_bytes())
FILES = Path(str(SAMPLES.joinpath("files")))


async def test_files_are_listed_and_served_under_the_cited_ids(anyio_backend: str) -> None:
    async with (
        MockServer(SAMPLE, files=FILES) as mock,
        openai.AsyncOpenAI(base_url=mock.openai_base_url, api_key="sk-mock-openai") as sdk,
    ):
        page = await sdk.containers.files.list("cntr_sample")
        by_path = {f.path: f for f in page.data}
        assert set(by_path) == {"/mnt/data/dice_chart.png", "/mnt/data/dice_rolls.csv"}
        assert by_path["/mnt/data/dice_rolls.csv"].id == "cfile_sample_rolls"  # as cited
        csv = await sdk.containers.files.content.retrieve(
            "cfile_sample_rolls", container_id="cntr_sample"
        )
        assert csv.read() == (FILES / "dice_rolls.csv").read_bytes()
        chart = by_path["/mnt/data/dice_chart.png"]
        assert chart.bytes == (FILES / "dice_chart.png").stat().st_size
        info = await sdk.containers.files.retrieve(chart.id, container_id="cntr_sample")
        assert info.path == "/mnt/data/dice_chart.png"


async def test_files_are_gone_once_the_container_expires(anyio_backend: str) -> None:
    async with (
        MockServer(SAMPLE, files=FILES, container_ttl=1.5) as mock,
        openai.AsyncOpenAI(
            base_url=mock.openai_base_url, api_key="sk-mock-openai", max_retries=0
        ) as sdk,
    ):
        # Alive, and now used (a lifetime long enough for a busy machine to get here).
        await sdk.containers.files.list("cntr_sample")
        await anyio.sleep(2.0)
        with pytest.raises(openai.NotFoundError):
            await sdk.containers.files.content.retrieve(
                "cfile_sample_rolls", container_id="cntr_sample"
            )
        assert mock.requests[-1].status == 404


async def test_azure_container_paths_take_the_azure_key(anyio_backend: str) -> None:
    async with MockServer(SAMPLE, files=FILES) as mock:
        async with openai.AsyncAzureOpenAI(
            base_url=mock.azure_base_url, api_key="mock-azure-key", api_version="preview"
        ) as azure:
            csv = await azure.containers.files.content.retrieve(
                "cfile_sample_rolls", container_id="cntr_sample"
            )
            assert csv.read().startswith(b"sum\n")
        assert mock.requests[-1].path == (
            "/openai/v1/containers/cntr_sample/files/cfile_sample_rolls/content"
        )
        async with openai.AsyncOpenAI(
            base_url=mock.azure_base_url, api_key="sk-mock-openai", max_retries=0
        ) as wrong:
            with pytest.raises(openai.AuthenticationError):
                await wrong.containers.files.list("cntr_sample")


async def test_expire_containers_now(anyio_backend: str) -> None:
    async with (
        MockServer(SAMPLE, files=FILES) as mock,
        openai.AsyncOpenAI(
            base_url=mock.openai_base_url, api_key="sk-mock-openai", max_retries=0
        ) as sdk,
    ):
        mock.expire_containers()
        with pytest.raises(openai.NotFoundError):
            await sdk.containers.files.list("cntr_sample")


async def test_with_fresh_ids_every_run_has_its_own_ids_and_files(
    anyio_backend: str, tmp_path: Path
) -> None:
    async with (
        MockServer(SAMPLE, files=FILES, fresh_ids=True) as mock,
        openai.AsyncOpenAI(
            base_url=mock.openai_base_url, api_key="sk-mock-openai", max_retries=0
        ) as sdk,
    ):
        runs = []
        for n in range(2):
            storage = respflow.LocalStorage(tmp_path / str(n))
            events = respflow.stream(sdk, model="m", input="x")
            async with respflow.fetch_files(events, sdk, storage) as out:
                runs.append([e async for e in out])
    ids = [{e.response_id for e in run} for run in runs]
    assert len(ids[0]) == len(ids[1]) == 1
    assert ids[0] != ids[1]
    assert SAMPLE.response_id not in ids[0] | ids[1]
    cited = [[e for e in run if isinstance(e, respflow.FileCited)] for run in runs]
    assert cited[0][0].container_id != cited[1][0].container_id
    assert cited[0][0].file_id != cited[1][0].file_id
    for run in runs:  # each run's files download under its own ids
        saved = {e.filename for e in run if isinstance(e, respflow.FileSaved)}
        assert {"dice_rolls.csv", "dice_chart.png"} <= saved
        assert isinstance(run[-1], respflow.ResponseCompleted)


def test_a_folder_respflow_saved_into_serves_only_the_files_it_saved(tmp_path: Path) -> None:
    # `mock-server --files respflow-files/<id>/` after a recorded incident: the folder's
    # manifest and hidden index were never the container's files.
    for name in ("dice_rolls.csv", "manifest.json", ".respflow-index.json"):
        (tmp_path / name).write_text("x")
    mock = MockServer(SAMPLE, files=tmp_path)
    served = {Path(f.path).name for f in mock.containers.files("cntr_sample")}
    assert served == {"dice_rolls.csv"}
