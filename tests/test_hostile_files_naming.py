"""Link rewriting and file naming against hostile input (issue 10, items 6, 8, 10, 18, 19).

A link and its file must meet: the rewriter's target and the stored name follow one rule,
a function of the file's container and sandbox path, so two files of one name never share
a link. The rewriter's work grows with the text, never with its square; deltas always add
up to the text, even around a link too long to hold; no device name starts a file name;
a name too long for the collision counter still gets one.
"""

from __future__ import annotations

import posixpath
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import quote, unquote

import httpx2
import msgspec
import openai
import pytest
from hypothesis import given
from hypothesis import strategies as st

import respflow
from respflow import LinkRewriter, LocalStorage, Reconnect, files_app, find_links, safe_filename
from respflow import _events as ev
from respflow._files.names import FileNames, numbered
from respflow.testing import LoopbackServer, MockServer, Recording, StreamBuilder, to_sse

from ._deltas import pieces, text_delta, text_done
from ._downloads import Chunks

FAST = Reconnect(attempts=3, initial_delay=0.01)
DEVICES = {"con", "prn", "aux", "nul", "clock$", "conin$", "conout$"}
DEVICES |= {f"com{i}" for i in "123456789"} | {f"lpt{i}" for i in "123456789"}
# What a link target stops at (whitespace too): the run a link is measured by.
ENDERS = re.compile(r"[\s)\]\"'<>`]")


# -- helpers ------------------------------------------------------------------------------


def _cited(n: int, start: int, end: int, file_id: str) -> ev.FileCited:
    return ev.FileCited(
        response_id="resp_1",
        sequence_number=n,
        cursor=f"{n}-0",
        item_id="msg_1",
        output_index=0,
        content_index=0,
        kind="container_file_citation",
        file_id=file_id,
        filename=None,
        start_index=start,
        end_index=end,
        container_id="cntr",
    )


def _streamed(out: list[respflow.Event]) -> str:
    return "".join(e.delta for e in out if isinstance(e, ev.TextDelta))


async def _run(
    mock: MockServer,
    storage: LocalStorage,
    rewriter: LinkRewriter | None = None,
    **options: Any,
) -> list[respflow.Event]:
    """A response through the openai SDK, the file fetcher and (if given) the rewriter."""
    out: list[respflow.Event] = []
    async with (
        openai.AsyncOpenAI(
            base_url=mock.openai_base_url, api_key=mock.openai_api_key, max_retries=0
        ) as sdk,
        respflow.stream(sdk, model="m", input="x") as events,
        respflow.fetch_files(events, sdk, storage, retry=FAST, **options) as fetched,
    ):
        async for event in fetched:
            out += rewriter.feed(event) if rewriter is not None else [event]
    return out


@contextmanager
def _work() -> Iterator[list[int]]:
    """Counts the lines of respflow's own code run inside the block: the work, not the time."""
    package = str(Path(respflow.__file__).parent)
    count = [0]

    def line(frame: FrameType, event: str, arg: Any) -> Any:
        if event == "line":
            count[0] += 1
        return line

    def call(frame: FrameType, event: str, arg: Any) -> Any:
        return line if frame.f_code.co_filename.startswith(package) else None

    previous = sys.gettrace()
    sys.settrace(call)
    try:
        yield count
    finally:
        sys.settrace(previous)


# -- 18: device names -----------------------------------------------------------------------


def _device_stem(name: str) -> str:
    """What Windows compares with its device names: the name up to its first dot, without
    the spaces before it."""
    return name.split(".", 1)[0].rstrip(" ").lower()


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("CON.tar.gz", "_CON.tar.gz"),
        ("NUL .txt", "_NUL .txt"),
        ("com1.tar.gz", "_com1.tar.gz"),
        ("Aux.", "_Aux"),
        ("lpt9.a.b", "_lpt9.a.b"),
        ("PRN  .tar.gz", "_PRN  .tar.gz"),
        ("conin$.log", "_conin$.log"),
        ("CLOCK$.x.y", "_CLOCK$.x.y"),
        ("COM\u00b9.txt", "_COM1.txt"),  # superscript one: NFKC makes it COM1
        ("console.tar.gz", "console.tar.gz"),  # not a device: kept as it is
        ("con_report.csv", "con_report.csv"),
    ],
)
def test_a_device_name_never_starts_a_safe_name(name: str, safe: str) -> None:
    assert safe_filename(name) == safe
    assert _device_stem(safe) not in DEVICES
    assert safe_filename(safe) == safe


