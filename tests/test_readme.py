"""The README's "embed it in your server" snippet runs as it is written."""

from __future__ import annotations

import importlib.util
import re
from importlib import resources
from pathlib import Path
from types import ModuleType

import anyio
import httpx2
import pytest

import respflow
from respflow.testing import LoopbackServer, MockServer, Recording

README = Path(__file__).resolve().parents[1] / "README.md"
SAMPLES = resources.files("respflow").joinpath("samples")
SAMPLE = Recording.from_bytes(SAMPLES.joinpath("code_interpreter.sse").read_bytes())
FILES = Path(str(SAMPLES.joinpath("files")))


def snippet() -> str:
    text = README.read_text()
    marked = text[text.index("<!-- embed-snippet") :]
    found = re.search(r"```python\n(.*?)```", marked, re.S)
    assert found is not None
    return found.group(1)


def test_the_snippet_is_under_30_lines() -> None:
    assert len(snippet().strip().splitlines()) < 30


@pytest.fixture
def embedded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    path = tmp_path / "server.py"
    path.write_text(snippet())
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RESPFLOW_SECRET", "a-secret-long-enough-to-sign-urls")
    monkeypatch.setenv("MY_KEY", "k-123")
    spec = importlib.util.spec_from_file_location("embedded_server", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.anyio
async def test_the_snippet_serves_a_response_to_a_browser(
    embedded: ModuleType, monkeypatch: pytest.MonkeyPatch, anyio_backend: str
) -> None:
    async with MockServer(SAMPLE, files=FILES) as mock:
        monkeypatch.setenv("OPENAI_BASE_URL", mock.openai_base_url)
        monkeypatch.setenv("OPENAI_API_KEY", mock.openai_api_key)
        async with (
            LoopbackServer(embedded.app) as server,
            httpx2.AsyncClient(base_url=server.url) as http,
        ):
            body = {"model": "gpt-5", "input": "dice", "tools": [{"type": "code_interpreter"}]}
            refused = await http.post("/respflow/responses", json=body)
            assert refused.status_code == 401
            started = await http.post(
                "/respflow/responses", json=body, headers={"x-api-key": "k-123"}
            )
            assert started.status_code == 201, started.text
            events = []
            with anyio.fail_after(20):
                async with http.stream("GET", started.json()["events_url"]) as stream:
                    decoder = respflow.SSEDecoder()
                    async for chunk in stream.aiter_bytes():
                        for frame in decoder.feed(chunk):
                            assert isinstance(frame, respflow.Frame)
                            if frame.data:
                                events.append(respflow.decode_event(frame.data))
            assert isinstance(events[-1], respflow.ResponseCompleted)
            saved = [e for e in events if isinstance(e, respflow.FileSaved)]
            csv = next(e for e in saved if e.filename == "dice_rolls.csv")
            assert csv.url is not None
            download = await http.get(csv.url)
            assert download.content == (FILES / "dice_rolls.csv").read_bytes()
