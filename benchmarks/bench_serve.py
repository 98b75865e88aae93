"""Serving: SSE readers per process, and the latency from publish to receipt.

    python benchmarks/bench_serve.py            # full run
    python benchmarks/bench_serve.py --quick    # smoke run, as CI does

A server process publishes one response's events at a fixed rate while N readers in
another process follow it over real loopback HTTP; each event carries the moment it was
published (time.monotonic, one clock for the whole machine), so each reader knows how
long it took to arrive. The servers, same readers, same rate:

- respflow, three times: ``respflow.app`` over a ``MemoryBroker``, the events published
  into the broker one by one and streamed to each reader through a signed ``events_url``
  (subscription, browser view, JSON encoding, SSE framing), with ``flush=0``, with
  ``flush=0.02`` (the default until the rest became 50 ms, kept for comparison) and with
  the app's default rest between a reader's writes;
- floor: a bare Starlette SSE endpoint that hands precomputed frames to each reader's
  queue: the least any Python SSE server on hypercorn does;
- with ``--floor-rest``, also that floor under respflow's default latency rule: after a
  write each reader rests ``FLUSH`` seconds on a timer of its own, and what came
  meanwhile goes out in one write. respflow's default row writes a fifth as often as the
  floor, for its latency; this row shows what the same rule saves a bare server.

The table reports p50 and p99 latency, the events delivered (of readers x events), the
ratios to the floor, and the frames delivered per CPU second of the server process (its
process time from before the first event to after the last reader is done): SSE frames
per core, as a ratio to the floor's. Each figure is a median over the rounds, each ratio a
median of the rounds' ratios (so a ratio column is not always one column over another).
"""

from __future__ import annotations

import argparse
import bisect
import itertools
import random
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx2
import msgspec

SECRET = "bench-secret-bench-secret-bench!"
RID = "resp_bench"


# -- the server process -----------------------------------------------------------------


def respflow_server(rate: float, count: int, flush: float | None = None) -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Mount, Route

    import respflow

    broker = respflow.MemoryBroker(max_events=count + 10)
    gateway = (  # without a flush given, the app's default
        respflow.app(broker, secret=SECRET)
        if flush is None
        else respflow.app(broker, secret=SECRET, flush=flush)
    )

    def delta(seq: int, due: float) -> respflow.Event:
        return respflow.TextDelta(
            RID, seq, f"{seq}-0", item_id="m", output_index=0, content_index=0, delta=f"{due:.9f}"
        )

    async def publish() -> None:
        async for batch in schedule(rate, count):
            await broker.publish([delta(seq, due) for seq, due in batch])
        await broker.publish([respflow.ResponseCompleted(RID, count + 1, f"{count + 1}-0")])

    async def go(request: Request) -> Response:
        request.app.state.group.start_soon(publish)
        return Response(status_code=202)

    async def url(request: Request) -> Response:
        return Response(gateway.events_url(RID))

    return Starlette(
        routes=[
            Route("/go", go, methods=["POST"]),
            Route("/url", url),
            Route("/cpu", cpu),
            Mount("/", gateway),
        ],
        lifespan=_group_lifespan(lambda: broker.publish([respflow.ResponseStarted(RID, 0, "0-0")])),
    )


def floor_server(rate: float, count: int, rest: float = 0.0) -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response, StreamingResponse
    from starlette.routing import Route

    readers: list[Any] = []
    body = b'{"type":"text.delta","delta":"'
    done = b"event: end\ndata: {}\n\n"

    async def publish() -> None:
        async for batch in schedule(rate, count):
            for seq, due in batch:
                frame = b'id: %d-0\ndata: %s%.9f"}\n\n' % (seq, body, due)
                for queue in readers:
                    queue.send_nowait(frame)
        for queue in readers:
            queue.send_nowait(done)

    async def events(request: Request) -> Response:
        send, receive = anyio.create_memory_object_stream[bytes](count + 10)
        readers.append(send)

        async def frames() -> AsyncIterator[bytes]:
            async with receive:
                async for frame in receive:
                    yield frame
                    if frame is done:
                        return

        async def rested() -> AsyncIterator[bytes]:
            """Each write what is queued, then a rest: respflow's rule, at its simplest."""
            async with receive:
                while True:
                    batch = [await receive.receive()]
                    while True:
                        try:
                            batch.append(receive.receive_nowait())
                        except anyio.WouldBlock:
                            break
                    yield b"".join(batch)
                    if batch[-1] is done:
                        return
                    await anyio.sleep(rest)

        stream = rested() if rest else frames()
        return StreamingResponse(stream, media_type="text/event-stream")

    async def go(request: Request) -> Response:
        request.app.state.group.start_soon(publish)
        return Response(status_code=202)

    async def url(request: Request) -> Response:
        return Response("/events")

    return Starlette(
        routes=[
            Route("/go", go, methods=["POST"]),
            Route("/url", url),
            Route("/cpu", cpu),
            Route("/events", events),
        ],
        lifespan=_group_lifespan(None),
    )


