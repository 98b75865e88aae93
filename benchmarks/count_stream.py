"""Instructions per wire event of bench_stream's paths, counted by callgrind.

A shared machine moves timings by tens of percent; the instructions a path executes do not
move. Each path runs in its own ``valgrind --tool=callgrind`` child, once with ``--runs 1``
and once with ``--runs 3`` on the same stream after the same warm-up: the difference, halved,
is one run of the path alone (start-up, imports and the warm-up cancel out). Paths are those
of ``bench_stream.py`` (and ``p``, the app's processors in a Pipeline, below):

    python benchmarks/count_stream.py                 # a, g, p and c
    python benchmarks/count_stream.py --paths a,g     # leave out the SDK (slow to import)
    python benchmarks/count_stream.py --child a --runs 3   # one path, for callgrind_annotate

  (p) (a) through a Pipeline whose processors are a LinkRewriter and a feed-only step
      (what ``respflow.app`` runs after its FileFetcher), into a sink that counts

The stream is ``build_stream(scale)`` (the benchmark stream at scale 1) in 4 KiB chunks.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio

sys.path.insert(0, str(Path(__file__).parent))

from bench_stream import build_stream, path_a, path_c, path_g, path_h, sdk_client

import respflow
from respflow import _events as ev


class _Counting:
    def __init__(self) -> None:
        self.n = 0

    async def send(self, event: ev.Event) -> None:
        self.n += 1

    async def aclose(self) -> None:
        pass


class _Relabel:
    """A feed-only processor that passes everything on, as the app's file URL step does."""

    def feed(self, event: ev.Event) -> list[ev.Event]:
        return [event]


async def path_p(body: bytes) -> int:
    from bench_stream import chunks

    sink = _Counting()
    processors = [respflow.LinkRewriter(markdown=True), _Relabel()]
    await respflow.deliver(respflow.aiter_events(chunks(body)), sink, processors=processors)
    return sink.n


def _path(name: str) -> Callable[[bytes], Awaitable[int]]:
    if name == "c":
        return path_c(sdk_client(_body))
    paths: dict[str, Callable[[bytes], Awaitable[int]]] = {
        "a": path_a,
        "g": path_g,
        "h": path_h,
        "p": path_p,
    }
    return paths[name]


_body = b""


def child(name: str, runs: int, scale: int) -> None:
    global _body
    _body, _ = build_stream(scale)
    run = _path(name)

    async def main() -> None:
        await run(_body)  # warm-up: caches, lazy imports
        for _ in range(runs):
            await run(_body)

    anyio.run(main)


def count(name: str, runs: int, scale: int, out: Path) -> int:
    """Instructions of the child running ``name`` ``runs`` times (plus its warm-up)."""
    command = [
        "valgrind",
        "--tool=callgrind",
        f"--callgrind-out-file={out}",
        sys.executable,
        __file__,
        "--child",
        name,
        "--runs",
        str(runs),
        "--scale",
        str(scale),
    ]
    subprocess.run(command, check=True, capture_output=True)
    totals = re.search(rb"^(?:summary|totals): (\d+)", out.read_bytes(), re.MULTILINE)
    assert totals is not None, "callgrind wrote no totals"
    return int(totals.group(1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--paths", default="a,g,p,c")
    parser.add_argument("--scale", type=int, default=1)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--runs", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.runs, args.scale)
        return 0
    _, wire_events = build_stream(args.scale)
    per_event: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.paths.split(","):
            once = count(name, 1, args.scale, Path(tmp) / f"{name}1.out")
            thrice = count(name, 3, args.scale, Path(tmp) / f"{name}3.out")
            per_event[name] = (thrice - once) / 2 / wire_events
            print(f"({name}) {per_event[name]:,.0f} instructions per wire event", flush=True)
    print()
    report: list[tuple[str, str, Any]] = [
        ("a", "c", "(c) / (a): respflow's edge over the SDK"),
        ("g", "a", "(g) / (a): the LinkRewriter's share"),
        ("p", "a", "(p) / (a): the app's processors in a Pipeline"),
    ]
    for name, base, what in report:
        if name in per_event and base in per_event:
            high, low = (
                (per_event[base], per_event[name])
                if base == "c"
                else (
                    per_event[name],
                    per_event[base],
                )
            )
            print(f"{what}: {high / low:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
