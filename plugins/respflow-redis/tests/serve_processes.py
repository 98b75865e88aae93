"""`respflow serve` and `respflow mock-server` as the separate processes users run.

Every process is stopped when its block ends: SIGTERM, then SIGKILL (and a failure) if it
does not stop within 20 s.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["LISTENING", "api_environment", "mock_api", "running", "serve_command"]

LISTENING = "respflow serve: listening on "


@contextmanager
def running(
    command: list[str], *, ready: str, env: dict[str, str] | None = None
) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """Runs ``command`` until the block ends; yields its first line (once that says
    ``ready``) and the process."""
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    ) as process:
        try:
            assert process.stdout is not None
            first = process.stdout.readline()
            assert first.startswith(ready), first + (
                process.stderr.read() if process.stderr else ""
            )
            yield first, process
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    raise


def api_environment(base_url: str | None = None) -> dict[str, str]:
    """This environment without the user's OpenAI or Azure settings; with ``base_url``,
    pointed at that mock API instead."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "AZURE_"))}
    if base_url is not None:
        env |= {"OPENAI_BASE_URL": base_url, "OPENAI_API_KEY": "sk-mock-openai"}
    return env


def serve_command(redis_url: str, files: Path, token: str, *options: str) -> list[str]:
    """``respflow serve`` on a free port with a shared Redis and files folder."""
    command = [sys.executable, "-m", "respflow", "serve", "--port", "0", *options]
    return [*command, "--broker", redis_url, "--token", token, "--files-dir", str(files)]


@contextmanager
def mock_api(*options: str) -> Iterator[str]:
    """A ``respflow mock-server`` process; yields its OpenAI base URL."""
    command = [sys.executable, "-m", "respflow", "mock-server", "--port", "0", *options]
    with running(command, ready="respflow mock-server: listening on ") as (first, _):
        yield first.split("listening on ", 1)[1].strip() + "/v1"
