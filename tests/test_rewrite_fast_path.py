"""The LinkRewriter's fast path lets out exactly what its general path does.

Most deltas go out as they came without the link scan (see ``LinkRewriter.feed``). Every
event here goes through both the rewriter and one that takes the general path for every
event, and the two must agree on every event, cursor and annotation span.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from respflow import LinkRewriter
from respflow import _events as ev

from ._deltas import HOSTILE_FRAGMENTS, pieces, text_delta, text_done

FRAGMENTS = [
    "sandbox:/mnt/data/",
    "/mnt/data/",
    "sandbox:",
    "sandbox",
    "sand",
    "s",
    "sa",
    "box:",
    "/mnt/",
    "data/",
    "report.pdf",
    "chart 1.png",
    "[Download](",
    "[the chart](sandbox:/mnt/data/chart.png)",
    "<sandbox:/mnt/data/a.csv>",
    "`/mnt/data/b.txt`",
    "see /mnt/data/out/result.json.",
    "this sandbox",
    "ss",
    "as ",
    "x/mnt/data/y",
    "_s",
    ".s",
    "é",
    "a",
    "the squares ",
    " ",
    "\n",
    "(",
    ")",
    "]",
    '"',
    "'",
    ".",
    ":",
    *HOSTILE_FRAGMENTS,
]

texts = st.lists(st.sampled_from(FRAGMENTS), max_size=25).map("".join)
cuts = st.lists(st.integers(min_value=0, max_value=400), max_size=40)


class _GeneralPath(LinkRewriter):
    """The rewriter with its fast path off: every event takes the long way."""

    def feed(self, event: ev.Event) -> list[ev.Event]:
        return self._feed(event)


def _events(parts: list[tuple[str, list[str]]], code_every: int) -> list[ev.Event]:
    """One response: a message with the given parts streamed in the given pieces, code
    deltas in between, a citation of the first link, the message and the end."""
    out: list[ev.Event] = [ev.ResponseStarted("resp_1", 0, "0-0")]
    seq = 0

    def next_seq() -> int:
        nonlocal seq
        seq += 1
        return seq

    for index, (text, cut) in enumerate(parts):
        for n, piece in enumerate(cut):
            if code_every and n % code_every == 0:
                s = next_seq()
                out.append(ev.CodeDelta("resp_1", s, f"{s}-0", "ci_1", 1, "x = 1/2"))
            s = next_seq()
            out.append(text_delta(s, piece, content_index=index))
        s = next_seq()
        out.append(text_done(s, text, content_index=index))
        link = text.find("sandbox:/mnt/data/")
        if link >= 0:
            end = link + len("sandbox:/mnt/data/")
            out.append(
                ev.FileCited(
                    "resp_1",
                    s,
                    f"{s}-1",
                    "msg_1",
                    0,
                    index,
                    "container_file_citation",
                    "cfile_1",
                    None,
                    link,
                    end,
                )
            )
    s = next_seq()
    whole = "".join(text for text, _ in parts)
    annotations = [{"type": "url_citation", "start_index": 0, "end_index": len(whole)}]
    out.append(
        ev.MessageCompleted("resp_1", s, f"{s}-0", "msg_1", 0, "completed", whole, annotations)
    )
    out.append(ev.ItemCompleted("resp_1", s, f"{s}-1", "msg_1", 0, "message", "completed", {}))
    s = next_seq()
    out.append(ev.ResponseCompleted("resp_1", s, f"{s}-0"))
    return out


def _through(rewriter: LinkRewriter, events: list[ev.Event]) -> list[ev.Event]:
    return [out for event in events for out in rewriter.feed(event)]


@given(
    st.lists(st.tuples(texts, cuts), min_size=1, max_size=3),
    st.integers(min_value=0, max_value=4),
    st.booleans(),
    st.sampled_from([18, 24, 1024]),
)
def test_the_fast_path_lets_out_what_the_general_path_does(
    parts: list[tuple[str, list[int]]], code_every: int, markdown: bool, max_hold: int
) -> None:
    events = _events([(text, pieces(text, at)) for text, at in parts], code_every)
    fast = _through(LinkRewriter(markdown=markdown, max_hold=max_hold), events)
    general = _through(_GeneralPath(markdown=markdown, max_hold=max_hold), events)
    assert fast == general


@given(texts, cuts)
def test_a_long_answer_in_small_deltas_keeps_every_character(text: str, at: list[int]) -> None:
    """Deltas that go out as they came still count for where later links and spans go."""
    text = "plain words " * 30 + text
    events = _events([(text, pieces(text, at))], 0)
    out = _through(LinkRewriter(), events)
    streamed = "".join(e.delta for e in out if isinstance(e, ev.TextDelta))
    assert streamed == LinkRewriter().rewrite(text, "resp_1")
