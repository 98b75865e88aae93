"""RedisBroker across instances: publish throughput, latency from one instance to another,
readers per instance, and what a kept response costs in Redis.

    python benchmarks/bench_redis.py            # full run (about five minutes)
    python benchmarks/bench_redis.py --quick    # smoke run, as CI does
    python benchmarks/bench_redis.py --only publish runner   # some sections

It starts its own ``redis-server`` (``RESPFLOW_REDIS_SERVER`` names another binary taking
the same options) on a free loopback port, keeping nothing on disk, and stops it at the
end, also when something fails or the run is interrupted. The events are real ones: the
bundled sample's (a code interpreter turn, 119 normalized events) and bench_stream's long
stream (2,000 code and 3,000 text deltas: 5,005 normalized events), each run under a
response id of its own.

1. Publish: the long stream published under a lease (as the Runner does), one ``publish``
   call per batch of 1, 16 or 256 events, into a RedisBroker and into a MemoryBroker,
   round-robin. Wall time in this process (Redis does its part in its own), so the ratio
   is what a producer waits; Redis's own CPU time comes from ``INFO cpu``.
2. Latency from one instance to another: this process publishes one event per call, at a
   steady pace and flat out; a reader in another process follows the response through a
   RedisBroker of its own. Each side notes ``time.monotonic_ns()`` (publish: before the
   call; receipt: when the reader's ``__anext__`` returns). That clock is one per machine,
   so the figures hold for instances on one host; across hosts, add the network.
3. Readers per instance: the same, with N readers of the one response in the other
   process (one RedisBroker: readers that have caught up share one follower, one blocking
   read): the latency, how long after the last publish the last reader had it, that
   process's CPU seconds per 1,000 events delivered and its share of a core, Redis's
   share of a core, and the Redis reads that process made per event published (EVAL and
   XREAD calls from ``INFO commandstats``, less the producer's one EVAL per event): about
   one or two while readers share the follower, more as readers read pages for themselves.
4. Memory: ``MEMORY USAGE <key> SAMPLES 0`` of a finished response's keys, against the
   size of its events' JSON, under the response ids the events came with (every event's
   JSON carries it; one row shows an id as long as the API's).
5. A Runner end to end: ``runner.start()`` to ``runner.wait()`` of the long stream, its
   bytes arriving in 4 KiB chunks (``respflow.aiter_events``) as from a socket, flat out,
   into a RedisBroker: as the Runner publishes now (what is ready, in one call) and as it
   did before (one event per call, by a broker view that splits every call), round-robin.
   Events/s in this process, publish calls per run, and Redis's CPU per event.

Where a figure is compared or repeated, the variants run interleaved, round after round,
and the tables give medians (and the spread of the rounds, since the machine is shared).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import math
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from importlib.metadata import version
from pathlib import Path
from types import FrameType
from typing import Any, cast

import anyio
import coredis
import msgspec
from anyio.streams.buffered import BufferedByteReceiveStream
from bench_stream import build_stream, chunks
from respflow_redis import RedisBroker
from respflow_redis._ids import response_keys

import respflow

# The plugin's tests start their redis-server the same way: one helper for both.
sys.path.append(str(Path(__file__).resolve().parents[1] / "plugins" / "respflow-redis" / "tests"))
from redis_process import find_server, free_port, server_command, wait_until_it_answers

BATCHES = (1, 16, 256)
PRODUCER = "bench-producer"
LEASE_TTL = 600.0
INSTANCE_DEADLINE = 300.0
"""Seconds the reader process waits for the response's end before giving up."""

_ids = itertools.count()


# -- a redis-server of our own ----------------------------------------------------------


class Started:
    """What this run started, to be stopped whatever ends it: a failure, or SIGTERM.

    SIGTERM stops them from its handler and exits there: unwinding coredis's clients
    from a signal, mid-command, is noisy and not always clean.
    """

    def __init__(self) -> None:
        self.server: subprocess.Popen[bytes] | None = None
        self.directory: str | None = None
        self.readers: set[int] = set()
        """The pids of readers' processes still running."""

    def stop(self) -> None:
        for pid in self.readers:
            with contextlib.suppress(ProcessLookupError, ChildProcessError):
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
        self.readers.clear()
        if self.server is not None:
            self.server.terminate()
            try:
                self.server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.server.kill()
                self.server.wait()
            self.server = None
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None


