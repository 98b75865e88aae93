"""Attacks on LinkRewriter's batch paths: ``feed_all`` and ``_feed_all_numbered``.

They keep what the recent part let out as it came in locals, write it back before
anything else reads the part, and number events without reading their cursors while
each event in went out once, in its place. Whatever the events and however they are
batched (a citation or a ``file.link`` right after a release or a hold, parts, items and
responses interleaved in one batch, empty deltas, a ``response.failed`` or a ``close()``
right after a release, a "/" after a run let out as it came, batches that end right
after a hold, subclasses, ``max_hold=18``, ``markdown=True``), what comes out is what
``feed`` gives event by event, cursors included; a part's deltas add up to its rewritten
``text.done``; and a span moved while the text streams is where that text ends up.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from respflow import LinkRewriter
from respflow import _events as ev
from respflow._files.rewrite import _Moves

from ._deltas import HOSTILE_FRAGMENTS

FRAGMENTS = [
    "",
    "sandbox:/mnt/data/",
    "/mnt/data/",
    "sandbox:",
    "sand",
    "s",
    "sa",
    "box:",
    "x",
    "a.csv",
    " see ",
    " ",
    "\n",
    "(",
    ")",
    ".",
    "_",
    "[b](",
    "<",
    "a run of plain words",
    "sandbox:/mnt/data/a.csv",
    "é",
    *HOSTILE_FRAGMENTS,
]
PARTS = [("msg_1", 0), ("msg_1", 1), ("msg_2", 0)]
OTHER = ["code", "code.started", "text.done", "file.cited", "file.link", "file.failed"]
OTHER += ["message.completed", "response.completed", "response.failed", "gap", "reasoning"]
pieces = st.lists(st.sampled_from(FRAGMENTS), max_size=3).map("".join)


class _GeneralPath(LinkRewriter):
    """The rewriter with its fast paths off: every event takes the long way."""

    def feed(self, event: ev.Event) -> list[ev.Event]:
        return self._feed(event)

    def feed_all(self, events: Iterable[ev.Event]) -> list[ev.Event]:
        return [out for event in events for out in self._feed(event)]


class _OwnTarget(LinkRewriter):
    """A subclass that changes where links point, not how events are fed."""

    def target(self, response_id: str, path: str, **options: Any) -> str:
        return "/mine" + super().target(response_id, path, **options)


class _OwnFeed(_OwnTarget):
    """A subclass whose feed goes through LinkRewriter's (and sees every event)."""

    def feed(self, event: ev.Event) -> list[ev.Event]:
        return super().feed(event)


@st.composite
def streams(draw: st.DrawFn, responses: tuple[str, ...] = ("resp_1", "resp_2")) -> list[ev.Event]:
    """Events as an assembler numbers them (``<seq>-<k>``, ``k`` from 0 at each new
    number; numbers mostly rising, sometimes repeated or going back): runs of deltas to
    one part, broken by other parts, items, responses and every other kind of event."""
    texts: dict[tuple[str, str, int], str] = {}
    events: list[ev.Event] = []
    seq, k = 0, 0
    rid, item, index = responses[0], *PARTS[0]
    for _ in range(draw(st.integers(1, 50))):
        if not events or draw(st.integers(0, 9)) < 3:  # another part, maybe of another response
            rid = draw(st.sampled_from(responses))
            item, index = draw(st.sampled_from(PARTS))
        step = draw(st.sampled_from([1, 1, 1, 0, -1]))
        if step == 0 and events:
            k += 1
        else:
            seq, k = max(0, seq + step), 0
            if events and seq == events[-1].sequence_number:
                k = int(events[-1].cursor.rpartition("-")[2]) + 1
        so_far = texts.get((rid, item, index), "")
        kind = "text.delta" if draw(st.integers(0, 2)) else draw(st.sampled_from(OTHER))
        event = _event(draw, kind, rid, seq, f"{seq}-{k}", item, index, so_far)
        if isinstance(event, ev.TextDelta):
            texts[(rid, item, index)] = so_far + event.delta
        events.append(event)
    return events


def _event(
    draw: st.DrawFn, kind: str, rid: str, seq: int, cursor: str, item: str, index: int, text: str
) -> ev.Event:
    head = (rid, seq, cursor)
    if kind == "text.delta":
        return ev.TextDelta(*head, item, 0, index, draw(pieces))
    if kind == "text.done":
        return ev.TextDone(*head, item, 0, index, text)
    if kind in ("file.cited", "file.link"):
        start = draw(st.integers(0, len(text) + 2))
        end = draw(st.integers(start, len(text) + 3))
        link = text.find("sandbox:/mnt/data/")
        if link >= 0 and draw(st.booleans()):  # the span of a link
            start, end = link, link + len("sandbox:/mnt/data/a.csv")
        if kind == "file.link":
            path = "/mnt/data/a.csv"
            return ev.FileLink(*head, item, 0, index, path, start, end, container_id="c1")
        kind, file_id = "container_file_citation", "cf_1"
        return ev.FileCited(*head, item, 0, index, kind, file_id, None, start, end, "c1")
    if kind == "message.completed":
        spans = [{"type": "url_citation", "start_index": 0, "end_index": len(text)}]
        return ev.MessageCompleted(*head, item, 0, "completed", text, spans)
    container = draw(st.sampled_from(["c1", "c2"]))
    made: dict[str, ev.Event] = {
        "code": ev.CodeDelta(*head, "ci_1", 0, "x = 1/2"),
        "code.started": ev.CodeStarted(*head, "ci_1", 0, container_id=container),
        "file.failed": ev.FileFailed(*head, "c1", "cf_1", 404, "gone", "", "/mnt/data/a.csv"),
        "response.completed": ev.ResponseCompleted(*head),
        "response.failed": ev.ResponseFailed(*head),
        "gap": ev.StreamGap(*head, 1, 2),
        "reasoning": ev.ReasoningDelta(*head, "rs_1", 0, "so sandbox"),
    }
    return made[kind]