async def schedule(rate: float, count: int) -> AsyncIterator[list[tuple[int, float]]]:
    """Events 1 to ``count`` at ``rate`` a second, as batches of ``(seq, when it was
    due)``: a server too busy to wake on time gets what is due at once, as a producer
    reading a model's stream would, rather than slowing the rate down to what it can
    serve. Each event carries when it was due, so its latency counts the wait too.

    ``--arrivals random`` spaces the events as a Poisson process of the same mean rate
    (the same seeded spacing for every server): a model's deltas come off the network at
    no fixed step, so a timer of the server's own rarely falls in the producer's wake-up,
    as it does on the steady grid."""
    due = _due_times(rate, count)
    start = time.monotonic()
    seq = 1
    while seq <= count:
        await anyio.sleep(max(0.0, start + due[seq - 1] - time.monotonic()))
        last = min(count, max(seq, bisect.bisect_right(due, time.monotonic() - start)))
        yield [(n, start + due[n - 1]) for n in range(seq, last + 1)]
        seq = last + 1


ARRIVALS = "steady"


def _due_times(rate: float, count: int) -> list[float]:
    """When each event is due, in seconds from the start."""
    if ARRIVALS == "steady":
        return [n / rate for n in range(1, count + 1)]
    spacing = random.Random(13)
    return list(itertools.accumulate(spacing.expovariate(rate) for _ in range(count)))


async def cpu(request: Any) -> Any:
    """The server process's CPU seconds so far (user and system)."""
    from starlette.responses import Response

    return Response(repr(time.process_time()))


def _group_lifespan(first: Any) -> Any:
    import contextlib

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        async with anyio.create_task_group() as group:
            app.state.group = group
            if first is not None:
                await first()
            yield
            group.cancel_scope.cancel()

    return lifespan


def serve(kind: str, rate: float, count: int, flush: float | None) -> None:
    from respflow._server.hosting import Server

    if kind == "respflow":
        app = respflow_server(rate, count, flush)
    else:
        app = floor_server(rate, count, flush or 0.0)

    async def run() -> None:
        async with Server(app) as server:
            print(server.url, flush=True)
            await anyio.sleep_forever()

    anyio.run(run)


# -- the readers ------------------------------------------------------------------------


async def read(http: httpx2.AsyncClient, url: str, latencies: list[float], ready: Any) -> None:
    async with http.stream("GET", url) as answer:
        ready()
        buffer = b""
        async for chunk in answer.aiter_bytes():
            now = time.monotonic()
            buffer += chunk
            *frames, buffer = buffer.split(b"\n\n")
            for frame in frames:
                data = frame.rpartition(b"data: ")[2]
                if b'"text.delta"' in data:
                    delta = msgspec.json.decode(data)["delta"]
                    latencies.append(now - float(delta))
                elif b"response.completed" in data or frame.startswith(b"event: end"):
                    return


async def run_readers(base: str, readers: int) -> tuple[list[float], float]:
    latencies: list[float] = []
    opened = 0
    all_open = anyio.Event()

    def ready() -> None:
        nonlocal opened
        opened += 1
        if opened == readers:
            all_open.set()

    limits = httpx2.Limits(max_connections=readers + 4, max_keepalive_connections=readers + 4)
    async with httpx2.AsyncClient(base_url=base, limits=limits, timeout=60) as http:
        url = (await http.get("/url")).text
        async with anyio.create_task_group() as group:
            for _ in range(readers):
                group.start_soon(read, http, url, latencies, ready)
            with anyio.fail_after(60):
                await all_open.wait()
            started = float((await http.get("/cpu")).text)
            await http.post("/go")
        used = float((await http.get("/cpu")).text) - started
    return latencies, used