STARTED = Started()


@contextlib.contextmanager
def sigterm_waits() -> Iterator[None]:
    """SIGTERM is held back while a process is started, until it is on ``STARTED``'s
    list (its handler stops only what is on it); the child inherits the blocked signal
    and unblocks it for itself."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    try:
        yield
    finally:
        _unblock_sigterm()


def _unblock_sigterm() -> None:
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})


@contextlib.contextmanager
def redis_server(binary: str) -> Iterator[str]:
    """``redis://127.0.0.1:<port>/0`` of a redis-server stopped when the block ends."""
    STARTED.directory = directory = tempfile.mkdtemp(prefix="bench-redis-")
    try:
        log_path = Path(directory) / "redis.log"
        port = free_port()
        with log_path.open("wb") as log, sigterm_waits():
            STARTED.server = subprocess.Popen(
                server_command(binary, port, directory),
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_unblock_sigterm,  # its own SIGTERM is how it is stopped
            )
        wait_until_it_answers(STARTED.server, port, log_path)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        STARTED.stop()


# -- the events -------------------------------------------------------------------------


def sample_events() -> list[respflow.Event]:
    sample = resources.files("respflow").joinpath("samples", "code_interpreter.sse")
    return list(respflow.replay(sample.read_bytes()))


def sample_body() -> bytes:
    return resources.files("respflow").joinpath("samples", "code_interpreter.sse").read_bytes()


def long_events() -> list[respflow.Event]:
    body, _ = build_stream()
    return list(respflow.replay(body))


def fresh(events: Sequence[respflow.Event]) -> list[respflow.Event]:
    """``events`` under a response id no run used yet (a broker skips what it holds)."""
    return fresh_id(events, f"resp_bench_{next(_ids)}_{uuid.uuid4().hex[:8]}")


def fresh_id(events: Sequence[respflow.Event], rid: str) -> list[respflow.Event]:
    return [msgspec.structs.replace(event, response_id=rid) for event in events]


def json_size(events: Sequence[respflow.Event]) -> int:
    return sum(len(respflow.encode_event(event)) for event in events)


def percentile(ordered: Sequence[float], fraction: float) -> float:
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def spread(values: Sequence[float], digits: int = 2) -> str:
    return f"{min(values):.{digits}f}-{max(values):.{digits}f}"


# -- 1. publish throughput --------------------------------------------------------------


async def publish_all(broker: respflow.Broker, events: list[respflow.Event], batch: int) -> float:
    """Seconds to publish ``events`` under a lease, one ``publish`` call per batch."""
    lease = await broker.claim(events[0].response_id, PRODUCER, LEASE_TTL)
    assert lease is not None
    batches = [events[i : i + batch] for i in range(0, len(events), batch)]
    started = time.perf_counter()
    for chunk in batches:
        await broker.publish(chunk, lease=lease)
    elapsed = time.perf_counter() - started
    await broker.release(lease)
    return elapsed


async def server_cpu(client: coredis.Redis[bytes]) -> float:
    info = await client.info("cpu")
    return float(str(info["used_cpu_user"])) + float(str(info["used_cpu_sys"]))


@dataclass
class PublishRow:
    redis: list[float]
    memory: list[float]
    server_cpu: list[float]
    """Redis's CPU seconds per round."""


