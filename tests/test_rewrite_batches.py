"""LinkRewriter.feed_all, and aiter_events(processors=...), give what feed gives event by event.

feed_all takes what one Assembler.feed returns and lets most events through in one loop;
whatever the batches, the events, cursors and spans that come out must be those of
feeding the events one at a time, and of the general path that takes the long way for
every event.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import respflow
from respflow import LinkRewriter, UsageError
from respflow import _events as ev
from respflow.testing import StreamBuilder, to_sse

from ._deltas import HOSTILE_FRAGMENTS, code_delta, pieces, text_delta, text_done

FRAGMENTS = [
    "sandbox:/mnt/data/",
    "/mnt/data/",
    "sandbox:",
    "sand",
    "s",
    "box:",
    "report.pdf",
    "out/chart 1.png",
    "[the chart](sandbox:/mnt/data/chart.png)",
    "<sandbox:/mnt/data/a.csv>",
    "`/mnt/data/b.txt`",
    "x/mnt/data/y",
    "this sandbox",
    " see ",
    "_s",
    "é",
    "squares ",
    " ",
    "\n",
    "(",
    ")",
    ".",
    *HOSTILE_FRAGMENTS,
]

texts = st.lists(st.sampled_from(FRAGMENTS), max_size=20).map("".join)


class _GeneralPath(LinkRewriter):
    """The rewriter with its fast paths off: every event takes the long way."""

    def feed(self, event: ev.Event) -> list[ev.Event]:
        return self._feed(event)

    def feed_all(self, events: list[ev.Event]) -> list[ev.Event]:  # type: ignore[override]
        return [out for event in events for out in self._feed(event)]


@st.composite
def responses(draw: st.DrawFn, rid: str) -> list[ev.Event]:
    """One response: two messages of one or two parts each, their deltas interleaved with
    each other and with code deltas, each part's text.done and a citation of its first
    link, a failed file, each message's message.completed, and the end."""
    parts = [
        (item, index, draw(texts), draw(st.lists(st.integers(0, 300), max_size=12)))
        for item in ("msg_1", "msg_2")
        for index in range(draw(st.integers(1, 2)))
    ]
    queues = [
        [(item, index, piece) for piece in pieces(text, cuts)] for item, index, text, cuts in parts
    ]
    out: list[ev.Event] = [
        ev.ResponseStarted(rid, 0, "0-0"),
        ev.CodeStarted(rid, 1, "1-0", "ci_1", 0, container_id=draw(st.sampled_from(["c1", None]))),
    ]
    seq = 1
    while any(queues):
        seq += 1
        if draw(st.integers(0, 4)) == 0:
            out.append(code_delta(seq, "x = 1/2", rid))
            continue
        queue = draw(st.sampled_from([q for q in queues if q]))
        item, index, piece = queue.pop(0)
        out.append(_in(text_delta(seq, piece, rid, content_index=index), item))
    for item, index, text, _ in parts:
        seq += 1
        out.append(_in(text_done(seq, text, rid, content_index=index), item))
        link = text.find("sandbox:/mnt/data/")
        if link >= 0:
            out.append(
                ev.FileCited(
                    rid, seq, f"{seq}-1", item, 0, index, "container_file_citation", "cf_1",
                    None, link, link + len("sandbox:/mnt/data/"), container_id="c1",
                )
            )  # fmt: skip
    seq += 1
    failed = ev.FileFailed(rid, seq, f"{seq}-0", "c1", None, 404, "gone", "", "/mnt/data/a.csv")
    out.append(failed)
    for item in ("msg_1", "msg_2"):
        seq += 1
        whole = "".join(text for it, _, text, _ in parts if it == item)
        spans = [{"type": "url_citation", "start_index": 0, "end_index": len(whole)}]
        out.append(ev.MessageCompleted(rid, seq, f"{seq}-0", item, 0, "completed", whole, spans))
    seq += 1
    out.append(ev.ResponseCompleted(rid, seq, f"{seq}-0"))
    return out


def _in(event: ev.TextDelta | ev.TextDone, item: str) -> ev.Event:
    return msgspec.structs.replace(event, item_id=item)


def _batches(events: list[ev.Event], cuts: list[int]) -> list[list[ev.Event]]:
    points = sorted({c % (len(events) + 1) for c in cuts} | {0, len(events)})
    return [events[a:b] for a, b in itertools.pairwise(points)]


