"""``respflow serve``: the app as a ready gateway, from a prompt to any browser.

Safe by default: it binds 127.0.0.1 unless told otherwise, API callers need a bearer
token (generated and printed when not given), and browsers get signed, expiring URLs.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import secrets
import signal
import sys
from importlib import resources
from pathlib import Path
from typing import Any, TextIO

from .._delivery.leases import LEASE_TTL

__all__ = ["add_parser", "banner", "serve"]

SAMPLE = "code_interpreter.sse"
TOKEN_VARIABLE = "RESPFLOW_TOKEN"
SECRET_VARIABLE = "RESPFLOW_SECRET"


def add_parser(commands: Any, *, parents: list[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "serve",
        parents=parents,
        help="serve responses over HTTP: start them, follow them from browsers, get their files",
        description=(
            "Run the respflow app: POST /responses starts a response (Authorization: Bearer "
            "<token>), GET its events_url follows it as server-sent events, resumable with "
            "Last-Event-ID, and GET /healthz answers once it is ready. Uses OPENAI_API_KEY "
            "(or the AZURE_OPENAI_* variables), or with --mock a mock API on this machine."
        ),
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: %(default)s)"
    )
    parser.add_argument(
        "--port", type=int, default=8000, help="0 picks a free one (default: %(default)s)"
    )
    parser.add_argument(
        "--mock", action="store_true", help="answer with the bundled mock API, no key needed"
    )
    parser.add_argument(
        "--broker",
        default="memory",
        metavar="URL",
        help="memory, or redis://host:port/db (default: %(default)s)",
    )
    parser.add_argument(
        "--files-dir",
        type=Path,
        default=Path("respflow-files"),
        metavar="DIR",
        help="where the responses' files are saved and served from (default: %(default)s)",
    )
    parser.add_argument(
        "--token",
        default=os.environ.get(TOKEN_VARIABLE),
        help=f"the bearer token API callers send (default: ${TOKEN_VARIABLE}, else a new "
        "one, printed)",
    )
    parser.add_argument(
        "--secret",
        default=os.environ.get(SECRET_VARIABLE),
        help="signs events and file URLs; give instances sharing a broker the same one "
        f"(default: ${SECRET_VARIABLE}, else a new one, so URLs die with the process)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes accepting on one port; above 1 needs a shared --broker "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--allow-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="let pages on ORIGIN (https://chat.example.com; repeat for more; * for any) "
        "call this server from their scripts: it answers with CORS headers for them "
        "(default: none, same-origin pages only)",
    )
    # A worker of `--workers N`: serve on the socket the parent bound, say nothing.
    parser.add_argument("--worker-fd", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument(
        "--lease-ttl",
        type=float,
        default=LEASE_TTL,
        metavar="SECONDS",
        help="with a shared broker, how long after an instance dies another one takes its "
        "responses over (default: %(default)s)",
    )
    parser.add_argument(
        "--flush",
        type=float,
        default=0.05,  # pacing.FLUSH: importing it here would load anyio to parse
        metavar="SECONDS",
        help="how long a browser's stream rests after a write while events flow; what "
        "arrives meanwhile goes out together (0: each as soon as possible; default: "
        "%(default)s)",
    )
    from .main import add_record

    add_record(parser)


def serve(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    """Run until SIGINT or SIGTERM; returns the exit code."""
    problem = _refused(args)
    if problem is not None:
        print(f"respflow serve: {problem}", file=sys.stderr)
        return 2
    token = args.token or new_token()
    secret = args.secret or secrets.token_urlsafe(32)
    if args.workers > 1:
        from .workers import StartFailed, supervise

        try:
            return supervise(args, token, secret, out)
        except StartFailed as exc:
            print(f"respflow serve: {exc}", file=sys.stderr)
            return 1
        except OSError as exc:
            print(
                f"respflow serve: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}",
                file=sys.stderr,
            )
            return 1
    import anyio

    from .main import recorded, recorder_for

    recorder = recorder_for(args)
    try:
        anyio.run(_serve, args, token, secret, out, recorder)
    except OSError as exc:
        print(
            f"respflow serve: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}",
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt:
        pass
    return recorded("serve", recorder)


def _refused(args: argparse.Namespace) -> str | None:
    if not 0 <= args.port <= 65535:
        return f"--port {args.port} is out of range (0-65535; 0 picks a free one)"
    if args.workers < 1:
        return "--workers must be at least 1"
    if not 0.1 <= args.lease_ttl <= 3600:
        return f"--lease-ttl {args.lease_ttl} is out of range (0.1 to 3600 seconds)"
    if not 0 <= args.flush <= 1:
        return f"--flush {args.flush} is out of range (0 to 1 second)"
    from .._server.cors import origin

    for given in args.allow_origin:
        try:
            origin(given)
        except ValueError as exc:
            return f"--allow-origin {exc}"
    if args.broker == "memory":
        if args.workers > 1:
            return (
                "--workers above 1 needs a broker the workers share (--broker redis://...); "
                "with the memory broker each worker would see only its own responses"
            )
        return None
    scheme = args.broker.partition("://")[0]
    if "://" not in args.broker or _broker_factory(scheme) is None:
        if scheme in {"redis", "rediss", "unix"}:
            return (
                f"--broker {scheme}://... needs the respflow-redis plugin, which is not "
                "installed (pip install -e plugins/respflow-redis)"
            )
        return f"--broker {args.broker!r} is not a broker respflow knows (memory, redis://...)"
    return None


def _broker_factory(scheme: str) -> Any:
    """The factory a plugin registers for broker URLs of ``scheme``
    (entry point group ``respflow.brokers``), or None."""
    from importlib.metadata import entry_points

    for point in entry_points(group="respflow.brokers"):
        if point.name == scheme:
            return point.load()
    return None


async def _open_broker(args: argparse.Namespace, stack: contextlib.AsyncExitStack) -> Any:
    from .._delivery.broker import MemoryBroker

    if args.broker == "memory":
        return MemoryBroker()
    broker = _broker_factory(args.broker.partition("://")[0])(args.broker)
    if hasattr(broker, "__aenter__"):
        return await stack.enter_async_context(broker)
    stack.push_async_callback(broker.aclose)
    return broker


async def _serve(
    args: argparse.Namespace, token: str, secret: str, out: TextIO, recorder: Any = None
) -> None:
    import anyio

    from .._delivery.runner import Runner
    from .._server.app import App, app
    from .._server.cors import allow_origins, origin
    from .._server.hosting import Server
    from .._sources.openai import resume, stream

    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with contextlib.AsyncExitStack() as stack:
            broker = await _open_broker(args, stack)
            client = await stack.enter_async_context(await _client(args, stack))
            gateway: App | None = None
            # Instances sharing a broker take over each other's responses, through the
            # same processors the app gives the responses it starts.
            runner = await stack.enter_async_context(
                Runner(
                    client,
                    broker,
                    processors=lambda: gateway.processors() if gateway is not None else [],
                    lease_ttl=args.lease_ttl,
                    takeover=args.broker != "memory",
                    stream=functools.partial(stream, record=recorder),
                    # A response taken over is recorded again, whole, from its replay.
                    resume=functools.partial(resume, record=recorder),
                )
            )
            gateway = app(
                broker,
                runner=runner,
                files=args.files_dir,
                secret=secret,
                token=token,
                flush=args.flush,
            )
            served: Any = gateway
            if args.allow_origin:
                served = allow_origins(gateway, [origin(o) for o in args.allow_origin])
            server = await stack.enter_async_context(
                Server(served, host=args.host, port=args.port, fd=args.worker_fd)
            )
            if args.worker_fd is None:
                shown = banner(server.url, token, generated=not args.token, record=args.record)
                print(shown, file=out, flush=True)
            else:  # to the parent, which announces the port once every worker serves
                print("ready", file=out, flush=True)
            async for _ in signals:
                break


def new_token() -> str:
    """A bearer token to print: hex, so it never starts with ``-`` and reads back as
    ``--token TOKEN`` (argparse takes a value starting with ``-`` for an option)."""
    return secrets.token_hex(24)


def banner(
    url: str, token: str, *, generated: bool, workers: int = 1, record: str | None = None
) -> str:
    """What ``respflow serve`` prints once it listens: where, the token, how to start."""
    note = "  (generated; pass --token to choose one)" if generated else ""
    processes = f" ({workers} workers)" if workers > 1 else ""
    recording = f"  recording the wire to {record}\n" if record else ""
    return (
        f"respflow serve: listening on {url}{processes}\n"
        f"  token: {token}{note}\n"
        f"  start: curl -X POST {url}/responses -H 'authorization: Bearer "
        f"{token}' -H 'content-type: application/json' -d '{{\"model\": \"gpt-5\", "
        f'"input": "Roll two dice", "tools": [{{"type": "code_interpreter", '
        f'"container": {{"type": "auto"}}}}]}}\'\n'
        f"{recording}"
        f"  then follow the events_url it answers with, a path on this server: "
        f"curl -N {url}<events_url>; Ctrl+C to stop"
    )


async def _client(args: argparse.Namespace, stack: contextlib.AsyncExitStack) -> Any:
    """The openai client responses are created with: the user's, or one for the mock."""
    if not args.mock:
        from .main import _client_from_environment

        return _client_from_environment()
    import openai

    from ..testing import MockServer, Recording

    samples = resources.files("respflow").joinpath("samples")
    recording = Recording.from_bytes(samples.joinpath(SAMPLE).read_bytes())
    folder = stack.enter_context(resources.as_file(samples.joinpath("files")))
    mock = await stack.enter_async_context(
        MockServer(recording, files=folder, pace=0.02, fresh_ids=True)
    )
    return openai.AsyncOpenAI(base_url=mock.openai_base_url, api_key=mock.openai_api_key)
