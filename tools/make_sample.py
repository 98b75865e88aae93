"""Writes the sample recording that ``respflow replay`` and ``respflow demo`` play.

Also writes the files the recorded run left in its container (``samples/files/``), which
the demo's mock server serves. Run ``python tools/make_sample.py`` after changing it; a
test checks that the committed files are exactly what this script writes.

The recording is made here, not captured: a code interpreter call that prints a summary,
draws a chart and saves a CSV, then an answer that cites the CSV with an annotation and
links the chart with a bare sandbox link that nothing annotates, the case that leaves
users with dead links.
"""

from __future__ import annotations

import base64
import struct
import sys
import zlib
from pathlib import Path

from respflow.testing import StreamBuilder, to_sse

SAMPLE = (
    Path(__file__).resolve().parents[1] / "src" / "respflow" / "samples" / "code_interpreter.sse"
)

FILES = SAMPLE.parent / "files"

ROLLS = [2, 7, 7, 5, 12, 8, 6, 7, 9, 4]

CODE = """\
import pandas as pd
import matplotlib.pyplot as plt

rolls = pd.Series([2, 7, 7, 5, 12, 8, 6, 7, 9, 4], name="sum")
print(rolls.describe().round(2).to_string())

ax = rolls.value_counts().sort_index().plot(kind="bar", title="Two dice")
ax.set_xlabel("sum")
plt.savefig("/mnt/data/dice_chart.png")
plt.show()

rolls.to_csv("/mnt/data/dice_rolls.csv", index=False)
"""

LOGS = """\
count    10.00
mean      7.00
std       2.71
min       2.00
25%       5.25
50%       7.00
75%       8.75
max      12.00
"""


def tiny_png(width: int = 12, height: int = 8, scale: int = 1) -> bytes:
    """A real PNG: bars of a little chart, so the data URL decodes to an image."""
    heights = [1, 2, 3, 6, 4, 2]
    rows = []
    for y in range(height * scale):
        row = bytearray([0])
        for x in range(width * scale):
            bar = heights[x // (2 * scale)]
            filled = height - y // scale <= bar
            row += bytes([40, 90, 200]) if filled else bytes([255, 255, 255])
        rows.append(bytes(row))
    width, height = width * scale, height * scale

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"".join(rows), 9))
        + chunk(b"IEND", b"")
    )


def build() -> bytes:
    image = "data:image/png;base64," + base64.b64encode(tiny_png()).decode()
    answer_head = "The ten rolls average 7.0, the most likely sum of two dice. "
    csv_link = "sandbox:/mnt/data/dice_rolls.csv"
    answer = (
        answer_head
        + f"[Download the rolls as CSV]({csv_link}). "
        + "The bar chart is at sandbox:/mnt/data/dice_chart.png for a closer look."
    )
    start = answer.index(csv_link)
    citation = {
        "type": "container_file_citation",
        "container_id": "cntr_sample",
        "file_id": "cfile_sample_rolls",
        "filename": "dice_rolls.csv",
        "start_index": start,
        "end_index": start + len(csv_link),
    }
    builder = (
        StreamBuilder(response_id="resp_sample_dice", model="gpt-5")
        .reasoning("Simulate the rolls, summarise them, chart and save them.")
        .code_call(CODE, logs=LOGS, images=[image], container_id="cntr_sample")
        .message(answer, annotations=[citation])
    )
    return to_sse(builder.events())


def container_files() -> dict[str, bytes]:
    """What the code above saved in /mnt/data, by file name."""
    csv = "sum\n" + "".join(f"{r}\n" for r in ROLLS)
    return {"dice_rolls.csv": csv.encode(), "dice_chart.png": tiny_png(scale=20)}


def main() -> int:
    SAMPLE.parent.mkdir(parents=True, exist_ok=True)
    SAMPLE.write_bytes(build())
    print(f"wrote {SAMPLE}", file=sys.stderr)
    FILES.mkdir(exist_ok=True)
    for name, data in container_files().items():
        (FILES / name).write_bytes(data)
        print(f"wrote {FILES / name}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
