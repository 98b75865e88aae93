"""Where fetched files go: a small protocol and a local directory that implements it."""

from __future__ import annotations

import hashlib
import os
import secrets
import stat
from collections.abc import AsyncIterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol, runtime_checkable

import anyio
import anyio.to_thread
import msgspec

from .. import _events as ev
from .._exceptions import RespflowError
from .manifest import MANIFEST, add_to_manifest, listable, manifest_owner
from .names import (
    legacy_response_folder,
    numbered,
    response_folder,
    safe_filename,
    same_on_disk,
)

__all__ = ["FileTooLarge", "KeepsManifest", "LocalStorage", "Storage", "StoredFile"]


class FileTooLarge(RespflowError):
    """A file went past a storage size cap; nothing of it was kept."""


INDEX = ".respflow-index.json"


class StoredFile(msgspec.Struct, frozen=True):
    """What a :class:`Storage` returns for a file it stored: where, under what name, its
    size, sha256 and media type (the fields :class:`respflow.FileSaved` reports)."""

    location: str
    """Where the file now is: a local path for :class:`LocalStorage`."""
    filename: str
    """The safe name it was stored under."""
    size: int
    sha256: str
    media_type: str | None = None


class FolderIndex(msgspec.Struct):
    """A response folder's ``.respflow-index.json``: whose folder it is, and what each key
    was saved as. (Before it named its response, the index was ``files`` alone.)"""

    response_id: str
    files: dict[str, StoredFile] = msgspec.field(default_factory=dict)
    format: int = 1


def read_folder_index(data: bytes) -> FolderIndex | dict[str, StoredFile]:
    """An index as written now, or as written before it named its response (a dict).

    Raises:
        msgspec.DecodeError: it is neither.
    """
    try:
        return msgspec.json.decode(data, type=FolderIndex)
    except msgspec.DecodeError:
        return msgspec.json.decode(data, type=dict[str, StoredFile])


def folder_owner(index: FolderIndex | dict[str, StoredFile] | None, folder: Path) -> str | None:
    """The response whose files ``folder`` says it holds: the one its index names; for an
    index written before indexes named their response (or none), the one its
    ``manifest.json`` names; None if neither says."""
    if isinstance(index, FolderIndex):
        return index.response_id
    return manifest_owner(folder)


class Storage(Protocol):
    """What the file fetcher writes to. ``key`` identifies the file within a response
    (``<container_id>/<file_id>``, or the image's place) so it is stored once."""

    async def find(self, response_id: str, key: str) -> StoredFile | None: ...

    async def save(
        self,
        response_id: str,
        key: str,
        filename: str,
        chunks: AsyncIterable[bytes],
        *,
        media_type: str | None = None,
    ) -> StoredFile: ...


@runtime_checkable
class KeepsManifest(Protocol):
    """A storage that lists what it saved: the file fetcher tells it each file saved, with
    where it came from, before the file's ``file.saved`` goes out."""

    async def record(self, saved: ev.FileSaved) -> None: ...


