"""The mock server's containers: files from a local folder, under the ids a recording cites."""

from __future__ import annotations

import mimetypes
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from .._core import wire
from ._recorded import Recording

__all__ = ["ContainerFile", "Containers"]

_DEFAULT_CONTAINER = "cntr_mock"


@dataclass(frozen=True, slots=True)
class ContainerFile:
    id: str
    container_id: str
    path: str
    local: Path
    created_at: int

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "container.file",
            "container_id": self.container_id,
            "path": self.path,
            "bytes": self.local.stat().st_size,
            "created_at": self.created_at,
            "source": "assistant",
        }

    @property
    def media_type(self) -> str:
        return mimetypes.guess_type(self.local.name)[0] or "application/octet-stream"


class Containers:
    """Files of ``folder`` served as container files, each container expiring when idle.

    A file whose name a ``container_file_citation`` in the recording gives is served under
    that citation's container and file id; every other file gets an id of its own in each
    container the recording names, at ``/mnt/data/<name>``, as a bare sandbox link finds it.
    """

    def __init__(self, folder: Path | None, recording: Recording, *, ttl: float | None) -> None:
        self.ttl = ttl
        self._files: dict[tuple[str, str], ContainerFile] = {}
        self._used: dict[str, float] = {}
        self._expired: set[str] = set()
        cited, containers = _scan(recording)
        for cid in containers or {_DEFAULT_CONTAINER}:
            self._used[cid] = time.monotonic()
        if folder is None:
            return
        created = int(time.time())
        # A folder respflow saved files into also holds its own bookkeeping (the
        # manifest, a hidden index): those were never the container's.
        local = sorted(
            p
            for p in folder.iterdir()
            if p.is_file() and not p.name.startswith(".") and p.name != "manifest.json"
        )
        for n, path in enumerate(local):
            citations = [(c, f) for c, f, name in cited if name == path.name]
            if not citations:
                citations = [(c, f"cfile_mock_{n:04d}") for c in self._used]
            for cid, fid in citations:
                self._used.setdefault(cid, time.monotonic())
                self._files[(cid, fid)] = ContainerFile(
                    id=fid,
                    container_id=cid,
                    path=f"/mnt/data/{path.name}",
                    local=path,
                    created_at=created,
                )

    def add(
        self,
        container_id: str,
        local: Path,
        *,
        path: str | None = None,
        file_id: str | None = None,
    ) -> ContainerFile:
        """Serve ``local`` in ``container_id`` from now on (at ``path``, by default
        ``/mnt/data/<its name>``), as code saving a file there would: whatever the recording
        cites, so two containers, or two folders, may hold files of one name."""
        file_id = file_id or f"cfile_added_{len(self._files):04d}"
        self._used.setdefault(container_id, time.monotonic())
        where = path or f"/mnt/data/{local.name}"
        added = ContainerFile(file_id, container_id, where, local, int(time.time()))
        self._files[(container_id, file_id)] = added
        return added

    def copy_as(self, container_id: str, new_id: str, file_ids: dict[str, str]) -> None:
        """Serve ``container_id``'s files again as a new container ``new_id``, each file
        under the id ``file_ids`` maps it to (or its own), as a new run of the same code
        would leave them: the mock's fresh ids per request."""
        now = time.monotonic()
        self._used[new_id] = now
        for (cid, fid), known in list(self._files.items()):
            if cid == container_id:
                copied = ContainerFile(
                    file_ids.get(fid, fid), new_id, known.path, known.local, int(time.time())
                )
                self._files[(new_id, copied.id)] = copied

    def containers(self) -> list[str]:
        """The containers served, in the order they became known."""
        return list(self._used)

    def file_ids(self, container_id: str) -> list[str]:
        return [fid for cid, fid in self._files if cid == container_id]

    def alive(self, container_id: str) -> bool:
        used = self._used.get(container_id)
        if used is None or container_id in self._expired:
            return False
        if self.ttl is not None and time.monotonic() - used > self.ttl:
            return False
        self._used[container_id] = time.monotonic()
        return True

    def touch(self) -> None:
        """A response ran code: its containers were just used."""
        now = time.monotonic()
        for cid in self._used:
            self._used[cid] = now

    def expire(self) -> None:
        """Expire every container now, as ~20 idle minutes would."""
        self._expired.update(self._used)

    def files(self, container_id: str) -> list[ContainerFile]:
        return [f for (cid, _), f in sorted(self._files.items()) if cid == container_id]

    def file(self, container_id: str, file_id: str) -> ContainerFile | None:
        return self._files.get((container_id, file_id))


def _scan(recording: Recording) -> tuple[list[tuple[str, str, str]], set[str]]:
    """The recording's citations (container, file, filename) and the containers it names."""
    cited: list[tuple[str, str, str]] = []
    containers: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            cid = node.get("container_id")
            if isinstance(cid, str) and cid:
                containers.add(cid)
            if node.get("type") == "container_file_citation":
                fid, name = node.get("file_id"), node.get("filename")
                if isinstance(cid, str) and isinstance(fid, str) and isinstance(name, str):
                    cited.append((cid, fid, name))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for event in recording.events:
        try:
            walk(wire.decode_json(event.payload))
        except (msgspec.DecodeError, UnicodeDecodeError):
            continue
    return cited, containers
