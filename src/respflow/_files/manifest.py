"""Each response folder's ``manifest.json``: what was saved there, where it came from, and
its hash; and :func:`verify_files`, which checks a folder against its manifests.

The manifest is rewritten whole after each file is saved: to a hidden temporary file in
the folder, flushed to disk, then renamed over the old one. A reader, or a process that
dies at any moment, sees the old manifest or the new one, always complete JSON. It only
ever lists plain names in its own folder: an entry that is not one (``../x``, ``/etc/x``,
a hidden file) is never written, and never opened when read.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import stat
from pathlib import Path
from typing import Literal

import msgspec

from .. import _events as ev
from .._exceptions import RespflowError
from .names import RESERVED_NAME, safe_filename

__all__ = [
    "MANIFEST",
    "FileProblem",
    "FilesReport",
    "Manifest",
    "ManifestEntry",
    "manifest_owner",
    "read_manifest",
    "verify_files",
]

MANIFEST = RESERVED_NAME
_INDEX = ".respflow-index.json"
_CHUNK = 1024 * 1024


class ManifestEntry(msgspec.Struct, frozen=True):
    """One saved file: ``file`` is its name in the folder; the rest says where it came
    from (see :class:`respflow.FileSaved`) and ``saved_at`` when (UTC, ISO 8601)."""

    file: str
    size: int
    sha256: str
    media_type: str | None = None
    container_id: str | None = None
    file_id: str | None = None
    path: str | None = None
    produced_by: str | None = None
    provenance: str = "unknown"
    cited_by: str | None = None
    resolved_by: str = "citation"
    saved_at: str = ""


class Manifest(msgspec.Struct):
    """A response folder's ``manifest.json``: the response it belongs to and an entry per
    file saved there (``format`` is the layout's version)."""

    response_id: str
    files: list[ManifestEntry] = msgspec.field(default_factory=list)
    format: int = 1


ProblemKind = Literal["changed", "missing", "unlisted", "unreadable"]
_KINDS: tuple[ProblemKind, ...] = ("changed", "missing", "unlisted", "unreadable")


class FileProblem(msgspec.Struct, frozen=True):
    """A file that does not match its manifest. ``file`` is its path from the folder
    checked; ``detail`` says what differs."""

    kind: ProblemKind
    file: str
    detail: str


class FilesReport(msgspec.Struct, frozen=True):
    """What :func:`verify_files` found: ``files`` listed files were checked in
    ``folders`` response folders."""

    folders: int
    files: int
    problems: list[FileProblem]

    @property
    def ok(self) -> bool:
        return not self.problems


def entry_of(saved: ev.FileSaved, saved_at: str) -> ManifestEntry:
    return ManifestEntry(
        file=saved.filename,
        size=saved.size,
        sha256=saved.sha256,
        media_type=saved.media_type,
        container_id=saved.container_id,
        file_id=saved.file_id,
        path=saved.path,
        produced_by=saved.produced_by,
        provenance=saved.provenance,
        cited_by=saved.cited_by,
        resolved_by=saved.resolved_by,
        saved_at=saved_at,
    )


def listable(name: str) -> bool:
    """Whether a manifest may list ``name``: one plain, visible name that is not the
    manifest's own."""
    return (
        bool(name)
        and safe_filename(name) == name
        and not name.startswith(".")
        and name.casefold() != MANIFEST
    )


def read_manifest(folder: str | os.PathLike[str]) -> Manifest:
    """The manifest of a response folder.

    Raises:
        RespflowError: there is none, or it is not a respflow manifest.
    """
    where = Path(folder) / MANIFEST
    try:
        return msgspec.json.decode(where.read_bytes(), type=Manifest)
    except FileNotFoundError:
        raise RespflowError(f"{where} does not exist") from None
    except OSError as exc:
        raise RespflowError(f"cannot read {where}: {exc.strerror or exc}") from None
    except msgspec.DecodeError as exc:
        raise RespflowError(f"{where} is not a respflow manifest: {exc}") from None


class _Owner(msgspec.Struct):
    """A manifest's response, read without decoding its entries."""

    response_id: str


def manifest_owner(folder: Path) -> str | None:
    """The response a folder's ``manifest.json`` names; None if there is none, or none
    that respflow wrote (it then says nothing about whose the folder is)."""
    try:
        return msgspec.json.decode((folder / MANIFEST).read_bytes(), type=_Owner).response_id
    except (OSError, msgspec.DecodeError):
        return None


def add_to_manifest(folder: Path, saved: ev.FileSaved, now: str) -> None:
    """List ``saved`` in its folder's manifest, with what is listed there already.

    The manifest is read each time rather than kept: another storage on the same folder
    (a second app, a replay) may have listed files since. ``now`` is when it was saved,
    unless the manifest already lists these very bytes under that name.

    Raises:
        RespflowError: ``manifest.json`` is there but is not a respflow manifest, so
            replacing it could destroy someone's file, or it is another response's.
    """
    try:
        data = (folder / MANIFEST).read_bytes()
    except FileNotFoundError:
        data = b""
    files: dict[str, ManifestEntry] = {}
    if data:
        try:
            earlier = msgspec.json.decode(data, type=Manifest)
        except msgspec.DecodeError:
            raise RespflowError(
                f"{folder / MANIFEST} is not a respflow manifest; it is left as it is and "
                "this folder's files are not listed: move it away to have them listed"
            ) from None
        if earlier.response_id != saved.response_id:
            raise RespflowError(
                f"{folder / MANIFEST} lists the files of response {earlier.response_id!r}, "
                f"not of {saved.response_id!r}; it is left as it is"
            )
        files = {entry.file: entry for entry in earlier.files}
    same = files.get(saved.filename)
    if same is not None and same.sha256 == saved.sha256 and same.saved_at:
        now = same.saved_at  # listed by an earlier run: that is when it was saved
    files[saved.filename] = entry_of(saved, now)
    write_manifest(folder, Manifest(saved.response_id, list(files.values())))


def write_manifest(folder: Path, manifest: Manifest) -> None:
    """Replace the folder's manifest whole, atomically (see the module's docstring)."""
    listed = sorted((e for e in manifest.files if listable(e.file)), key=lambda e: e.file)
    data = msgspec.json.format(
        msgspec.json.encode(msgspec.structs.replace(manifest, files=listed)), indent=2
    )
    temp = folder / f".{secrets.token_hex(8)}.part"
    try:
        with open(temp, "xb") as out:
            out.write(data + b"\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, folder / MANIFEST)
    finally:
        temp.unlink(missing_ok=True)


def verify_files(folder: str | os.PathLike[str]) -> FilesReport:
    """Re-hash saved files against their manifests: every listed file must be there
    with its size and sha256, and every file there must be listed.

    ``folder`` is one response folder (it holds a ``manifest.json``) or the storage root
    that holds them (``respflow-files``); there every response folder is checked, and one
    without a manifest is reported.

    Raises:
        RespflowError: ``folder`` is not a folder, or neither it nor any folder in it has
            a manifest (it is not where respflow saved files).
    """
    root = Path(folder)
    if not root.is_dir():
        raise RespflowError(
            f"{root} is not a folder; give the folder files were saved into "
            "(./respflow-files by default) or one response's folder in it"
        )
    if (root / MANIFEST).exists():
        problems, checked = _verify_folder(root, "")
        return FilesReport(1, checked, problems)
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    kept = [p for p in folders if (p / MANIFEST).exists()]
    if not kept:
        raise RespflowError(
            f"no {MANIFEST} in {root} nor in the folders in it: give the folder respflow "
            "saved files into (./respflow-files by default) or one response's folder in it"
        )
    problems, checked = [], 0
    for path in folders:
        if path not in kept:
            detail = f"a folder with no {MANIFEST}: nothing in it can be checked"
            problems.append(FileProblem("unlisted", f"{path.name}/", detail))
            continue
        found, count = _verify_folder(path, f"{path.name}/")
        problems += found
        checked += count
    return FilesReport(len(kept), checked, problems)


def _verify_folder(folder: Path, shown: str) -> tuple[list[FileProblem], int]:
    try:
        manifest = read_manifest(folder)
    except RespflowError as exc:
        return [FileProblem("unreadable", f"{shown}{MANIFEST}", str(exc))], 0
    problems: list[FileProblem] = []
    listed: set[str] = set()
    for entry in manifest.files:
        if not listable(entry.file):
            detail = "not a file name in this folder: it was not opened"
            problems.append(FileProblem("unreadable", f"{shown}{entry.file}", detail))
            continue
        listed.add(entry.file)
        why = _differs(folder / entry.file, entry)
        if why is not None:
            kind: ProblemKind = "missing" if why == "" else "changed"
            detail = why or "listed in the manifest, not in the folder"
            problems.append(FileProblem(kind, f"{shown}{entry.file}", detail))
    for path in sorted(folder.iterdir()):
        if path.name not in listed and not _own(path.name):
            detail = "in the folder, not in its manifest"
            problems.append(FileProblem("unlisted", f"{shown}{path.name}", detail))
    problems.sort(key=lambda p: (_KINDS.index(p.kind), p.file))
    return problems, len(listed)


def _own(name: str) -> bool:
    """The storage's own files, which no manifest lists: the manifest, the index, and
    the temporary files of a write under way."""
    return name in (MANIFEST, _INDEX) or (name.startswith(".") and name.endswith(".part"))


def _differs(path: Path, entry: ManifestEntry) -> str | None:
    """How the file differs from its entry: None if it does not, "" if it is missing."""
    try:
        found = path.lstat()
    except FileNotFoundError:
        return ""
    except OSError as exc:
        return f"cannot be read: {exc.strerror or exc}"
    if not stat.S_ISREG(found.st_mode):
        return "is no longer a plain file (a link, a folder or a device)"
    digest = hashlib.sha256()
    size = 0
    try:
        with open(path, "rb") as data:
            while chunk := data.read(_CHUNK):
                digest.update(chunk)
                size += len(chunk)
    except OSError as exc:
        return f"cannot be read: {exc.strerror or exc}"
    if size != entry.size:
        return f"its size is {size} bytes, the manifest says {entry.size}"
    if digest.hexdigest() != entry.sha256:
        return (
            f"its sha256 is {digest.hexdigest()[:16]}…, the manifest says "
            f"{entry.sha256[:16]}… (saved {entry.saved_at or 'at an unknown time'})"
        )
    return None
