"""``respflow replay --format jsonl`` writes many events per write and builds only the
parser of the command it runs: its output is still, byte for byte, each event's
``encode_event`` and a newline, and it imports nothing a replay does not use."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import resources
from pathlib import Path

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from respflow import Assembler, Event, encode_event, replay
from respflow._cli import main
from respflow._cli.main import LINES_PER_WRITE, write_lines
from respflow._sources.recording import FEED_BYTES
from respflow.testing import StreamBuilder, to_jsonl, to_sse

SAMPLE = resources.files("respflow").joinpath("samples", "code_interpreter.sse").read_bytes()

# A code call and a message in 4-character deltas: a few times LINES_PER_WRITE events.
BUILDER = (
    StreamBuilder(response_id="resp_long")
    .code_call("squares = [x * x for x in range(9)]  # ±\n" * 120, logs="ok\n", chunk=4)
    .message("The squares grow quickly — see the CSV. " * 300, chunk=4)
)
LONG = to_sse(BUILDER.events())


def one_by_one(data: bytes) -> bytes:
    """What a reader writing each event as it comes gets: the reference output."""
    return b"".join(encode_event(event) + b"\n" for event in replay(data))


def replayed(path: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> bytes:
    assert main(["replay", "--format", "jsonl", str(path)]) == 0
    return capsysbinary.readouterr().out


def test_the_long_stream_spans_several_writes() -> None:
    assert len(list(replay(LONG))) > 3 * LINES_PER_WRITE


@pytest.mark.parametrize(
    "recording",
    [
        pytest.param(SAMPLE, id="sample"),
        pytest.param(LONG, id="long-sse"),
        pytest.param(to_jsonl(BUILDER.events()), id="long-jsonl"),
        pytest.param(json.dumps(BUILDER.events()).encode(), id="long-json-array"),
        pytest.param(json.dumps(BUILDER.response()).encode(), id="response-json"),
        pytest.param(one_by_one(LONG), id="long-normalized-events"),
        pytest.param(to_sse(BUILDER.events())[:-5000], id="cut-off"),
    ],
)
def test_jsonl_output_is_each_event_encoded_on_its_own_line(
    recording: bytes, tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    path = tmp_path / "recording"
    path.write_bytes(recording)
    assert replayed(path, capsysbinary) == one_by_one(recording)


@pytest.mark.parametrize(
    "recording",
    [
        pytest.param(LONG, id="lf"),
        pytest.param(b"\xef\xbb\xbf" + LONG, id="bom"),
        pytest.param(LONG.replace(b"\n", b"\r\n"), id="crlf"),
    ],
)
def test_replay_in_pieces_gives_what_one_feed_of_the_whole_gives(recording: bytes) -> None:
    assert len(recording) > 3 * FEED_BYTES
    whole = Assembler()
    assert list(replay(recording)) == whole.feed(recording) + whole.close()


def test_a_real_process_writes_the_same_bytes(tmp_path: Path) -> None:
    path = tmp_path / "long.sse"
    path.write_bytes(LONG)
    done = subprocess.run(
        [sys.executable, "-m", "respflow", "replay", "--format", "jsonl", str(path)],
        capture_output=True,
        check=True,
        timeout=60,
    )
    assert done.stdout == one_by_one(LONG)
    assert done.stderr == b""


class Collected:
    """A binary stream that keeps each write apart."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> int:
        self.writes.append(bytes(data))
        return len(data)


EVENTS = list(replay(LONG))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 3 * LINES_PER_WRITE), max_size=4))
def test_any_batches_write_every_event_once_in_order(sizes: list[int]) -> None:
    batches: list[list[Event]] = []
    start = 0
    for size in sizes:
        batches.append([EVENTS[(start + i) % len(EVENTS)] for i in range(size)])
        start += size
    out = Collected()
    write_lines(batches, out)  # type: ignore[arg-type]  # only write() is used
    expected = [event for batch in batches for event in batch]
    assert b"".join(out.writes) == b"".join(encode_event(e) + b"\n" for e in expected)
    assert all(w.count(b"\n") <= LINES_PER_WRITE for w in out.writes)
    assert [msgspec.json.decode(line)["cursor"] for w in out.writes for line in w.splitlines()] == [
        e.cursor for e in expected
    ]


