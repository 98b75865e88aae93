"""The ``respflow`` command: replay, demo, mock-server, stream, serve, files."""

from __future__ import annotations

import argparse
import atexit
import contextlib
import errno
import gc
import importlib
import os
import sys
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, BinaryIO, TextIO

import msgspec

from .._events import Event, encode_event
from .._exceptions import RecordingError, RespflowError
from .._sources.recording import replay, replay_batches

if TYPE_CHECKING:
    from pathlib import Path

    from .._delivery.pipeline import Attached

# anyio, the pipeline, the openai SDK and the servers are imported by the commands that
# use them: `respflow replay` starts in the time it takes to import the core.

__all__ = ["main"]

SAMPLE = "code_interpreter.sse"

# Events encoded and written per call by `replay --format jsonl`: one call per event cost
# as much as the encoding itself, and one call for a whole recording holds all its JSON.
LINES_PER_WRITE = 1024
# The bytes encode_event writes, each event then a newline, for many events in one call
# (tests/test_replay_output.py holds the two to the same bytes).
_encode_lines = msgspec.json.Encoder().encode_lines

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
    # No Path default: argparse would make it for every replay, and pathlib is an import
    # a plain replay does without (see _files_dir).
    parser.add_argument("--files-dir", type=_path, metavar="DIR", help=what)


def _files_dir(args: argparse.Namespace) -> Path:
    """Where files are saved: ``--files-dir``, else ./respflow-files."""
    from pathlib import Path

    return Path("respflow-files") if args.files_dir is None else args.files_dir


def _path(text: str) -> Path:
    from pathlib import Path

    return Path(text)


def _add_color(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--color",
        choices=("auto", "always", "never"),
        default="auto",
        help="ANSI colours (default: %(default)s: when writing to a terminal)",
    )


def _parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    """The command line parser. For a command named first in ``argv``, only that command
    is added: building the others costs a quick command (replay) a good share of its
    start-up, and nothing but the top-level help and errors shows them."""
    parser = argparse.ArgumentParser(
        prog="respflow",
        description="Normalized events from OpenAI Responses API streams.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--debug",
        action="store_true",
        help="on failure, show the traceback and respflow's own log, not just one line",
    )
    named = argv[0] if argv and argv[0] in _ADDERS else None
    for name, add in _ADDERS.items():
        if named in (None, name):
            add(commands, [common])
    return parser


