"""A redis-server of one's own: on a free loopback port, keeping nothing on disk.

What the tests' fixture (redis_server.py) and ``benchmarks/bench_redis.py`` both need to
start one; free of pytest, so the benchmark imports it too. Each stops its server its own
way (the benchmark also on SIGTERM).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

__all__ = ["SERVER", "find_server", "free_port", "server_command", "wait_until_it_answers"]

SERVER = os.environ.get("RESPFLOW_REDIS_SERVER") or "redis-server"
"""The binary: ``RESPFLOW_REDIS_SERVER`` names one taking the same options
(``valkey-server``, a newer ``redis-server``)."""


def find_server() -> str | None:
    """The path of :data:`SERVER`, or None when it is not installed."""
    return shutil.which(SERVER)


def server_command(binary: str, port: int, directory: str | Path) -> list[str]:
    """A server on ``127.0.0.1:port`` that saves nothing (its log and any file go to
    ``directory``)."""
    options = ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    return [binary, *options, "--dir", str(directory)]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_until_it_answers(server: subprocess.Popen[bytes], port: int, log: Path) -> None:
    """Returns once ``server`` answers PING; RuntimeError (with its log) if it exits
    first or does not answer within 20 s (then it is killed)."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"redis-server exited with {server.returncode}:\n{log.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as connection:
                connection.sendall(b"PING\r\n")
                if connection.recv(64).startswith(b"+PONG"):
                    return
        except OSError:
            pass
        time.sleep(0.05)
    server.kill()
    raise RuntimeError(
        f"redis-server did not answer on port {port} within 20 s:\n{log.read_text()}"
    )
