"""Attacks on the folder readings files_app and respflow.app keep between downloads.

A kept reading (a folder's names, its index, its manifest) stands in for the disk while
what it read has the same device, inode, size and times. Whatever is done to the folders
between two downloads (files added, removed, renamed to another case, replaced by a
link; an index rewritten to name another response; a folder swapped for a link or made
anew), a download answered from kept readings must be the one answered from the disk
afresh; and a file a folder links to in another response's folder is never served.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import httpx2
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import respflow
from respflow import LocalStorage, MemoryBroker, RespflowError, UsageError, files_app
from respflow._files.names import response_folder
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


def test_a_negative_bound_is_refused_with_what_to_give() -> None:
    with pytest.raises(UsageError, match="max_kept"):
        FolderReadings(max_kept=-1)


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


def test_a_download_for_an_id_without_a_folder_lists_nothing(tmp_path: Path) -> None:
    """Any id with upper case or dots has an old folder name; a request for one that has
    no such folder must not cost a listing of the root (thousands of folders)."""
    for n in range(3):
        (tmp_path / f"resp_{n}").mkdir()
    readings = FolderReadings(clock=_later)
    for rid in ("Nobody", "A.B", "RESP_9"):
        assert _served(tmp_path, rid, "report.csv", readings) is None
    assert len(readings) == 0


async def test_a_response_folder_that_is_a_loop_of_links_is_a_clear_storage_error(
    anyio_backend: str, tmp_path: Path
) -> None:
    (tmp_path / "resp_1").symlink_to(tmp_path / "resp_1")
    storage = LocalStorage(tmp_path)
    with pytest.raises(RespflowError, match="loop; move it away"):
        await storage.find("resp_1", "cntr/a.csv")
    with pytest.raises(RespflowError, match="loop; move it away"):
        await storage.save("resp_1", "cntr/a.csv", "a.csv", Chunks(b"x"))
    stored = await storage.save("resp_2", "cntr/a.csv", "a.csv", Chunks(b"x"))
    assert Path(stored.location).read_bytes() == b"x"  # other responses are saved as ever


async def test_an_index_rewritten_with_its_size_and_modification_time_kept_is_read_anew(
    anyio_backend: str, tmp_path: Path
) -> None:
    """``cp -p`` or ``rsync -t`` over an index: the same size and modification time, the
    same inode; only the change time tells, and a kept reading must not outlive it."""
    await LocalStorage(tmp_path).save("resp_1", "a", "report.csv", Chunks(b"1"))
    index = tmp_path / "resp_1" / INDEX
    _aged(index)
    before = os.stat(index)
    readings = FolderReadings(clock=_later)
    assert _served(tmp_path, "resp_1", "report.csv", readings) is not None
    body = index.read_bytes()
    with index.open("r+b") as out:  # in place: the inode stays
        out.write(body.replace(b'"resp_1"', b'"resp_2"'))
    os.utime(index, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(index)
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (
        before.st_ino,
        before.st_size,
        before.st_mtime_ns,
    )
    assert _served(tmp_path, "resp_1", "report.csv", readings) is None  # names resp_2 now


# -- kept readings answer as the disk does, whatever is done between downloads -----------

IDS = ["resp_1", "resp_2", "Resp.X"]
FOLDERS = ["resp_1", "resp_2", "Resp.X", response_folder("Resp.X")]
NAMES = ["report.csv", "Report.csv", "report (2).csv", "chart.png", "manifest.json"]
OWNERS = ["resp_1", "resp_2", "Resp.X", "a/Resp.X", None, "garbage"]


class _Disk:
    """The storage root the operations change. Each change stamps what it touched with a
    time of its own (later each time, and long past), as a change made after a reading
    was kept would be stamped on any file system."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._clock = time.time_ns() - 3600 * 1_000_000_000
        for folder in FOLDERS[:3]:
            (root / folder).mkdir()
            self.write(folder, "report.csv")
            self.index(folder, folder if folder != "Resp.X" else None)
        self._stamp(root)

    def _stamp(self, *paths: Path) -> None:
        for path in paths:
            self._clock += 1_000_000_000
            if os.path.lexists(path):
                os.utime(path, ns=(self._clock, self._clock), follow_symlinks=False)

    def write(self, folder: str, name: str) -> None:
        where = self.root / folder
        if where.is_symlink() and not where.is_dir():
            return  # a link round in a loop
        where.mkdir(exist_ok=True)
        path = where / name
        if path.is_symlink():
            path.unlink()
        path.write_bytes(f"{folder}/{name}".encode())
        self._stamp(path, where, self.root)

    def remove(self, folder: str, name: str) -> None:
        path = self.root / folder / name
        if os.path.lexists(path):
            path.unlink()
            self._stamp(path.parent)

    def rename(self, folder: str, name: str, new: str) -> None:
        where = self.root / folder
        if os.path.lexists(where / name) and not os.path.lexists(where / new):
            (where / name).rename(where / new)
            self._stamp(where / new, where)

    def link(self, folder: str, name: str, target: str, target_name: str) -> None:
        where = self.root / folder
        if not where.is_dir():
            return
        if os.path.lexists(where / name):
            (where / name).unlink()
        (where / name).symlink_to(self.root / target / target_name)
        self._stamp(where / name, where)

    def index(self, folder: str, owner: str | None, *, replace: bool = False) -> None:
        where = self.root / folder
        if not where.is_dir():
            return
        files = {}
        for entry in sorted(os.listdir(where)):
            path = where / entry
            if entry.startswith(".") or entry == "manifest.json" or not path.is_file():
                continue
            data = path.read_bytes()
            stored = {"location": str(path), "filename": entry, "size": len(data)}
            stored |= {"sha256": hashlib.sha256(data).hexdigest(), "media_type": "text/x-a"}
            files[f"cntr/{entry}"] = stored
        if owner == "garbage":
            body = b"{not json"
        elif owner is None:  # as an older respflow wrote it
            body = msgspec.json.encode(files)
        else:
            body = msgspec.json.encode({"response_id": owner, "files": files, "format": 1})
        if replace:
            (where / ".new").write_bytes(body)
            os.replace(where / ".new", where / INDEX)
        else:
            (where / INDEX).write_bytes(body)
        self._stamp(where / INDEX, where)

    def manifest(self, folder: str, owner: str | None) -> None:
        where = self.root / folder
        if not where.is_dir():
            return
        if owner is None:
            (where / "manifest.json").unlink(missing_ok=True)
        else:
            body = {"response_id": owner, "files": [], "format": 1}
            (where / "manifest.json").write_bytes(msgspec.json.encode(body))
        self._stamp(where / "manifest.json", where)

    def swap(self, folder: str, target: str) -> None:
        """The folder moved aside and a link to another in its place; or moved back."""
        where, aside = self.root / folder, self.root / f"{folder}.aside"
        if where.is_symlink():
            where.unlink()
            if aside.exists():
                aside.rename(where)
                self._stamp(where)
        elif where.is_dir() and not aside.exists():
            where.rename(aside)
            where.symlink_to(self.root / target, target_is_directory=True)
            self._stamp(where, aside)
        self._stamp(self.root)

    def anew(self, folder: str) -> None:
        where = self.root / folder
        if where.is_symlink():
            return
        shutil.rmtree(where, ignore_errors=True)
        self.write(folder, "chart.png")
        self.index(folder, folder)


