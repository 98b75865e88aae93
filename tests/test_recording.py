from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

import respflow
from respflow import RecordingError, detect_format, replay
from respflow._cli import main
from respflow.testing import StreamBuilder, to_jsonl, to_sse

ROOT = Path(__file__).resolve().parents[1]
WIRE = StreamBuilder().code_call("print(1)", logs="1\n").message("done").events()


@pytest.mark.parametrize(
    ("data", "fmt"),
    [
        (to_sse(WIRE), "sse"),
        (b"\xef\xbb\xbf" + to_sse(WIRE), "sse"),
        (b": comment\n" + to_sse(WIRE), "sse"),
        (to_jsonl(WIRE), "jsonl"),
        (to_jsonl(WIRE[:1]), "jsonl"),
        (b"garbage line\n" + to_jsonl(WIRE), "jsonl"),
        (msgspec.json.encode(WIRE), "jsonl"),
        (msgspec.json.encode(StreamBuilder().message("x").response()), "response"),
    ],
)
def test_detect_format(data: bytes, fmt: str) -> None:
    assert detect_format(data) == fmt


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"   \n", "empty"),
        (b"hello world", "not a Responses API recording"),
        (b'{"error": {"code": "model_not_found", "message": "no such model"}}', "model_not_found"),
        (b'{"hello": 1}', "neither a Response nor a stream event"),
    ],
)
def test_unreadable_recordings_raise(data: bytes, message: str) -> None:
    with pytest.raises(RecordingError, match=message):
        list(replay(data))


def test_every_format_replays_to_the_same_items() -> None:
    def items(data: bytes) -> list[respflow.Event]:
        return [
            e
            for e in replay(data)
            if isinstance(e, (respflow.CodeCompleted, respflow.MessageCompleted))
        ]

    sse = items(to_sse(WIRE))
    assert sse == items(to_jsonl(WIRE)) == items(msgspec.json.encode(WIRE))
    assert [type(e) for e in sse] == [respflow.CodeCompleted, respflow.MessageCompleted]


def test_cli_jsonl_prints_one_event_per_line(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    path = tmp_path / "rec.sse"
    path.write_bytes(to_sse(WIRE))
    assert main(["replay", "--format", "jsonl", str(path)]) == 0
    lines = capsysbinary.readouterr().out.splitlines()
    events = [msgspec.json.decode(line) for line in lines]
    assert events[0]["type"] == "response.started"
    assert events[-1]["type"] == "response.completed"
    for event in events:
        assert {"type", "response_id", "sequence_number", "cursor"} <= event.keys()
    assert [respflow.decode_event(line) for line in lines] == list(replay(to_sse(WIRE)))


def test_cli_pretty_sample_tells_the_story(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay"]) == 0
    out, err = capsys.readouterr()
    assert "bundled sample" in err
    for needle in (
        "── code (code_interpreter in cntr_sample) ──",
        'rolls.to_csv("/mnt/data/dice_rolls.csv", index=False)',
        "── output ──",
        "mean      7.00",
        "[image image/png",
        "── answer ──",
        "📎 cited dice_rolls.csv",
        "⚠ link with no citation: sandbox:/mnt/data/dice_chart.png",
        "✔ completed",
    ):
        assert needle in out
    assert "\x1b[" not in out  # no colour when not on a terminal


def test_cli_bad_stream_exits_zero_unreadable_file_exits_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cut = tmp_path / "cut.sse"
    cut.write_bytes(to_sse(WIRE)[:500])
    assert main(["replay", str(cut)]) == 0
    assert "truncated" in capsys.readouterr().out
    assert main(["replay", str(tmp_path / "missing.sse")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("respflow replay: cannot read")
    assert "\n" not in err
    junk = tmp_path / "junk.txt"
    junk.write_bytes(b"hello")
    assert main(["replay", str(junk)]) == 1
    assert "not a Responses API recording" in capsys.readouterr().err


def test_cli_reads_stdin_as_a_real_process() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "respflow", "replay", "--format", "jsonl", "-"],
        input=to_jsonl(WIRE),
        capture_output=True,
        check=True,
        timeout=60,
    )
    assert done.stdout.splitlines()[-1].startswith(b'{"type":"response.completed"')


def test_the_shipped_sample_is_what_the_generator_writes() -> None:
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import make_sample
    finally:
        sys.path.pop(0)
    shipped = (ROOT / "src" / "respflow" / "samples" / "code_interpreter.sse").read_bytes()
    assert shipped == make_sample.build(), "run: python tools/make_sample.py"
    folder = ROOT / "src" / "respflow" / "samples" / "files"
    files = {p.name: p.read_bytes() for p in folder.iterdir()}
    assert files == make_sample.container_files(), "run: python tools/make_sample.py"


@pytest.mark.parametrize(
    ("argv", "module", "extra"),
    [
        (["demo"], "openai", "demo"),
        (["demo"], "hypercorn", "demo"),
        (["mock-server"], "hypercorn", "mock"),
        (["stream", "--model", "m", "hello"], "openai", "openai"),
        (["replay", "--fetch-files"], "openai", "openai"),
    ],
)
def test_a_command_without_its_extra_says_in_one_line_what_to_install(
    argv: list[str],
    module: str,
    extra: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # as on a core-only install
    assert main(argv) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1
    assert f"needs {module}" in err
    assert f"pip install 'respflow[{extra}]'" in err
