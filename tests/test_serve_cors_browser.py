"""`respflow serve --allow-origin` in a real headless Chromium: a page on one loopback port
starts a response on `respflow serve` on another and follows it, as a page on another
origin would; a page on an origin not given cannot read either answer.

Playwright drives Debian's chromium (never a downloaded browser); the pages come from
small loopback HTTP servers, so each origin is a port of its own.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx2
import pytest

from .browser import CHROMIUM, launch

# .ci/run's main job sets RESPFLOW_BROWSER_TEST=required, so there a missing browser fails.
if os.environ.get("RESPFLOW_BROWSER_TEST") != "required":
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed (apt-get install chromium)", allow_module_level=True)
    if importlib.util.find_spec("playwright") is None:
        pytest.skip(
            "playwright is not installed (pip install -e '.[browser]')", allow_module_level=True
        )

TOKEN = "cors-browser-token"
BODY = {
    "model": "gpt-5",
    "input": "Roll two dice 100 times",
    "tools": [{"type": "code_interpreter", "container": {"type": "auto"}}],
}

# Run in the page, so every request is the page's own: cross-origin, with a preflight
# for the POST (its authorization and JSON content type) and for the resuming GET.
_START_AND_FOLLOW = """
async ([api, token, body]) => {
  const started = await fetch(api + "/responses", {
    method: "POST",
    headers: {authorization: "Bearer " + token, "content-type": "application/json"},
    body: JSON.stringify(body),
  });
  const answer = await started.json();
  const followed = await new Promise((resolve, reject) => {
    const source = new EventSource(api + answer.events_url);
    const seen = [];
    source.onmessage = (message) => {
      const event = JSON.parse(message.data);
      seen.push({type: event.type, cursor: message.lastEventId});
      if (event.type === "response.completed") { source.close(); resolve(seen); }
    };
    source.onerror = () => { source.close(); reject(new Error("the stream failed")); };
  });
  const middle = followed[Math.floor(followed.length / 2)].cursor;
  const resumed = await fetch(api + answer.events_url, {headers: {"last-event-id": middle}});
  const rest = (await resumed.text()).split("\\n").filter((line) => line.startsWith("id: "));
  return {
    status: started.status,
    types: followed.map((seen) => seen.type),
    after: followed.slice(Math.floor(followed.length / 2) + 1).map((seen) => seen.cursor),
    rest: rest.map((line) => line.slice(4)),
  };
}
"""

_REFUSED = """
async ([api, token, body, eventsUrl]) => {
  let start = "read";
  try {
    await fetch(api + "/responses", {
      method: "POST",
      headers: {authorization: "Bearer " + token, "content-type": "application/json"},
      body: JSON.stringify(body),
    });
  } catch (error) {
    start = error.name;
  }
  const follow = await new Promise((resolve) => {
    const source = new EventSource(api + eventsUrl);
    source.onmessage = () => { source.close(); resolve("read"); };
    source.onerror = () => { source.close(); resolve("error"); };
  });
  return {start, follow};
}
"""


class _Page(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        page = b"<!doctype html><title>a page on another origin</title><p>page</p>"
        self.send_response(200)
        self.send_header("content-type", "text/html; charset=utf-8")
        self.send_header("content-length", str(len(page)))
        self.end_headers()
        self.wfile.write(page)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the test's output is the assertions'


@contextmanager
def _page_origin() -> Iterator[str]:
    """A loopback server of one HTML page; its origin."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@contextmanager
def _serving(files: Path, allowed: str) -> Iterator[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "AZURE_"))}
    command = [sys.executable, "-m", "respflow", "serve", "--mock", "--port", "0"]
    command += ["--token", TOKEN, "--files-dir", str(files), "--allow-origin", allowed]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    ) as process:
        try:
            assert process.stdout is not None
            first = process.stdout.readline()
            assert first.startswith("respflow serve: listening on http://127.0.0.1:"), first
            yield first.rsplit(" ", 1)[-1].strip()
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                raise


def test_a_page_on_an_allowed_origin_uses_serve_and_another_cannot(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    with _page_origin() as allowed, _page_origin() as other, _serving(tmp_path, allowed) as api:
        started = httpx2.post(
            f"{api}/responses", json=BODY, headers={"authorization": f"Bearer {TOKEN}"}
        )
        events_url = started.json()["events_url"]
        with sync_playwright() as p:
            browser = launch(p)
            try:
                page = browser.new_page()
                page.goto(allowed)
                used = page.evaluate(_START_AND_FOLLOW, [api, TOKEN, BODY])
                page.goto(other)
                refused = page.evaluate(_REFUSED, [api, TOKEN, BODY, events_url])
            finally:
                browser.close()
    assert used["status"] == 201
    assert used["types"][-1] == "response.completed"
    assert "file.saved" in used["types"]
    assert used["rest"] == used["after"]  # resumed with Last-Event-ID: exactly what followed
    # The browser refused the page on the other origin both answers.
    assert refused == {"start": "TypeError", "follow": "error"}
