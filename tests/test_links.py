from __future__ import annotations

import pytest

from respflow import SandboxLink, find_links, find_uncovered_links


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[r](sandbox:/mnt/data/report.pdf)", [("/mnt/data/report.pdf", 4, 32)]),
        ("saved to /mnt/data/out.csv.", [("/mnt/data/out.csv", 9, 26)]),
        ("see sandbox:/mnt/data/a%20b.png, ok", [("/mnt/data/a b.png", 4, 31)]),
        ("![chart](sandbox:/mnt/data/sub/c.png)", [("/mnt/data/sub/c.png", 9, 36)]),
        ('<a href="sandbox:/mnt/data/x.txt">', [("/mnt/data/x.txt", 9, 32)]),
        ("`/mnt/data/code.py`", [("/mnt/data/code.py", 1, 18)]),
        ("nothing /mnt/data/ here", []),
        ("not a link: foo/mnt/data/x", []),
        ("plain text", []),
    ],
)
def test_find_links(text: str, expected: list[tuple[str, int, int]]) -> None:
    found = list(find_links(text))
    assert found == [SandboxLink(*e) for e in expected]
    for link in found:
        assert text[link.start : link.end].removeprefix("sandbox:").startswith("/mnt/data/")


def test_annotated_links_are_covered_and_zero_width_ones_cover_nothing() -> None:
    text = "[a](sandbox:/mnt/data/a.csv) and sandbox:/mnt/data/b.png"
    annotations = [
        {"type": "container_file_citation", "start_index": 4, "end_index": 27},
        {"type": "container_file_citation", "start_index": 0, "end_index": 0},
    ]
    assert find_uncovered_links(text, annotations) == [SandboxLink("/mnt/data/b.png", 33, 56)]
