"""Names in one response folder differ where case and Unicode normalisation do not count.

On macOS and Windows ``Report.csv`` and ``report.csv`` are one file, and so are a name
written with composed accents (NFC) and one with combining marks (NFD). A container may
hold both; saved into one folder they collided, and a link to one opened the other. The
first file named keeps its name; a later one that would be the same there gets the tagged
name (link and file alike), and the storage numbers it if its folder already holds one.
"""

from __future__ import annotations

import re
import tempfile
import unicodedata
from pathlib import Path
from urllib.parse import unquote

import anyio
import httpx2
import openai
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import respflow
from respflow import LinkRewriter, LocalStorage, Reconnect, files_app
from respflow import _events as ev
from respflow._files.names import FileNames, same_on_disk
from respflow.testing import LoopbackServer, MockServer, Recording, StreamBuilder, to_sse

from ._downloads import Chunks

FAST = Reconnect(attempts=3, initial_delay=0.01)
NFC = unicodedata.normalize("NFC", "Résumé.txt")
NFD = unicodedata.normalize("NFD", "Résumé.txt")
VARIANTS = ["Report.csv", "report.csv", "REPORT.CSV", "report.CSV", NFC, NFD, "RÉSUMÉ.TXT"]
VARIANTS += ["x~ABCDEF12.csv", "x~abcdef12.csv", "a/report.csv", "A/Report.csv"]
paths = st.lists(
    st.tuples(st.sampled_from([None, "cntr_a", "cntr_b"]), st.sampled_from(VARIANTS)),
    max_size=12,
)


@given(paths)
@example([(None, "Report.csv"), (None, "report.csv"), (None, NFC), (None, "RÉSUMÉ.TXT")])
def test_files_of_a_response_get_names_distinct_on_any_disk(
    asked: list[tuple[str | None, str]],
) -> None:
    names = FileNames()
    names.first_container = "cntr_a"
    given_names: dict[tuple[str | None, str], str] = {}
    for container_id, path in asked:
        name = names.name(container_id, path)
        identity = (None if container_id == "cntr_a" else container_id, path)
        assert given_names.setdefault(identity, name) == name  # asked again: the same
    assert len({same_on_disk(n) for n in given_names.values()}) == len(given_names)
    first = next((p for c, p in asked if c in (None, "cntr_a") and "/" not in p), None)
    if first in ("Report.csv", "report.csv", "REPORT.CSV", "report.CSV", NFC, "RÉSUMÉ.TXT"):
        assert names.name(None, first) == first  # the first keeps its name


@given(st.lists(st.sampled_from(VARIANTS), max_size=8))
@example(["Report.csv", "report.csv", "REPORT.CSV"])
@example([NFC, "résumé.txt", "RÉSUMÉ.TXT"])
def test_the_storage_keeps_names_distinct_on_any_disk(filenames: list[str]) -> None:
    async def run(root: Path) -> None:
        storage = LocalStorage(root)
        saved = [
            (await storage.save("resp_1", f"k{n}", name, Chunks(name.encode()))).filename
            for n, name in enumerate(filenames)
        ]
        assert len({same_on_disk(name) for name in saved}) == len(saved)
        if saved:
            assert saved[0] == respflow.safe_filename(filenames[0])  # the first keeps its name
        later = LocalStorage(root)  # a later run finds each file under the name it was given
        for n, name in enumerate(saved):
            found = await later.find("resp_1", f"k{n}")
            assert found is not None
            assert found.filename == name
            assert Path(found.location).read_bytes() == filenames[n].encode()

    with tempfile.TemporaryDirectory() as root:
        anyio.run(run, Path(root))


def _one_container_many_cases() -> Recording:
    text = (
        "[the report](sandbox:/mnt/data/Report.csv), sandbox:/mnt/data/report.csv, "
        f"[shout](sandbox:/mnt/data/REPORT.CSV), sandbox:/mnt/data/{NFC} "
        f"and sandbox:/mnt/data/{NFD}"
    )
    builder = (
        StreamBuilder(response_id="resp_cases")
        .code_call("save_all()", logs="", container_id="cntr_a")
        .message(text)
    )
    return Recording.from_bytes(to_sse(builder.events()))


