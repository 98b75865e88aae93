"""Serving saved files to browsers: a small Starlette app for the links the rewriter writes."""

from __future__ import annotations

import mimetypes
import os
from pathlib import Path
from typing import Any

import msgspec

from .names import RESERVED_NAME, response_folder, safe_filename
from .storage import FolderIndex, StoredFile, read_folder_index

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
    holds another response's files is not served for this one.

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

    async def serve(request: Request) -> Response:
        params = request.path_params
        found = file_response(base, params["response_id"], params["filename"])
        return found or PlainTextResponse("not found", status_code=404)

    route = f"{prefix.rstrip('/')}/{{response_id}}/{{filename}}"
    return Starlette(routes=[Route(route, serve, methods=["GET", "HEAD"])])


def file_response(base: Path, response_id: str, filename: str) -> Any:
    """A Starlette response serving the file ``filename`` of ``response_id`` under
    ``base`` safely, or None if there is no such file (or the name is not one respflow
    would have stored, or the folder is another response's)."""
    from starlette.responses import FileResponse

    if not filename or filename.startswith(".") or safe_filename(filename) != filename:
        return None
    if filename.casefold() == RESERVED_NAME:
        return None  # the folder's manifest is the storage's, not a file the model made
    path = (base / response_folder(response_id) / filename).resolve()
    if not path.is_relative_to(base) or not path.is_file() or not _named(path):
        return None
    index = _index(path.parent)
    if isinstance(index, FolderIndex) and index.response_id != response_id:
        return None  # the folder holds another response's files
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


def _named(path: Path) -> bool:
    """Whether the folder holds a file of exactly this name: on a case-insensitive disk
    ``report.csv`` opens ``Report.csv``, another file."""
    try:
        return path.name in os.listdir(path.parent)
    except OSError:
        return False


def _index(folder: Path) -> FolderIndex | dict[str, StoredFile] | None:
    """The folder's index, as written now or before it named its response; None if
    there is none that can be read."""
    try:
        return read_folder_index((folder / ".respflow-index.json").read_bytes())
    except (OSError, msgspec.DecodeError):
        return None


def _media_type(path: Path, index: FolderIndex | dict[str, StoredFile] | None) -> str:
    """The type the fetcher recorded for the file, else one guessed from its name."""
    files = index.files if isinstance(index, FolderIndex) else index or {}
    for stored in files.values():
        media = stored.media_type
        if stored.filename == path.name and media is not None and "/" in media:
            return media
    return mimetypes.guess_type(path.name)[0] or "application/octet-stream"
