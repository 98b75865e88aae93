"""The example web page in a real headless Chromium: what a person would see and download.

The app (examples/web-ui) runs on loopback against the mock Responses API; Playwright
drives Debian's chromium (never a downloaded browser) from a worker thread, so the test
runs on asyncio and trio alike.
"""

from __future__ import annotations

import importlib.util
import os
from importlib import resources
from pathlib import Path
from types import ModuleType
from typing import Any

import anyio
import anyio.to_thread
import pytest

from respflow.testing import LoopbackServer

from .browser import CHROMIUM, launch

ROOT = Path(__file__).resolve().parents[1]
FILES = Path(str(resources.files("respflow").joinpath("samples", "files")))

# .ci/run's main job sets RESPFLOW_BROWSER_TEST=required, so there a missing browser fails.
if os.environ.get("RESPFLOW_BROWSER_TEST") != "required":
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed (apt-get install chromium)", allow_module_level=True)
    if importlib.util.find_spec("playwright") is None:
        pytest.skip(
            "playwright is not installed (pip install -e '.[browser]')", allow_module_level=True
        )

pytestmark = pytest.mark.anyio


def _example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("web_ui_app", ROOT / "examples/web-ui/app.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _drive(url: str, shots: Path) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_page(accept_downloads=True)
            page.goto(url)
            page.click("#run")
            page.wait_for_function("document.getElementById('status').textContent === 'done'")
            link = page.locator("#answer a", has_text="Download the rolls as CSV")
            with page.expect_download() as caught:
                link.click()
            download = caught.value
            seen = {
                "code": page.locator("pre.code").inner_text(),
                "logs": page.locator("pre.logs").inner_text(),
                "answer": page.locator("#answer").inner_text(),
                "links": page.locator("#answer a").evaluate_all("els => els.map(e => e.href)"),
                "files": page.locator("#files li").all_inner_texts(),
                "made": page.locator(".call p.made").all_inner_texts(),
                "calls": page.locator(".call header").all_inner_texts(),
                "images": page.locator(".call img").count(),
                "download": Path(download.path()).read_bytes(),
                "download_name": download.suggested_filename,
            }
            page.screenshot(path=str(shots / "web-ui.png"), full_page=True)
            return seen
        finally:
            browser.close()


async def test_a_person_sees_code_logs_answer_and_downloads_the_file(
    anyio_backend: str, tmp_path: Path
) -> None:
    app = _example().create_app(files_dir=tmp_path / "files", pace=0.002)
    async with LoopbackServer(app) as server:
        seen = await anyio.to_thread.run_sync(_drive, server.url, tmp_path)
    assert "rolls.to_csv(" in seen["code"]  # the code, as it was written
    assert "mean      7.00" in seen["logs"]  # what it printed
    assert seen["images"] == 1
    assert "The ten rolls average 7.0" in seen["answer"]
    assert "sandbox:" not in seen["answer"]
    assert all("/respflow/files/" in link for link in seen["links"])
    assert len(seen["links"]) == 2
    assert seen["download_name"] == "dice_rolls.csv"
    assert seen["download"] == (FILES / "dice_rolls.csv").read_bytes()  # the right bytes
    assert any(item.startswith("dice_chart.png") for item in seen["files"])
    # Next to each file, the code call that made it, and under the call what it made.
    assert seen["calls"] == ["call 1 · code_interpreter"]
    made = {item.split(" ", 1)[0]: item for item in seen["files"]}
    assert made["dice_rolls.csv"].endswith("made by call 1 (its code names the file)")
    assert made["dice_chart.png"].endswith("made by call 1 (its code names the file)")
    image = next(item for name, item in made.items() if name.startswith("ci_0001-image"))
    assert image.endswith("made by call 1 (the image it showed)")
    assert len(seen["made"]) == 1
    assert set(seen["made"][0].removeprefix("made ").split(", ")) == set(made)
    assert (tmp_path / "web-ui.png").stat().st_size > 10_000
