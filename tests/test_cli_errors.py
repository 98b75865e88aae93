"""The command line as a new user meets it: routine mistakes are one clear line on stderr
and a non-zero exit, never a traceback; logs go to stderr; the mock server says its key."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import anyio
import pytest

import respflow
from respflow.testing import MockServer, Recording

SAMPLE_BYTES = resources.files("respflow").joinpath("samples", "code_interpreter.sse").read_bytes()
SAMPLE = Recording.from_bytes(SAMPLE_BYTES)
EVENTS = list(respflow.replay(SAMPLE_BYTES))


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "AZURE_OPENAI_"))}
    env.update(extra)
    return env


def _respflow(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "respflow", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env or _env(),
        check=False,
    )


async def _respflow_async(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    done = await anyio.run_process([sys.executable, "-m", "respflow", *args], env=env, check=False)
    return subprocess.CompletedProcess(
        done.args, done.returncode, done.stdout.decode(), done.stderr.decode()
    )


def _one_clear_line(done: subprocess.CompletedProcess[str], *words: str) -> str:
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    for word in words:
        assert word in lines[0]
    return lines[0]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        yield int(sock.getsockname()[1])


# -- stream: a wrong key, an unreachable API -------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("extra", [[], ["--format", "jsonl", "--fetch-files"]])
async def test_a_wrong_key_is_one_line(
    anyio_backend: str, extra: list[str], tmp_path: Path
) -> None:
    async with MockServer(SAMPLE) as mock:
        env = _env(OPENAI_BASE_URL=mock.openai_base_url, OPENAI_API_KEY="sk-wrong-key-0123456789")
        done = await _respflow_async(
            "stream", "--model", "m", *extra, "--files-dir", str(tmp_path), "hi", env=env
        )
    line = _one_clear_line(done, "respflow stream:", "HTTP 401", "check the key")
    assert "sk-wrong-key-0123456789" not in line
    assert done.stdout == ""


@pytest.mark.anyio
async def test_debug_shows_the_traceback(anyio_backend: str) -> None:
    async with MockServer(SAMPLE) as mock:
        env = _env(OPENAI_BASE_URL=mock.openai_base_url, OPENAI_API_KEY="sk-wrong")
        done = await _respflow_async("stream", "--debug", "--model", "m", "hi", env=env)
    assert done.returncode != 0
    assert "Traceback" in done.stderr
    assert "AuthenticationFailed" in done.stderr


def test_an_unreachable_base_url_is_one_line() -> None:
    url = f"http://127.0.0.1:{_closed_port()}/v1"
    done = _respflow(
        "stream", "--model", "m", "hi", env=_env(OPENAI_BASE_URL=url, OPENAI_API_KEY="sk-x")
    )
    _one_clear_line(done, "respflow stream:", "no answer from http://127.0.0.1", "base URL")


def test_no_key_at_all_is_one_line() -> None:
    _one_clear_line(_respflow("stream", "--model", "m", "hi"), "OPENAI_API_KEY")


# -- mock-server: ports ------------------------------------------------------------------


def test_a_port_in_use_is_one_line(busy_port: int) -> None:
    done = _respflow("mock-server", "--port", str(busy_port))
    _one_clear_line(done, "respflow mock-server:", str(busy_port), "in use", "--port 0")


@pytest.mark.parametrize("port", ["70000", "-1"])
def test_a_port_out_of_range_is_one_line(port: str) -> None:
    _one_clear_line(
        _respflow("mock-server", "--port", port), "respflow mock-server:", port, "0-65535"
    )


def test_mock_server_help_shows_the_defaults_and_the_keys() -> None:
    done = _respflow("mock-server", "--help")
    assert done.returncode == 0
    text = " ".join(done.stdout.split())
    assert "sk-mock-openai" in text
    assert "mock-azure-key" in text
    assert "(default: 0" in text


def test_mock_server_prints_the_key_a_client_must_use() -> None:
    with subprocess.Popen(
        [sys.executable, "-m", "respflow", "mock-server", "--port", "0", "--openai-key", "sk-mine"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    ) as server:
        try:
            assert server.stdout is not None
            printed = [server.stdout.readline() for _ in range(3)]
        finally:
            server.terminate()
            server.wait(timeout=20)
    assert printed[0].startswith("respflow mock-server: listening on http://127.0.0.1:")
    assert "api_key='sk-mine'" in printed[1]
    assert "api_key='mock-azure-key'" in printed[2]


# -- sinks: a failing sink, the log sink ---------------------------------------------------


def test_a_failing_sink_is_one_line_and_a_non_zero_exit(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    spec = f"jsonl:{blocker / 'events.jsonl'}"
    recording = tmp_path / "run.sse"
    recording.write_bytes(SAMPLE_BYTES)
    done = _respflow("replay", str(recording), "--format", "jsonl", "--sink", spec)
    _one_clear_line(done, "respflow replay:", spec, "failed")
    assert [respflow.decode_event(line) for line in done.stdout.splitlines()] == EVENTS


@pytest.mark.anyio
async def test_a_failing_sink_while_streaming_is_a_non_zero_exit(
    anyio_backend: str, tmp_path: Path
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    spec = f"jsonl:{blocker / 'events.jsonl'}"
    async with MockServer(SAMPLE) as mock:
        env = _env(OPENAI_BASE_URL=mock.openai_base_url, OPENAI_API_KEY="sk-mock-openai")
        done = await _respflow_async("stream", "--model", "m", "--sink", spec, "hi", env=env)
    _one_clear_line(done, "respflow stream:", spec, "failed")


def test_the_log_sink_writes_to_stderr_never_into_the_jsonl_on_stdout() -> None:
    done = _respflow("replay", "--format", "jsonl", "--sink", "log")
    assert done.returncode == 0, done.stderr
    assert [respflow.decode_event(line) for line in done.stdout.splitlines()] == EVENTS
    assert "code.completed" in done.stderr
    assert "resp_sample_dice" in done.stderr


def test_the_log_sink_works_without_structlog() -> None:
    script = (
        "import sys; sys.modules['structlog'] = None\n"  # import structlog now fails
        "from respflow._cli.main import main\n"
        "sys.exit(main(['replay', '--format', 'jsonl', '--sink', 'log']))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert [respflow.decode_event(line) for line in done.stdout.splitlines()] == EVENTS
    logged = [line for line in done.stderr.splitlines() if "code.completed" in line]
    assert logged
    assert "resp_sample_dice" in logged[0]  # with its fields, not just the event's name
