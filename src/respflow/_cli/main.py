"""The ``respflow`` command: replay, demo, mock-server, stream."""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from .._events import Event, encode_event
from .._exceptions import RecordingError, RespflowError
from .._sources.recording import replay
from .render import PrettyRenderer

if TYPE_CHECKING:
    from .._delivery.pipeline import Sink

# anyio, the pipeline, the openai SDK and the servers are imported by the commands that
# use them: `respflow replay` starts in the time it takes to import the core.

__all__ = ["main"]

SAMPLE = "code_interpreter.sse"

# What each command needs beyond the core: the extra that installs it, and its modules.
_EXTRAS: dict[str, tuple[str, tuple[str, ...]]] = {
    "demo": ("demo", ("openai", "hypercorn")),
    "stream": ("openai", ("openai",)),
    "mock-server": ("mock", ("hypercorn",)),
    "serve": ("serve", ("starlette", "hypercorn", "openai")),
}


def _add_output(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--format",
        choices=("pretty", "jsonl"),
        default="pretty",
        help="pretty for a person (the default), jsonl for one normalized event per line",
    )
    parser.add_argument(
        "--sink",
        action="append",
        default=[],
        metavar="SPEC",
        help="also deliver the events to a sink: jsonl:PATH, log, or a plugin's spec (may repeat)",
    )
    _add_color(parser)


