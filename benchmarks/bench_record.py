"""What recording the wire costs: the benchmark stream with and without a Recorder.

The stream of ``bench_stream.py`` (5,010 wire events, 1.12 MB) is read in 4 KiB chunks
through ``respflow.aiter_events``: (a) with no recorder, (f) recording into a folder (one
file per response, written as the bytes arrive), (s) appended to one file (written whole
at the end), and (x) as (f) with a response object full of secrets (an MCP tool's token
and headers, a key in the instructions) in every lifecycle event. All run round-robin in
one process after a warm-up, timed in process CPU time; each ratio is the median of the
per-round ratios to (a). Files go to a temporary folder and are removed after each run.

    python benchmarks/bench_record.py            # 15 rounds
    python benchmarks/bench_record.py --quick    # smoke run
"""

from __future__ import annotations

import argparse
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
import msgspec

import respflow

sys.path.insert(0, str(Path(__file__).parent))
from bench_stream import build_stream, chunks, median_ratio

Run = Callable[[bytes], Awaitable[int]]


def with_secrets(body: bytes) -> bytes:
    """The stream with request settings holding secrets echoed in each response object."""
    settings = {
        "instructions": "Use sk-proj-benchKEY0123456789 for the API.",
        "tools": [
            {
                "type": "mcp",
                "server_label": "crm",
                "server_url": "https://mcp.example.com/sse?token=abc123",
                "authorization": "ya29.bench-oauth-token",
                "headers": {"X-Api-Key": "bench-header-key"},
            }
        ],
    }
    out = []
    for frame in body.split(b"\n\n"):
        head, sep, data = frame.partition(b"\ndata: ")
        if sep and b'"response":{' in data:
            event = msgspec.json.decode(data)
            event["response"].update(settings)
            data = msgspec.json.encode(event)
        out.append(head + sep + data)
    return b"\n\n".join(out)


async def read(body: bytes, recorder: respflow.Recorder | None = None) -> int:
    n = 0
    async for _ in respflow.aiter_events(chunks(body), record=recorder):
        n += 1
    return n


def recording(target: str) -> Run:
    async def run(body: bytes) -> int:
        return await read(body, respflow.Recorder(target))

    return run


def remove(folder: Path) -> None:
    """What a run wrote (outside the timed part: it is the benchmark's, not the recorder's)."""
    for written in folder.iterdir():
        if written.is_dir():
            shutil.rmtree(written)
        else:
            written.unlink()


async def measure(repeats: int) -> None:
    body, wire_events = build_stream()
    secret = with_secrets(body)
    folder = Path(tempfile.mkdtemp(prefix="respflow-bench-record-"))
    try:
        to_folder = recording(f"{folder}/per-response/")  # a str: the slash says "a folder"
        to_file = recording(f"{folder}/all.sse")

        async def secrets_to_folder(_: bytes) -> int:
            return await to_folder(secret)

        paths: dict[str, tuple[str, Run]] = {
            "a": ("no recorder", read),
            "f": ("Recorder(folder/): a file per response, as it arrives", to_folder),
            "s": ("Recorder(file): appended whole at the end", to_file),
            "x": ("(f), every response object holding secrets", secrets_to_folder),
        }
        for _, run in paths.values():  # warm-up
            await run(body)
        times: dict[str, list[float]] = {name: [] for name in paths}
        for _ in range(repeats):
            for name, (_, run) in paths.items():
                start = time.process_time()
                await run(body)
                times[name].append(time.process_time() - start)
                remove(folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(
        f"stream: {wire_events:,} wire events, {len(body) / 1e6:.2f} MB; {repeats} rounds; "
        f"python {platform.python_version()} on {platform.machine()}"
    )
    print()
    print("| path | what | µs/event (median) | x the time of (a) |")
    print("| --- | --- | ---: | ---: |")
    for name, (label, _) in paths.items():
        median = statistics.median(times[name]) / wire_events * 1e6
        print(f"| {name} | {label} | {median:.2f} | {median_ratio(times[name], times['a']):.2f} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds: a smoke run")
    args = parser.parse_args()
    anyio.run(measure, 3 if args.quick else 15)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