async def measure_publish(url: str, events: list[respflow.Event], rounds: int) -> None:
    rows = {batch: PublishRow([], [], []) for batch in BATCHES}
    prefix = "bench:publish:"
    async with RedisBroker(url, prefix=prefix) as redis, coredis.Redis.from_url(url) as raw:
        await publish_all(redis, fresh(events), 16)  # warm-up: scripts loaded, pool filled
        for turn in range(rounds):
            for batch in BATCHES:
                row = rows[batch]
                # Which goes first alternates, so a drift in the machine's load is shared.
                for kind in ("redis", "memory") if turn % 2 == 0 else ("memory", "redis"):
                    if kind == "memory":
                        memory = respflow.MemoryBroker(max_events=len(events) + 1)
                        row.memory.append(await publish_all(memory, fresh(events), batch))
                        await memory.aclose()
                    else:
                        before = await server_cpu(raw)
                        row.redis.append(await publish_all(redis, fresh(events), batch))
                        row.server_cpu.append(await server_cpu(raw) - before)
            await raw.flushdb()
    count = len(events)
    print(f"## 1. Publish: {count:,} events per round, under a lease, {rounds} rounds\n")
    print(
        "| events per `publish` | RedisBroker events/s | MemoryBroker events/s "
        "| time x MemoryBroker | Redis CPU µs/event |"
    )
    print("| ---: | ---: | ---: | ---: | ---: |")
    notes = []
    for batch, row in rows.items():
        ratios = [r / m for r, m in zip(row.redis, row.memory, strict=True)]
        print(
            f"| {batch} | {count / statistics.median(row.redis):,.0f} "
            f"| {count / statistics.median(row.memory):,.0f} "
            f"| {statistics.median(ratios):,.1f} "
            f"| {statistics.median(row.server_cpu) / count * 1e6:.1f} |"
        )
        rates = [count / seconds for seconds in row.redis]
        notes.append(f"batch {batch}: Redis events/s {spread(rates, 0)}, ratio {spread(ratios, 1)}")
    print(f"\nrounds' spread: {'; '.join(notes)}\n")


# -- 2 and 3. from one instance to another ----------------------------------------------


@dataclass
class Delivery:
    latencies: list[float]
    """Seconds from publish to receipt, every reader's every event."""
    behind: float
    """Seconds from the last publish to the last receipt."""
    cpu: float
    """The readers' process's CPU seconds while they followed."""
    wall: float
    reads: int
    """Commands the readers' process sent Redis while they followed."""
    server_cpu: float
    """Redis's CPU seconds meanwhile (the producer's publishes included)."""


async def follow_from_another_instance(
    url: str,
    raw: coredis.Redis[bytes],
    events: list[respflow.Event],
    readers: int,
    pace: float | None,
) -> Delivery:
    """Publishes ``events`` (at ``pace`` per second, or flat out) while ``readers``
    readers in another process follow the response through a RedisBroker of their own."""
    prefix = f"bench:{uuid.uuid4().hex[:8]}:"
    rid = events[0].response_id
    command = [sys.executable, __file__, "--instance", url, prefix, rid, str(readers)]
    async with RedisBroker(url, prefix=prefix) as broker:
        lease = await broker.claim(rid, PRODUCER, LEASE_TTL)
        assert lease is not None
        await broker.publish(events[:1], lease=lease)  # the response exists: they subscribe
        with sigterm_waits():
            process = await anyio.open_process(command, stdin=subprocess.DEVNULL, stderr=None)
            STARTED.readers.add(process.pid)
        try:
            assert process.stdout is not None
            output = BufferedByteReceiveStream(process.stdout)
            with anyio.fail_after(120):
                ready = await output.receive_until(b"\n", 64)
            assert ready == b"ready", ready
            before, cpu_before = await reads_so_far(raw), await server_cpu(raw)
            published = await publish_paced(broker, lease, events[1:], pace)
            report = msgspec.json.decode(await _read_to_end(output))
            if await process.wait() != 0:
                raise RuntimeError(f"the readers' process exited with {process.returncode}")
            # Each publish is one EVAL; every other EVAL or XREAD was a reader's.
            reads = await reads_so_far(raw) - before - len(published)
            cpu = await server_cpu(raw) - cpu_before
        finally:
            if process.returncode is None:
                process.kill()
            await process.aclose()
            STARTED.readers.discard(process.pid)
    received: list[list[int]] = report["received"]
    latencies = [
        (at - published[cursor]) / 1e9
        for times in received
        for cursor, at in zip(report["cursors"], times, strict=True)
        if cursor in published
    ]
    if len(latencies) != readers * len(published):
        raise RuntimeError(f"{readers} readers got {len(latencies)} of {len(published)} events")
    behind = (max(times[-1] for times in received) - max(published.values())) / 1e9
    return Delivery(latencies, behind, report["cpu"], report["wall"], reads, cpu)


