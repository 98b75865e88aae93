"""respflow against the openai SDK on one long code interpreter stream, in one process.

The stream (built with respflow.testing.StreamBuilder, every event valid against the
SDK's own types) holds a code interpreter call of 2,000 code deltas and a message of
3,000 text deltas with a container_file_citation, as in a long real turn. Paths (a)-(d),
(g) and (h) read the same bytes in 4 KiB chunks with one async checkpoint per chunk; paths
(e) and (f) fetch them over real loopback HTTP from ``respflow mock-server`` running in a
child process. All run round-robin after a warm-up and are timed in this process's CPU time (so
other load on a shared machine does not count, and over HTTP neither side is charged for
the mock server's work); the table reports microseconds per wire event and the ratio to
the SDK path on the same transport, (c) in memory and (f) over HTTP: the median of the
ratios of each round. (g) and (h) are compared with (a): the LinkRewriter's share.

A second table runs whole processes on a stream ten times as long (50,010 wire events):
``respflow replay --format jsonl FILE`` against a script that iterates the SDK's typed
events over the same bytes (``create(stream=True)`` on an in-memory transport), start-up
and imports included, round-robin; it reports each child's CPU time (user + system) and
wall time, and the median of the per-round ratios of CPU time. The children may write
.pyc files (the warm-up run does), as an installed package has them.

    python benchmarks/bench_stream.py            # full run (a few minutes)
    python benchmarks/bench_stream.py --quick    # smoke run, as CI does

Paths:
  (a) respflow: bytes -> normalized events (aiter_events over the chunks)
  (b) (a) plus JSON encoding of every normalized event
  (c) openai SDK: responses.create(stream=True), typed events, in-memory transport
  (d) openai SDK: responses.stream() accumulator, in-memory transport
  (e) respflow.stream(client): the SDK sends the request over loopback HTTP, respflow reads
  (f) openai SDK: responses.create(stream=True), typed events, over the same loopback HTTP
  (g) (a) with a LinkRewriter on the path: aiter_events(..., processors=[rewriter]), the
      events of each chunk through LinkRewriter.feed_all in one call
  (h) (a) with LinkRewriter.feed called on each event the loop gets
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import anyio

import respflow
from respflow.testing import StreamBuilder, to_sse

CHUNK = 4096


def build_stream(scale: int = 1) -> tuple[bytes, int]:
    """The benchmark stream, with ``scale`` times as many deltas; and its wire event count."""
    code_line = "values = [x ** 2 for x in range(10)]  # ±\n"
    code_length = 8000 * scale
    code = (code_line * (code_length // len(code_line) + 1))[:code_length]
    sentence = "The squares grow quickly — see the CSV for every value. "
    text_length = 12000 * scale - 60
    text = (sentence * (text_length // len(sentence) + 1))[:text_length]
    link = "sandbox:/mnt/data/squares.csv"
    text += f" [CSV]({link})"
    start = text.index(link)
    citation = {
        "type": "container_file_citation",
        "container_id": "cntr_bench",
        "file_id": "cfile_bench",
        "filename": "squares.csv",
        "start_index": start,
        "end_index": start + len(link),
    }
    builder = (
        StreamBuilder(response_id="resp_bench")
        .code_call(code, logs="[0, 1, 4, 9]\n", container_id="cntr_bench", chunk=4)
        .message(text, annotations=[citation], chunk=4)
    )
    events = builder.events()
    return to_sse(events), len(events)


async def chunks(body: bytes) -> AsyncIterator[bytes]:
    for i in range(0, len(body), CHUNK):
        await anyio.lowlevel.checkpoint()
        yield body[i : i + CHUNK]


async def path_a(body: bytes) -> int:
    n = 0
    async for _ in respflow.aiter_events(chunks(body)):
        n += 1
    return n


async def path_b(body: bytes) -> int:
    n = 0
    encode = respflow.encode_event
    async for event in respflow.aiter_events(chunks(body)):
        encode(event)
        n += 1
    return n


async def path_g(body: bytes) -> int:
    n = 0
    rewriter = respflow.LinkRewriter()
    async for _ in respflow.aiter_events(chunks(body), processors=[rewriter]):
        n += 1
    return n


async def path_h(body: bytes) -> int:
    n = 0
    rewriter = respflow.LinkRewriter()
    async for event in respflow.aiter_events(chunks(body)):
        for _ in rewriter.feed(event):
            n += 1
    return n


def sdk_client(body: bytes) -> Any:
    import httpx2
    import openai

    async def handler(request: Any) -> Any:
        return httpx2.Response(
            200, headers={"content-type": "text/event-stream"}, content=chunks(body)
        )

    return openai.AsyncOpenAI(
        api_key="sk-bench",
        base_url="http://sdk-bench.invalid/v1",
        http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(handler)),
        max_retries=0,
    )


def path_c(client: Any) -> Callable[[bytes], Awaitable[int]]:
    async def run(body: bytes) -> int:
        n = 0
        stream = await client.responses.create(model="gpt-5", input="x", stream=True)
        async for _ in stream:
            n += 1
        return n

    return run


def path_d(client: Any) -> Callable[[bytes], Awaitable[int]]:
    async def run(body: bytes) -> int:
        n = 0
        async with client.responses.stream(model="gpt-5", input="x") as stream:
            async for _ in stream:
                n += 1
            await stream.get_final_response()
        return n

    return run


def path_e(client: Any) -> Callable[[bytes], Awaitable[int]]:
    async def run(body: bytes) -> int:
        n = 0
        async with respflow.stream(client, model="gpt-5", input="x") as events:
            async for _ in events:
                n += 1
        return n

    return run


@contextlib.contextmanager
def mock_server(body: bytes) -> Iterator[str]:
    """``respflow mock-server`` in a child process serving ``body``; yields its base URL."""
    with tempfile.TemporaryDirectory() as tmp:
        fixture = Path(tmp) / "bench.sse"
        fixture.write_bytes(body)
        command = [sys.executable, "-m", "respflow", "mock-server", "--fixture", str(fixture)]
        with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as server:
            try:
                assert server.stdout is not None
                url = server.stdout.readline().rsplit(" ", 1)[-1].strip()
                yield f"{url}/v1"
            finally:
                server.send_signal(signal.SIGINT)
                try:
                    server.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    server.kill()
                    raise


async def measure(repeats: int, base_url: str) -> None:
    import openai

    body, wire_events = build_stream()
    client = sdk_client(body)
    http = openai.AsyncOpenAI(base_url=base_url, api_key="sk-mock-openai", max_retries=0)
    paths: dict[str, Callable[[bytes], Awaitable[int]]] = {
        "a": path_a,
        "b": path_b,
        "c": path_c(client),
        "d": path_d(client),
        "e": path_e(http),
        "f": path_c(http),
        "g": path_g,
        "h": path_h,
    }
    labels = {
        "a": "respflow: bytes -> normalized events",
        "b": "respflow: (a) + JSON encoding of each event",
        "c": "openai SDK: create(stream=True), typed events",
        "d": "openai SDK: responses.stream() accumulator",
        "e": "respflow.stream(client) over loopback HTTP",
        "f": "openai SDK: create(stream=True) over loopback HTTP",
        "g": "respflow: (a) with a LinkRewriter on the path",
        "h": "respflow: (a) with LinkRewriter.feed on each event",
    }
    baseline = {"a": "c", "b": "c", "c": "c", "d": "c", "e": "f", "f": "f", "g": "c", "h": "c"}
    normalized = await path_a(body)
    for run in paths.values():  # warm-up
        await run(body)
    times: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(repeats):
        for name, run in paths.items():
            start = time.process_time()
            await run(body)
            times[name].append(time.process_time() - start)

    def per_event(seconds: float) -> float:
        return seconds / wire_events * 1e6

    print(
        f"stream: {wire_events:,} wire events, {len(body) / 1e6:.2f} MB, "
        f"{normalized:,} normalized events; {repeats} repeats, {CHUNK} B chunks"
    )
    print(
        f"python {platform.python_version()} on {platform.machine()}, "
        f"respflow {respflow.__version__}, msgspec {version('msgspec')}, "
        f"openai {version('openai')}, pydantic {version('pydantic')}, anyio {version('anyio')}"
    )
    print()
    print(
        "| path | what | wire events/s (best) | µs/event (best) | µs/event (median) "
        "| x (SDK, same transport) |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for name in paths:
        best = min(times[name])
        median = statistics.median(times[name])
        ratio = median_ratio(times[baseline[name]], times[name])
        print(
            f"| {name} | {labels[name]} | {wire_events / best:,.0f} | {per_event(best):.2f} | "
            f"{per_event(median):.2f} | {ratio:.1f} ({baseline[name]}) |"
        )
    print()
    rewriter_cost = median_ratio(times["g"], times["a"])
    print(f"LinkRewriter on the path: (g) takes {rewriter_cost:.2f}x the time of (a)")
    feed_cost = median_ratio(times["h"], times["a"])
    print(f"LinkRewriter.feed on each event: (h) takes {feed_cost:.2f}x the time of (a)")
    await http.close()


def median_ratio(slow: list[float], fast: list[float]) -> float:
    """The median over rounds of ``slow / fast``, each round's pair run back to back."""
    return statistics.median(s / f for s, f in zip(slow, fast, strict=True))


