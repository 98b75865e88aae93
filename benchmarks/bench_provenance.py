"""What finding a file's producing call costs, next to the Assembler, in one process.

The file fetcher feeds every event to ``Producers.see`` (it keeps each code call's code
and output) and asks ``Producers.producer`` once per cited or linked file. Two
measurements, round-robin after a warm-up, in this process's CPU time, medians of the
per-round ratios:

  (a) the Assembler: the bench_stream stream (5,010 wire events) from bytes to events
  (b) ``Producers.see`` over those events: the fetcher's added work per event, as a share
      of (a)
  (c) ``Producers.producer`` for a file cited after 200 calls of 40 lines each, none of
      which names it (the worst case: every call's code and output is searched), per
      citation, in microseconds

    python benchmarks/bench_provenance.py            # 15 rounds
    python benchmarks/bench_provenance.py --quick    # smoke run
"""

from __future__ import annotations

import argparse
import importlib.util
import platform
import statistics
import sys
import time
from importlib.metadata import version
from pathlib import Path

import respflow
from respflow import _events as ev
from respflow._core.provenance import Producers

CALLS = 200
LINES = 40


def _stream() -> bytes:
    """bench_stream's stream, built by its own code."""
    where = Path(__file__).with_name("bench_stream.py")
    spec = importlib.util.spec_from_file_location("bench_stream", where)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    body, _ = module.build_stream()
    return bytes(body)


def _many_calls() -> Producers:
    producers = Producers()
    for n in range(CALLS):
        code = "\n".join(
            f"df{i} = pd.read_csv('/mnt/data/input_{n}_{i}.csv')" for i in range(LINES)
        )
        cursor = f"{n}-0"
        producers.see(ev.CodeStarted("r", n, cursor, f"ci_{n}", n, container_id="cntr"))
        producers.see(ev.CodeDone("r", n, cursor, f"ci_{n}", n, code))
        producers.see(ev.CodeLogs("r", n, cursor, f"ci_{n}", n, "saved /mnt/data/other.csv\n"))
    return producers


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--quick", action="store_true", help="2 repeats: a smoke run")
    args = parser.parse_args()
    repeats = 2 if args.quick else args.repeats
    body = _stream()
    events = list(respflow.replay(body))
    many = _many_calls()
    assembler, seeing, finding = [], [], []
    for _ in range(repeats + 1):  # the first round warms up
        start = time.process_time()
        events = list(respflow.replay(body))
        assembler.append(time.process_time() - start)
        start = time.process_time()
        producers = Producers()
        for event in events:
            producers.see(event)
        seeing.append(time.process_time() - start)
        start = time.process_time()
        for _ in range(100):
            many.producer("cntr", path="/mnt/data/report.csv")
        finding.append((time.process_time() - start) / 100)
    assembler, seeing, finding = assembler[1:], seeing[1:], finding[1:]
    share = statistics.median(s / a for s, a in zip(seeing, assembler, strict=True))
    print(
        f"Python {platform.python_version()}, msgspec {version('msgspec')}, "
        f"{len(events)} events, {repeats} rounds"
    )
    print(f"(a) Assembler, bytes -> events     {statistics.median(assembler) * 1e3:8.2f} ms")
    print(f"(b) Producers.see over the events  {statistics.median(seeing) * 1e3:8.2f} ms")
    print(f"    (b) as a share of (a)          {share:8.3f}")
    print(
        f"(c) producer() after {CALLS} calls     {statistics.median(finding) * 1e6:8.1f} µs "
        "per citation"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