async def reads_so_far(raw: coredis.Redis[bytes]) -> int:
    """EVAL and XREAD calls Redis has answered: the broker reads only with these."""
    stats = await raw.info("commandstats")
    calls = 0
    for name in ("cmdstat_eval", "cmdstat_xread"):
        entry = stats.get(name)
        if isinstance(entry, dict):
            calls += int(str(entry["calls"]))
    return calls


async def publish_paced(
    broker: RedisBroker, lease: respflow.Lease, events: list[respflow.Event], pace: float | None
) -> dict[str, int]:
    """Publishes one event per call (a producer at a model's pace has one event ready at a
    time; the Runner publishes what is ready); the moment each went out."""
    published: dict[str, int] = {}
    start = time.monotonic_ns()
    for n, event in enumerate(events, 1):
        if pace is not None:
            # Against a schedule, not a sleep per event: a late wake-up is caught up.
            wait = start + n * 1e9 / pace - time.monotonic_ns()
            if wait > 0:
                await anyio.sleep(wait / 1e9)
        published[event.cursor] = time.monotonic_ns()
        await broker.publish([event], lease=lease)
    return published


async def _read_to_end(stream: BufferedByteReceiveStream) -> bytes:
    chunks = []
    with anyio.fail_after(INSTANCE_DEADLINE):
        while True:
            try:
                chunks.append(await stream.receive())
            except anyio.EndOfStream:
                return b"".join(chunks)


async def instance(url: str, prefix: str, rid: str, readers: int) -> None:
    """The other instance: ``readers`` readers of ``rid`` on one RedisBroker, each noting
    when every event reached it; prints that (and the CPU it took) as JSON at the end."""
    async with RedisBroker(url, prefix=prefix) as broker:
        subscriptions = [await broker.subscribe(rid) for _ in range(readers)]
        received: list[list[int]] = [[] for _ in range(readers)]
        cursors: list[str] = []
        print("ready", flush=True)
        cpu, wall = time.process_time(), time.monotonic()
        with anyio.fail_after(INSTANCE_DEADLINE):
            async with anyio.create_task_group() as group:
                for n, subscription in enumerate(subscriptions):
                    group.start_soon(
                        _follow, subscription, received[n], cursors if n == 0 else None
                    )
        cpu, wall = time.process_time() - cpu, time.monotonic() - wall
    report = {"cursors": cursors, "received": received, "cpu": cpu, "wall": wall}
    sys.stdout.buffer.write(msgspec.json.encode(report))
    sys.stdout.flush()


async def _follow(
    subscription: respflow.Subscription, times: list[int], cursors: list[str] | None
) -> None:
    async for event in subscription:
        times.append(time.monotonic_ns())
        if cursors is not None:
            cursors.append(event.cursor)


@dataclass
class LatencyRow:
    readers: int
    pace: float | None
    events: list[respflow.Event]
    runs: list[Delivery]

    def p50s(self) -> list[float]:
        return [statistics.median(run.latencies) * 1000 for run in self.runs]

    def p99s(self) -> list[float]:
        return [percentile(sorted(run.latencies), 0.99) * 1000 for run in self.runs]

    def behind(self) -> float:
        return statistics.median(run.behind for run in self.runs)

    def cpu_per_thousand(self) -> float:
        """The readers' process's CPU seconds per 1,000 events delivered (median)."""
        return statistics.median(run.cpu / len(run.latencies) * 1000 for run in self.runs)

    def core_share(self) -> float:
        return statistics.median(run.cpu / run.wall for run in self.runs)

    def server_share(self) -> float:
        return statistics.median(run.server_cpu / run.wall for run in self.runs)

    def reads_per_event(self) -> float:
        """The readers' Redis commands per event published (median)."""
        published = len(self.events) - 1
        return statistics.median(run.reads / published for run in self.runs)


