"""Memory and pauses on one very long answer: a message of SIZE characters in 8-character
deltas (50 MB by default, 6.25 million deltas), then the four events that carry the whole
text again (output_text.done, content_part.done, output_item.done, response.completed).

Each variant runs in a child process that builds the text, measures its resident memory,
then feeds the stream to respflow in 64 KiB reads, made as they are fed (the harness holds
only the text); the table reports how much the resident memory grew at its peak, as a
multiple of the text, and the longest single ``feed`` (or ``feed`` plus the rewriter),
by the clock and in CPU time (the thread's own: on a shared machine the clock also counts
the time other processes had the core).

    python benchmarks/bench_memory.py              # 50 MB (a few minutes)
    python benchmarks/bench_memory.py --quick      # 4 MB smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from importlib.metadata import version
from typing import Any

import respflow

READ = 64 * 1024
LINE = "All work and no play makes Jack a dull boy. "  # nothing JSON escapes
_MARK = "\x00TEXT\x00"


def frame(event: dict[str, Any], text: str) -> Iterator[bytes]:
    """The frame of ``event`` with ``text`` where ``_MARK`` is, in pieces, never whole."""
    head, *rest = f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".split(
        json.dumps(_MARK)[1:-1]
    )
    yield head.encode()
    for part in rest:
        for at in range(0, len(text), READ):
            yield text[at : at + READ].encode()
        yield part.encode()


def stream(text: str, size: int = 8) -> Iterator[bytes]:
    """The wire bytes, in pieces of about 64 KiB."""
    added = {"id": "msg_1", "type": "message", "role": "assistant", "status": "in_progress"}
    part = {"type": "output_text", "text": _MARK, "annotations": []}
    final = {**added, "status": "completed", "content": [part]}
    response = {"id": "resp_1", "object": "response", "model": "gpt-5", "output": []}
    ref = {"item_id": "msg_1", "output_index": 0, "content_index": 0}
    yield from frame({"type": "response.created", "sequence_number": 0, "response": response}, "")
    yield from frame(
        {
            "type": "response.output_item.added",
            "sequence_number": 1,
            "output_index": 0,
            "item": {**added, "content": []},
        },
        "",
    )
    yield from frame(
        {
            "type": "response.content_part.added",
            "sequence_number": 2,
            **ref,
            "part": {**part, "text": ""},
        },
        "",
    )
    head = b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta"'
    tail = b',"item_id":"msg_1","output_index":0,"content_index":0,"delta":"'
    batch: list[bytes] = []
    seq = 3
    for at in range(0, len(text), size):
        batch.append(
            b'%s,"sequence_number":%d%s%s"}\n\n' % (head, seq, tail, text[at : at + size].encode())
        )
        seq += 1
        if len(batch) == 256:
            yield b"".join(batch)
            batch = []
    yield b"".join(batch)
    done: list[dict[str, Any]] = [
        {"type": "response.output_text.done", **ref, "text": _MARK},
        {"type": "response.content_part.done", **ref, "part": part},
        {"type": "response.output_item.done", "output_index": 0, "item": final},
        {
            "type": "response.completed",
            "response": {**response, "status": "completed", "output": [final]},
        },
    ]
    for n, event in enumerate(done):
        yield from frame({**event, "sequence_number": seq + n}, text)


def resident() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def child(size: int, variant: str) -> dict[str, float]:
    text = LINE * (size // len(LINE))  # made in one piece, so the peak is not made here
    size = len(text)
    before = resident()
    asm = respflow.Assembler()
    rewriter = respflow.LinkRewriter() if variant == "rewriter" else None
    longest = longest_cpu = 0.0
    started = time.perf_counter()
    for data in stream(text):
        if variant == "harness":
            continue
        begun, begun_cpu = time.perf_counter(), time.thread_time()
        events = asm.feed(data)
        if rewriter is not None:
            events = [out for event in events for out in rewriter.feed(event)]
        longest = max(longest, time.perf_counter() - begun)
        longest_cpu = max(longest_cpu, time.thread_time() - begun_cpu)
        del events
    asm.close()
    total = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {
        "grew": (peak - before) / size,
        "longest_ms": longest * 1e3,
        "longest_cpu_ms": longest_cpu * 1e3,
        "seconds": total,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=50_000_000)
    parser.add_argument("--quick", action="store_true", help="4 MB: a smoke run")
    parser.add_argument("--child", choices=("harness", "assembler", "rewriter"))
    args = parser.parse_args()
    size = 4_000_000 if args.quick else args.size
    if args.child:
        print(json.dumps(child(size, args.child)))
        return 0
    results = {}
    for variant in ("harness", "assembler", "rewriter"):
        command = [sys.executable, __file__, "--size", str(size), "--child", variant]
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        results[variant] = json.loads(output)
    print(
        f"one message of {size / 1e6:.0f} MB in {size // 8:,} deltas of 8 characters; "
        f"python {platform.python_version()}, respflow {respflow.__version__}, "
        f"msgspec {version('msgspec')}"
    )
    print()
    print(
        "| what | peak resident memory grew by (x text) | longest feed (ms) "
        "| longest feed, CPU (ms) | seconds |"
    )
    print("| --- | ---: | ---: | ---: | ---: |")
    labels = {
        "harness": "the harness alone (making the bytes)",
        "assembler": "Assembler.feed",
        "rewriter": "Assembler.feed + LinkRewriter.feed",
    }
    for variant, result in results.items():
        print(
            f"| {labels[variant]} | {result['grew']:.2f} | {result['longest_ms']:.0f} | "
            f"{result['longest_cpu_ms']:.0f} | {result['seconds']:.1f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
