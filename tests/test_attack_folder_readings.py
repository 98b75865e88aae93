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

import respflow
from respflow import LocalStorage, MemoryBroker
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