device_like = st.tuples(
    st.sampled_from(sorted(DEVICES)).map(lambda d: d.upper() if len(d) % 2 else d),
    st.text(alphabet=" .", max_size=3),
    st.lists(st.sampled_from(["txt", "tar", "gz", "", "x y"]), max_size=3).map(".".join),
).map("".join)


@given(st.one_of(device_like, st.text()))
def test_no_safe_name_is_a_device_whatever_follows_it(name: str) -> None:
    safe = safe_filename(name)
    assert _device_stem(safe) not in DEVICES
    assert safe_filename(safe) == safe


# -- 10: the collision counter fits ---------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(
    "name",
    [
        "r" * 196 + ".csv",  # exactly 200 bytes
        "r" * 197 + ".csv",
        "r" * 250 + ".csv",
        "é" * 150 + ".csv",
        "n" * 300,
        "a." + "e" * 190,  # an extension too long to keep apart
    ],
)
async def test_a_second_file_with_a_name_of_200_bytes_or_more_is_stored(
    anyio_backend: str, tmp_path: Path, name: str
) -> None:
    storage = LocalStorage(tmp_path)
    first = await storage.save("resp_1", "k1", name, Chunks(b"first"))
    second = await storage.save("resp_1", "k2", name, Chunks(b"second"))
    third = await storage.save("resp_1", "k3", name, Chunks(b"third"))
    assert len({first.filename, second.filename, third.filename}) == 3
    assert " (2)" in second.filename
    assert " (3)" in third.filename
    for stored, data in ((first, b"first"), (second, b"second"), (third, b"third")):
        assert len(stored.filename.encode()) <= 200
        assert safe_filename(stored.filename) == stored.filename  # files_app serves it
        assert Path(stored.location).read_bytes() == data


@given(st.text(), st.integers(min_value=2, max_value=9999))
def test_a_numbered_name_is_safe_distinct_and_keeps_its_counter(name: str, n: int) -> None:
    safe = safe_filename(name)
    counted = numbered(safe, n)
    assert counted != safe
    assert f" ({n})" in counted
    assert len(counted.encode()) <= 200
    assert safe_filename(counted) == counted


@pytest.mark.anyio
async def test_two_cited_files_of_one_long_name_are_each_downloaded_once_and_saved(
    anyio_backend: str, tmp_path: Path
) -> None:
    name = "quarterly_results_" + "x" * 210 + ".csv"
    folder = tmp_path / "container"
    folder.mkdir()
    (folder / name).write_bytes(b"q,1\n")
    citations = [
        {
            "type": "container_file_citation",
            "container_id": "cntr_long",
            "file_id": f"cfile_{n}",
            "filename": name,
            "start_index": 0,
            "end_index": 0,
        }
        for n in (1, 2)
    ]
    builder = (
        StreamBuilder(response_id="resp_long")
        .code_call("save()", logs="", container_id="cntr_long")
        .message("Two versions of the results.", annotations=citations)
    )
    async with MockServer(Recording.from_bytes(to_sse(builder.events())), files=folder) as mock:
        got = await _run(mock, LocalStorage(tmp_path / "files"))
    assert not [e for e in got if isinstance(e, ev.FileFailed)]
    saved = [e for e in got if isinstance(e, ev.FileSaved)]
    assert sorted(e.file_id or "" for e in saved) == ["cfile_1", "cfile_2"]
    assert len({e.location for e in saved}) == 2
    for event in saved:
        assert Path(event.location).read_bytes() == b"q,1\n"
        assert len(event.filename.encode()) <= 200
    assert len([r for r in mock.requests if r.path.endswith("/content")]) == 2
    assert got[-1].type == "response.completed"


# -- 8: a link and its file meet, whatever their names --------------------------------------

CONTAINER_FILES = {
    ("cntr_a", "/mnt/data/report.csv"): b"the first call's report\n",
    ("cntr_b", "/mnt/data/report.csv"): b"the second call's report\n",
    ("cntr_b", "/mnt/data/a/report.csv"): b"folder a\n",
    ("cntr_b", "/mnt/data/b/report.csv"): b"folder b\n",
}


