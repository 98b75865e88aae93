"""Each response id gets a folder (and a recording file) of its own.

Response ids come from the network. ``safe_filename`` maps ``a/resp_1``, ``resp:1`` and
``resp_1`` to one name, so they used to share a folder: each save rewrote the folder's
index with its own response's files only, the other's were forgotten, and a link to one
response's ``report.csv`` could serve the other's. Ids as the API makes them keep the
folder they always had; any other gets its safe form and a hash of the whole id. The
index names its response, so a folder is never trusted for another id.
"""

from __future__ import annotations

import hashlib
import unicodedata
from pathlib import Path
from urllib.parse import quote

import httpx2
import msgspec
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import respflow
from respflow import LocalStorage, RespflowError, files_app, safe_filename
from respflow._files.names import legacy_response_folder, response_folder
from respflow._files.storage import FolderIndex
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


# Folders an older respflow wrote: its index was the files alone (it did not name its
# response), and it let ids share a folder, so ``resp_1/`` may hold ``a/resp_1``'s files.
# Such an index is trusted unless the folder's manifest names another response.


def _old_folder(root: Path, folder: str, files: dict[str, bytes], owner: str | None) -> None:
    """A response folder as an older respflow left it: files, an index of them written
    by hand in the old layout, and a manifest naming ``owner`` (none if None)."""
    where = root / folder
    where.mkdir(parents=True)
    index = {}
    for name, data in files.items():
        (where / name).write_bytes(data)
        index[f"cntr/{name}"] = {
            "location": str(where / name),
            "filename": name,
            "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
            "media_type": "text/csv",
        }
    (where / ".respflow-index.json").write_bytes(msgspec.json.encode(index))
    if owner is not None:
        manifest = {"response_id": owner, "files": [], "format": 1}
        (where / "manifest.json").write_bytes(msgspec.json.encode(manifest))


async def _get(root: Path, url: str) -> httpx2.Response:
    async with (
        LoopbackServer(files_app(root)) as server,
        httpx2.AsyncClient(base_url=server.url) as http,
    ):
        return await http.get(url)


@pytest.mark.parametrize("owner", [None, "resp_1"])
async def test_an_old_index_that_nothing_contradicts_is_trusted_and_upgraded_on_the_next_save(
    anyio_backend: str, tmp_path: Path, owner: str | None
) -> None:
    _old_folder(tmp_path, "resp_1", {"report.csv": b"one"}, owner)
    storage = LocalStorage(tmp_path)
    found = await storage.find("resp_1", "cntr/report.csv")
    assert found is not None
    assert found.location == str(tmp_path / "resp_1" / "report.csv")
    assert (await _get(tmp_path, "/files/resp_1/report.csv")).content == b"one"
    await storage.save("resp_1", "cntr/chart.png", "chart.png", Chunks(b"png"))
    index = (tmp_path / "resp_1" / ".respflow-index.json").read_bytes()
    upgraded = msgspec.json.decode(index, type=FolderIndex)
    assert upgraded.response_id == "resp_1"
    assert sorted(upgraded.files) == ["cntr/chart.png", "cntr/report.csv"]
    again = await LocalStorage(tmp_path).find("resp_1", "cntr/report.csv")
    assert again is not None
    assert again.sha256 == found.sha256


async def test_an_old_index_whose_manifest_names_another_response_is_not_trusted(
    anyio_backend: str, tmp_path: Path
) -> None:
    """``a/resp_1`` saved last into the folder it shared with ``resp_1``: whatever its
    index lists may be ``a/resp_1``'s, so it is neither used nor served for ``resp_1``."""
    _old_folder(tmp_path, "resp_1", {"report.csv": b"theirs"}, "a/resp_1")
    before = sorted((p.name, p.read_bytes()) for p in (tmp_path / "resp_1").iterdir())
    storage = LocalStorage(tmp_path)
    with pytest.raises(RespflowError, match=r"manifest.json names response 'a/resp_1'"):
        await storage.find("resp_1", "cntr/report.csv")
    with pytest.raises(RespflowError, match="move that folder away"):
        await storage.save("resp_1", "cntr/x", "x.csv", Chunks(b"x"))
    assert sorted((p.name, p.read_bytes()) for p in (tmp_path / "resp_1").iterdir()) == before
    assert (await _get(tmp_path, "/files/resp_1/report.csv")).status_code == 404
    # a/resp_1 has a folder of its own now: the old one is not its either.
    assert await storage.find("a/resp_1", "cntr/report.csv") is None


