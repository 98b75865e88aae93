"""Each response id gets a folder (and a recording file) of its own.

Response ids come from the network. ``safe_filename`` maps ``a/resp_1``, ``resp:1`` and
``resp_1`` to one name, so they used to share a folder: each save rewrote the folder's
index with its own response's files only, the other's were forgotten, and a link to one
response's ``report.csv`` could serve the other's. Ids as the API makes them keep the
folder they always had; any other gets its safe form and a hash of the whole id. The
index names its response, so a folder is never trusted for another id.
"""

from __future__ import annotations

import unicodedata
from pathlib import Path

import httpx2
import msgspec
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import respflow
from respflow import LocalStorage, RespflowError, files_app, safe_filename
from respflow._files.names import response_folder
from respflow._sources.taps import TappedAssembler
from respflow.testing import LoopbackServer, StreamBuilder, to_sse

from ._downloads import Chunks

pytestmark = pytest.mark.anyio

API_IDS = st.from_regex(r"resp_[0-9a-f]{48,50}", fullmatch=True)
# Ids near one another: what sanitising, case and normalisation could merge.
NEAR_IDS = st.lists(
    st.sampled_from(["resp", "_", "1", "a", "A", "/", ":", ".", "~", " ", "é", "e\u0301", "\x00"]),
    max_size=8,
).map("".join)


def _same_on_any_disk(name: str) -> str:
    """What a case-insensitive, normalisation-insensitive disk (macOS, Windows) compares."""
    return unicodedata.normalize("NFD", unicodedata.normalize("NFD", name).casefold())


@given(API_IDS)
@example("resp_1")
@example("resp_68c2e2c6f7208190b9a439ac98147eb40b24aae9c6c01e4f")
def test_an_id_the_api_makes_is_its_own_folder(response_id: str) -> None:
    assert response_folder(response_id) == response_id


@given(st.lists(st.one_of(NEAR_IDS, st.text(max_size=12)), min_size=2, max_size=6, unique=True))
@example(["resp_1", "a/resp_1", "resp:1", "RESP_1", "resp_1~0123456789abcdef", ""])
def test_distinct_ids_never_share_a_folder(ids: list[str]) -> None:
    folders = [response_folder(rid) for rid in ids]
    assert len({_same_on_any_disk(f) for f in folders}) == len(ids)
    for folder in folders:
        assert safe_filename(folder) == folder  # one harmless component
        assert response_folder(folder) == folder or "~" in folder


async def test_two_ids_that_sanitise_alike_keep_their_own_files(
    anyio_backend: str, tmp_path: Path
) -> None:
    first = LocalStorage(tmp_path)
    await first.save("resp_1", "c/f1", "report.csv", Chunks(b"one"))
    await first.save("resp:1", "c/f2", "report.csv", Chunks(b"two"))
    await first.save("a/resp_1", "c/f3", "report.csv", Chunks(b"three"))
    later = LocalStorage(tmp_path)  # a later run, reading the indexes
    for rid, key, data in [("resp_1", "c/f1", b"one"), ("resp:1", "c/f2", b"two")]:
        found = await later.find(rid, key)
        assert found is not None
        assert Path(found.location).read_bytes() == data
        assert found.filename == "report.csv"
    assert await later.find("resp_1", "c/f2") is None
    assert (tmp_path / "resp_1" / "report.csv").read_bytes() == b"one"
    async with (
        LoopbackServer(files_app(tmp_path)) as server,
        httpx2.AsyncClient(base_url=server.url) as http,
    ):
        for rid, data in [("resp_1", b"one"), ("resp:1", b"two")]:
            got = await http.get(f"/files/{rid}/report.csv")
            assert got.status_code == 200
            assert got.content == data
        assert (await http.get("/files/resp:1/report%20(2).csv")).status_code == 404


async def test_a_link_to_a_file_of_an_id_with_its_own_folder_meets_the_file(
    anyio_backend: str, tmp_path: Path
) -> None:
    storage = LocalStorage(tmp_path)
    stored = await storage.save("Resp.X", "k", "chart.png", Chunks(b"png"))
    assert Path(stored.location) == storage.path_for("Resp.X", "chart.png")
    assert Path(stored.location).parent.name == response_folder("Resp.X")


async def test_an_index_written_before_it_named_its_response_is_still_read(
    anyio_backend: str, tmp_path: Path
) -> None:
    storage = LocalStorage(tmp_path)
    stored = await storage.save("resp_1", "c/f1", "report.csv", Chunks(b"one"))
    index = tmp_path / "resp_1" / ".respflow-index.json"
    assert msgspec.json.decode(index.read_bytes())["response_id"] == "resp_1"
    index.write_bytes(msgspec.json.encode({"c/f1": stored}))  # the old layout
    found = await LocalStorage(tmp_path).find("resp_1", "c/f1")
    assert found is not None
    assert found.sha256 == stored.sha256


async def test_a_folder_whose_index_is_another_responses_is_not_trusted(
    anyio_backend: str, tmp_path: Path
) -> None:
    await LocalStorage(tmp_path).save("resp_1", "c/f1", "report.csv", Chunks(b"one"))
    index = tmp_path / "resp_1" / ".respflow-index.json"
    moved = msgspec.json.decode(index.read_bytes())
    moved["response_id"] = "resp_2"
    index.write_bytes(msgspec.json.encode(moved))
    storage = LocalStorage(tmp_path)
    with pytest.raises(RespflowError, match="resp_2"):
        await storage.find("resp_1", "c/f1")
    with pytest.raises(RespflowError, match="move that folder away"):
        await storage.save("resp_1", "c/f9", "other.csv", Chunks(b"x"))
    assert sorted(p.name for p in (tmp_path / "resp_1").iterdir()) == [
        ".respflow-index.json",
        "report.csv",
    ]
    async with (
        LoopbackServer(files_app(tmp_path)) as server,
        httpx2.AsyncClient(base_url=server.url) as http,
    ):
        assert (await http.get("/files/resp_1/report.csv")).status_code == 404


def test_two_ids_that_sanitise_alike_are_recorded_to_two_files(tmp_path: Path) -> None:
    folder = tmp_path / "incidents"
    recorder = respflow.Recorder(f"{folder}/")
    for rid in ("resp:1", "resp_1"):  # the hostile one first: it must not take resp_1.sse
        wire = to_sse(StreamBuilder(response_id=rid).message(f"from {rid}").events())
        tap = TappedAssembler(recorder.open())
        tap.feed(wire)
        tap.close()
    for rid in ("resp:1", "resp_1"):
        recorded = (folder / f"{response_folder(rid)}.sse").read_bytes()
        ids = {e.response_id for e in respflow.replay(recorded)}
        assert ids == {rid}
    assert (folder / "resp_1.sse").exists()
