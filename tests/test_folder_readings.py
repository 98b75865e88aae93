"""files_app reads a folder once per change, not once per download.

A download is checked against its folder's entries (a case-insensitive disk opens
``Report.csv`` for ``report.csv``), its index and its manifest. Listing a folder of
thousands of files, and decoding its index, on every request made each download cost as
much as the folder is large; now a reading is kept while the folder is unchanged since.
What the check promised holds all the same: a file added later is served, a folder
replaced is read anew, and a name is served only as it is spelled on the disk.
"""

from __future__ import annotations

import os
import time
import unicodedata
from pathlib import Path

import httpx2
import msgspec
import pytest

from respflow import LocalStorage, files_app
from respflow._files.readings import SETTLE_NS, FolderReadings
from respflow._files.serving import file_response
from respflow.testing import LoopbackServer

from ._downloads import Chunks

pytestmark = pytest.mark.anyio


def _later() -> int:
    """A clock far enough ahead that every folder counts as settled: readings are kept."""
    return time.time_ns() + 10 * SETTLE_NS


def _restamp(path: Path, seconds_ago: int) -> None:
    """Give ``path`` a modification time of its own, so a change to it shows in its times
    on any file system (some stamp times in ticks coarser than a test's steps)."""
    stamp = time.time_ns() - seconds_ago * 1_000_000_000
    os.utime(path, ns=(stamp, stamp))


def _served(base: Path, response_id: str, name: str, readings: FolderReadings) -> bytes | None:
    found = file_response(base, response_id, name, readings)
    return None if found is None else Path(found.path).read_bytes()


async def test_a_file_added_after_a_first_request_is_served(
    anyio_backend: str, tmp_path: Path
) -> None:
    storage = LocalStorage(tmp_path)
    await storage.save("resp_1", "a", "first.csv", Chunks(b"1"))
    async with (
        LoopbackServer(files_app(tmp_path)) as server,
        httpx2.AsyncClient(base_url=server.url) as http,
    ):
        assert (await http.get("/files/resp_1/first.csv")).content == b"1"
        assert (await http.get("/files/resp_1/second.csv")).status_code == 404
        await storage.save("resp_1", "b", "second.csv", Chunks(b"2"), media_type="text/csv")
        second = await http.get("/files/resp_1/second.csv")
        assert second.status_code == 200
        assert second.content == b"2"
        assert second.headers["content-type"].startswith("text/csv")


async def test_a_kept_reading_is_used_while_the_folder_is_unchanged(
    anyio_backend: str, tmp_path: Path
) -> None:
    await LocalStorage(tmp_path).save("resp_1", "a", "first.csv", Chunks(b"1"))
    folder = tmp_path / "resp_1"
    readings = FolderReadings(clock=_later)
    listed = readings.names(folder)
    assert listed == frozenset({"first.csv", ".respflow-index.json"})
    assert readings.names(folder) is listed  # kept: not listed again
    (folder / "second.csv").write_bytes(b"2")
    _restamp(folder, 60)
    assert readings.names(folder) == frozenset({"first.csv", "second.csv", ".respflow-index.json"})
    assert _served(tmp_path, "resp_1", "second.csv", readings) == b"2"


def test_a_reading_taken_in_the_tick_of_a_change_is_not_kept(tmp_path: Path) -> None:
    """A change in the same tick as the reading could leave the folder's times as they
    were: such a reading is used once, and the folder read again next time."""
    (tmp_path / "a.csv").write_bytes(b"a")
    stamp = os.stat(tmp_path)
    readings = FolderReadings(clock=lambda: max(stamp.st_mtime_ns, stamp.st_ctime_ns))
    first = readings.names(tmp_path)
    assert first == frozenset({"a.csv"})
    assert readings.names(tmp_path) is not first


async def test_a_folder_replaced_is_read_anew(anyio_backend: str, tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    await storage.save("resp_1", "a", "report.csv", Chunks(b"old"), media_type="text/csv")
    readings = FolderReadings(clock=_later)
    assert _served(tmp_path, "resp_1", "report.csv", readings) == b"old"
    folder = tmp_path / "resp_1"
    stamp = os.stat(folder)
    folder.rename(tmp_path / "resp_1.old")
    await LocalStorage(tmp_path).save("resp_1", "b", "chart.png", Chunks(b"png"))
    os.utime(folder, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))  # the old folder's times
    assert _served(tmp_path, "resp_1", "report.csv", readings) is None
    assert _served(tmp_path, "resp_1", "chart.png", readings) == b"png"