def _batches(events: list[ev.Event], cuts: list[int]) -> list[list[ev.Event]]:
    points = sorted({c % (len(events) + 1) for c in cuts} | {0, len(events)})
    return [events[a:b] for a, b in itertools.pairwise(points)]


def _run(rewriter: LinkRewriter, batches: list[list[ev.Event]], how: str, closes: set[int]) -> Any:
    """What comes out of each batch, then of close() after the batches in ``closes``
    and after the last."""
    out: list[Any] = []
    for n, batch in enumerate(batches):
        if how == "feed" or (how == "mixed" and n % 2):
            out += [each for event in batch for each in rewriter.feed(event)]
        elif how == "numbered":
            out += rewriter._feed_all_numbered(batch)
        else:
            out += rewriter.feed_all(batch)
        if n in closes or n == len(batches) - 1:
            out += ["close", *rewriter.close()]
    return out


_TOO_SLOW = [HealthCheck.too_slow, HealthCheck.data_too_large]


@settings(max_examples=250, deadline=None, suppress_health_check=_TOO_SLOW)
@given(
    streams(),
    st.lists(st.integers(min_value=0), max_size=12),
    st.sets(st.integers(0, 12), max_size=2),
    st.booleans(),
    st.sampled_from([18, 19, 30, 1024]),
)
@example(  # a citation right after a hold is let out, in one batch
    [
        ev.TextDelta("resp_1", 1, "1-0", "msg_1", 0, 0, "see s"),
        ev.TextDelta("resp_1", 2, "2-0", "msg_1", 0, 0, "o "),
        ev.FileLink("resp_1", 2, "2-1", "msg_1", 0, 0, "/mnt/data/a.csv", 0, 6),
        ev.TextDelta("resp_1", 3, "3-0", "msg_1", 0, 0, "more sandbox:"),
        ev.TextDelta("resp_1", 4, "4-0", "msg_1", 0, 0, "/mnt/data/a.csv "),
        ev.ResponseFailed("resp_1", 5, "5-0"),
    ],
    [],
    set(),
    True,
    18,
)
@example(  # a batch that ends on a run let out as it came: the next batch's link follows " "
    [
        ev.TextDelta("resp_1", 1, "1-0", "msg_1", 0, 0, "word"),
        ev.TextDelta("resp_1", 2, "2-0", "msg_1", 0, 0, "x"),
        ev.TextDelta("resp_1", 3, "3-0", "msg_1", 0, 0, " "),
        ev.TextDelta("resp_1", 4, "4-0", "msg_1", 0, 0, "sandbox:/mnt/data/a.csv "),
        ev.FileLink("resp_1", 4, "4-1", "msg_1", 0, 0, "/mnt/data/a.csv", 6, 29),
    ],
    [3],
    set(),
    False,
    1024,
)
@example(  # a start of a link held right after a run let out as it came, in one batch
    [
        ev.TextDelta("resp_1", 1, "1-0", "msg_1", 0, 0, "word"),
        ev.TextDelta("resp_1", 2, "2-0", "msg_1", 0, 0, "x"),
        ev.TextDelta("resp_1", 3, "3-0", "msg_1", 0, 0, " "),
        ev.TextDelta("resp_1", 4, "4-0", "msg_1", 0, 0, "sand"),
        ev.TextDelta("resp_1", 5, "5-0", "msg_1", 0, 0, "y"),
        ev.TextDelta("resp_1", 6, "6-0", "msg_1", 0, 0, " s"),
        ev.TextDelta("resp_1", 7, "7-0", "msg_1", 0, 0, "andbox:/mnt/data/a.csv "),
        ev.TextDone("resp_1", 8, "8-0", "msg_1", 0, 0, "wordx sandy sandbox:/mnt/data/a.csv "),
    ],
    [],
    set(),
    True,
    18,
)
def test_every_batch_path_gives_what_feed_gives_event_by_event(
    events: list[ev.Event], cuts: list[int], closes: set[int], markdown: bool, max_hold: int
) -> None:
    batches = _batches(events, cuts)
    options: dict[str, Any] = {"markdown": markdown, "max_hold": max_hold}
    expected = _run(LinkRewriter(**options), batches, "feed", closes)
    assert _run(_GeneralPath(**options), batches, "feed", closes) == expected
    for how in ("all", "numbered", "mixed"):
        assert _run(LinkRewriter(**options), batches, how, closes) == expected, how
    own_way = _run(_OwnTarget(**options), batches, "feed", closes)
    for how in ("all", "numbered"):
        assert _run(_OwnTarget(**options), batches, how, closes) == own_way, how
        assert _run(_OwnFeed(**options), batches, how, closes) == own_way, how


