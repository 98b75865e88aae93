"""benchmarks/bench_redis.py leaves nothing running: it refuses in one line without a
redis-server, and stopped mid-run (SIGTERM) it stops the redis-server it started and its
readers' process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[3] / "benchmarks" / "bench_redis.py"
PROC = Path("/proc")


def test_without_a_redis_server_it_says_so_in_one_line() -> None:
    env = {**os.environ, "RESPFLOW_REDIS_SERVER": "/nonexistent/redis-server"}
    done = subprocess.run(
        [sys.executable, str(BENCH), "--quick"], env=env, capture_output=True, timeout=60
    )
    assert done.returncode == 1
    assert done.stdout == b""
    [line] = done.stderr.decode().splitlines()
    assert "needs redis-server" in line
    assert "apt-get install redis-server" in line


def children(pid: int) -> dict[int, str]:
    """The child processes of ``pid``, with their command lines."""
    listed = (PROC / str(pid) / "task" / str(pid) / "children").read_text().split()
    found = {}
    for child in map(int, listed):
        try:
            found[child] = (PROC / str(child) / "cmdline").read_bytes().replace(b"\0", b" ")
        except FileNotFoundError:
            continue
    return {child: line.decode(errors="replace") for child, line in found.items()}


@pytest.mark.skipif(not (PROC / "self" / "task").is_dir(), reason="reads /proc (Linux)")
@pytest.mark.parametrize("phase", ["redis-server", "--instance"])
def test_stopped_mid_run_it_stops_what_it_started(redis_url: str, phase: str) -> None:
    """``phase``: stopped once its redis-server runs, or once its readers' process does.

    (``redis_url`` only for its rule: skipped without redis-server unless required.)
    """
    bench = subprocess.Popen(
        [sys.executable, str(BENCH), "--quick"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        started = _wait_for_child(bench, phase)
        spawned = set(children(bench.pid))
        bench.send_signal(signal.SIGTERM)
        _, stderr = bench.communicate(timeout=60)
    finally:
        if bench.poll() is None:
            bench.kill()
            bench.wait()
    assert bench.returncode == 128 + signal.SIGTERM, stderr.decode()
    assert b"Traceback" not in stderr, stderr.decode()
    assert started in spawned
    left = [child for child in spawned if (PROC / str(child)).exists()]
    assert not left, [(PROC / str(child) / "cmdline").read_bytes() for child in left]


def _wait_for_child(bench: subprocess.Popen[bytes], marker: str) -> int:
    """The pid of the child of ``bench`` whose command line holds ``marker``."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert bench.poll() is None, f"the benchmark ended first ({bench.returncode})"
        for child, line in children(bench.pid).items():
            if marker in line:
                return child
        time.sleep(0.02)
    raise AssertionError(f"no {marker} process within 60 s")
