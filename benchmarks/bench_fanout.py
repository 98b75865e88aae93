"""Delivery costs: fan-out to 1, 4 and 16 sinks, and many concurrent streams in one process.

    python benchmarks/bench_fanout.py            # full run
    python benchmarks/bench_fanout.py --quick    # smoke run, as CI does

Fan-out: the normalized events of bench_stream's long stream (5,005 events) published
through a respflow.Pipeline into N sinks that do nothing, so the numbers are the pipeline's
own cost: per event, and per event per sink.

Many streams: N streams run at once, each a short code interpreter turn (the bundled
sample, 40 wire events) read in 4 KiB chunks. Every stream stops halfway and waits until
all are open, then they finish: the table reports the memory each open stream holds
(tracemalloc) and the wall time for all of them, for respflow (bytes -> events) and for the
openai SDK's typed iteration (create(stream=True)) on an in-memory transport, side by side.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
import tracemalloc
from collections.abc import AsyncIterator, Callable, Coroutine
from importlib import resources
from typing import Any

import anyio
from bench_stream import build_stream

import respflow

CHUNK = 4096


class NullSink:
    async def send(self, event: respflow.Event) -> None:
        return None

    async def aclose(self) -> None:
        return None


async def _events(events: list[respflow.Event]) -> AsyncIterator[respflow.Event]:
    for event in events:
        yield event


async def fanout(events: list[respflow.Event], sinks: int, repeats: int) -> float:
    """Best seconds to push ``events`` through a pipeline into ``sinks`` sinks."""
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        await respflow.deliver(_events(events), *(NullSink() for _ in range(sinks)))
        best = min(best, time.perf_counter() - started)
    return best


async def baseline(events: list[respflow.Event], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        async for _ in _events(events):
            pass
        best = min(best, time.perf_counter() - started)
    return best


def _chunks_of(body: bytes) -> list[bytes]:
    return [body[i : i + CHUNK] for i in range(0, len(body), CHUNK)]


async def many_respflow(body: bytes, streams: int) -> tuple[float, float]:
    chunks = _chunks_of(body)
    half = max(1, len(chunks) // 2)
    return await _many(streams, lambda gate, opened: _one_respflow(chunks, half, gate, opened))


async def _one_respflow(
    chunks: list[bytes], half: int, gate: anyio.Event, opened: Callable[[], None]
) -> None:
    async def source() -> AsyncIterator[bytes]:
        for n, chunk in enumerate(chunks):
            if n == half:
                opened()
                await gate.wait()
            yield chunk

    async for _ in respflow.aiter_events(source()):
        pass


async def many_sdk(body: bytes, streams: int) -> tuple[float, float]:
    import httpx2
    import openai

    chunks = _chunks_of(body)
    half = max(1, len(chunks) // 2)
    state: dict[str, Any] = {}

    async def handler(request: Any) -> Any:
        async def source() -> AsyncIterator[bytes]:
            for n, chunk in enumerate(chunks):
                if n == half:
                    state["opened"]()
                    await state["gate"].wait()
                yield chunk

        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=source())

    client = openai.AsyncOpenAI(
        api_key="sk-bench",
        base_url="http://sdk-bench.invalid/v1",
        http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(handler)),
        max_retries=0,
    )

    async def one(gate: anyio.Event, opened: Callable[[], None]) -> None:
        state["gate"], state["opened"] = gate, opened
        stream = await client.responses.create(model="gpt-5", input="x", stream=True)
        async for _ in stream:
            pass

    try:
        return await _many(streams, one)
    finally:
        await client.close()


async def _many(
    streams: int, run: Callable[[anyio.Event, Callable[[], None]], Coroutine[Any, Any, None]]
) -> tuple[float, float]:
    """(bytes held per open stream, seconds for all) with ``streams`` running at once.

    Memory is taken in a run under tracemalloc, time in a run without it."""
    held = await _once(streams, run, traced=True)
    elapsed = await _once(streams, run, traced=False)
    return held / streams, elapsed


async def _once(
    streams: int,
    run: Callable[[anyio.Event, Callable[[], None]], Coroutine[Any, Any, None]],
    *,
    traced: bool,
) -> float:
    gate = anyio.Event()
    open_now = anyio.Event()
    count = 0

    def opened() -> None:
        nonlocal count
        count += 1
        if count == streams:
            open_now.set()

    gc.collect()
    if traced:
        tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0] if traced else 0
    held = 0
    started = time.perf_counter()
    async with anyio.create_task_group() as group:
        for _ in range(streams):
            group.start_soon(run, gate, opened)
        await open_now.wait()
        if traced:
            gc.collect()
            held = tracemalloc.get_traced_memory()[0] - before
        gate.set()
    elapsed = time.perf_counter() - started
    if traced:
        tracemalloc.stop()
        return held
    return elapsed


async def measure(repeats: int, streams: int) -> None:
    body, _ = build_stream()
    events = list(respflow.replay(body))
    base = await baseline(events, repeats)
    print(f"fan-out: {len(events):,} normalized events through a Pipeline into N sinks")
    print()
    print("| sinks | events/s | µs/event | µs/event/sink |")
    print("| ---: | ---: | ---: | ---: |")
    for sinks in (1, 4, 16):
        seconds = await fanout(events, sinks, repeats)
        per_event = (seconds - base) / len(events) * 1e6
        print(
            f"| {sinks} | {len(events) / seconds:,.0f} | {per_event:.2f} | "
            f"{per_event / sinks:.2f} |"
        )
    sample = resources.files("respflow").joinpath("samples", "code_interpreter.sse").read_bytes()
    ours = [await many_respflow(sample, streams) for _ in range(max(1, repeats // 3))]
    theirs = [await many_sdk(sample, streams) for _ in range(max(1, repeats // 3))]
    our_mem, our_time = statistics.median(m for m, _ in ours), min(t for _, t in ours)
    sdk_mem, sdk_time = statistics.median(m for m, _ in theirs), min(t for _, t in theirs)
    print()
    print(f"{streams:,} concurrent streams, each paused halfway until all are open")
    print()
    print("| path | KiB per open stream | seconds for all | x SDK (memory) | x SDK (time) |")
    print("| --- | ---: | ---: | ---: | ---: |")
    print(
        f"| respflow.aiter_events | {our_mem / 1024:.1f} | {our_time:.2f} | "
        f"{sdk_mem / our_mem:.1f} | {sdk_time / our_time:.1f} |"
    )
    print(f"| openai SDK create(stream=True) | {sdk_mem / 1024:.1f} | {sdk_time:.2f} | 1.0 | 1.0 |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--quick", action="store_true", help="a smoke run: 2 repeats, 50 streams")
    args = parser.parse_args()
    if args.quick:
        args.repeats, args.streams = 2, 50
    anyio.run(measure, args.repeats, args.streams)
    return 0


if __name__ == "__main__":
    sys.exit(main())