SDK_SCRIPT = """\
import sys

import httpx2
import openai

body = open(sys.argv[1], "rb").read()


def handler(request):
    return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=body)


client = openai.OpenAI(
    api_key="sk-bench",
    base_url="http://sdk-bench.invalid/v1",
    http_client=httpx2.Client(transport=httpx2.MockTransport(handler)),
    max_retries=0,
)
n = 0
for event in client.responses.create(model="gpt-5", input="x", stream=True):
    n += 1
print(n)
"""


def run_child(command: list[str]) -> tuple[float, float]:
    """Run ``command`` to its end, output discarded: (CPU seconds, wall seconds)."""
    started = time.perf_counter()
    environment = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, env=environment)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode:
        raise RuntimeError(f"{command} exited with {child.returncode}")
    return usage.ru_utime + usage.ru_stime, wall


def measure_processes(repeats: int) -> None:
    body, wire_events = build_stream(scale=10)
    with tempfile.TemporaryDirectory() as tmp:
        recording = Path(tmp) / "long.sse"
        recording.write_bytes(body)
        script = Path(tmp) / "sdk_iterate.py"
        script.write_text(SDK_SCRIPT)
        commands = {
            "respflow": [
                sys.executable,
                "-m",
                "respflow",
                "replay",
                "--format",
                "jsonl",
                str(recording),
            ],
            "sdk": [sys.executable, str(script), str(recording)],
        }
        labels = {
            "respflow": "`respflow replay --format jsonl FILE`",
            "sdk": "a script iterating the SDK's typed events (`create(stream=True)`)",
        }
        for command in commands.values():  # warm-up: the page cache, .pyc files
            run_child(command)
        cpu: dict[str, list[float]] = {name: [] for name in commands}
        wall: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(repeats):
            for name, command in commands.items():
                seconds, elapsed = run_child(command)
                cpu[name].append(seconds)
                wall[name].append(elapsed)
    print()
    print(
        f"whole processes: {wire_events:,} wire events, {len(body) / 1e6:.2f} MB, {repeats} repeats"
    )
    print()
    print("| process | CPU s (median) | wall s (median) | x SDK (CPU, median of rounds) |")
    print("| --- | ---: | ---: | ---: |")
    for name in commands:
        ratio = median_ratio(cpu["sdk"], cpu[name])
        print(
            f"| {labels[name]} | {statistics.median(cpu[name]):.3f} | "
            f"{statistics.median(wall[name]):.3f} | {ratio:.1f} |"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--process-repeats", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="2 repeats: a smoke run")
    args = parser.parse_args()
    body, _ = build_stream()
    with mock_server(body) as base_url:
        anyio.run(measure, 2 if args.quick else args.repeats, base_url)
    measure_processes(1 if args.quick else args.process_repeats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