def _two_calls_one_name() -> Recording:
    """Two code calls, each in its own container, each writing a report.csv; the second
    also writes a/report.csv and b/report.csv. One link is cited, the others are bare."""
    link = "sandbox:/mnt/data/report.csv"
    second = (
        f"Again: [it]({link}), [a](sandbox:/mnt/data/a/report.csv) "
        "and sandbox:/mnt/data/b/report.csv"
    )
    start = second.index(link)
    citation = {
        "type": "container_file_citation",
        "container_id": "cntr_b",
        "file_id": "cfile_b_report",
        "filename": "report.csv",
        "start_index": start,
        "end_index": start + len(link),
    }
    builder = (
        StreamBuilder(response_id="resp_two")
        .code_call("save('report.csv')", logs="", container_id="cntr_a")
        .message(f"See [the report]({link}).")
        .code_call("save_all()", logs="", container_id="cntr_b")
        .message(second, annotations=[citation])
    )
    return Recording.from_bytes(to_sse(builder.events()))


@pytest.mark.anyio
async def test_files_of_one_name_in_two_containers_and_two_folders_each_get_their_link(
    anyio_backend: str, tmp_path: Path
) -> None:
    async with MockServer(_two_calls_one_name()) as mock:
        for n, ((container_id, path), data) in enumerate(CONTAINER_FILES.items()):
            local = tmp_path / f"local{n}"
            local.write_bytes(data)
            cited = (container_id, path) == ("cntr_b", "/mnt/data/report.csv")
            mock.containers.add(
                container_id, local, path=path, file_id="cfile_b_report" if cited else None
            )
        got = await _run(mock, LocalStorage(tmp_path / "files"), LinkRewriter())
    answers = [e.text for e in got if isinstance(e, ev.MessageCompleted)]
    links = re.findall(r"/files/[^\s)]+", "\n".join(answers))
    assert len(links) == 4
    assert links[0] == "/files/resp_two/report.csv"  # the first container's stays pretty
    assert len(set(links)) == 4
    saved = {e.filename for e in got if isinstance(e, ev.FileSaved)}
    assert {unquote(link.rsplit("/", 1)[1]) for link in links} == saved
    # What streamed is what completed: the deltas carry the same links.
    done = "\n".join(e.text for e in got if isinstance(e, ev.TextDone))
    assert re.findall(r"/files/[^\s)]+", done) == links
    async with (
        LoopbackServer(files_app(tmp_path / "files")) as server,
        httpx2.AsyncClient(base_url=server.url) as http,
    ):
        for link, data in zip(links, CONTAINER_FILES.values(), strict=True):
            served = await http.get(link)
            assert served.status_code == 200, link
            assert served.content == data, link


def _code(n: int, container_id: str) -> ev.CodeStarted:
    return ev.CodeStarted(
        response_id="resp_1",
        sequence_number=n,
        cursor=f"{n}-0",
        item_id=f"ci_{n}",
        output_index=n,
        container_id=container_id,
    )


@pytest.mark.anyio
async def test_stored_names_do_not_depend_on_the_order_downloads_finish(
    anyio_backend: str, tmp_path: Path
) -> None:
    names = FileNames()
    for n, container_id in enumerate(["cntr_a", "cntr_b"]):
        names.see(_code(n, container_id))
    files = [(cid, path, names.name(cid, path)) for cid, path in CONTAINER_FILES]
    locations = []
    for order, folder in ((files, "forward"), (files[::-1], "backward")):
        storage = LocalStorage(tmp_path / folder)
        stored = {}
        for cid, path, name in order:
            saved = await storage.save("resp_1", f"{cid}/{path}", name, Chunks(path.encode()))
            stored[(cid, path)] = saved.filename
        locations.append(stored)
    assert locations[0] == locations[1]
    assert locations[0][("cntr_a", "/mnt/data/report.csv")] == "report.csv"
    assert len(set(locations[0].values())) == len(CONTAINER_FILES)


def test_a_link_is_rewritten_to_the_name_its_file_is_stored_under() -> None:
    rewriter = LinkRewriter()
    names = FileNames()
    text = "sandbox:/mnt/data/report.csv sandbox:/mnt/data/a/report.csv"
    out: list[str] = []
    for n, container_id in enumerate(["cntr_a", "cntr_b"]):
        code = _code(n, container_id)
        rewriter.feed(code)
        names.see(code)
        done = rewriter.feed(msgspec.structs.replace(text_done(10 + n, text), item_id=f"msg_{n}"))
        [rewritten] = [e.text for e in done if isinstance(e, ev.TextDone)]
        out.append(rewritten)
        expected = " ".join(
            "/files/resp_1/" + quote(names.name(container_id, p), safe="")
            for p in ("/mnt/data/report.csv", "/mnt/data/a/report.csv")
        )
        assert rewritten == expected
    assert out[0].split()[0] == "/files/resp_1/report.csv"
    assert len(set(" ".join(out).split())) == 4