def _add_replay(commands: Any, parents: list[argparse.ArgumentParser]) -> None:
    play = commands.add_parser(
        "replay",
        parents=parents,
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


def _add_demo(commands: Any, parents: list[argparse.ArgumentParser]) -> None:
    demo = commands.add_parser(
        "demo",
        parents=parents,
        help="the whole path on this machine: mock API, openai SDK over HTTP, live rendering",
        description=(
            "Start a mock Responses API on loopback with respflow's sample Code Interpreter "
            "run, stream it through the openai SDK, and render the events as they arrive. "
            "Needs no API key and no network."
        ),
    )
    demo.add_argument(
        "--pace",
        type=float,
        default=0.02,
        metavar="SECONDS",
        help="delay between events (default: %(default)s)",
    )
    _add_files_dir(demo, "where the run's files are saved (default: ./respflow-files)")
    _add_color(demo)


def _add_mock_server(commands: Any, parents: list[argparse.ArgumentParser]) -> None:
    mock = commands.add_parser(
        "mock-server",
        parents=parents,
        help="serve a recording as a mock Responses API (OpenAI and Azure paths)",
        description=(
            "Serve a recording on POST /v1/responses and /openai/v1/responses, with resume, "
            "cancel and container files, until interrupted. With no --fixture, serves the "
            "bundled sample and its files."
        ),
    )
    mock.add_argument("--fixture", type=_path, metavar="FILE", help="SSE, JSONL or Response JSON")
    mock.add_argument(
        "--files", type=_path, metavar="DIR", help="files to serve as container files"
    )
    mock.add_argument(
        "--port",
        type=int,
        default=0,
        help="port on 127.0.0.1, 0-65535 (default: %(default)s, any free port)",
    )
    mock.add_argument(
        "--pace",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="delay between streamed events (default: %(default)s)",
    )
    mock.add_argument(
        "--cut-after", type=int, metavar="N", help="drop streams after N events (default: never)"
    )
    mock.add_argument(
        "--container-ttl",
        type=float,
        metavar="SECONDS",
        help="idle seconds before a container's files answer 404 (default: never)",
    )
    mock.add_argument(
        "--openai-key",
        default="sk-mock-openai",
        metavar="KEY",
        help="the api_key OpenAI clients must use, sent as Bearer on /v1 (default: %(default)s)",
    )
    mock.add_argument(
        "--azure-key",
        default="mock-azure-key",
        metavar="KEY",
        help="the api_key Azure clients must use, sent as api-key or Bearer on /openai/v1 "
        "(default: %(default)s)",
    )
    mock.add_argument(
        "--keep-ids",
        action="store_true",
        help="replay the recording's own response, container and file ids (byte-for-byte "
        "replays); by default each request gets new ones, so runs never collide",
    )


def _add_stream(commands: Any, parents: list[argparse.ArgumentParser]) -> None:
    live = commands.add_parser(
        "stream",
        parents=parents,
        help="run a prompt against the real API and render its events",
        description=(
            "Create a response and render its stream. Uses OPENAI_API_KEY (and "
            "OPENAI_BASE_URL if set), or Azure: AZURE_OPENAI_ENDPOINT with "
            "AZURE_OPENAI_API_KEY or AZURE_OPENAI_AD_TOKEN."
        ),
    )
    live.add_argument("prompt", help="the input: what to ask the model")
    live.add_argument(
        "--model", required=True, help="the model, e.g. gpt-5 (on Azure, the deployment's name)"
    )
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
    add_record(live)
    _add_output(live)


def _add_serve(commands: Any, parents: list[argparse.ArgumentParser]) -> None:
    from .serve import add_parser

    add_parser(commands, parents=parents)


def _add_files_command(commands: Any, parents: list[argparse.ArgumentParser]) -> None:
    from .files import add_parser

    add_parser(commands, parents=parents)


# The commands, in the order the help lists them.
_ADDERS: dict[str, Callable[[Any, list[argparse.ArgumentParser]], None]] = {
    "replay": _add_replay,
    "demo": _add_demo,
    "mock-server": _add_mock_server,
    "stream": _add_stream,
    "serve": _add_serve,
    "files": _add_files_command,
}


def add_record(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--record",
        metavar="PATH",
        help="also write the raw wire stream, secrets removed (docs/recording.md): to a "
        "folder (existing, or ending in /), one file per response; else appended to a file",
    )


def recorder_for(args: argparse.Namespace) -> Any:
    """The recorder ``--record`` asks for, or None."""
    if args.record is None:
        return None
    from .._delivery.recorder import Recorder

    return Recorder(args.record)  # a str: the slash that says "a folder" is kept


def recorded(command: str, recorder: Any) -> int:
    """Say where the recording went (stderr: stdout may carry --format jsonl); 1 if it failed."""
    if recorder is None:
        return 0
    for failure in recorder.failures:
        print(f"respflow {command}: {failure}", file=sys.stderr)
    for path in recorder.files:
        print(f"respflow {command}: recorded the wire stream to {path}", file=sys.stderr)
    return 1 if recorder.failures else 0


def _renderer(args: argparse.Namespace, out: TextIO) -> Callable[[Event], None]:
    if getattr(args, "format", "pretty") == "jsonl":
        buffer = out.buffer

        def write_json(event: Event) -> None:
            buffer.write(encode_event(event) + b"\n")
            buffer.flush()

        return write_json
    from .render import PrettyRenderer

    color = args.color == "always" or (args.color == "auto" and out.isatty())
    return PrettyRenderer(_flushing(out), color=color).render


def _flushing(out: TextIO) -> Callable[[str], None]:
    def write(text: str) -> None:
        out.write(text)
        out.flush()

    return write


def _read(name: str | None) -> bytes:
    if name is None:
        from importlib import resources

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
            write_lines(replay_batches(data), out.buffer)
        else:
            from .render import PrettyRenderer

            color = args.color == "always" or (args.color == "auto" and out.isatty())
            renderer = PrettyRenderer(out.write, color=color)
            for event in replay(data):
                renderer.render(event)
        out.flush()
    except RecordingError as exc:
        print(f"respflow replay: {args.file or SAMPLE}: {exc}", file=sys.stderr)
        return 1
    return 0


def write_lines(batches: Iterable[list[Event]], out: BinaryIO) -> None:
    """Each event as a line of JSON, as :func:`encode_event` writes it, many lines a write."""
    for batch in batches:
        for start in range(0, len(batch), LINES_PER_WRITE):
            out.write(_encode_lines(batch[start : start + LINES_PER_WRITE]))


def _replay_delivering(args: argparse.Namespace, data: bytes) -> int:
    """Replay through the pipeline: to the terminal, to ``--sink``s, fetching files."""
    events = list(replay(data))  # a bad recording fails here, before any request

    async def recorded() -> AsyncIterator[Event]:
        for event in events:
            yield event

    import anyio

    async def run() -> None:
        sinks = _sinks(args)
        if not args.fetch_files:
            await _deliver_all(recorded(), sinks)
            return
        async with _client_from_environment() as client:
            await _deliver_all(recorded(), sinks, processors=_fetching(args, client))

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

    return [FileFetcher(client, LocalStorage(_files_dir(args)))] if args.fetch_files else []


def _sinks(args: argparse.Namespace) -> list[Attached]:
    """The terminal, then each ``--sink`` (an unknown one fails before any request), each
    named by its spec, without the credential a URL may carry."""
    from .._delivery.pipeline import attach
    from .._delivery.plugins import sink_from_spec
    from .._delivery.redaction import redact_text
    from .._delivery.sinks import CallbackSink

    terminal = attach(CallbackSink(_renderer(args, sys.stdout)), name="the terminal")
    return [terminal, *(attach(sink_from_spec(s), name=redact_text(s)) for s in args.sink)]


async def _deliver_all(
    events: AsyncIterable[Event], sinks: list[Attached], processors: Sequence[Any] = ()
) -> None:
    """Deliver ``events``; a sink that failed makes the command fail, once all is done."""
    from .._delivery.pipeline import deliver
    from .._delivery.redaction import redact_text

    failures = await deliver(events, *sinks, processors=processors)
    # A reader that went away (`| head`) is no failure of the command's.
    failed = [(name, exc) for name, exc in failures if not isinstance(exc, BrokenPipeError)]
    if failed:
        said = "; ".join(f"the sink {name} failed ({_described(exc)})" for name, exc in failed)
        raise RespflowError(redact_text(f"{said}; the other outputs went on to the end"))


def _described(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _demo(args: argparse.Namespace) -> int:
    import anyio

    from .demo import demo

    out = sys.stdout
    color = args.color == "always" or (args.color == "auto" and out.isatty())
    anyio.run(
        lambda: demo(
            _flushing(out), pace=max(0.0, args.pace), color=color, files_dir=_files_dir(args)
        )
    )
    return 0


def _mock_server(args: argparse.Namespace) -> int:
    import signal
    from importlib import resources

    import anyio

    from ..testing import MockServer, Recording

    samples = resources.files("respflow").joinpath("samples")
    try:
        if args.fixture is not None:
            recording = Recording.from_file(args.fixture)
            _one_response(recording)
        else:
            recording = Recording.from_bytes(samples.joinpath(SAMPLE).read_bytes())
    except (OSError, RecordingError) as exc:
        print(f"respflow mock-server: cannot use {args.fixture}: {exc}", file=sys.stderr)
        return 1
    if args.files is not None and not args.files.is_dir():
        print(f"respflow mock-server: --files {args.files} is not a folder", file=sys.stderr)
        return 1
    if not 0 <= args.port <= 65535:
        print(
            f"respflow mock-server: --port {args.port} is no port: use 0-65535 "
            "(--port 0 picks any free one)",
            file=sys.stderr,
        )
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
            fresh_ids=not args.keep_ids,
        )
        # Stop on SIGINT or SIGTERM whatever disposition was inherited: a process started
        # in the background by a shell that has no job control inherits an ignored SIGINT.
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with server as mock:
                # The keys are the mock's own (--openai-key, --azure-key), not secrets: a
                # client must send them, so they are shown.
                print(
                    f"respflow mock-server: listening on {mock.url}\n"
                    f"  OpenAI: base_url={mock.openai_base_url!r}, api_key={args.openai_key!r}\n"
                    f"  Azure:  base_url={mock.azure_base_url!r}, api_key={args.azure_key!r}\n"
                    f"  e.g. OPENAI_BASE_URL={mock.openai_base_url} "
                    f"OPENAI_API_KEY={args.openai_key} respflow stream --model m 'hi'\n"
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
    except OSError as exc:  # the port: taken, or not ours to take
        if args.debug:
            raise
        busy = " (in use)" if exc.errno == errno.EADDRINUSE else ""
        print(
            f"respflow mock-server: cannot listen on 127.0.0.1:{args.port}{busy}: "
            f"{exc.strerror or exc}; choose another --port, or --port 0 for any free one",
            file=sys.stderr,
        )
        return 1
    return 0


def _one_response(recording: Any) -> None:
    """A recording the mock serves holds one response: it sends the whole of it to every
    request, and two responses in one body are no stream the API sends."""
    created = sum(1 for event in recording.events if event.type == "response.created")
    if created > 1:
        raise RecordingError(
            f"it holds {created} responses (a file --record appended to); the mock serves "
            "one: record into a folder (--record DIR/) for a file per response, or replay "
            "them all with `respflow replay`"
        )


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
        # The resource's endpoint, or its v1 base URL as the portal shows it (both work).
        base = endpoint.rstrip("/").removesuffix("/openai/v1")
        return openai.AsyncAzureOpenAI(
            base_url=base + "/openai/v1/",
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

    from .._sources.openai import stream

    params: dict[str, Any] = {"model": args.model, "input": args.prompt}
    if args.code_interpreter:
        params["tools"] = [{"type": "code_interpreter", "container": {"type": "auto"}}]
    if args.background:
        params.update(background=True, store=True)

    recorder = recorder_for(args)

    async def run() -> None:
        sinks = _sinks(args)
        async with (
            _client_from_environment() as client,
            stream(client, record=recorder, **params) as events,
        ):
            await _deliver_all(events, sinks, processors=_fetching(args, client))

    try:
        anyio.run(run)  # a failure is main's to report, in one line
    finally:
        failed = recorded("stream", recorder)
    return failed


def _serve(args: argparse.Namespace) -> int:
    from .serve import serve

    return serve(args)


def _files(args: argparse.Namespace) -> int:
    from .files import files

    return files(args)


_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "replay": _replay,
    "demo": _demo,
    "mock-server": _mock_server,
    "stream": _stream,
    "serve": _serve,
    "files": _files,
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


@contextlib.contextmanager
def _logging_for(args: argparse.Namespace) -> Iterator[None]:
    """respflow's own log only with --debug (the command says what failed, in one line);
    ``--sink log`` to stderr, never into stdout where ``--format jsonl`` goes. Undone
    after the command, for a caller that runs ``main`` in its own process."""
    if not _may_log(args):  # plain replay: nothing logs, and importing logging costs time
        yield
        return
    import logging

    touched = [logging.getLogger("respflow"), logging.getLogger("respflow.events")]
    saved = [(log, list(log.handlers), log.level, log.propagate) for log in touched]
    own = touched[0]
    own.propagate = False
    handler: logging.Handler = logging.NullHandler()
    if args.debug:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(name)s %(levelname)s: %(message)s"))
        own.setLevel(logging.DEBUG)
    own.addHandler(handler)
    configured = False
    if any(spec.partition(":")[0] == "log" for spec in getattr(args, "sink", ())):
        configured = _log_events_to_stderr()
    try:
        yield
    finally:
        for log, handlers, level, propagate in saved:
            log.handlers[:] = handlers
            log.setLevel(level)
            log.propagate = propagate
        if configured:
            import structlog

            structlog.reset_defaults()


def _may_log(args: argparse.Namespace) -> bool:
    delivering = bool(getattr(args, "sink", None) or getattr(args, "fetch_files", False))
    return args.debug or args.command != "replay" or delivering


def _log_events_to_stderr() -> bool:
    """Send ``LogSink``'s records to stderr; True if that configured structlog."""
    import logging

    try:
        import structlog
    except ImportError:
        events = logging.getLogger("respflow.events")
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_event_line())
        events.addHandler(handler)
        events.setLevel(logging.INFO)
        events.propagate = False
        return False
    if structlog.is_configured():  # the application's own setup: left as it is
        return False
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))  # not stdout
    return True


def _event_line() -> Any:
    """A formatter showing a ``LogSink`` record on one line with its fields, as structlog
    would (made here: ``logging`` is imported only when a command logs)."""
    import logging

    import msgspec

    class EventLine(logging.Formatter):
        def format(self, record: logging.LogRecord) -> str:
            fields = getattr(record, "respflow", {})
            said = " ".join(
                f"{name}={msgspec.json.encode(value).decode()}"
                for name, value in fields.items()
                if value not in (None, "", [], {})
            )
            return f"{record.levelname.lower():<7} {record.getMessage()} {said}".rstrip()

    return EventLine()


def _leave_the_rest_to_the_system() -> None:
    """At exit an interpreter searches every object still alive, its modules' too, for
    garbage: ~15 ms, a tenth of replaying 50,000 events. What is garbage now is collected
    (and finalized) here; the rest, which a replay that has written its output does not
    need finalized, is left to the system to reclaim with the process."""
    gc.collect()
    gc.freeze()


def _one_line(command: str, exc: BaseException) -> str:
    """What went wrong, as one line without a secret in it."""
    from .._delivery.redaction import redact_text
    from .render import shown

    inner = _innermost(exc)
    if isinstance(inner, RespflowError):
        said = str(inner)
    else:
        said = (
            f"unexpected {_described(inner)}; run it again with --debug for the traceback, "
            "and please report it"
        )
    # Redacted first, as it came; then made one line again (redaction may decode a
    # percent-encoded line end) and its control characters shown, not sent: a server's
    # error message could carry an escape sequence meant for the user's terminal.
    line = redact_text(f"respflow {command}: " + " ".join(said.split()))
    return shown(" ".join(line.split()))


def _innermost(exc: BaseException) -> BaseException:
    """The error a group stands for: its first respflow error, else its first error."""
    if not isinstance(exc, BaseExceptionGroup):
        return exc
    leaves = [_innermost(inner) for inner in exc.exceptions]
    ours = [leaf for leaf in leaves if isinstance(leaf, RespflowError)]
    return (ours or leaves)[0]


def main(argv: Sequence[str] | None = None) -> int:
    own_process = argv is None  # `respflow ...` or `python -m respflow ...`
    if argv is None:
        argv = sys.argv[1:]
    args = _parser(argv).parse_args(argv)
    if own_process and args.command == "replay":
        atexit.register(_leave_the_rest_to_the_system)
    missing = _missing_extra(args)
    if missing is not None:
        print(missing, file=sys.stderr)
        return 1
    try:
        with _logging_for(args):
            return _COMMANDS[args.command](args)
    except BrokenPipeError:  # e.g. piped into head
        return 0
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if args.debug:
            raise
        print(_one_line(args.command, exc), file=sys.stderr)
        return 1
