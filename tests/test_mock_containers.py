"""The mock server's container files, read through the openai SDK as users read them."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import anyio
import openai
import pytest

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