_ENDER = re.compile(r"[\s)\]\"'<>`]")


@settings(max_examples=200, deadline=None, suppress_health_check=_TOO_SLOW)
@given(
    st.lists(pieces, max_size=25),
    st.lists(st.tuples(st.integers(0, 25), st.integers(0), st.integers(0, 40)), max_size=6),
    st.lists(st.integers(min_value=0), max_size=8),
    st.booleans(),
    st.sampled_from([18, 30, 1024]),
)
def test_spans_moved_while_the_text_streams_are_where_the_text_ends_up(
    parts: list[str],
    spans: list[tuple[int, int, int]],
    cuts: list[int],
    markdown: bool,
    max_hold: int,
) -> None:
    """A ``file.link`` (or ``file.cited``) of text that has streamed, up to a character no
    link goes past, points where that text is in the rewritten ``text.done``; the deltas
    add up to it; whatever the batches."""
    events: list[ev.Event] = []
    streamed = ""
    settled: list[tuple[int, int] | None] = []
    for n, piece in enumerate(parts):
        events.append(ev.TextDelta("resp_1", len(events), f"{len(events)}-0", "m", 0, 0, piece))
        streamed += piece
        for after, start, width in spans:
            if after == n:
                start %= len(streamed) + 1
                end = min(len(streamed), start + width)
                seq = len(events)
                path = "/mnt/data/a.csv"
                events.append(ev.FileLink("resp_1", seq, f"{seq}-0", "m", 0, 0, path, start, end))
                final = _ENDER.search(streamed, end) is not None
                settled.append((start, end) if final else None)
    text = "".join(parts)
    events.append(ev.TextDone("resp_1", len(events), f"{len(events)}-0", "m", 0, 0, text))
    rewriter = LinkRewriter(markdown=markdown, max_hold=max_hold)
    out = [each for batch in _batches(events, cuts) for each in rewriter.feed_all(batch)]
    done = next(e for e in out if isinstance(e, ev.TextDone))
    assert "".join(e.delta for e in out if isinstance(e, ev.TextDelta)) == done.text
    # Where each place of the whole text goes, by the rule for a whole text.
    whole = LinkRewriter(markdown=markdown, max_hold=max_hold)
    moves = _Moves(whole._rewrite(text, "resp_1", whole._state.names_in(None))[1])
    for link, span in zip((e for e in out if isinstance(e, ev.FileLink)), settled, strict=True):
        if span is not None:
            assert (link.start_index, link.end_index) == tuple(map(moves.position, span))


def test_a_slash_after_a_run_let_out_as_it_came_in_one_batch_counts_that_run() -> None:
    """The run is in locals when the "/" comes: it must be in the part before the long
    way reads it, or the link after it is placed (and cited) wrong."""
    events: list[ev.Event] = [
        ev.TextDelta("resp_1", n, f"{n}-0", "msg_1", 0, 0, piece)
        for n, piece in enumerate(["one ", "two ", "three ", "(sandbox:/mnt/data/a.csv)"])
    ]
    events.append(ev.FileLink("resp_1", 4, "4-0", "msg_1", 0, 0, "/mnt/data/a.csv", 15, 38))
    events.append(
        ev.TextDone("resp_1", 5, "5-0", "msg_1", 0, 0, "one two three (sandbox:/mnt/data/a.csv)")
    )
    one_by_one = LinkRewriter()
    expected = [each for event in events for each in one_by_one.feed(event)]
    got = LinkRewriter()._feed_all_numbered(events)
    assert got == expected
    link = next(e for e in got if isinstance(e, ev.FileLink))
    done = next(e for e in got if isinstance(e, ev.TextDone))
    assert done.text[link.start_index : link.end_index] == "/files/resp_1/a.csv"


def test_a_batch_that_ends_on_a_hold_lets_it_out_at_close() -> None:
    rewriter = LinkRewriter(max_hold=18)
    out = rewriter.feed_all(
        [
            ev.TextDelta("resp_1", 1, "1-0", "msg_1", 0, 0, "plain words "),
            ev.TextDelta("resp_1", 2, "2-0", "msg_1", 0, 0, "more words sand"),
        ]
    )
    assert "".join(e.delta for e in out if isinstance(e, ev.TextDelta)) == "plain words more words "
    held = rewriter.close()
    assert [(e.delta, e.cursor) for e in held if isinstance(e, ev.TextDelta)] == [("sand", "2-1")]
    assert rewriter.close() == []