@pytest.mark.anyio
async def test_a_container_with_report_csv_in_three_cases_gets_three_links_and_files(
    anyio_backend: str, tmp_path: Path
) -> None:
    contents = {name: f"{name}\n".encode() for name in ["Report.csv", "report.csv", "REPORT.CSV"]}
    contents |= {NFC: b"composed\n", NFD: b"combining\n"}
    out: list[respflow.Event] = []
    rewriter = LinkRewriter()
    async with MockServer(_one_container_many_cases()) as mock:
        for n, (name, data) in enumerate(contents.items()):
            local = tmp_path / f"local{n}"
            local.write_bytes(data)
            mock.containers.add("cntr_a", local, path=f"/mnt/data/{name}")
        async with (
            openai.AsyncOpenAI(
                base_url=mock.openai_base_url, api_key=mock.openai_api_key, max_retries=0
            ) as sdk,
            respflow.stream(sdk, model="m", input="x") as events,
            respflow.fetch_files(events, sdk, LocalStorage(tmp_path / "files"), retry=FAST) as got,
        ):
            async for event in got:
                out += rewriter.feed(event)
    assert not [e for e in out if isinstance(e, ev.FileFailed)]
    saved = [e for e in out if isinstance(e, ev.FileSaved)]
    assert len({same_on_disk(e.filename) for e in saved}) == len(contents)
    (answer,) = [e.text for e in out if isinstance(e, ev.MessageCompleted)]
    links = re.findall(r"/files/[^\s),]+", answer)
    assert links[0] == "/files/resp_cases/Report.csv"  # the first keeps its name
    assert {unquote(link.rsplit("/", 1)[1]) for link in links} == {e.filename for e in saved}
    async with (
        LoopbackServer(files_app(tmp_path / "files")) as server,
        httpx2.AsyncClient(base_url=server.url) as http,
    ):
        for link, data in zip(links, contents.values(), strict=True):
            served = await http.get(link)
            assert served.status_code == 200, link
            assert served.content == data, link


def _bare_and_cited(bare_first: bool) -> Recording:
    """A bare link to Report.csv and a citation of report.csv in one part. The events
    give the citation first and the bare link after the part's text.done, whatever the
    order in the text: the names must follow the text."""
    bare, cited = "sandbox:/mnt/data/Report.csv", "sandbox:/mnt/data/report.csv"
    text = f"see {bare} and [b]({cited})" if bare_first else f"see [b]({cited}) and {bare}"
    start = text.index(cited)
    citation = {
        "type": "container_file_citation",
        "container_id": "cntr_a",
        "file_id": "cfile_low",
        "filename": "report.csv",
        "start_index": start,
        "end_index": start + len(cited),
    }
    builder = (
        StreamBuilder(response_id="resp_order")
        .code_call("save_both()", logs="", container_id="cntr_a")
        .message(text, annotations=[citation])
    )
    return Recording.from_bytes(to_sse(builder.events()))


@pytest.mark.anyio
@pytest.mark.parametrize("bare_first", [True, False])
async def test_a_bare_link_and_a_citation_in_two_cases_meet_their_files(
    anyio_backend: str, tmp_path: Path, bare_first: bool
) -> None:
    out: list[respflow.Event] = []
    rewriter = LinkRewriter()
    async with MockServer(_bare_and_cited(bare_first)) as mock:
        (tmp_path / "upper").write_bytes(b"UPPER")
        (tmp_path / "lower").write_bytes(b"lower")
        mock.containers.add("cntr_a", tmp_path / "upper", path="/mnt/data/Report.csv")
        mock.containers.add(
            "cntr_a", tmp_path / "lower", path="/mnt/data/report.csv", file_id="cfile_low"
        )
        async with (
            openai.AsyncOpenAI(
                base_url=mock.openai_base_url, api_key=mock.openai_api_key, max_retries=0
            ) as sdk,
            respflow.stream(sdk, model="m", input="x") as events,
            respflow.fetch_files(events, sdk, LocalStorage(tmp_path / "files"), retry=FAST) as got,
        ):
            async for event in got:
                out += rewriter.feed(event)
    (answer,) = [e.text for e in out if isinstance(e, ev.MessageCompleted)]
    links = re.findall(r"/files/[^\s),]+", answer)
    first = "/files/resp_order/" + ("Report.csv" if bare_first else "report.csv")
    assert links[0] == first  # the first in the text keeps its name
    async with (
        LoopbackServer(files_app(tmp_path / "files")) as server,
        httpx2.AsyncClient(base_url=server.url) as http,
    ):
        served = {link: (await http.get(link)).content for link in links}
    upper, lower = (links[0], links[1]) if bare_first else (links[1], links[0])
    assert served == {upper: b"UPPER", lower: b"lower"}
