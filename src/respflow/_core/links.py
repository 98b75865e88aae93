"""Finding ``sandbox:/mnt/data/...`` links that no annotation accounts for.

Models write links to files in their container as ``[report](sandbox:/mnt/data/report.pdf)``
or name the bare path ``/mnt/data/report.pdf``. When the API annotates such a link, the
``container_file_citation`` span covers exactly the link target; when it does not
(reasoning models often do not), the link is dead in every browser and respflow reports
it so the file can still be fetched.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

__all__ = ["SandboxLink", "find_links", "find_uncovered_links"]

# A target ends at whitespace, a closing bracket or a quote; sentence punctuation after
# it is not part of it. The look-behind keeps "foo/mnt/data/x" from matching.
_LINK = re.compile(r"(?<![\w/.])(?:sandbox:)?/mnt/data/[^\s)\]\"'<>`]+")
_TRAILING = ".,;:!?"
_DIR = "/mnt/data/"
_SCHEME = "sandbox:"


class SandboxLink(NamedTuple):
    """A ``sandbox:/mnt/data/...`` (or bare ``/mnt/data/...``) link found in a text:
    ``path`` is the container path, percent-decoded; ``text[start:end]`` is the target
    as written."""

    path: str
    start: int
    end: int


def find_links(text: str, start: int = 0, end: int | None = None) -> Iterator[SandboxLink]:
    """Links in ``text[start:end]``, judged in the whole text (what precedes ``start``
    decides whether a link may begin there); positions are in ``text``."""
    for match in _matches(text, start, len(text) if end is None else end):
        target = match.group().rstrip(_TRAILING)
        path = target.removeprefix("sandbox:")
        if path == "/mnt/data/":
            continue
        start = match.start()
        yield SandboxLink(_unquoted(path), start, start + len(target))


def _unquoted(path: str) -> str:
    if "%" not in path:  # what unquote returns unchanged
        return path
    # Imported here: urllib.parse and what it imports take some milliseconds of every
    # start of a process, and most answers have no percent-encoded link.
    from urllib.parse import unquote

    return unquote(path)


def _matches(text: str, start: int, end: int) -> Iterator[re.Match[str]]:
    """What ``_LINK.finditer(text, start, end)`` finds, tried only where ``/mnt/data/``
    is: every link holds it at its start or after ``sandbox:``, and ``str.find`` passes
    over the rest of a long answer at memory speed, where the pattern takes tens of
    nanoseconds a character."""
    at = text.find(_DIR, start, end)
    while at >= 0:
        match = None
        if at - len(_SCHEME) >= start and text.startswith(_SCHEME, at - len(_SCHEME)):
            match = _LINK.match(text, at - len(_SCHEME), end)
        if match is None:
            match = _LINK.match(text, at, end)
        if match is None:
            at = text.find(_DIR, at + 1, end)
            continue
        yield match
        start = match.end()
        at = text.find(_DIR, start, end)


def find_uncovered_links(text: str, annotations: Iterable[Any]) -> list[SandboxLink]:
    """Links in ``text`` that no annotation span overlaps.

    Zero-width annotations (images Code Interpreter cites at index 0) cover nothing, nor
    does anything that is not a JSON object with integer ``start_index`` and ``end_index``.
    """
    covered = _merged(
        (start, end)
        for ann in annotations
        if isinstance(ann, dict)
        and isinstance(start := ann.get("start_index"), int)
        and isinstance(end := ann.get("end_index"), int)
        and end > start
    )
    # Links come in text order and the covered spans are disjoint and sorted, so one
    # walk along both settles every link: spans ending before a link end before the next.
    uncovered = []
    at = 0
    for link in find_links(text):
        while at < len(covered) and covered[at][1] <= link.start:
            at += 1
        if at == len(covered) or covered[at][0] >= link.end:
            uncovered.append(link)
    return uncovered


def _merged(spans: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """The same positions as ``spans``, as disjoint spans in order."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged
