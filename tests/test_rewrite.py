"""Link rewriting: delta by delta it must give exactly the rewrite of the whole text."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

import respflow
from respflow import LinkRewriter
from respflow import _events as ev
from respflow.testing import StreamBuilder, to_sse

from ._deltas import HOSTILE_FRAGMENTS, pieces, text_delta, text_done

FRAGMENTS = [
    "sandbox:/mnt/data/",
    "/mnt/data/",
    "sandbox:",
    "sandbox",
    "/mnt/",
    "data/",
    "report.pdf",
    "chart 1.png",
    "r%C3%A9sum%C3%A9.docx",
    "a",
    "s",
    "/",
    ".",
    ",",
    ":",
    " ",
    "\n",
    "(",
    ")",
    "[Download](",
    "]",
    "`",
    "'",
    '"',
    "é",
    "x/mnt/data/y",
    "foo.",
    *HOSTILE_FRAGMENTS,
]

texts = st.lists(st.sampled_from(FRAGMENTS), max_size=30).map("".join)


def _stream(rewriter: LinkRewriter, pieces: list[str], text: str) -> list[respflow.Event]:
    out: list[respflow.Event] = []
    for n, piece in enumerate(pieces):
        out += rewriter.feed(text_delta(n, piece))
    return out + rewriter.feed(text_done(len(pieces), text))


@given(texts, st.lists(st.integers(min_value=0)))
def test_rewriting_delta_by_delta_equals_rewriting_the_whole_text(
    text: str, cuts: list[int]
) -> None:
    rewriter = LinkRewriter()
    out = _stream(rewriter, pieces(text, cuts), text)
    whole = LinkRewriter().rewrite(text, "resp_1")
    streamed = "".join(e.delta for e in out if isinstance(e, ev.TextDelta))
    assert streamed == whole
    done = [e for e in out if isinstance(e, ev.TextDone)]
    assert [d.text for d in done] == [whole]
    cursors = [respflow.parse_cursor(e.cursor) for e in out]
    assert cursors == sorted(cursors)
    assert len(set(cursors)) == len(cursors)


def test_only_what_could_still_become_a_link_is_held_back() -> None:
    rewriter = LinkRewriter()
    [first] = rewriter.feed(text_delta(1, "See sandbox:/mn", "r"))
    assert isinstance(first, ev.TextDelta)
    assert first.delta == "See "
    [second] = rewriter.feed(text_delta(2, "t/data/a b.csv now", "r"))
    assert isinstance(second, ev.TextDelta)
    assert second.delta == "/files/r/a b.csv now"  # a link ends at the space


def test_never_more_than_max_hold_is_held() -> None:
    rewriter = LinkRewriter(max_hold=50)
    text = "sandbox:/mnt/data/" + "x" * 300 + " done"
    sent = received = 0
    for n in range(0, len(text), 7):
        piece = text[n : n + 7]
        sent += len(piece)
        for event in rewriter.feed(text_delta(n, piece, "r")):
            assert isinstance(event, ev.TextDelta)
            received += len(event.delta)
        assert sent - received <= 50
    assert received == sent  # a link too long to hold goes out as it was


def _message_run(text: str, annotations: list[dict[str, object]]) -> list[respflow.Event]:
    builder = StreamBuilder(response_id="resp_m").code_call("x", logs="", container_id="cntr")
    return list(respflow.replay(to_sse(builder.message(text, annotations=annotations).events())))


def test_message_completed_is_rewritten_and_its_annotations_moved() -> None:
    link = "sandbox:/mnt/data/data.csv"
    text = f"Get [the data]({link}) and sandbox:/mnt/data/lost.pdf."
    start = text.index(link)
    citation = {
        "type": "container_file_citation",
        "container_id": "cntr",
        "file_id": "cfile_1",
        "filename": "data.csv",
        "start_index": start,
        "end_index": start + len(link),
    }
    rewriter = LinkRewriter()
    out: list[respflow.Event] = []
    for event in _message_run(text, [citation]):
        if isinstance(event, ev.ResponseCompleted):  # the fetcher's verdict comes first
            failed = ev.FileFailed(
                response_id="resp_m",
                sequence_number=0,
                cursor="",
                container_id="cntr",
                file_id=None,
                status=404,
                reason="gone",
                hint="",
                path="/mnt/data/lost.pdf",
            )
            out += rewriter.feed(failed)
        out += rewriter.feed(event)
    [message] = [e for e in out if isinstance(e, ev.MessageCompleted)]
    assert message.text == (
        "Get [the data](/files/resp_m/data.csv) and #respflow-unavailable/lost.pdf."
    )
    [moved] = message.annotations
    assert message.text[moved["start_index"] : moved["end_index"]] == "/files/resp_m/data.csv"
    [cited] = [e for e in out if isinstance(e, ev.FileCited)]
    assert (cited.start_index, cited.end_index) == (moved["start_index"], moved["end_index"])
    assert out[-1].type == "response.completed"
    assert out.index(message) == len(out) - 2  # held to just before the end


def test_a_template_it_cannot_fill_in_is_refused_when_made() -> None:
    says = re.escape("may use {response_id}, {filename}")
    for bad in ("/files/{nope}", "/files/{0}", "/files/{filename", "/x/{response_id.x}"):
        with pytest.raises(respflow.UsageError, match=says):
            LinkRewriter(bad)
        with pytest.raises(respflow.UsageError, match="unavailable="):
            LinkRewriter(unavailable=bad)
    # A literal brace, doubled, is a template it can fill in.
    braces = LinkRewriter("/f/{{x}}/{filename}").rewrite("sandbox:/mnt/data/a.txt", "r")
    assert braces == "/f/{x}/a.txt"


def test_a_url_function_and_path_template() -> None:
    assert (
        LinkRewriter("https://cdn.example/{response_id}/{path}").rewrite(
            "x sandbox:/mnt/data/out/a%20b.png", "r 1"
        )
        == "x https://cdn.example/r%201/out/a%20b.png"
    )
    custom = LinkRewriter(lambda rid, path: f"app://{rid}{path}")
    assert custom.rewrite("/mnt/data/q.txt", "r") == "app://r/mnt/data/q.txt"
