"""The live commands, run as a user runs them: ``respflow demo``, ``mock-server``, ``stream``."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from importlib import resources
from pathlib import Path
from urllib.parse import unquote, urlparse

import anyio
import msgspec
import openai
import pytest

import respflow
from respflow.testing import MockServer, Recording

SAMPLES = resources.files("respflow").joinpath("samples")
SAMPLE = Recording.from_bytes(SAMPLES.joinpath("code_interpreter.sse").read_bytes())
FILES = Path(str(SAMPLES.joinpath("files")))


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "AZURE_OPENAI_"))}
    env.update(extra)
    return env


async def _respflow(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[bytes]:
    return await anyio.run_process([sys.executable, "-m", "respflow", *args], env=env, check=False)


def test_demo_runs_the_whole_path_with_no_key_and_no_network(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "respflow", "demo", "--pace", "0", "--color", "never"],
        capture_output=True,
        text=True,
        timeout=60,
        env=_clean_env(),
        check=False,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "rolls.to_csv(" in out  # the code, as typed
    assert "mean      7.00" in out  # what it printed
    assert "cited dice_rolls.csv (cfile_sample_rolls in cntr_sample)" in out
    assert "link with no citation: sandbox:/mnt/data/dice_chart.png" in out
    assert "✔ completed" in out
    saved = tmp_path / "respflow-files" / "resp_sample_dice"
    for name in ("dice_rolls.csv", "dice_chart.png"):
        assert f"✔ saved {name}" in out
        assert f"{saved / name}  (" in out
        assert (saved / name).read_bytes() == (FILES / name).read_bytes()
    assert "What to try next" in out
    # The final answer links the saved files, where they are.
    answer = out.split("The answer, its links pointing at the saved files:\n", 1)[1]
    links = re.findall(r"file://[^\s)]+", answer.split("\n", 1)[0])
    assert len(links) == 2
    for link in links:
        assert Path(unquote(urlparse(link).path)).is_file()
    assert "sandbox:" not in answer.split("\n", 1)[0]
    assert done.stderr == ""


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("inherited", ["default", "ignored"])
def test_mock_server_command_serves_until_interrupted(stop: signal.Signals, inherited: str) -> None:
    # A shell without job control starts background commands with SIGINT ignored; the
    # server must stop all the same.
    def ignore_sigint() -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    with subprocess.Popen(
        [sys.executable, "-m", "respflow", "mock-server", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_clean_env(),
        preexec_fn=ignore_sigint if inherited == "ignored" else None,
    ) as server:
        try:
            _use_mock_server(server)
        finally:
            server.send_signal(stop)
            try:
                code = server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()  # never leave the test (or CI) waiting on it
                raise
    assert code == 0


def _use_mock_server(server: subprocess.Popen[str]) -> None:
    assert server.stdout is not None
    first = server.stdout.readline()
    assert first.startswith("respflow mock-server: listening on http://127.0.0.1:")
    url = first.rsplit(" ", 1)[-1].strip()

    async def use() -> list[respflow.Event]:
        async with (
            openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="sk-mock-openai") as sdk,
            respflow.stream(sdk, model="m", input="x") as events,
        ):
            return [e async for e in events]

    got = anyio.run(use)
    assert got[-1].type == "response.completed"


@pytest.mark.anyio
async def test_stream_command_against_openai_paths(anyio_backend: str, tmp_path: Path) -> None:
    async with MockServer(SAMPLE, files=FILES) as mock:
        env = _clean_env(OPENAI_BASE_URL=mock.openai_base_url, OPENAI_API_KEY="sk-mock-openai")
        done = await _respflow(
            "stream",
            "--model",
            "gpt-5",
            "--format",
            "jsonl",
            "--background",
            "--fetch-files",
            "--files-dir",
            str(tmp_path),
            "Roll dice",
            env=env,
        )
        assert done.returncode == 0, done.stderr
        lines = done.stdout.splitlines()
        assert msgspec.json.decode(lines[-1])["type"] == "response.completed"
        body = mock.requests[0].body
        assert body["include"] == ["code_interpreter_call.outputs"]
        assert (body["background"], body["store"], body["stream"]) == (True, True, True)
        assert body["tools"] == [{"type": "code_interpreter", "container": {"type": "auto"}}]
        saved = [msgspec.json.decode(line) for line in lines]
        assert {e["filename"] for e in saved if e["type"] == "file.saved"} >= {"dice_rolls.csv"}
        assert (tmp_path / "resp_sample_dice" / "dice_rolls.csv").exists()


@pytest.mark.anyio
@pytest.mark.parametrize("suffix", ["", "/", "/openai/v1", "/openai/v1/"])
async def test_stream_command_against_azure_paths(anyio_backend: str, suffix: str) -> None:
    async with MockServer(SAMPLE) as mock:
        env = _clean_env(
            AZURE_OPENAI_ENDPOINT=mock.url + suffix, AZURE_OPENAI_API_KEY="mock-azure-key"
        )
        done = await _respflow(
            "stream", "--model", "gpt-5", "--no-code-interpreter", "--color", "never", "hi", env=env
        )
        assert done.returncode == 0, done.stderr
        assert "✔ completed" in done.stdout.decode()
        request = mock.requests[0]
        assert (request.path, request.credential, request.auth_header) == (
            "/openai/v1/responses",
            "azure_api_key",
            "api-key",
        )
        assert "tools" not in request.body


@pytest.mark.anyio
async def test_stream_command_reports_a_refused_key_without_printing_it(
    anyio_backend: str,
) -> None:
    async with MockServer(SAMPLE) as mock:
        env = _clean_env(OPENAI_BASE_URL=mock.openai_base_url, OPENAI_API_KEY="sk-bad-secret")
        done = await _respflow("stream", "--model", "m", "hi", env=env)
    err = done.stderr.decode()
    assert done.returncode == 1
    assert "HTTP 401" in err
    assert "sk-bad-secret" not in err + done.stdout.decode()


def test_stream_command_without_credentials_says_what_to_set() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "respflow", "stream", "--model", "m", "hi"],
        capture_output=True,
        text=True,
        timeout=60,
        env=_clean_env(),
        check=False,
    )
    assert done.returncode == 1
    assert "set OPENAI_API_KEY" in done.stderr
    assert "respflow demo" in done.stderr


@pytest.mark.anyio
async def test_replay_fetch_files_saves_what_a_recording_cites(
    anyio_backend: str, tmp_path: Path
) -> None:
    async with MockServer(SAMPLE, files=FILES) as mock:
        env = _clean_env(OPENAI_BASE_URL=mock.openai_base_url, OPENAI_API_KEY="sk-mock-openai")
        done = await _respflow(
            "replay",
            "--fetch-files",
            "--files-dir",
            str(tmp_path),
            "--format",
            "jsonl",
            env=env,
        )
    assert done.returncode == 0, done.stderr
    events = [msgspec.json.decode(line) for line in done.stdout.splitlines()]
    saved = {e["filename"] for e in events if e["type"] == "file.saved"}
    assert saved >= {"dice_rolls.csv", "dice_chart.png"}
    assert events[-1]["type"] == "response.completed"
    assert (tmp_path / "resp_sample_dice" / "dice_rolls.csv").exists()
