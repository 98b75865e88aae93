"""What a folder holds, read from the disk once per change rather than once per request.

``files_app`` checks each download against its folder: the file's exact name among the
folder's names (a case-insensitive disk opens ``Report.csv`` for ``report.csv``), the
folder's index (whose files they are, and each file's type) and its manifest. Listing a
folder of thousands of files, or decoding its index, on every request would make every
download cost as much as the folder is large. A reading is kept, and used again, while
what was read has the same device, inode, size, modification and change times as when it
was read.

A file system stamps those times in ticks (2 s on FAT, 1 s on HFS+, a few milliseconds on
ext4), so a change in the same tick as a reading could leave them as they were, and a
kept reading would miss it for good. A reading is only kept once both times are
:data:`SETTLE_NS` older than the clock at the start of the reading: any later change then
stamps a later time. Until then, each request reads again, as before. (The times come from
the file system's clock: a network disk whose clock runs behind this machine's may have
its readings kept a little early.)
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Final

import msgspec

from .._exceptions import UsageError
from .manifest import MANIFEST, manifest_owner
from .storage import INDEX, FolderIndex, read_folder_index

__all__ = ["SETTLE_NS", "FolderReadings", "IndexReading"]

SETTLE_NS: Final = 5_000_000_000
"""How much older than the clock a folder's (or file's) times must be for a reading of
it to be kept: more than the coarsest tick of a common file system."""

_Key = tuple[int, int, int, int, int]


class IndexReading(msgspec.Struct, frozen=True):
    """What ``files_app`` needs of a folder's index."""

    response_id: str | None
    """The response it names; None for an index written before indexes named theirs."""
    media_types: dict[str, str]
    """The type the fetcher recorded for each file that has one, by file name."""


class FolderReadings:
    """Kept readings of folders (their names), indexes and manifests, at most
    ``max_kept`` of them holding at most ``max_names`` names (a folder's entries, an
    index's files) in all, the least recently used dropped first: memory stays bounded
    however large the folders are (a folder with more names than that is read afresh on
    each request). Safe to share between threads."""

    def __init__(
        self,
        *,
        max_kept: int = 1024,
        max_names: int = 250_000,
        settle_ns: int = SETTLE_NS,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        if max_kept < 0 or max_names < 0:
            raise UsageError(
                f"max_kept={max_kept}, max_names={max_names}: give how many readings, and "
                "how many names in them, to keep: 0 or more each"
            )
        self.max_kept = max_kept
        self.max_names = max_names
        self.settle_ns = settle_ns
        self._clock = clock
        self._kept: OrderedDict[tuple[str, str], tuple[_Key, object, int]] = OrderedDict()
        self._names_kept = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        """How many readings are kept."""
        return len(self._kept)

    def names(self, folder: Path) -> frozenset[str] | None:
        """The exact names of the entries in ``folder``; None if it cannot be listed."""
        found = self._read("names", folder, lambda: frozenset(os.listdir(folder)))
        return found if isinstance(found, frozenset) else None

    def index(self, folder: Path) -> IndexReading | None:
        """The folder's index; None if it has none that can be read."""
        found = self._read("index", folder / INDEX, lambda: _index_reading(folder / INDEX))
        return found if isinstance(found, IndexReading) else None

    def manifest_owner(self, folder: Path) -> str | None:
        """The response the folder's ``manifest.json`` names, if it is respflow's."""
        found = self._read("manifest", folder / MANIFEST, lambda: manifest_owner(folder))
        return found if isinstance(found, str) else None

    def _read(self, kind: str, path: Path, read: Callable[[], object]) -> object:
        """``read()``, or what it gave last time if ``path`` is unchanged since; None if
        ``path`` (or what ``read`` opens) is not there or cannot be read."""
        now = self._clock()
        try:
            stamp = os.stat(path)
        except (OSError, ValueError):
            return None
        key = (stamp.st_dev, stamp.st_ino, stamp.st_size, stamp.st_mtime_ns, stamp.st_ctime_ns)
        slot = (kind, str(path))
        with self._lock:
            kept = self._kept.get(slot)
            if kept is not None and kept[0] == key:
                self._kept.move_to_end(slot)
                return kept[1]
        # Read after the stat: a change while reading stamps the path anew, so the
        # reading is not used past it.
        try:
            value = read()
        except (OSError, ValueError):
            return None
        settled = now - self.settle_ns
        with self._lock:
            dropped = self._kept.pop(slot, None)
            if dropped is not None:
                self._names_kept -= dropped[2]
            if stamp.st_mtime_ns < settled and stamp.st_ctime_ns < settled:
                size = _names_in(value)
                self._kept[slot] = (key, value, size)
                self._names_kept += size
                while len(self._kept) > self.max_kept or self._names_kept > self.max_names:
                    self._names_kept -= self._kept.popitem(last=False)[1][2]
        return value


def _names_in(value: object) -> int:
    """What a reading weighs: the names it holds."""
    if isinstance(value, frozenset):
        return len(value)
    if isinstance(value, IndexReading):
        return len(value.media_types)
    return 0


def _index_reading(path: Path) -> IndexReading | None:
    try:
        index = read_folder_index(path.read_bytes())
    except msgspec.DecodeError:
        return None
    files = index.files if isinstance(index, FolderIndex) else index
    owner = index.response_id if isinstance(index, FolderIndex) else None
    media_types: dict[str, str] = {}
    for stored in files.values():
        media = stored.media_type
        if media is not None and "/" in media:
            media_types.setdefault(stored.filename, media)
    return IndexReading(owner, media_types)