class LocalStorage:
    """Files under ``root/<response_id>/<safe name>``, written atomically.

    Each file is written to a hidden temporary file in its final directory, flushed to
    disk, then linked to its name, which never replaces an existing file: a name given
    twice gets ``name (2).ext`` the second time, and so does a name that differs from a
    saved one only in case or Unicode normalisation (``report.csv`` after
    ``Report.csv``), which macOS and Windows would take for the same file. (The file
    fetcher names files by the rule the link rewriter uses, which gives different files
    different names.) A file is stored once per key: an index in each response folder
    (``.respflow-index.json``, which names its response) remembers what was saved, across
    runs. The folder is ``root/<response_id>`` for an id as the API makes them; any other
    id gets a folder of its own (:meth:`path_for`). Folders an older respflow wrote are
    still read: an index that does not name its response is trusted unless the folder's
    manifest names another (and names it once a file is saved there), and an id that
    was its old folder's name as it is (``Resp.X``) finds the files saved there too. A
    download that fails or passes ``max_file_bytes`` (or takes the response past
    ``max_response_bytes``) leaves nothing behind. Names from the API are made safe by
    :func:`respflow.safe_filename`, and every path is checked to be inside ``root``.

    Each response folder also gets a ``manifest.json`` listing every file with its size,
    sha256, media type, container and file ids, the code call that produced it, the
    message that cited it, how it was found and when it was saved; it is replaced
    atomically as each file arrives. ``respflow files verify`` checks a folder against it.
    """

    def __init__(
        self,
        root: str | os.PathLike[str] = "respflow-files",
        *,
        max_file_bytes: int = 512 * 1024 * 1024,
        max_response_bytes: int = 2 * 1024 * 1024 * 1024,
    ) -> None:
        self.root = Path(root).resolve()
        self.max_file_bytes = max_file_bytes
        self.max_response_bytes = max_response_bytes
        self._saved: dict[tuple[str, str], StoredFile] = {}
        self._lock = anyio.Lock()
        self._loaded: set[str] = set()
        # Bytes counted against each response's cap: its saved files, and the downloads
        # still under way, which share what is left of it.
        self._bytes_saved: dict[str, int] = {}
        self._bytes_coming: dict[str, int] = {}
        self._manifest_lock = anyio.Lock()
        # The folder an older respflow gave a response, where find() found its files.
        self._legacy: dict[str, Path] = {}

    async def find(self, response_id: str, key: str) -> StoredFile | None:
        """The file saved under ``key``, by this run or an earlier one.

        Raises:
            RespflowError: the response's folder leads out of the root (a link), or is
                another response's (its index, or an old index's manifest, says so).
        """
        if (response_id, key) not in self._saved and response_id not in self._loaded:
            earlier, legacy = await anyio.to_thread.run_sync(self._read_indexes, response_id)
            self._take_in(response_id, earlier, legacy)
        return self._saved.get((response_id, key))

    def _take_in(
        self, response_id: str, earlier: dict[str, StoredFile], legacy: Path | None
    ) -> None:
        """Add what an earlier run saved, once: two finds may have read the index at once."""
        if response_id in self._loaded:
            return
        self._loaded.add(response_id)
        if legacy is not None:
            self._legacy[response_id] = legacy
        for key, stored in earlier.items():
            if (response_id, key) not in self._saved:
                self._saved[(response_id, key)] = stored
                self._count(response_id, stored)

    def _count(self, response_id: str, stored: StoredFile) -> None:
        self._bytes_saved[response_id] = self._bytes_saved.get(response_id, 0) + stored.size

    def _reserve(self, response_id: str, size: int, filename: str) -> None:
        """Count ``size`` more bytes of a download against the response's cap."""
        used = self._bytes_saved.get(response_id, 0) + self._bytes_coming.get(response_id, 0)
        if used + size > self.max_response_bytes:
            raise FileTooLarge(
                f"{filename!r} would take response {response_id} past "
                f"max_response_bytes ({self.max_response_bytes})"
            )
        self._bytes_coming[response_id] = self._bytes_coming.get(response_id, 0) + size

    def _release(self, response_id: str, size: int) -> None:
        left = self._bytes_coming.get(response_id, 0) - size
        if left:
            self._bytes_coming[response_id] = left
        else:
            self._bytes_coming.pop(response_id, None)

    def _folder(self, response_id: str) -> Path:
        return self._inside(self.root / response_folder(response_id))

    def path_for(self, response_id: str, filename: str) -> Path:
        """Where the file named ``filename`` is stored (a name the fetcher gives, as
        ``LinkRewriter`` links it): what links can point at before it is saved.

        The folder is the response id itself for ids as the API makes them
        (``resp_68c2...``); any other id gets a name of its own (see
        :func:`respflow._files.names.response_folder`), so two ids never share one.
        """
        return self._folder(response_id) / safe_filename(filename)

    def _read_indexes(self, response_id: str) -> tuple[dict[str, StoredFile], Path | None]:
        """What earlier runs saved for this response, if its files are still there: in its
        folder, and in the folder an older respflow gave it if that one is still its own
        (returned too, if it holds any of them).

        Raises:
            RespflowError: the response's folder is another response's.
        """
        folder = self._folder(response_id)
        index = _read_index_file(folder)
        owner = folder_owner(index, folder)
        if owner is not None and owner != response_id:
            if isinstance(index, FolderIndex):
                said = f"{folder} holds the files of response {owner!r}"
            else:  # an older respflow let ids share a folder: its manifest says whose
                said = f"{folder}'s manifest.json names response {owner!r}"
            raise RespflowError(
                f"{said}, not {response_id!r}; move that folder away to save this response's files"
            )
        found = _files_still_there(folder, index)
        legacy = self._legacy_folder(response_id)
        if legacy is not None:
            older = _files_still_there(*legacy)
            if older:
                return older | found, legacy[0]
        return found, None

    def _legacy_folder(
        self, response_id: str
    ) -> tuple[Path, FolderIndex | dict[str, StoredFile]] | None:
        """The folder an older respflow gave this response (see
        :func:`respflow._files.names.legacy_response_folder`), and its index, if it is
        there under that very name (not a link, nor another folder on a case-insensitive
        disk) and its own: its index names this response, or was written before indexes
        named theirs and its manifest names no other."""
        name = legacy_response_folder(response_id)
        if name is None:
            return None
        folder = self.root / name
        index = _read_index_file(folder)
        if index is None or folder_owner(index, folder) not in (response_id, None):
            return None  # respflow wrote an index with every file; or it is another's
        try:
            exact = folder.resolve() == folder and name in os.listdir(self.root)
        except OSError:
            return None
        return (folder, index) if exact else None

    def _index(self, response_id: str, folder: Path) -> dict[str, StoredFile]:
        """What ``folder``'s index lists: the response's files there (not those found in
        the folder an older respflow gave it)."""
        return {
            key: stored
            for (rid, key), stored in self._saved.items()
            if rid == response_id and Path(stored.location).parent == folder
        }

    @staticmethod
    def _write_index(folder: Path, index: FolderIndex) -> None:
        temp = folder / f".{secrets.token_hex(8)}.part"
        temp.write_bytes(msgspec.json.encode(index))
        os.replace(temp, folder / INDEX)

    async def save(
        self,
        response_id: str,
        key: str,
        filename: str,
        chunks: AsyncIterable[bytes],
        *,
        media_type: str | None = None,
    ) -> StoredFile:
        """Store ``chunks`` under ``filename``; returns the existing file if ``key`` was saved.

        Raises:
            FileTooLarge: a size cap was passed (nothing was kept).
        """
        found = await self.find(response_id, key)
        if found is not None:
            return found
        folder = self._folder(response_id)
        await anyio.to_thread.run_sync(lambda: folder.mkdir(parents=True, exist_ok=True))
        temp = folder / f".{secrets.token_hex(8)}.part"
        digest = hashlib.sha256()
        size = 0
        try:
            async with await anyio.open_file(temp, "xb") as out:
                async for chunk in chunks:
                    if size + len(chunk) > self.max_file_bytes:
                        raise FileTooLarge(
                            f"{filename!r} is larger than max_file_bytes ({self.max_file_bytes})"
                        )
                    self._reserve(response_id, len(chunk), filename)
                    size += len(chunk)
                    digest.update(chunk)
                    await out.write(chunk)
                await out.flush()
                await anyio.to_thread.run_sync(os.fsync, out.wrapped.fileno())
            async with self._lock:
                found = self._saved.get((response_id, key))
                if found is not None:  # saved meanwhile by another task
                    return found
                final = await anyio.to_thread.run_sync(_link_free_name, temp, folder, filename)
                stored = StoredFile(str(final), final.name, size, digest.hexdigest(), media_type)
                self._release(response_id, size)
                size = 0
                self._saved[(response_id, key)] = stored
                self._count(response_id, stored)
                # Taken here: the thread must not see it change.
                index = FolderIndex(response_id, self._index(response_id, folder))
                await anyio.to_thread.run_sync(self._write_index, folder, index)
                return stored
        finally:
            self._release(response_id, size)
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(lambda: temp.unlink(missing_ok=True))

    async def record(self, saved: ev.FileSaved) -> None:
        """List a file this storage saved in its response folder's manifest (or, for one
        an older respflow saved in the folder it gave the response, in that folder's).

        Raises:
            RespflowError: the file is not one this storage saved in that folder, or the
                folder's ``manifest.json`` is not a respflow manifest (it is left as is).
        """
        folder = self._folder(saved.response_id)
        legacy = self._legacy.get(saved.response_id)
        if legacy is not None and Path(saved.location).parent == legacy:
            folder = legacy
        if not listable(saved.filename) or Path(saved.location) != folder / saved.filename:
            raise RespflowError(f"{saved.location} is not a file saved in {folder}")
        async with self._manifest_lock:
            await anyio.to_thread.run_sync(add_to_manifest, folder, saved, _now())

    def _inside(self, path: Path) -> Path:
        try:
            resolved = path.resolve()
        except (OSError, RuntimeError):  # a loop of links (RuntimeError before 3.13)
            raise RespflowError(
                f"{path} is a link that goes round in a loop; move it away to save there"
            ) from None
        if not resolved.is_relative_to(self.root):
            raise RespflowError(f"refusing to write outside the storage root: {path}")
        return resolved


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _read_index_file(folder: Path) -> FolderIndex | dict[str, StoredFile] | None:
    """The folder's index; None if it has none that can be read."""
    try:
        return read_folder_index((folder / INDEX).read_bytes())
    except (OSError, msgspec.DecodeError):
        return None


