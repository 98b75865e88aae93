"""File names: a name from the network becomes one harmless component, and the files of a
response are named by one rule that the link rewriter and the storage share.

The rule (:meth:`FileNames.name`) is a function of what identifies a file while the text
that links it streams: the container it lives in and its sandbox path. So a link's target
is known before the file is saved, the storage saves the file under that very name, and
two different files (two containers' ``report.csv``, or ``/mnt/data/a/report.csv`` and
``/mnt/data/b/report.csv``) never share a name, whatever order their downloads finish in.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

from .. import _events as ev

__all__ = [
    "FileNames",
    "legacy_response_folder",
    "numbered",
    "response_folder",
    "safe_filename",
    "same_on_disk",
    "stored_name",
]

_ALLOWED_PUNCTUATION = frozenset(" -_.,+=@()[]{}~'!#$%&")
# Names Windows reserves in any directory, whatever extensions follow them.
_RESERVED = frozenset(
    {"con", "prn", "aux", "nul", "clock$", "conin$", "conout$"}
    | {f"com{i}" for i in "123456789¹²³"}
    | {f"lpt{i}" for i in "123456789¹²³"}
)
_MAX_BYTES = 200
_MAX_SUFFIX_BYTES = 24
_SANDBOX = "/mnt/data/"
# A tagged name ends in "~" and 8 hex digits, before its extension; no plain name may,
# in any case: on a case-insensitive disk "x~ABCDEF12.csv" is the tagged "x~abcdef12.csv".
_TAGGED = re.compile(r"~[0-9a-fA-F]{8}(?:\.[^.]*)?\Z")
_NAMING_EVENTS = (ev.CodeStarted, ev.CodeCompleted, ev.FileCited, ev.FileLink)
# The storage's manifest in each response folder: no saved file may take its name.
RESERVED_NAME = "manifest.json"
# A response id that is its own folder's name, as the API makes them (resp_68c2e2c6...):
# lower case, so that two of them are two folders on a case-insensitive disk too.
_PLAIN_ID = re.compile(r"[a-z0-9][a-z0-9_-]*\Z")
_ID_TAG_HEX = 16


def safe_filename(name: str | None, *, fallback: str = "file", max_bytes: int = _MAX_BYTES) -> str:
    """One path component that is safe on Linux, macOS and Windows, from any string.

    Only the last component of ``name`` is kept (after NFKC folding, so look-alike slashes
    count as slashes); control, format and separator characters and anything outside
    letters, digits and plain punctuation become ``_``; leading dots and trailing dots and
    spaces go; a name that starts with a reserved device name (``CON.tar.gz``, ``NUL .txt``)
    gets a ``_`` prefix; the result is at most ``max_bytes`` of UTF-8, keeping the
    extension. Never empty, never ``.`` or ``..``; a safe name stays as it is.
    """
    text = unicodedata.normalize("NFKC", name or "")
    text = text.replace("\\", "/").rsplit("/", 1)[-1]
    text = "".join(_keep(ch) for ch in text)
    text = text.lstrip(". ").rstrip(". ")
    if not text.strip("_"):
        text = fallback
    if _is_device(text):
        text = "_" + text
    text = _shorten(text, max_bytes)
    if _is_device(text):  # only a tiny max_bytes can cut a name down to a device
        text = _shorten("_" + text, max_bytes)
    return text


def numbered(name: str, n: int, *, max_bytes: int = _MAX_BYTES) -> str:
    """``name`` with `` (n)`` before its extension, the name shortened so the counter fits.

    For a second file that wants a name already taken: the counter is what tells the two
    apart, so it is never the part that is cut.
    """
    counter = f" ({n})"
    ext = _extension(name)
    stem = name[: len(name) - len(ext)]
    room = max_bytes - len(counter.encode()) - len(ext.encode())
    return _truncate(stem, room) + counter + ext


def same_on_disk(name: str) -> str:
    """What a case-insensitive disk that ignores Unicode normalisation (macOS, Windows)
    compares of ``name``: two names with the same one are one file there."""
    return unicodedata.normalize("NFD", unicodedata.normalize("NFD", name).casefold())


def stored_name(path: str, container_id: str | None = None, *, tagged: bool = False) -> str:
    """The name of the file at sandbox ``path`` (a bare name is taken to be in /mnt/data),
    in ``container_id``, or in the response's first container if None.

    A file directly in /mnt/data of the first container keeps its name when it is already
    safe (and is not ``manifest.json``, the storage's own): ``report.csv``. Any other
    file (in a folder, in another container, or with a name that had to be made safe)
    gets ``~`` and 8 hex digits of a hash of its container and path before its extension
    (``a_report~3f1c09d2.csv``), so two different files never share a name (short of a
    hash collision) and a file gets the same name in any process. ``tagged`` gives a
    file that could keep its name the tagged one all the same.
    """
    relative = path.removeprefix(_SANDBOX) if path.startswith(_SANDBOX) else path.lstrip("/")
    if container_id is None and not tagged and _is_plain(relative):
        return relative
    folder, _, base = relative.rpartition("/")
    safe = safe_filename(base)
    ext = _extension(safe)
    stem = safe[: len(safe) - len(ext)]
    readable = safe_filename(f"{folder}/{stem}".replace("/", "_") if folder else stem)
    identity = f"{container_id or ''}\0{relative}".encode("utf-8", "surrogatepass")
    tag = "~" + hashlib.sha256(identity).hexdigest()[:8]
    room = _MAX_BYTES - len(tag.encode()) - len(ext.encode())
    return _truncate(readable, room) + tag + ext


def response_folder(response_id: str) -> str:
    """The name of the folder that holds the files (or the recording) of ``response_id``;
    two different ids never get the same one.

    An id as the API makes them (``resp_`` and lower-case letters and digits) is its own
    folder's name. Any other (one that :func:`safe_filename` would change, or with upper
    case, dots or a ``~``) gets its safe form with ``~`` and 16 hex digits of a hash of
    the whole id (``a/resp_1`` gets ``resp_1~fcc5e043c7d21c0a``): a response id comes
    from the network, and ``a/resp_1`` must not share ``resp_1``'s folder, nor ``RESP_1``
    share it on a case-insensitive disk. No plain name holds a ``~``, so the two kinds
    never meet.
    """
    if _PLAIN_ID.match(response_id) and safe_filename(response_id) == response_id:
        return response_id
    digest = hashlib.sha256(response_id.encode("utf-8", "surrogatepass")).hexdigest()
    tag = "~" + digest[:_ID_TAG_HEX]
    readable = safe_filename(response_id, fallback="response")
    return _truncate(readable, _MAX_BYTES - len(tag)) + tag


def legacy_response_folder(response_id: str) -> str | None:
    """The folder an older respflow gave ``response_id`` where it is not its folder now
    (:func:`response_folder`), and files saved there may still be told to be its: an id
    that was already a safe name, with upper case, dots or other characters an API id does
    not have (``Resp.X`` was ``Resp.X/``, and is now ``Resp.X~<hash>/``).

    None for an API id (its folder has not changed), for an id with a ``~`` (its old name
    may be another id's folder now) and for an id :func:`safe_filename` changes: its old
    folder was shared with others (``a/resp_1``'s was ``resp_1``, the folder of
    ``resp_1``), so nothing in it can be told to be this id's.
    """
    if "~" in response_id or safe_filename(response_id) != response_id:
        return None
    return None if response_folder(response_id) == response_id else response_id


class FileNames:
    """:func:`stored_name` for one response, which tells its first container from the rest.

    Feed it the response's events (:meth:`see`) in order; the link rewriter and the file
    fetcher each keep one and, seeing the same events, name every file alike.

    Names that keep their file's name must also differ where case and Unicode
    normalisation do not count (macOS, Windows: ``Report.csv`` is ``report.csv``): the
    file the text names first keeps its name, and a later one that would be the same
    there gets the tagged name (``report~1c2d3e4f.csv``). The rewriter names links as the
    text streams; a response's events give them in another order (a part's citations,
    then its ``text.done``, then its bare links), so :meth:`see` names a part's cited
    files with its links in the order of the text, once the part's citations and links
    have all come (at the next event of another kind). A fetcher names a cited file
    after that, or after :meth:`settle`.
    """

    def __init__(self) -> None:
        self.first_container: str | None = None
        self._kept: dict[str, str] = {}
        """The untagged names given, by what a case-insensitive disk compares of them."""
        self._cited: list[ev.FileCited] = []
        """Container citations whose files are not named yet: their links may come later
        in the events than links before them in the text. Once a bare link comes, the
        list is in reverse text order, so the next to name is popped off its end."""
        self._parts: dict[tuple[str, int], int] = {}
        """The parts of the citations waiting, in the order they came: the text's."""
        self._reversed = True

    def see(self, event: ev.Event) -> None:
        if self.first_container is None and isinstance(event, _NAMING_EVENTS):
            self.first_container = event.container_id or None
        if isinstance(event, ev.FileCited):
            self._parts.setdefault((event.item_id, event.content_index), len(self._parts))
            self._cited.append(event)
            self._reversed = False
        elif isinstance(event, ev.FileLink):
            self._settle_before(event)
        elif self._cited and not isinstance(event, ev.TextDone):
            self.settle()

    def settle(self) -> None:
        """Name the cited files still waiting, in the order of the text."""
        self._settle_before(None)
        self._parts.clear()

    def _settle_before(self, link: ev.FileLink | None) -> None:
        """Name what the text gives before ``link`` (None: all of it), then the file it
        links. Bare links come in the order of the text: each pops what is before it."""
        if self._cited:
            if not self._reversed:
                self._cited.sort(key=self._place, reverse=True)
                self._reversed = True
            bound = (len(self._parts), 0)
            if link is not None:
                bound = (
                    self._parts.get((link.item_id, link.content_index), bound[0]),
                    link.start_index,
                )
            while self._cited and self._place(self._cited[-1]) < bound:
                cited = self._cited.pop()
                if cited.kind == "container_file_citation" and cited.container_id:
                    self.name(cited.container_id, cited.filename or cited.file_id)
        if link is not None and link.container_id:
            self.name(link.container_id, link.path)

    def _place(self, cited: ev.FileCited) -> tuple[int, int]:
        return self._parts[(cited.item_id, cited.content_index)], cited.start_index

    def name(self, container_id: str | None, path: str) -> str:
        """The name of the file at ``path`` in ``container_id`` (None: the container is not
        known yet, so it will be the first)."""
        first = self.first_container
        other = container_id is not None and first is not None and container_id != first
        owner = container_id if other else None
        name = stored_name(path, owner)
        if owner is not None or _TAGGED.search(name):
            return name  # tagged: its hash tells it from any other
        kept = self._kept.setdefault(same_on_disk(name), name)
        return name if kept == name else stored_name(path, owner, tagged=True)