def measure(
    kind: str, readers: int, rate: float, count: int, flush: float | None = None
) -> dict[str, float]:
    command = [sys.executable, __file__, "--serve", kind, "--rate", str(rate)]
    command += ["--count", str(count), "--arrivals", ARRIVALS]
    command += [] if flush is None else ["--flush", str(flush)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as server:
        try:
            assert server.stdout is not None
            base = server.stdout.readline().strip()
            latencies, cpu_seconds = anyio.run(run_readers, base, readers)
        finally:
            server.kill()
            server.wait(timeout=20)
    latencies.sort()
    return {
        "p50": statistics.median(latencies) * 1000,
        "p99": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
        "delivered": len(latencies) / (readers * count),
        "frames_per_cpu_s": len(latencies) / cpu_seconds,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: few readers, 1 s")
    parser.add_argument("--serve", choices=("respflow", "floor"), help=argparse.SUPPRESS)
    parser.add_argument("--rate", type=float, default=100.0, help="events per second")
    parser.add_argument("--count", type=int, default=500, help="events published")
    parser.add_argument("--readers", default="10,100,500", help="reader counts, comma-separated")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; medians are reported")
    parser.add_argument("--flush", type=float, help=argparse.SUPPRESS)
    parser.add_argument(
        "--floor-rest",
        action="store_true",
        help="add the floor resting as respflow's default does (same latency rule)",
    )
    parser.add_argument(
        "--arrivals",
        choices=("steady", "random"),
        default="steady",
        help="events on a steady grid, or spaced at random at the same mean rate",
    )
    args = parser.parse_args()
    global ARRIVALS
    ARRIVALS = args.arrivals
    if args.serve:
        serve(args.serve, args.rate, args.count, args.flush)
        return 0
    rate, count = (50.0, 50) if args.quick else (args.rate, args.count)
    rounds = 1 if args.quick else args.rounds
    print(f"one response, {count} events at {rate:g}/s ({ARRIVALS}), readers in one other process")
    print(f"{rounds} round(s), the servers alternating; medians, ratios per round")
    print(
        "| readers | server | p50 ms | p99 ms | delivered | p50 vs floor | p99 vs floor "
        "| frames per server CPU second | vs floor |"
    )
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    from respflow._server.pacing import FLUSH

    servers: dict[str, tuple[str, float | None]] = {
        "floor": ("floor", None),
        "respflow, flush=0": ("respflow", 0.0),
        "respflow, flush=20 ms": ("respflow", 0.02),
        f"respflow (default, flush {FLUSH * 1000:g} ms)": ("respflow", None),
    }
    if args.floor_rest:
        servers[f"floor, resting {FLUSH * 1000:g} ms as respflow's default"] = ("floor", FLUSH)
    for readers in (10,) if args.quick else map(int, args.readers.split(",")):
        runs: dict[str, list[dict[str, float]]] = {name: [] for name in servers}
        for _ in range(rounds):
            for name, (kind, flush) in servers.items():
                runs[name].append(measure(kind, readers, rate, count, flush))
        for name in servers:
            print(f"| {readers} | {name} | " + _row(runs[name], runs["floor"]))
    return 0


def _row(runs: list[dict[str, float]], floors: list[dict[str, float]]) -> str:
    def median(key: str) -> float:
        return statistics.median(run[key] for run in runs)

    def versus(key: str) -> float:
        pairs = zip(runs, floors, strict=True)
        return statistics.median(run[key] / floor[key] for run, floor in pairs)

    return (
        f"{median('p50'):.2f} | {median('p99'):.2f} | {min(r['delivered'] for r in runs):.0%} | "
        f"{versus('p50'):.2f} | {versus('p99'):.2f} | {median('frames_per_cpu_s'):,.0f} | "
        f"{versus('frames_per_cpu_s'):.2f} |"
    )


if __name__ == "__main__":
    raise SystemExit(main())