def test_only_the_link_to_the_file_that_failed_is_marked_unavailable() -> None:
    link = "[report](sandbox:/mnt/data/report.csv)"
    builder = (
        StreamBuilder(response_id="resp_1")
        .code_call("save()", logs="", container_id="cntr_a")
        .message(f"First {link}")
        .code_call("save()", logs="", container_id="cntr_b")
        .message(f"Second {link}")
    )
    failed = ev.FileFailed(
        response_id="resp_1",
        sequence_number=0,
        cursor="",
        container_id="cntr_b",
        file_id=None,
        status=404,
        reason="gone",
        hint="",
        path="/mnt/data/report.csv",
    )
    rewriter = LinkRewriter()
    out: list[respflow.Event] = []
    for event in respflow.replay(to_sse(builder.events())):
        if isinstance(event, ev.ResponseCompleted):  # the fetcher's verdict comes first
            out += rewriter.feed(failed)
        out += rewriter.feed(event)
    first, second = [e.text for e in out if isinstance(e, ev.MessageCompleted)]
    assert first == "First [report](/files/resp_1/report.csv)"
    assert re.fullmatch(
        r"Second \[report\]\(#respflow-unavailable/report~[0-9a-f]{8}\.csv\)", second
    )


paths = st.lists(
    st.sampled_from(
        [
            "report.csv",
            "a",
            "b",
            "CON",
            ".hidden",
            "x" * 120,
            "r~0123abcd.csv",
            "r~0123abcd",
            "é.txt",
            "e\u0301.txt",
            "a b",
            "..",
            "what?.csv",
            "data.tar.gz",
        ]
    ),
    min_size=1,
    max_size=4,
).map(lambda parts: "/mnt/data/" + "/".join(parts))


@given(st.lists(st.tuples(st.sampled_from(["cntr_a", "cntr_b", "cntr_c"]), paths), max_size=12))
def test_different_files_never_share_a_name_and_every_name_is_safe(
    files: list[tuple[str, str]],
) -> None:
    names = FileNames()
    names.see(_code(0, "cntr_a"))
    named: dict[str, tuple[str, str]] = {}
    for container_id, path in files:
        name = names.name(container_id, path)
        assert safe_filename(name) == name
        assert len(name.encode()) <= 200
        assert named.setdefault(name, (container_id, path)) == (container_id, path)
        assert names.name(container_id, path) == name  # the same file, the same name


@pytest.mark.parametrize("name", ["report.csv", "Résumé (final) v2.pdf", "dice_chart.png"])
def test_a_file_of_the_first_container_keeps_its_name(name: str) -> None:
    names = FileNames()
    names.see(_code(0, "cntr_a"))
    assert names.name("cntr_a", f"/mnt/data/{name}") == name
    assert names.name("cntr_a", name) == name  # a citation gives the name alone
    assert names.name(None, f"/mnt/data/{name}") == name
    assert names.name("cntr_b", f"/mnt/data/{name}") != name


# -- 19: a link longer than max_hold --------------------------------------------------------


def test_a_link_longer_than_max_hold_in_small_deltas_still_adds_up_to_the_text() -> None:
    long_link = "sandbox:/mnt/data/" + "x" * 300 + ".csv"
    text = f"Get {long_link} now, and sandbox:/mnt/data/short.csv."
    rewriter = LinkRewriter(max_hold=50)
    out: list[respflow.Event] = []
    for n in range(0, len(text), 7):
        out += rewriter.feed(text_delta(n, text[n : n + 7]))
    out += rewriter.feed(text_done(len(text), text))
    [done] = [e for e in out if isinstance(e, ev.TextDone)]
    assert _streamed(out) == done.text == LinkRewriter(max_hold=50).rewrite(text, "resp_1")
    assert long_link in done.text  # too long to hold back: left as it is, everywhere
    assert "/files/resp_1/short.csv." in done.text


def test_max_hold_must_hold_a_links_start() -> None:
    with pytest.raises(respflow.UsageError, match="max_hold"):
        LinkRewriter(max_hold=10)


# -- 6 and 19: the streaming rewrite is the whole-text rewrite, for any cuts -----------------

FRAGMENTS = [
    "sandbox:/mnt/data/",
    "/mnt/data/",
    "sandbox:",
    "/mnt/",
    "report.pdf",
    "chart 1.png",
    "a",
    "s",
    "/",
    ".",
    ",",
    " ",
    "\n",
    "(",
    ")",
    "[Download](",
    "`",
    "x/mnt/data/y",
    "p" * 25,
    "sandbox:/mnt/data/" + "q" * 30,
]


