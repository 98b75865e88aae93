"""The fixtures of these tests: a real redis-server, started here and stopped at the end.

Tests never touch a Redis they did not start: the server listens on a free loopback port,
keeps nothing on disk, and each broker a test opens has a key prefix of its own.
Without ``redis-server`` (``apt-get install redis-server``) the tests are skipped, unless
``RESPFLOW_REDIS_TEST=required`` (as CI sets) makes that a failure.
``RESPFLOW_REDIS_SERVER`` names another server binary that takes the same options
(``valkey-server``, a newer ``redis-server``); starting one is redis_process.py's.

``conftest.py`` only re-exports them: a module named ``conftest`` here would clash, for
mypy, with the websocket plugin's, as both are checked in one run.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator

import pytest
from redis_process import SERVER, find_server, free_port, server_command, wait_until_it_answers

__all__ = ["anyio_backend", "prefix", "redis_url"]


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``redis://127.0.0.1:<port>/0`` of a redis-server this test session started."""
    binary = find_server()
    if binary is None:
        reason = (
            f"{SERVER} is not installed (apt-get install redis-server); "
            "set RESPFLOW_REDIS_TEST=required to make this a failure"
        )
        if os.environ.get("RESPFLOW_REDIS_TEST") == "required":
            pytest.fail(f"RESPFLOW_REDIS_TEST=required, but {reason}")
        pytest.skip(reason)
    directory = tmp_path_factory.mktemp("redis")
    port = free_port()
    with (directory / "redis.log").open("wb") as log:
        server = subprocess.Popen(
            server_command(binary, port, directory), stdout=log, stderr=subprocess.STDOUT
        )
    try:
        try:
            wait_until_it_answers(server, port, directory / "redis.log")
        except RuntimeError as exc:
            pytest.fail(str(exc))
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture
def prefix() -> str:
    """A key prefix no other test uses."""
    return f"rftest:{uuid.uuid4().hex[:12]}:"