_OPS = st.one_of(
    st.tuples(st.just("write"), st.sampled_from(FOLDERS), st.sampled_from(NAMES)),
    st.tuples(st.just("remove"), st.sampled_from(FOLDERS), st.sampled_from(NAMES)),
    st.tuples(
        st.just("rename"), st.sampled_from(FOLDERS), st.sampled_from(NAMES), st.sampled_from(NAMES)
    ),
    st.tuples(
        st.just("link"),
        st.sampled_from(FOLDERS),
        st.sampled_from(NAMES),
        st.sampled_from(FOLDERS),
        st.sampled_from(NAMES),
    ),
    st.tuples(st.just("index"), st.sampled_from(FOLDERS), st.sampled_from(OWNERS)),
    st.tuples(st.just("manifest"), st.sampled_from(FOLDERS), st.sampled_from(OWNERS)),
    st.tuples(st.just("swap"), st.sampled_from(FOLDERS), st.sampled_from(FOLDERS)),
    st.tuples(st.just("anew"), st.sampled_from(FOLDERS)),
)


def _owner(folder: Path) -> str | None:
    """Whom ``folder`` says its files are, read here by hand: its index, else (for an
    index written before indexes named theirs, or none) its manifest."""
    try:
        index = msgspec.json.decode((folder / INDEX).read_bytes())
    except (OSError, msgspec.DecodeError):
        index = None
    if isinstance(index, dict) and isinstance(index.get("response_id"), str):
        return str(index["response_id"])
    try:
        return str(msgspec.json.decode((folder / "manifest.json").read_bytes())["response_id"])
    except (OSError, msgspec.DecodeError, KeyError, TypeError):
        return None


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(_OPS, min_size=1, max_size=10), st.booleans())
def test_kept_readings_serve_what_the_disk_serves_afresh(
    tmp_path_factory: pytest.TempPathFactory, ops: list[tuple[Any, ...]], replace: bool
) -> None:
    root = tmp_path_factory.mktemp("root").resolve()
    disk = _Disk(root)
    kept = FolderReadings(clock=_later)
    for op in [("none",), *ops]:
        name, *args = op
        if name == "index":
            disk.index(*args, replace=replace)
        elif name != "none":
            getattr(disk, name)(*args)
        for rid in IDS:
            for filename in NAMES:
                fresh = _served(root, rid, filename, None)
                assert _served(root, rid, filename, kept) == fresh, (op, rid, filename)
                if fresh is not None:
                    # Never another response's file: the folder it is in names none other.
                    assert _owner(Path(fresh[0]).parent) in (rid, None), (op, rid, filename)


def test_threads_sharing_bounded_readings_each_get_their_own_files(tmp_path: Path) -> None:
    """Many folders, more than are kept, read from several threads at once: each
    download is its response's file, and no more readings are kept than the bound."""
    for n in range(12):
        folder = tmp_path / f"resp_{n}"
        folder.mkdir()
        (folder / "report.csv").write_bytes(b"%d" % n)
        body = {"response_id": f"resp_{n}", "files": {}, "format": 1}
        (folder / INDEX).write_bytes(msgspec.json.encode(body))
    readings = FolderReadings(max_kept=5, clock=_later)
    wrong: list[tuple[int, Any]] = []

    def download(start: int) -> None:
        for k in range(200):
            n = (start + k * 7) % 12
            found = file_response(tmp_path, f"resp_{n}", "report.csv", readings)
            got = None if found is None else Path(found.path).read_bytes()
            if got != b"%d" % n:
                wrong.append((n, got))

    threads = [threading.Thread(target=download, args=(s,)) for s in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wrong == []
    assert len(readings) <= 5
