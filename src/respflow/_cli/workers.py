"""``respflow serve --workers N``: N worker processes accepting on one socket.

The parent binds the socket, starts each worker as ``respflow serve`` on that socket's
descriptor, and watches them: a worker that dies is started again (its responses are
taken over meanwhile by the others through the shared broker), and SIGINT or SIGTERM
stops them all. The token and the secret reach the workers through their environment,
never their command line, where any user of the machine could read them.

With ``--mock`` the workers must share one mock API too (a background response started
through one is replayed to another): the parent runs ``respflow mock-server`` for them.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from types import FrameType
from typing import TextIO

__all__ = ["StartFailed", "supervise"]

TOKEN_VARIABLE = "RESPFLOW_TOKEN"
SECRET_VARIABLE = "RESPFLOW_SECRET"
_RESTART_PAUSE = 1.0
"""Seconds between two starts of one worker: a worker that cannot start must not spin."""


class StartFailed(Exception):
    """A worker, or the mock API, did not start (its own message is on stderr)."""


def supervise(args: argparse.Namespace, token: str, secret: str, out: TextIO) -> int:
    """Runs ``args.workers`` workers until SIGINT or SIGTERM; returns the exit code."""
    from .._server.hosting import listening_socket

    stop: list[int] = []

    def on_signal(number: int, frame: FrameType | None) -> None:
        stop.append(number)

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with ExitStack() as stack:
            sock = stack.enter_context(listening_socket(args.host, args.port))
            env = {**os.environ, TOKEN_VARIABLE: token, SECRET_VARIABLE: secret}
            if args.mock:
                env = {k: v for k, v in env.items() if not k.startswith("AZURE_OPENAI_")}
                env |= stack.enter_context(_mock_api())
            command = _worker_command(args, sock.fileno())
            workers = [_start(command, env, sock.fileno(), ready=True) for _ in range(args.workers)]
            stack.callback(_stop_all, workers)
            for worker in workers:  # announced once every worker serves
                _wait_ready(worker)
            host, port = sock.getsockname()[:2]
            shown = f"[{host}]" if ":" in host else host
            _announce(args, f"http://{shown}:{port}", token, out)
            started = [time.monotonic()] * len(workers)
            while not stop:
                time.sleep(0.1)
                for i, worker in enumerate(workers):
                    if worker.poll() is None or time.monotonic() - started[i] < _RESTART_PAUSE:
                        continue
                    print(
                        f"respflow serve: worker {worker.pid} exited ({worker.returncode}); "
                        "starting another",
                        file=sys.stderr,
                        flush=True,
                    )
                    workers[i] = _start(command, env, sock.fileno())
                    started[i] = time.monotonic()
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
    return 0


def _worker_command(args: argparse.Namespace, fd: int) -> list[str]:
    command = [sys.executable, "-m", "respflow", "serve", "--worker-fd", str(fd)]
    command += ["--host", args.host, "--broker", args.broker]
    command += ["--files-dir", str(args.files_dir), "--lease-ttl", str(args.lease_ttl)]
    command += ["--flush", str(args.flush)]
    command += [f"--allow-origin={given}" for given in args.allow_origin]
    if args.record:
        command += ["--record", args.record]
    return command


def _start(
    command: list[str], env: dict[str, str], fd: int, *, ready: bool = False
) -> subprocess.Popen[bytes]:
    """A worker; with ``ready``, its stdout is a pipe on which it says when it serves."""
    out = subprocess.PIPE if ready else subprocess.DEVNULL
    return subprocess.Popen(command, env=env, pass_fds=(fd,), stdout=out)


def _wait_ready(worker: subprocess.Popen[bytes]) -> None:
    assert worker.stdout is not None
    line = worker.stdout.readline()
    worker.stdout.close()
    if not line.startswith(b"ready"):
        raise StartFailed(f"a worker did not start (exit status {worker.wait()})")


def _stop_all(workers: list[subprocess.Popen[bytes]]) -> None:
    for worker in workers:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 10
    for worker in workers:
        try:
            worker.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


@contextmanager
def _mock_api() -> Iterator[dict[str, str]]:
    """A ``respflow mock-server`` for all the workers; its address, as the environment."""
    command = [sys.executable, "-m", "respflow", "mock-server", "--port", "0", "--pace", "0.02"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as mock:
        try:
            assert mock.stdout is not None
            first = mock.stdout.readline()
            if "listening on " not in first:
                raise StartFailed(f"the mock API did not start: {first.strip() or 'no answer'}")
            base = first.split("listening on ", 1)[1].strip()
            yield {"OPENAI_BASE_URL": f"{base}/v1", "OPENAI_API_KEY": "sk-mock-openai"}
        finally:
            mock.send_signal(signal.SIGTERM)
            try:
                mock.wait(timeout=10)
            except subprocess.TimeoutExpired:
                mock.kill()


def _announce(args: argparse.Namespace, url: str, token: str, out: TextIO) -> None:
    from .serve import banner

    shown = banner(url, token, generated=not args.token, workers=args.workers, record=args.record)
    print(shown, file=out, flush=True)