async def measure_instances(
    url: str,
    paced: list[respflow.Event],
    flat_out: list[respflow.Event],
    pace: float,
    readers: Sequence[int],
    rounds: int,
) -> None:
    rows = [LatencyRow(1, None, flat_out, [])]
    rows += [LatencyRow(n, pace, paced, []) for n in readers]
    async with coredis.Redis.from_url(url) as raw:
        for _ in range(rounds):
            for row in rows:
                run = await follow_from_another_instance(
                    url, raw, fresh(row.events), row.readers, row.pace
                )
                row.runs.append(run)
    print(f"## 2. From one instance to another: one reader, {rounds} rounds\n")
    print("| producer's pace | events | p50 ms | p99 ms |")
    print("| --- | ---: | ---: | ---: |")
    one_reader = [row for row in rows if row.readers == 1]
    for row in sorted(one_reader, key=lambda r: r.pace is None):
        what = "flat out" if row.pace is None else f"{row.pace:g} events/s"
        print(
            f"| {what} | {len(row.events) - 1:,} | {statistics.median(row.p50s()):.2f} "
            f"| {statistics.median(row.p99s()):.2f} |"
        )
    print(f"\nrounds' spread (ms): {_latency_spread(one_reader)}\n")
    events = len(paced) - 1
    print(f"## 3. Readers per instance: {pace:g} events/s, {events:,} events, {rounds} rounds\n")
    print(
        "| readers | p50 ms | p99 ms | last event's lag s | instance CPU s per 1,000 "
        "delivered | instance CPU (of a core) | Redis CPU (of a core) | Redis reads per event |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    many = [row for row in rows if row.pace is not None]
    for row in many:
        print(
            f"| {row.readers:,} | {statistics.median(row.p50s()):.2f} "
            f"| {statistics.median(row.p99s()):.2f} | {row.behind():.2f} "
            f"| {row.cpu_per_thousand():.3f} | {row.core_share():.0%} "
            f"| {row.server_share():.0%} | {row.reads_per_event():.1f} |"
        )
    print(f"\nrounds' spread (ms): {_latency_spread(many)}")
    print("every reader got every event (checked)\n")


def _latency_spread(rows: Sequence[LatencyRow]) -> str:
    return "; ".join(
        f"{row.readers} reader(s) {'flat out' if row.pace is None else f'at {row.pace:g}/s'}: "
        f"p50 {spread(row.p50s())}, p99 {spread(row.p99s())}"
        for row in rows
    )


# -- 4. memory per kept response --------------------------------------------------------


async def kept_size(
    url: str, raw: coredis.Redis[bytes], events: list[respflow.Event], max_events: int
) -> tuple[int, int, int]:
    """(events kept, bytes of the stream and ``:last``, bytes of the lease key) of a
    response published one event per call and finished."""
    prefix = f"bench:memory:{uuid.uuid4().hex[:8]}:"
    keys = response_keys(prefix, events[0].response_id)
    async with RedisBroker(url, prefix=prefix, max_events=max_events) as broker:
        lease = await broker.claim(events[0].response_id, PRODUCER, LEASE_TTL)
        assert lease is not None
        for event in events:
            await broker.publish([event], lease=lease)
        lease_bytes = await raw.memory_usage(keys.lease, samples=0) or 0
        await broker.release(lease)
    log = await raw.memory_usage(keys.log, samples=0) or 0
    last = await raw.memory_usage(keys.last, samples=0) or 0
    return await raw.xlen(keys.log), log + last, lease_bytes


async def measure_memory(
    url: str, sample: list[respflow.Event], long: list[respflow.Event], trimmed: int
) -> str:
    print("## 4. What a kept response costs in Redis (`MEMORY USAGE ... SAMPLES 0`)\n")
    print("| response | events | JSON of events | Redis (stream + `:last`) | x JSON | per event |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    api_id = "resp_" + "0" * 48  # as long as the ids the API gives
    cases = [
        ("the bundled sample", sample, 10_000),
        ("the same, under an id as long as the API's", fresh_id(sample, api_id), 10_000),
        ("bench_stream's long stream", long, 10_000),
        (f"the same with `max_events={trimmed:,}`", long, trimmed),
    ]
    lease_sizes = []
    async with coredis.Redis.from_url(url) as raw:
        server = await raw.info("server")
        for name, events, max_events in cases:
            # Under their own ids (each case has a key prefix of its own): every event's
            # JSON carries the id, so its length is part of what is measured.
            kept, stored, lease_bytes = await kept_size(url, raw, events, max_events)
            lease_sizes.append(lease_bytes)
            size = json_size(events[-kept:])
            print(
                f"| {name} | {kept:,} | {size / 1024:,.1f} KiB | {stored / 1024:,.1f} KiB "
                f"| {stored / size:.2f} | {stored / kept:,.0f} B |"
            )
    print(f"\nplus the lease key while a producer holds it: {spread(lease_sizes, 0)} B\n")
    return str(server["redis_version"])


# -- 5. a Runner end to end -------------------------------------------------------------


class Counted:
    """A RedisBroker as a Runner sees it, counting publish calls; ``one_by_one`` passes
    each call on one event at a time, as the Runner published before it batched."""

    def __init__(self, broker: RedisBroker, *, one_by_one: bool) -> None:
        self.broker = broker
        self.one_by_one = one_by_one
        self.calls = 0
        self.events = 0

    async def publish(
        self, events: Sequence[respflow.Event], *, lease: respflow.Lease | None = None
    ) -> int:
        self.events += len(events)
        if not self.one_by_one:
            self.calls += 1
            return await self.broker.publish(events, lease=lease)
        appended = 0
        for event in events:
            self.calls += 1
            appended += await self.broker.publish([event], lease=lease)
        return appended

    async def subscribe(self, response_id: str, *, after: str | None = None) -> Any:
        return await self.broker.subscribe(response_id, after=after)

    async def status(self, response_id: str) -> respflow.LogStatus | None:
        return await self.broker.status(response_id)

    async def claim(self, response_id: str, owner: str, ttl: float) -> respflow.Lease | None:
        return await self.broker.claim(response_id, owner, ttl)

    async def renew(self, lease: respflow.Lease, ttl: float) -> respflow.Lease:
        return await self.broker.renew(lease, ttl)

    async def release(self, lease: respflow.Lease) -> None:
        await self.broker.release(lease)

    async def unfinished(self) -> dict[str, bool]:
        return await self.broker.unfinished()

    async def aclose(self) -> None:
        pass


class BytesSource:
    """A response's events from its bytes, shaped as ``respflow.stream``'s."""

    def __init__(self, body: bytes) -> None:
        self._events = respflow.aiter_events(chunks(body))

    def __aiter__(self) -> BytesSource:
        return self

    async def __anext__(self) -> respflow.Event:
        return await self._events.__anext__()

    async def __aenter__(self) -> BytesSource:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await cast(Any, self._events).aclose()


async def run_through_runner(broker: Counted, body: bytes) -> float:
    """Seconds from ``start`` to the response's end in the broker."""

    def from_bytes(client: Any, **create: Any) -> AsyncIterator[respflow.Event]:
        return BytesSource(body)

    client = cast(Any, None)  # the stream never calls the API
    async with respflow.Runner(client, cast(respflow.Broker, broker), stream=from_bytes) as runner:
        started = time.perf_counter()
        rid = await runner.start(model="bench", input="")
        await runner.wait(rid)
        return time.perf_counter() - started


@dataclass
class RunnerRow:
    seconds: list[float]
    calls: list[int]
    server_cpu: list[float]


async def measure_runner(url: str, body: bytes, count: int, rounds: int) -> None:
    rows = {"now": RunnerRow([], [], []), "before": RunnerRow([], [], [])}
    async with (
        RedisBroker(url, prefix="bench:runner:") as redis,
        coredis.Redis.from_url(url) as raw,
    ):
        await run_through_runner(Counted(redis, one_by_one=False), body)  # warm-up
        await raw.flushdb()
        for turn in range(rounds):
            for kind in ("now", "before") if turn % 2 == 0 else ("before", "now"):
                row = rows[kind]
                counted = Counted(redis, one_by_one=kind == "before")
                before = await server_cpu(raw)
                row.seconds.append(await run_through_runner(counted, body))
                row.server_cpu.append(await server_cpu(raw) - before)
                row.calls.append(counted.calls)
                await raw.flushdb()  # the next run publishes the same response again
    print(f"## 5. A Runner end to end: {count:,} events flat out, {rounds} rounds\n")
    print(
        "| the Runner publishes | publish calls | events/s | events/s x one per call "
        "| Redis CPU µs/event |"
    )
    print("| --- | ---: | ---: | ---: | ---: |")
    # Each round's pair ran back to back: the ratio is taken per round, then the median.
    ratios = [b / n for n, b in zip(rows["now"].seconds, rows["before"].seconds, strict=True)]
    names = {"before": "one event per call (before)", "now": "what is ready per call (now)"}
    for kind in ("before", "now"):
        row = rows[kind]
        ratio = 1.0 if kind == "before" else statistics.median(ratios)
        print(
            f"| {names[kind]} | {statistics.median(row.calls):,.0f} "
            f"| {count / statistics.median(row.seconds):,.0f} | {ratio:.2f} "
            f"| {statistics.median(row.server_cpu) / count * 1e6:.1f} |"
        )
    notes = "; ".join(
        f"{kind}: events/s {spread([count / s for s in row.seconds], 0)}"
        for kind, row in rows.items()
    )
    print(f"\nrounds' spread: {notes}; ratio {spread(ratios)}\n")


# -- the run ----------------------------------------------------------------------------


SECTIONS = ("publish", "instances", "memory", "runner")


async def measure(
    url: str, quick: bool, rounds: int, pace: float, count: int, only: Sequence[str]
) -> None:
    sample, long = sample_events(), long_events()
    if "publish" in only:
        await measure_publish(url, sample if quick else long, rounds)
    if "instances" in only and quick:
        await measure_instances(url, sample, sample, pace, (1, 10, 100), rounds)
    elif "instances" in only:
        paced = [*long[: count - 1], long[-1]]  # the start, then the end
        await measure_instances(url, paced, long, pace, (1, 10, 100, 1000), rounds)
    if "memory" in only:
        await measure_memory(url, sample, long, 1_000)
    if "runner" in only and quick:
        await measure_runner(url, sample_body(), len(sample), rounds)
    elif "runner" in only:
        await measure_runner(url, build_stream()[0], len(long), rounds)
    async with coredis.Redis.from_url(url) as raw:
        redis_version = str((await raw.info("server"))["redis_version"])
    print(
        f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.1f} at the end; redis-server {redis_version}, "
        f"respflow {respflow.__version__}, coredis {version('coredis')}, "
        f"anyio {version('anyio')}, msgspec {version('msgspec')}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: the sample, 1 round")
    parser.add_argument("--rounds", type=_at_least(1), default=3, help="rounds of each")
    parser.add_argument("--pace", type=_positive, default=200.0, help="events per second")
    parser.add_argument("--count", type=_at_least(2), default=1_000, help="events at --pace")
    parser.add_argument(
        "--only", nargs="+", choices=SECTIONS, default=SECTIONS, help="these sections only"
    )
    parser.add_argument("--instance", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.instance:
        _unblock_sigterm()  # blocked while it was started
        url, prefix, rid, readers = args.instance
        anyio.run(instance, url, prefix, rid, int(readers))
        return 0
    binary = find_server()
    if binary is None:
        print(
            "bench_redis: needs redis-server, which is not installed "
            "(apt-get install redis-server, or set RESPFLOW_REDIS_SERVER to one)",
            file=sys.stderr,
        )
        return 1
    rounds = 1 if args.quick else args.rounds
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    with redis_server(binary) as url:
        anyio.run(measure, url, args.quick, rounds, args.pace, args.count, args.only)
    return 0


def _positive(text: str) -> float:
    value = float(text)
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"{text} is not a positive number")
    return value


def _at_least(least: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = int(text)
        if value < least:
            raise argparse.ArgumentTypeError(f"{text} is below {least}")
        return value

    return parse


def _stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    STARTED.stop()
    print("bench_redis: stopped (SIGTERM); its redis-server too", file=sys.stderr, flush=True)
    os._exit(128 + signum)


if __name__ == "__main__":
    sys.exit(main())