@given(
    st.lists(st.sampled_from(FRAGMENTS), max_size=40).map("".join),
    st.lists(st.integers(min_value=0)),
    st.integers(min_value=18, max_value=70),
    st.lists(st.integers(min_value=0), max_size=8),
    st.booleans(),
)
def test_streaming_equals_the_whole_rewrite_for_any_links_citations_cuts_and_max_hold(
    text: str, cuts: list[int], max_hold: int, picks: list[int], markdown: bool
) -> None:
    links = list(find_links(text))
    cited = [links[p % len(links)] for p in picks] if links else []
    rewriter = LinkRewriter(max_hold=max_hold, markdown=markdown)
    out: list[respflow.Event] = []
    for n, piece in enumerate(pieces(text, cuts)):
        out += rewriter.feed(text_delta(n, piece))
    citations = [_cited(1000 + n, c.start, c.end, f"cfile_{n}") for n, c in enumerate(cited)]
    for citation in citations:  # annotations come after the last delta, before text.done
        out += rewriter.feed(citation)
    out += rewriter.feed(text_done(2000, text))
    whole = LinkRewriter(max_hold=max_hold, markdown=markdown).rewrite(text, "resp_1")
    [done] = [e for e in out if isinstance(e, ev.TextDone)]
    assert _streamed(out) == done.text == whole
    moved = [e for e in out if isinstance(e, ev.FileCited)]
    for link, event in zip(cited, moved, strict=True):
        run = ENDERS.search(text, link.end)
        too_long = (run.start() if run else len(text)) - link.start > max_hold
        original = text[link.start : link.end]
        expected = original if too_long else LinkRewriter().rewrite(original, "resp_1")
        bare = link.start == 0 or text[link.start - 1] not in "(<`\"'[="
        if markdown and bare and not too_long:
            name = posixpath.basename(link.path.rstrip("/")) or link.path
            label = re.sub(r"([\\\[\]])", r"\\\1", name)  # brackets escaped in link text
            expected = f"[{label}]({expected})"
        assert whole[event.start_index : event.end_index] == expected
    cursors = [respflow.parse_cursor(e.cursor) for e in out]
    assert cursors == sorted(cursors)
    assert len(set(cursors)) == len(cursors)


# -- 6: the work grows with the text --------------------------------------------------------


def _answer_with_links(n: int) -> list[respflow.Event]:
    """One answer with ``n`` cited links and ``n`` bare ones, through the Assembler."""
    text = ""
    citations = []
    for i in range(n):
        link = f"sandbox:/mnt/data/cited{i}.csv"
        text += f"Part {i}: [data]("
        citations.append(
            {
                "type": "container_file_citation",
                "container_id": "cntr",
                "file_id": f"cfile_{i}",
                "filename": f"cited{i}.csv",
                "start_index": len(text),
                "end_index": len(text) + len(link),
            }
        )
        text += f"{link}) and sandbox:/mnt/data/bare{i}.png\n"
    builder = (
        StreamBuilder(response_id="resp_many")
        .code_call("save()", logs="", container_id="cntr")
        .message(text, annotations=citations)
    )
    return list(respflow.replay(to_sse(builder.events())))


def _rewriting_work(events: list[respflow.Event]) -> int:
    rewriter = LinkRewriter()
    out: list[respflow.Event] = []
    with _work() as work:
        for event in events:
            out += rewriter.feed(event)
    [message] = [e for e in out if isinstance(e, ev.MessageCompleted)]
    assert "sandbox:" not in message.text
    cited = [e for e in out if isinstance(e, ev.FileCited)]
    for event in cited:
        assert message.text[event.start_index : event.end_index].startswith("/files/")
    return work[0]


def test_rewriting_work_doubles_when_links_and_citations_double() -> None:
    small = _rewriting_work(_answer_with_links(300))
    large = _rewriting_work(_answer_with_links(600))
    assert large < 2.2 * small, (small, large)


def test_one_huge_delta_is_rewritten_in_one_pass() -> None:
    # Every "s" after ":" could start a link: any scan from each of them to the end of
    # the delta (the old rewriter's) runs for minutes.
    text = "see sandbox:/mnt/data/out.csv " + ":s" * 2_500_000
    rewriter = LinkRewriter()
    out = rewriter.feed(text_delta(0, text))
    out += rewriter.feed(text_done(1, text))
    assert _streamed(out) == text.replace("sandbox:/mnt/data/out.csv", "/files/resp_1/out.csv")