def _add_files(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--fetch-files", action="store_true", help=what)
    _add_files_dir(parser, "where --fetch-files saves (default: ./respflow-files)")


def _add_files_dir(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--files-dir", type=Path, default=Path("respflow-files"), metavar="DIR", help=what
    )


def _add_color(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--color", choices=("auto", "always", "never"), default="auto", help="ANSI colours"
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="respflow",
        description="Normalized events from OpenAI Responses API streams.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    play = commands.add_parser(
        "replay",
        help="replay a recorded stream (SSE, JSONL or Response JSON) as normalized events",
        description=(
            "Replay a recorded Responses API stream. The format (raw SSE, JSONL of events, "
            "a non-streaming Response JSON, or the normalized events respflow writes with "
            "--format jsonl or a jsonl: sink) is read from the content. With no FILE, "
            "replays the sample recording shipped with respflow."
        ),
    )
    play.add_argument("file", nargs="?", metavar="FILE|-", help="the recording; - for stdin")
    _add_files(
        play,
        "save the files the recording cites, links or shows, through the API its environment "
        "names (OPENAI_API_KEY / OPENAI_BASE_URL, or the AZURE_OPENAI_* variables)",
    )
    _add_output(play)

    demo = commands.add_parser(
        "demo",
        help="the whole path on this machine: mock API, openai SDK over HTTP, live rendering",
        description=(
            "Start a mock Responses API on loopback with respflow's sample Code Interpreter "
            "run, stream it through the openai SDK, and render the events as they arrive. "
            "Needs no API key and no network."
        ),
    )
    demo.add_argument(
        "--pace", type=float, default=0.02, metavar="SECONDS", help="delay between events"
    )
    _add_files_dir(demo, "where the run's files are saved (default: ./respflow-files)")
    _add_color(demo)

    mock = commands.add_parser(
        "mock-server",
        help="serve a recording as a mock Responses API (OpenAI and Azure paths)",
        description=(
            "Serve a recording on POST /v1/responses and /openai/v1/responses, with resume, "
            "cancel and container files, until interrupted. With no --fixture, serves the "
            "bundled sample and its files."
        ),
    )
    mock.add_argument("--fixture", type=Path, metavar="FILE", help="SSE, JSONL or Response JSON")
    mock.add_argument("--files", type=Path, metavar="DIR", help="files to serve as container files")
    mock.add_argument("--port", type=int, default=0, help="0 (the default) for any free port")
    mock.add_argument("--pace", type=float, default=0.0, metavar="SECONDS")
    mock.add_argument("--cut-after", type=int, metavar="N", help="drop streams after N events")
    mock.add_argument("--container-ttl", type=float, metavar="SECONDS")
    mock.add_argument("--openai-key", default="sk-mock-openai", help="Bearer key for /v1")
    mock.add_argument("--azure-key", default="mock-azure-key", help="api-key for /openai/v1")

    live = commands.add_parser(
        "stream",
        help="run a prompt against the real API and render its events",
        description=(
            "Create a response and render its stream. Uses OPENAI_API_KEY (and "
            "OPENAI_BASE_URL if set), or Azure: AZURE_OPENAI_ENDPOINT with "
            "AZURE_OPENAI_API_KEY or AZURE_OPENAI_AD_TOKEN."
        ),
    )
    live.add_argument("prompt")
    live.add_argument("--model", required=True)
    live.add_argument(
        "--background", action="store_true", help="background mode: resumed if the link drops"
    )
    live.add_argument(
        "--no-code-interpreter",
        dest="code_interpreter",
        action="store_false",
        help="do not offer the code_interpreter tool",
    )
    _add_files(live, "save the files the response cites, links or shows as they are announced")
    _add_output(live)

    from .serve import add_parser as add_serve

    add_serve(commands)
    return parser


def _renderer(args: argparse.Namespace, out: TextIO) -> Callable[[Event], None]:
    if getattr(args, "format", "pretty") == "jsonl":
        buffer = out.buffer

        def write_json(event: Event) -> None:
            buffer.write(encode_event(event) + b"\n")
            buffer.flush()

        return write_json
    color = args.color == "always" or (args.color == "auto" and out.isatty())
    return PrettyRenderer(_flushing(out), color=color).render


def _flushing(out: TextIO) -> Callable[[str], None]:
    def write(text: str) -> None:
        out.write(text)
        out.flush()

    return write


def _read(name: str | None) -> bytes:
    if name is None:
        return resources.files("respflow").joinpath("samples", SAMPLE).read_bytes()
    if name == "-":
        return sys.stdin.buffer.read()
    with open(name, "rb") as file:
        return file.read()


def _replay(args: argparse.Namespace) -> int:
    try:
        data = _read(args.file)
    except OSError as exc:
        print(f"respflow replay: cannot read {args.file}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    if args.file is None:
        print("respflow replay: playing the bundled sample recording", file=sys.stderr)
    out = sys.stdout
    try:
        if args.fetch_files or args.sink:
            return _replay_delivering(args, data)
        if args.format == "jsonl":
            buffer = out.buffer
            for event in replay(data):
                buffer.write(encode_event(event) + b"\n")
        else:
            color = args.color == "always" or (args.color == "auto" and out.isatty())
            renderer = PrettyRenderer(out.write, color=color)
            for event in replay(data):
                renderer.render(event)
        out.flush()
    except RecordingError as exc:
        print(f"respflow replay: {args.file or SAMPLE}: {exc}", file=sys.stderr)
        return 1
    return 0


def _replay_delivering(args: argparse.Namespace, data: bytes) -> int:
    """Replay through the pipeline: to the terminal, to ``--sink``s, fetching files."""
    events = list(replay(data))  # a bad recording fails here, before any request

    async def recorded() -> AsyncIterator[Event]:
        for event in events:
            yield event

    import anyio

    from .._delivery.pipeline import deliver

    async def run() -> None:
        sinks = _sinks(args)
        if not args.fetch_files:
            await deliver(recorded(), *sinks)
            return
        async with _client_from_environment() as client:
            await deliver(recorded(), *sinks, processors=_fetching(args, client))

    try:
        anyio.run(run)
    except RespflowError as exc:
        print(f"respflow replay: {exc}", file=sys.stderr)
        return 1
    return 0


def _fetching(args: argparse.Namespace, client: Any) -> list[Any]:
    """The file fetcher as a processor, if ``--fetch-files`` asked for it."""
    from .._files.fetcher import FileFetcher
    from .._files.storage import LocalStorage

    return [FileFetcher(client, LocalStorage(args.files_dir))] if args.fetch_files else []


def _sinks(args: argparse.Namespace) -> list[Sink]:
    """The terminal, then each ``--sink`` (an unknown one fails before any request)."""
    from .._delivery.plugins import sink_from_spec
    from .._delivery.sinks import CallbackSink

    return [CallbackSink(_renderer(args, sys.stdout)), *map(sink_from_spec, args.sink)]


def _demo(args: argparse.Namespace) -> int:
    import anyio

    from .demo import demo

    out = sys.stdout
    color = args.color == "always" or (args.color == "auto" and out.isatty())
    anyio.run(
        lambda: demo(
            _flushing(out), pace=max(0.0, args.pace), color=color, files_dir=args.files_dir
        )
    )
    return 0


def _mock_server(args: argparse.Namespace) -> int:
    import anyio

    from ..testing import MockServer, Recording

    samples = resources.files("respflow").joinpath("samples")
    try:
        if args.fixture is not None:
            recording = Recording.from_file(args.fixture)
        else:
            recording = Recording.from_bytes(samples.joinpath(SAMPLE).read_bytes())
    except (OSError, RecordingError) as exc:
        print(f"respflow mock-server: cannot use {args.fixture}: {exc}", file=sys.stderr)
        return 1
    if args.files is not None and not args.files.is_dir():
        print(f"respflow mock-server: --files {args.files} is not a folder", file=sys.stderr)
        return 1

    async def serve(folder: Path | None) -> None:
        server = MockServer(
            recording,
            files=folder,
            pace=args.pace,
            cut_after=args.cut_after,
            container_ttl=args.container_ttl,
            openai_api_key=args.openai_key,
            azure_api_key=args.azure_key,
            port=args.port,
        )
        # Stop on SIGINT or SIGTERM whatever disposition was inherited: a process started
        # in the background by a shell that has no job control inherits an ignored SIGINT.
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with server as mock:
                print(
                    f"respflow mock-server: listening on {mock.url}\n"
                    f"  OpenAI: base_url={mock.openai_base_url!r}, the --openai-key as api_key\n"
                    f"  Azure:  base_url={mock.azure_base_url!r}, the --azure-key as api_key\n"
                    "  Ctrl+C to stop",
                    flush=True,
                )
                async for _ in signals:
                    return

    try:
        if args.files is not None or args.fixture is not None:
            anyio.run(serve, args.files)
        else:
            with resources.as_file(samples.joinpath("files")) as folder:
                anyio.run(serve, folder)
    except KeyboardInterrupt:
        pass
    return 0


def _client_from_environment() -> Any:
    import openai

    endpoint = os.environ.get("AZURE_OPENAI_ENDPOINT")
    if endpoint:
        key = os.environ.get("AZURE_OPENAI_API_KEY")
        token = os.environ.get("AZURE_OPENAI_AD_TOKEN")
        if not key and not token:
            raise RespflowError(
                "AZURE_OPENAI_ENDPOINT is set but neither AZURE_OPENAI_API_KEY nor "
                "AZURE_OPENAI_AD_TOKEN is"
            )
        return openai.AsyncAzureOpenAI(
            base_url=endpoint.rstrip("/") + "/openai/v1/",
            api_key=key or None,
            azure_ad_token=None if key else token,
            api_version=os.environ.get("AZURE_OPENAI_API_VERSION", "preview"),
        )
    if not os.environ.get("OPENAI_API_KEY"):
        raise RespflowError(
            "set OPENAI_API_KEY, or AZURE_OPENAI_ENDPOINT with AZURE_OPENAI_API_KEY "
            "(try `respflow demo` to see respflow work without a key)"
        )
    return openai.AsyncOpenAI()


def _stream(args: argparse.Namespace) -> int:
    import anyio

    from .._delivery.pipeline import deliver
    from .._sources.openai import stream

    params: dict[str, Any] = {"model": args.model, "input": args.prompt}
    if args.code_interpreter:
        params["tools"] = [{"type": "code_interpreter", "container": {"type": "auto"}}]
    if args.background:
        params.update(background=True, store=True)

    async def run() -> None:
        sinks = _sinks(args)
        async with _client_from_environment() as client, stream(client, **params) as events:
            await deliver(events, *sinks, processors=_fetching(args, client))

    try:
        anyio.run(run)
    except RespflowError as exc:
        print(f"respflow stream: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


def _serve(args: argparse.Namespace) -> int:
    from .serve import serve

    return serve(args)


_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "replay": _replay,
    "demo": _demo,
    "mock-server": _mock_server,
    "stream": _stream,
    "serve": _serve,
}


def _missing_extra(args: argparse.Namespace) -> str | None:
    """One line naming the extra to install, if this command needs a module that is not there."""
    extra, modules = _EXTRAS.get(args.command, ("", ()))
    if getattr(args, "fetch_files", False) and not extra:
        extra, modules = "openai", ("openai",)
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError:
            return (
                f"respflow {args.command}: needs {module}, which is not installed; "
                f"install it with: python3 -m pip install 'respflow[{extra}]'"
            )
    return None


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    missing = _missing_extra(args)
    if missing is not None:
        print(missing, file=sys.stderr)
        return 1
    try:
        return _COMMANDS[args.command](args)
    except BrokenPipeError:  # e.g. piped into head
        return 0