def _files_still_there(
    folder: Path, index: FolderIndex | dict[str, StoredFile] | None
) -> dict[str, StoredFile]:
    """The files ``index`` lists that are still in ``folder`` as they were saved."""
    files = index.files if isinstance(index, FolderIndex) else index or {}
    return {
        key: msgspec.structs.replace(stored, location=str(folder / stored.filename))
        for key, stored in files.items()
        if _still_there(folder, stored)
    }


def _still_there(folder: Path, stored: StoredFile) -> bool:
    """Whether an indexed file is still in ``folder`` as it was saved."""
    if stored.filename != safe_filename(stored.filename):
        return False
    try:
        found = (folder / stored.filename).stat()
    except OSError:
        return False
    return stat.S_ISREG(found.st_mode) and found.st_size == stored.size


def _link_free_name(temp: Path, folder: Path, filename: str) -> Path:
    """Give ``temp`` a name in ``folder`` that no file has: ``name``, ``name (2)``, ...

    Nor one that differs from a file's only in case or Unicode normalisation: the folder
    may be copied to (or already be on) a disk where ``Report.csv`` is ``report.csv``.
    """
    name = safe_filename(filename)
    taken = {same_on_disk(entry) for entry in os.listdir(folder)}
    for n in range(1, 10_000):
        candidate = name if n == 1 else numbered(name, n)
        final = folder / candidate
        if candidate.casefold() == MANIFEST or same_on_disk(candidate) in taken:
            continue  # the manifest's name (even before it is written), or a file's
        if final.resolve().parent != folder:
            raise RespflowError(f"refusing to write outside the storage folder: {final}")
        try:
            os.link(temp, final)  # fails if the name is taken: never replaces a file
        except FileExistsError:
            continue
        return final
    raise RespflowError(f"no free name for {filename!r} in {folder}")