async def test_a_folder_taken_by_another_response_is_not_served_from_a_kept_reading(
    anyio_backend: str, tmp_path: Path
) -> None:
    await LocalStorage(tmp_path).save("resp_1", "a", "report.csv", Chunks(b"one"))
    readings = FolderReadings(clock=_later)
    assert _served(tmp_path, "resp_1", "report.csv", readings) == b"one"
    index = tmp_path / "resp_1" / ".respflow-index.json"
    moved = msgspec.json.decode(index.read_bytes())
    moved["response_id"] = "resp_2"
    index.write_bytes(msgspec.json.encode(moved))
    _restamp(index, 60)
    assert _served(tmp_path, "resp_1", "report.csv", readings) is None


NFC = unicodedata.normalize("NFC", "Résumé.txt")
NFD = unicodedata.normalize("NFD", "Résumé.txt")


@pytest.mark.parametrize(
    ("on_disk", "asked"),
    [
        ("Report.csv", "report.csv"),
        ("report.csv", "Report.csv"),
        ("Report.csv", "REPORT.CSV"),
        (NFD, NFC),
    ],
)
def test_a_name_is_served_only_as_it_is_spelled_on_the_disk(
    tmp_path: Path, on_disk: str, asked: str
) -> None:
    folder = tmp_path / "resp_1"
    folder.mkdir()
    (folder / on_disk).write_bytes(b"x")
    readings = FolderReadings(clock=_later)
    for _ in range(2):  # read, then kept
        assert _served(tmp_path, "resp_1", asked, readings) is None
    servable = on_disk == unicodedata.normalize("NFKC", on_disk)  # NFD names never are
    if servable:
        assert _served(tmp_path, "resp_1", on_disk, readings) == b"x"
    (folder / on_disk).rename(folder / asked)  # now spelled as asked
    _restamp(folder, 60)
    assert _served(tmp_path, "resp_1", asked, readings) == b"x"
    if servable:
        assert _served(tmp_path, "resp_1", on_disk, readings) is None


def test_links_and_dot_dot_never_lead_out_of_the_root(tmp_path: Path) -> None:
    root = tmp_path / "files"
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(b"secret")
    (root / "resp_1").mkdir(parents=True)
    (root / "resp_1" / "link.txt").symlink_to(outside / "secret.txt")
    (root / "resp_2").symlink_to(outside, target_is_directory=True)
    readings = FolderReadings(clock=_later)
    for _ in range(2):
        assert _served(root, "resp_1", "link.txt", readings) is None
        assert _served(root, "resp_2", "secret.txt", readings) is None
        assert _served(root, "..", "outside", readings) is None
        assert _served(root, "resp_1", "..", readings) is None


def test_kept_readings_are_bounded(tmp_path: Path) -> None:
    readings = FolderReadings(max_kept=3, clock=_later)
    for n in range(5):
        folder = tmp_path / f"resp_{n}"
        folder.mkdir()
        assert readings.names(folder) == frozenset()
        assert readings.names(folder) is readings.names(folder)
    assert len(readings) == 3


def test_kept_readings_hold_a_bounded_number_of_names(tmp_path: Path) -> None:
    # A thousand kept listings of folders of twenty thousand files would be gigabytes: the
    # names kept are bounded too, and a folder larger than the bound is read afresh.
    readings = FolderReadings(max_names=10, clock=_later)
    folders = []
    for n, size in enumerate([6, 6, 11]):
        folder = tmp_path / f"resp_{n}"
        folder.mkdir()
        for i in range(size):
            (folder / f"f{i}.txt").write_bytes(b"x")
        folders.append(folder)
    assert readings.names(folders[0]) is readings.names(folders[0])  # kept
    assert len(readings.names(folders[1]) or ()) == 6
    assert len(readings) == 1  # 12 names would pass the bound: the older is dropped
    assert readings.names(folders[1]) is readings.names(folders[1])
    big = readings.names(folders[2])
    assert big is not None
    assert len(big) == 11
    assert readings.names(folders[2]) is not big  # too large to keep: read each time
    assert len(readings) == 0
    (folders[2] / "f11.txt").write_bytes(b"x")
    assert len(readings.names(folders[2]) or ()) == 12
