"""Text-delta events and cuts of a text, as the link rewriter's tests build them."""

from __future__ import annotations

import itertools

from respflow import _events as ev


def pieces(text: str, cuts: list[int]) -> list[str]:
    """``text`` cut at ``cuts`` (taken modulo its length + 1): pieces that add up to it."""
    points = sorted({c % (len(text) + 1) for c in cuts} | {0, len(text)})
    return [text[a:b] for a, b in itertools.pairwise(points)]


def text_delta(n: int, piece: str, rid: str = "resp_1", *, content_index: int = 0) -> ev.TextDelta:
    """The first event of wire event ``n``: ``piece`` of part ``content_index`` of msg_1."""
    return ev.TextDelta(
        response_id=rid,
        sequence_number=n,
        cursor=f"{n}-0",
        item_id="msg_1",
        output_index=0,
        content_index=content_index,
        delta=piece,
    )


def text_done(n: int, text: str, rid: str = "resp_1", *, content_index: int = 0) -> ev.TextDone:
    """The ``text.done`` of part ``content_index`` of msg_1, as wire event ``n``."""
    return ev.TextDone(
        response_id=rid,
        sequence_number=n,
        cursor=f"{n}-0",
        item_id="msg_1",
        output_index=0,
        content_index=content_index,
        text=text,
    )


def code_delta(n: int, piece: str, rid: str = "resp_1") -> ev.CodeDelta:
    """A code delta of ci_1 as wire event ``n``: an event the rewriter passes on."""
    return ev.CodeDelta(
        response_id=rid,
        sequence_number=n,
        cursor=f"{n}-0",
        item_id="ci_1",
        output_index=0,
        delta=piece,
    )


HOSTILE_FRAGMENTS = [
    # Found worth drawing by a hunt: percent escapes (decoded into the path), Unicode
    # whitespace (a link ender), a CR, a tab, doubled leads, a combining mark, an astral
    # character. The rewriter's property tests add them to their own fragments.
    "%",
    "%5D",
    "%0A",
    "%2F..%2F",
    "\u00a0",
    "\u2028",
    "\r",
    "\t",
    "sandbox:sandbox:/mnt/data/",
    "/mnt/data//mnt/data/",
    "e\u0301",
    "😀",
]
