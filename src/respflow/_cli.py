"""The ``respflow`` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib import resources

from ._events import encode_event
from ._exceptions import RecordingError
from ._recording import replay
from ._render import PrettyRenderer

__all__ = ["main"]

SAMPLE = "code_interpreter.sse"


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
            "or a non-streaming Response JSON) is read from the content. With no FILE, "
            "replays the sample recording shipped with respflow."
        ),
    )
    play.add_argument("file", nargs="?", metavar="FILE|-", help="the recording; - for stdin")
    play.add_argument(
        "--format",
        choices=("pretty", "jsonl"),
        default="pretty",
        help="pretty for a person (the default), jsonl for one normalized event per line",
    )
    play.add_argument(
        "--color", choices=("auto", "always", "never"), default="auto", help="ANSI colours"
    )
    return parser


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
    except BrokenPipeError:  # e.g. piped into head
        return 0
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "replay":
        return _replay(args)
    raise AssertionError(f"unhandled command {args.command}")  # pragma: no cover
