"""Attacks on the folder readings files_app and respflow.app keep between downloads.

A kept reading (a folder's names, its index, its manifest) stands in for the disk while
what it read has the same device, inode, size and times. Whatever is done to the folders
between two downloads (files added, removed, renamed to another case, replaced by a
link; an index rewritten to name another response; a folder swapped for a link or made
anew), a download answered from kept readings must be the one answered from the disk
afresh; and a file a folder links to in another response's folder is never served.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import httpx2
import pytest

import respflow
from respflow import LocalStorage, MemoryBroker, files_app
from respflow._files.readings import SETTLE_NS, FolderReadings
from respflow._files.serving import file_response
from respflow.testing import LoopbackServer

from ._downloads import Chunks

SECRET = "a-secret-of-32-bytes-for-tests!!"
INDEX = ".respflow-index.json"


def _later() -> int:
    """A clock far enough ahead that every folder counts as settled: readings are kept."""
    return time.time_ns() + 10 * SETTLE_NS


def _served(root: Path, rid: str, name: str, readings: FolderReadings | None) -> Any:
    """What is served for ``rid``'s ``name``: the file's path and type, or None."""
    found = file_response(root, rid, name, readings)
    return None if found is None else (found.path, found.media_type)


def _aged(*paths: Path) -> None:
    """Give ``paths`` modification times a minute old, as if written long before."""
    stamp = time.time_ns() - 60_000_000_000
    for path in paths:
        os.utime(path, ns=(stamp, stamp), follow_symlinks=False)


# -- the readings file_response is given are the ones it keeps ---------------------------


async def test_readings_handed_to_file_response_are_kept_from_the_first_download(
    anyio_backend: str, tmp_path: Path
) -> None:
    """FolderReadings has a length, so an empty one is falsy: taking ``readings or a new
    one`` threw the caller's away until something else filled it, and no download was
    ever answered from a kept reading."""
    await LocalStorage(tmp_path).save("resp_1", "a", "report.csv", Chunks(b"1"))
    folder = tmp_path / "resp_1"
    _aged(folder / INDEX, folder / "report.csv", folder, tmp_path)
    readings = FolderReadings(clock=_later)
    assert _served(tmp_path, "resp_1", "report.csv", readings) is not None
    assert len(readings) > 0
    listed = readings.names(folder)
    assert _served(tmp_path, "resp_1", "report.csv", readings) is not None
    assert readings.names(folder) is listed  # the download used it, not a new listing


async def test_respflow_app_keeps_its_readings_across_downloads(
    anyio_backend: str, tmp_path: Path
) -> None:
    stored = await LocalStorage(tmp_path).save("resp_1", "a", "report.csv", Chunks(b"1"))
    app = respflow.app(MemoryBroker(), files=tmp_path, secret=SECRET)
    app._readings = FolderReadings(clock=_later)
    async with (
        LoopbackServer(app) as server,
        httpx2.AsyncClient(base_url=server.url) as http,
    ):
        for _ in range(2):
            answer = await http.get(app.file_url("resp_1", stored.filename))
            assert answer.content == b"1"
    assert len(app._readings) > 0


# -- a name that links into another response's folder --------------------------------------


@pytest.mark.parametrize("kept", [False, True])
async def test_a_file_that_links_to_another_responses_file_is_not_served(
    anyio_backend: str, tmp_path: Path, kept: bool
) -> None:
    """respflow never makes a link in a response folder; one that is there (a file
    replaced by a link to ``resp_2``'s) is judged by the folder the file is in, as it
    was before folders were read once per change: that folder names resp_2."""
    storage = LocalStorage(tmp_path)
    await storage.save("resp_1", "a", "report.csv", Chunks(b"mine"))
    await storage.save("resp_2", "b", "secret.csv", Chunks(b"theirs"), media_type="text/csv")
    readings = FolderReadings(clock=_later) if kept else None
    assert _served(tmp_path, "resp_1", "report.csv", readings) is not None
    mine = tmp_path / "resp_1" / "report.csv"
    mine.unlink()
    mine.symlink_to(tmp_path / "resp_2" / "secret.csv")
    (tmp_path / "resp_1" / "secret.csv").symlink_to(tmp_path / "resp_2" / "secret.csv")
    _aged(tmp_path / "resp_1")
    for name in ("report.csv", "secret.csv"):
        assert _served(tmp_path, "resp_1", name, readings) is None
    assert _served(tmp_path, "resp_2", "secret.csv", readings) is not None
    app = respflow.app(MemoryBroker(), files=tmp_path, secret=SECRET)
    async with (
        LoopbackServer(app) as server,
        LoopbackServer(files_app(tmp_path)) as plain,
        httpx2.AsyncClient() as http,
    ):
        signed = await http.get(server.url + app.file_url("resp_1", "report.csv"))
        assert signed.status_code == 404
        assert (await http.get(f"{plain.url}/files/resp_1/report.csv")).status_code == 404
        theirs = await http.get(f"{plain.url}/files/resp_2/secret.csv")
        assert theirs.content == b"theirs"


async def test_a_link_into_a_folder_no_response_names_is_served_as_before(
    anyio_backend: str, tmp_path: Path
) -> None:
    """Only another response's folder is refused: a link within the folder, or to a
    folder nothing names, is served (with the type the index it is listed in records)."""
    await LocalStorage(tmp_path).save(
        "resp_1", "a", "data.bin", Chunks(b"1"), media_type="text/csv"
    )
    folder, elsewhere = tmp_path / "resp_1", tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "real.bin").write_bytes(b"2")
    (folder / "alias.bin").symlink_to(folder / "data.bin")
    (folder / "other.bin").symlink_to(elsewhere / "real.bin")
    for readings in (None, FolderReadings(clock=_later)):
        assert _served(tmp_path, "resp_1", "alias.bin", readings) == (
            folder / "data.bin",
            "text/csv",
        )
        assert _served(tmp_path, "resp_1", "other.bin", readings) == (
            elsewhere / "real.bin",
            "application/octet-stream",
        )


async def test_a_link_that_goes_round_in_a_loop_is_not_found_not_an_error(
    anyio_backend: str, tmp_path: Path
) -> None:
    """Python before 3.13 reports a loop of links with a RuntimeError as it resolves a
    path: a folder (or a file) linked to itself is a 404, not a 500."""
    (tmp_path / "resp_1").symlink_to(tmp_path / "resp_1")
    (tmp_path / "resp_2").mkdir()
    (tmp_path / "resp_2" / "a.csv").symlink_to(tmp_path / "resp_2" / "a.csv")
    async with (
        LoopbackServer(files_app(tmp_path)) as server,
        httpx2.AsyncClient(base_url=server.url) as http,
    ):
        assert (await http.get("/files/resp_1/a.csv")).status_code == 404
        assert (await http.get("/files/resp_2/a.csv")).status_code == 404
        assert (await http.get("/files/Resp.X/a.csv")).status_code == 404