# Two whole responses per example: some draws are large, which is what is wanted here.
@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.data_too_large, HealthCheck.too_slow],
)
@given(
    responses("resp_1"),
    st.booleans(),
    responses("resp_2"),
    st.lists(st.integers(min_value=0), max_size=30),
    st.booleans(),
    st.sampled_from([18, 30, 1024]),
)
def test_feed_all_gives_what_feed_gives_event_by_event(
    first: list[ev.Event],
    again: bool,
    second: list[ev.Event],
    cuts: list[int],
    markdown: bool,
    max_hold: int,
) -> None:
    # A second response in the same batches: the rewriter starts over mid-batch.
    events = first + (second if again else [])
    one_by_one: list[ev.Event] = []
    rewriter = LinkRewriter(markdown=markdown, max_hold=max_hold)
    for event in events:
        one_by_one += rewriter.feed(event)
    batched = LinkRewriter(markdown=markdown, max_hold=max_hold)
    in_batches = [out for batch in _batches(events, cuts) for out in batched.feed_all(batch)]
    general = _GeneralPath(markdown=markdown, max_hold=max_hold)
    assert in_batches == one_by_one == general.feed_all(events)


def test_events_that_pass_unchanged_come_out_as_they_went_in() -> None:
    rewriter = LinkRewriter()
    rewriter.feed(text_delta(0, "The answer: "))
    events: list[ev.Event] = [text_delta(1 + n, "squares grow, see the CSV; ") for n in range(50)]
    events += [code_delta(51 + n, "x = [i ** 2 for i in range(9)]\n") for n in range(50)]
    out = rewriter.feed_all(events)
    assert len(out) == len(events)
    assert all(a is b for a, b in zip(out, events, strict=True))


def _wire(text: str) -> bytes:
    builder = StreamBuilder(response_id="resp_w").code_call("x", logs="", container_id="cntr")
    return to_sse(builder.message(text, chunk=3).events())


class _Marks:
    """A processor with only feed: it marks each text delta it sees."""

    def feed(self, event: ev.Event) -> list[ev.Event]:
        if isinstance(event, ev.TextDelta):
            return [event, event]
        return [event]


async def _chunked(body: bytes, size: int) -> AsyncIterator[bytes]:
    for i in range(0, len(body), size):
        yield body[i : i + size]


pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("size", [1, 7, 64, 4096])
async def test_aiter_events_runs_each_chunks_events_through_its_processors(size: int) -> None:
    text = "See sandbox:/mnt/data/report.pdf and [it](sandbox:/mnt/data/a b.csv). sandbox"
    body = _wire(text * 3)
    expected: list[ev.Event] = []
    rewriter, marks = LinkRewriter(markdown=True), _Marks()
    async for event in respflow.aiter_events(_chunked(body, size)):
        for out in rewriter.feed(event):
            expected += marks.feed(out)
    got = [
        event
        async for event in respflow.aiter_events(
            _chunked(body, size), processors=[LinkRewriter(markdown=True), _Marks()]
        )
    ]
    assert got == expected
    assert expected[-1].type == "response.completed"
    assert any(isinstance(e, ev.MessageCompleted) for e in got)  # released at the end


class _Downloads:
    """A processor with only process(events), like FileFetcher."""

    def process(self, events: Any) -> Any:
        return events


async def test_a_processor_without_feed_is_refused_with_where_it_belongs() -> None:
    with pytest.raises(UsageError, match="in a Pipeline"):
        respflow.aiter_events(_chunked(b"", 1), processors=[_Downloads()])


class _Broken:
    def feed(self, event: ev.Event) -> list[ev.Event]:
        if isinstance(event, ev.TextDone):
            raise LookupError("a bug in the processor")
        return [event]


async def test_a_processor_that_raises_is_not_taken_for_a_failed_source() -> None:
    got: list[ev.Event] = []

    async def read() -> None:
        events = respflow.aiter_events(_chunked(_wire("some text"), 64), processors=[_Broken()])
        async for event in events:
            got.append(event)

    with pytest.raises(LookupError, match="a bug in the processor"):
        await read()
    assert any(isinstance(e, ev.TextDelta) for e in got)
    assert not any(isinstance(e, ev.StreamError) for e in got)


class _BrokenAtTheEnd:
    def feed(self, event: ev.Event) -> list[ev.Event]:
        if isinstance(event, ev.StreamTruncated):
            raise LookupError("a bug in the processor, at the end")
        return [event]


async def test_a_processor_that_raises_on_the_end_of_a_cut_stream_raises_as_itself() -> None:
    body = _wire("some text")
    cut = body[: len(body) // 2]  # no end event: closing the assembler makes the truncation
    with pytest.raises(LookupError, match="at the end"):
        async for _ in respflow.aiter_events(_chunked(cut, 64), processors=[_BrokenAtTheEnd()]):
            pass


async def test_a_processor_that_raises_leaves_the_byte_source_closed() -> None:
    closed = False

    async def source() -> AsyncIterator[bytes]:
        nonlocal closed
        try:
            body = _wire("some text")
            for at in range(0, len(body), 64):
                yield body[at : at + 64]
        finally:
            closed = True

    with pytest.raises(LookupError):
        async for _ in respflow.aiter_events(source(), processors=[_Broken()]):
            pass
    assert closed