# What a `replay --format jsonl FILE` has no use for (and a bare interpreter may already
# have loaded: those are not held against it).
UNUSED = (
    "anyio",
    "httpx2",
    "hypercorn",
    "hypothesis",
    "importlib.resources",
    "logging",
    "openai",
    "pathlib",
    "pydantic",
    "respflow._cli.files",
    "respflow._cli.render",
    "respflow._cli.serve",
    "respflow._delivery",
    "respflow._files",
    "respflow._server",
    "respflow.testing",
    "secrets",
    "signal",
    "starlette",
    "structlog",
    "trio",
)


def last_said(probe: str) -> str:
    """The last line a fresh interpreter running ``probe`` writes to stderr."""
    done = subprocess.run(
        [sys.executable, "-c", probe],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=True,
        timeout=60,
    )
    return done.stderr.splitlines()[-1]


def modules_after(code: str) -> set[str]:
    """The modules a fresh interpreter has loaded after ``code``."""
    probe = f"{code}\nimport sys\nprint(' '.join(sorted(sys.modules)), file=sys.stderr)"
    return set(last_said(probe).split())


def test_replay_jsonl_imports_nothing_it_does_not_use(tmp_path: Path) -> None:
    path = tmp_path / "long.sse"
    path.write_bytes(LONG)
    bare = modules_after("")
    run = f"from respflow._cli import main\nmain(['replay', '--format', 'jsonl', {str(path)!r}])"
    loaded = modules_after(run) - bare
    assert "respflow._core.assembler" in loaded  # the probe did replay
    assert {m for m in loaded if m.startswith(UNUSED)} == set()


def test_each_command_parses_as_it_does_with_all_of_them_built(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from respflow._cli.main import _ADDERS, _parser

    for command in _ADDERS:
        argv = [command, "--help"]
        if command == "files":
            argv = ["files", "verify", "--help"]
        shown = []
        for parser in (_parser(argv), _parser(())):
            with pytest.raises(SystemExit):
                parser.parse_args(argv)
            shown.append(capsys.readouterr().out)
        assert shown[0] == shown[1]
        assert f"usage: respflow {argv[0]}" in shown[0]
    argv = ["replay", "--format", "jsonl", "--fetch-files", "--color", "never", "rec.sse"]
    assert _parser(argv).parse_args(argv) == _parser(()).parse_args(argv)


def test_the_top_level_help_and_errors_name_every_command(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from respflow._cli.main import _ADDERS

    with pytest.raises(SystemExit):
        main(["--help"])
    shown = capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["replya"])
    said = capsys.readouterr().err
    for command in _ADDERS:
        assert command in shown
        assert repr(command) in said


def frozen_at_exit(call: str, path: Path) -> int:
    """How many objects a process that runs ``call`` leaves out of the garbage collection
    at its exit (its exit functions run first, as at a real exit)."""
    probe = (
        "import atexit, gc, sys\nfrom respflow._cli import main\n"
        f"sys.argv = ['respflow', 'replay', '--format', 'jsonl', {str(path)!r}]\n{call}\n"
        "atexit._run_exitfuncs()\nprint(gc.get_freeze_count(), file=sys.stderr)"
    )
    return int(last_said(probe))


def test_only_the_command_line_leaves_its_objects_to_the_system_at_exit(tmp_path: Path) -> None:
    path = tmp_path / "long.sse"
    path.write_bytes(LONG)
    assert frozen_at_exit("main()", path) > 0  # the process is the command: it exits faster
    assert frozen_at_exit("main(sys.argv[1:])", path) == 0  # a program's own exit is its own