# An id an older respflow used as its folder's name as it was (``Resp.X/``) now gets a
# folder of its own (``Resp.X~<hash>/``). Its old folder is still read and served, when
# it is there under that very name and says it is this id's (or nothing says otherwise).


async def test_files_an_older_version_saved_for_an_id_with_upper_case_are_still_found(
    anyio_backend: str, tmp_path: Path
) -> None:
    _old_folder(tmp_path, "Resp.X", {"report.csv": b"old"}, None)
    storage = LocalStorage(tmp_path)
    found = await storage.find("Resp.X", "cntr/report.csv")
    assert found is not None
    assert found.location == str(tmp_path / "Resp.X" / "report.csv")
    assert await storage.save("Resp.X", "cntr/report.csv", "report.csv", Chunks(b"new")) == found
    await storage.record(
        respflow.FileSaved(
            response_id="Resp.X",
            sequence_number=1,
            cursor="",
            container_id="cntr",
            file_id="report.csv",
            filename=found.filename,
            location=found.location,
            size=found.size,
            sha256=found.sha256,
        )
    )
    assert [e.file for e in respflow.read_manifest(tmp_path / "Resp.X").files] == ["report.csv"]
    new = await storage.save("Resp.X", "cntr/chart.png", "chart.png", Chunks(b"png"))
    assert Path(new.location).parent == tmp_path / response_folder("Resp.X")
    index = (Path(new.location).parent / ".respflow-index.json").read_bytes()
    assert sorted(msgspec.json.decode(index, type=FolderIndex).files) == ["cntr/chart.png"]
    assert (await _get(tmp_path, "/files/Resp.X/report.csv")).content == b"old"
    assert (await _get(tmp_path, "/files/Resp.X/chart.png")).content == b"png"
    again = await LocalStorage(tmp_path).find("Resp.X", "cntr/report.csv")
    assert again is not None
    assert again.location == found.location


@pytest.mark.parametrize(
    "make",
    ["manifest names another", "index names another", "no index", "a link", "another id"],
)
async def test_an_old_folder_that_may_be_another_responses_is_not_read(
    anyio_backend: str, tmp_path: Path, make: str
) -> None:
    rid = "Resp.X"
    if make == "manifest names another":
        _old_folder(tmp_path, rid, {"report.csv": b"theirs"}, "a/Resp.X")
    elif make == "index names another":
        await LocalStorage(tmp_path).save("resp_2", "cntr/report.csv", "report.csv", Chunks(b"2"))
        (tmp_path / "resp_2").rename(tmp_path / rid)
    elif make == "no index":
        _old_folder(tmp_path, rid, {"report.csv": b"theirs"}, None)
        (tmp_path / rid / ".respflow-index.json").unlink()
    elif make == "a link":  # to another response's folder, written by an older version
        _old_folder(tmp_path, "resp_2", {"report.csv": b"theirs"}, None)
        (tmp_path / rid).symlink_to(tmp_path / "resp_2", target_is_directory=True)
    else:  # a/Resp.X was saved to Resp.X/ too, but so was Resp.X: it is not a/Resp.X's
        _old_folder(tmp_path, rid, {"report.csv": b"theirs"}, None)
        rid = "a/Resp.X"
    assert await LocalStorage(tmp_path).find(rid, "cntr/report.csv") is None
    answer = await _get(tmp_path, f"/files/{quote(rid, safe='')}/report.csv")
    assert answer.status_code == 404


@given(st.one_of(NEAR_IDS, st.text(max_size=12)), st.one_of(NEAR_IDS, st.text(max_size=12)))
@example("Resp.X", "resp.x")
@example("RESP_1", "resp_1")
def test_an_old_folder_read_is_never_the_folder_another_id_has_now(one: str, other: str) -> None:
    """(On a case-insensitive disk ``RESP_1/`` opens ``resp_1/``: an old folder is only
    read when the root lists it under its very name.)"""
    legacy = legacy_response_folder(one)
    if legacy is None:
        return
    assert legacy == one
    assert safe_filename(legacy) == legacy
    assert legacy != response_folder(other)
