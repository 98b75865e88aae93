"""Saved files served to browsers: the right bytes and headers, nothing else."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import httpx2
import openai
import pytest

import respflow
from respflow import LinkRewriter, LocalStorage, files_app
from respflow.testing import LoopbackServer, MockServer, Recording

from ._downloads import Chunks

pytestmark = pytest.mark.anyio

SAMPLES = resources.files("respflow").joinpath("samples")
SAMPLE = Recording.from_bytes(SAMPLES.joinpath("code_interpreter.sse").read_bytes())
FILES = Path(str(SAMPLES.joinpath("files")))


async def test_saved_files_are_served_with_type_and_disposition(
    anyio_backend: str, tmp_path: Path
) -> None:
    storage = LocalStorage(tmp_path)
    await storage.save("resp_1", "a", "chart.png", Chunks(b"\x89PNG..."), media_type="image/png")
    await storage.save("resp_1", "b", "page.html", Chunks(b"<script>x</script>"))
    await storage.save("resp_1", "c", "r\u00e9sum\u00e9 1.docx", Chunks(b"PK"))
    async with (
        LoopbackServer(files_app(tmp_path)) as server,
        httpx2.AsyncClient(base_url=server.url) as http,
    ):
        png = await http.get("/files/resp_1/chart.png")
        assert png.status_code == 200
        assert png.content == b"\x89PNG..."
        assert png.headers["content-type"] == "image/png"
        assert png.headers["content-disposition"].startswith("inline")
        html = await http.get("/files/resp_1/page.html")
        assert html.headers["content-disposition"].startswith("attachment")
        assert html.headers["x-content-type-options"] == "nosniff"
        assert "sandbox" in html.headers["content-security-policy"]
        docx = await http.get("/files/resp_1/r%C3%A9sum%C3%A9%201.docx")
        assert docx.content == b"PK"
        for bad in [
            "/files/resp_1/..%2F..%2Fetc%2Fpasswd",
            "/files/../../etc/passwd",
            "/files/resp_1/.respflow-index.json",
            "/files/resp_1/",
            "/files/resp_1",
            "/files/resp_1/CHART.PNG",
            "/files/resp_1/con",
            "/files/%2E%2E/resp_1",
        ]:
            answer = await http.get(bad)
            assert answer.status_code == 404, bad


async def test_rewritten_links_fetch_the_saved_files(anyio_backend: str, tmp_path: Path) -> None:
    """The whole path: stream, save, rewrite, serve; every link in the answer works."""
    rewriter = LinkRewriter("/files/{response_id}/{filename}")
    answer = ""
    async with (
        MockServer(SAMPLE, files=FILES) as mock,
        openai.AsyncOpenAI(base_url=mock.openai_base_url, api_key=mock.openai_api_key) as sdk,
        respflow.stream(sdk, model="m", input="x") as events,
        respflow.fetch_files(events, sdk, LocalStorage(tmp_path)) as fetched,
    ):
        async for event in fetched:
            for out in rewriter.feed(event):
                if isinstance(out, respflow.MessageCompleted):
                    answer = out.text
    links = [part.split(")")[0].split(" ")[0] for part in answer.split("/files/")[1:]]
    assert len(links) == 2
    async with (
        LoopbackServer(files_app(tmp_path)) as server,
        httpx2.AsyncClient(base_url=server.url) as http,
    ):
        for link in links:
            served = await http.get(f"/files/{link}")
            assert served.status_code == 200, link
            name = link.rsplit("/", 1)[-1]
            assert served.content == (FILES / name).read_bytes()
