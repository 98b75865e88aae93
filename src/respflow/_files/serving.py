"""Serving saved files to browsers: a small Starlette app for the links the rewriter writes."""

from __future__ import annotations

import mimetypes
import os
from pathlib import Path
from typing import Any

import anyio

from .names import RESERVED_NAME, legacy_response_folder, response_folder, safe_filename
from .readings import FolderReadings, IndexReading

__all__ = ["files_app"]

# Types a browser may show in the page's origin without running anything.
_INLINE = frozenset(
    {
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/webp",
        "text/plain",
        "text/csv",
        "application/pdf",
    }
)


def files_app(root: str | os.PathLike[str] = "respflow-files", *, prefix: str = "/files") -> Any:
    """An ASGI app serving the files :class:`respflow.LocalStorage` saved in ``root`` at
    ``<prefix>/{response_id}/{filename}``, the default target of
    :class:`respflow.LinkRewriter`. The response id is mapped to its folder as the storage
    maps it (``resp_68c2...`` is its own folder's name), and a folder whose index says it
    holds another response's files is not served for this one. A response whose folder
    an older respflow named otherwise (an id with upper case or dots: ``Resp.X/``) is
    also served from that folder, if the folder is still its own.

    Only names that are already safe (as :func:`respflow.safe_filename` makes them) are
    served, never hidden files, never the folder's ``manifest.json``, never a directory
    and never a path outside ``root``.
    Images, text, CSV and PDF are shown inline; everything else (HTML above all: the
    model wrote it) is a download, with ``nosniff`` and a sandboxing CSP. Needs Starlette
    (``pip install 'respflow[serve]'``); mount it in a larger app with ``Mount``.
    """
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse, Response
    from starlette.routing import Route

    base = Path(root).resolve()
    readings = FolderReadings()

    async def serve(request: Request) -> Response:
        params = request.path_params
        # In a worker thread: a folder changed in the last seconds is listed afresh, and a
        # listing of thousands of names must not stall every stream the loop serves.
        found = await anyio.to_thread.run_sync(
            file_response, base, params["response_id"], params["filename"], readings
        )
        return found or PlainTextResponse("not found", status_code=404)

    route = f"{prefix.rstrip('/')}/{{response_id}}/{{filename}}"
    return Starlette(routes=[Route(route, serve, methods=["GET", "HEAD"])])


def file_response(
    base: Path, response_id: str, filename: str, readings: FolderReadings | None = None
) -> Any:
    """A Starlette response serving the file ``filename`` of ``response_id`` under
    ``base`` safely, or None if there is no such file (or the name is not one respflow
    would have stored, or the folder is another response's). ``readings`` keeps what
    was read of each folder (the caller's, kept across requests), so a request costs the
    same in a folder of any size."""
    from starlette.responses import FileResponse

    if not filename or filename.startswith(".") or safe_filename(filename) != filename:
        return None
    if filename.casefold() == RESERVED_NAME:
        return None  # the folder's manifest is the storage's, not a file the model made
    if readings is None:  # not `or`: readings that keep nothing yet have no length
        readings = FolderReadings()  # none kept: each folder read afresh
    found = _in_folder(base, response_folder(response_id), response_id, filename, readings)
    legacy = legacy_response_folder(response_id) if found is None else None
    if legacy is not None:
        found = _in_folder(base, legacy, response_id, filename, readings, legacy=True)
    if found is None:
        return None
    path, index = found
    media_type = _media_type(path, index)
    disposition = "inline" if media_type in _INLINE else "attachment"
    return FileResponse(
        path,
        media_type=media_type,
        filename=path.name,
        content_disposition_type=disposition,
        headers={
            "x-content-type-options": "nosniff",
            "content-security-policy": "sandbox; default-src 'none'; img-src 'self'",
            "cache-control": "private, max-age=3600",
        },
    )


def _in_folder(
    base: Path,
    name: str,
    response_id: str,
    filename: str,
    readings: FolderReadings,
    *,
    legacy: bool = False,
) -> tuple[Path, IndexReading | None] | None:
    """The file ``filename`` in the folder ``name`` of ``base``, and the index of the
    folder it is in, if the folder is ``response_id``'s and holds a file of exactly that
    name (and, for a link to a file elsewhere, that file's folder is not another's).

    Every name is checked against the folder's entries as listed, since a
    case-insensitive disk opens ``Report.csv`` for ``report.csv``, another file: the
    folder's own name (a folder an older respflow named, ``legacy``, may be another's
    folder in another case), the name asked for, and the name the path resolves to
    (which, on Windows, is the name on the disk)."""
    folder = _resolved(base / name)
    if folder is None or not folder.is_relative_to(base):
        return None  # a link out of the root, or in a loop
    if legacy and folder != base / name:
        return None  # a link to another folder
    path = _resolved(folder / filename)
    if path is None or not path.is_relative_to(base) or not path.is_file():
        return None
    # Listed after the file is found: an id with no such folder (any id with upper case
    # has an old name) costs a look-up, not a listing of the root.
    if legacy and name not in (readings.names(base) or ()):
        return None  # another folder's name in another case
    if filename not in (readings.names(folder) or ()):
        return None
    if path.name not in (readings.names(path.parent) or ()):
        return None
    index = readings.index(folder)
    if not _may_hold(folder, index, response_id, readings, legacy=legacy):
        return None  # the folder holds another response's files
    if path.parent != folder:
        # The name is a link to a file in another folder (respflow makes none): whose
        # that file is, that folder says; its index also has the file's type.
        index = readings.index(path.parent)
        if not _may_hold(path.parent, index, response_id, readings):
            return None
    return path, index


def _may_hold(
    folder: Path,
    index: IndexReading | None,
    response_id: str,
    readings: FolderReadings,
    *,
    legacy: bool = False,
) -> bool:
    """Whether ``folder``, whose index is ``index``, may hold files of ``response_id``:
    neither its index nor (for an index written before indexes named theirs, or none)
    its manifest names another response."""
    owner = index.response_id if index is not None else None
    if owner is None:
        if legacy and index is None:
            return False  # respflow wrote an index with every file: this one is not its
        owner = readings.manifest_owner(folder)
    return owner is None or owner == response_id


def _resolved(path: Path) -> Path | None:
    """``path`` with its links followed; None if they go round in a loop (which
    Python before 3.13 reports as a RuntimeError) or cannot be followed."""
    try:
        return path.resolve()
    except (OSError, RuntimeError):
        return None


def _media_type(path: Path, index: IndexReading | None) -> str:
    """The type the fetcher recorded for the file, else one guessed from its name."""
    recorded = index.media_types.get(path.name) if index is not None else None
    return recorded or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
