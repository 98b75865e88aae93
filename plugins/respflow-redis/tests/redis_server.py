"""The fixtures of these tests: a real redis-server, started here and stopped at the end.

Tests never touch a Redis they did not start: the server listens on a free loopback port,
keeps nothing on disk, and each broker a test opens has a key prefix of its own.
Without ``redis-server`` (``apt-get install redis-server``) the tests are skipped, unless
``RESPFLOW_REDIS_TEST=required`` (as CI sets) makes that a failure.
``RESPFLOW_REDIS_SERVER`` names another server binary that takes the same options
(``valkey-server``, a newer ``redis-server``).

``conftest.py`` only re-exports them: a module named ``conftest`` here would clash, for
mypy, with the websocket plugin's, as both are checked in one run.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

__all__ = ["anyio_backend", "prefix", "redis_url"]

SERVER = (
    os.environ.get("RESPFLOW_REDIS_SERVER")
    or shutil.which("redis-server")
    or "/usr/bin/redis-server"
)


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``redis://127.0.0.1:<port>/0`` of a redis-server this test session started."""
    if shutil.which(SERVER) is None:
        reason = (
            f"{SERVER} is not installed (apt-get install redis-server); "
            "set RESPFLOW_REDIS_TEST=required to make this a failure"
        )
        if os.environ.get("RESPFLOW_REDIS_TEST") == "required":
            pytest.fail(f"RESPFLOW_REDIS_TEST=required, but {reason}")
        pytest.skip(reason)
    directory = tmp_path_factory.mktemp("redis")
    port = _free_port()
    options = ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    with (directory / "redis.log").open("wb") as log:
        server = subprocess.Popen(
            [SERVER, *options, "--dir", str(directory)], stdout=log, stderr=subprocess.STDOUT
        )
    try:
        _wait_until_it_answers(server, port, directory / "redis.log")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture
def prefix() -> str:
    """A key prefix no other test uses."""
    return f"rftest:{uuid.uuid4().hex[:12]}:"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _wait_until_it_answers(server: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"redis-server exited with {server.returncode}:\n{log.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as connection:
                connection.sendall(b"PING\r\n")
                if connection.recv(64).startswith(b"+PONG"):
                    return
        except OSError:
            pass
        time.sleep(0.05)
    server.kill()
    pytest.fail(f"redis-server did not answer on port {port} within 20 s:\n{log.read_text()}")