def _is_plain(relative: str) -> bool:
    """A name that can stand for its file as it is: no folder, already safe, and not one
    that a tagged name could take."""
    return (
        bool(relative)
        and "/" not in relative
        and safe_filename(relative) == relative
        and _TAGGED.search(relative) is None
        and relative.casefold() != RESERVED_NAME
    )


def _is_device(text: str) -> bool:
    # Windows ignores what follows the first dot, and spaces before it, when it looks
    # for a device: "NUL .txt" and "con.tar.gz" are devices too.
    return text.split(".", 1)[0].rstrip(" ").lower() in _RESERVED


def _extension(name: str) -> str:
    """The ``.ext`` a shortened name keeps: a short one after a non-empty stem, else none."""
    stem, dot, suffix = name.rpartition(".")
    if dot and stem and len(suffix.encode()) <= _MAX_SUFFIX_BYTES:
        return dot + suffix
    return ""


def _shorten(text: str, max_bytes: int) -> str:
    if len(text.encode()) <= max_bytes:
        return text
    ext = _extension(text)
    stem = text[: len(text) - len(ext)]
    return _truncate(stem, max_bytes - len(ext.encode())) + ext


def _keep(ch: str) -> str:
    if ch.isalnum() or ch in _ALLOWED_PUNCTUATION:
        return ch
    return "_"


def _truncate(text: str, max_bytes: int) -> str:
    data = text.encode()[: max(max_bytes, 0)]
    return data.decode(errors="ignore").rstrip(". ") or "file"
