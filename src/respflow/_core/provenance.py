"""Which code call made a file: the call whose code or output names it, else the latest.

Sans-I/O, like the rest of the core: :class:`Producers` is fed a response's events in
order and answers, for a file cited or linked at that point, which earlier call in the
file's container produced it and how that was decided.

A call *names* a file when its code or output holds the file's path as a whole token:
``/mnt/data/report.csv``, ``sandbox:/mnt/data/report.csv``, or a relative ``report.csv``
or ``./out/report.csv``, which the sandbox resolves against ``/mnt/data``. A token only
counts whole: ``report.csv.bak`` and ``old_report.csv`` do not name ``report.csv``. When
only the file's name is known (a citation gives a filename, not a path), any token whose
last component is that name counts.

Several calls may name one file: one writes it, a later one reads it back. The call whose
code names the file on a line that writes (``savefig``, ``to_csv``, ``open(..., "w")``,
a shell redirect ...) wins; among equals, the latest. Then a call whose output alone
names it; then, for an image cited under its file id (what Code Interpreter does with a
figure it showed), the latest call that showed an image; then the latest call in the
container. With no call at all, the producer is unknown.
"""

from __future__ import annotations

import posixpath
import re
from collections import deque
from dataclasses import dataclass, field

from .. import _events as ev

__all__ = ["Origin", "Producers", "names_path"]

CODE_NAMES_PATH = "code_names_path"
OUTPUT_NAMES_PATH = "output_names_path"
IMAGE_OUTPUT = "image_output"
LAST_CALL = "last_call_in_container"
UNKNOWN = "unknown"

_SANDBOX = "/mnt/data"
# Characters that continue a file name, so a match next to one is part of a longer name.
_NAME_PUNCTUATION = frozenset("_-.~+@")
# How far back a token's folders are read: a name inside an endless run of name
# characters costs this much, not the run's length.
_MAX_TOKEN = 4096
# Output kept per call for matching: the latest, as paths are usually printed last.
_MAX_OUTPUT = 256 * 1024
_WRITES = re.compile(
    r"savefig|\.to_\w+\(|\.write|write_text|write_bytes|\.save\w*\(|dump|export"
    r"|open\([^)]*['\"][wax]b?\+?['\"]|\bcp\b|\bmv\b|\btee\b|\bzip\b|\btar\b|>"
)


_CALL_EVENTS = frozenset(
    {ev.CodeStarted, ev.CodeDone, ev.CodeCompleted, ev.CodeLogs, ev.CodeOutput, ev.CodeImage}
)


@dataclass(frozen=True, slots=True)
class Origin:
    """Who made a file: the call's ``item_id`` (None: no call) and how it was decided."""

    produced_by: str | None
    provenance: str


@dataclass(slots=True)
class _Call:
    item_id: str
    container_id: str | None
    code: str = ""
    output: deque[str] = field(default_factory=deque)
    output_size: int = 0
    images: int = 0

    def add_output(self, text: str) -> None:
        self.output.append(text)
        self.output_size += len(text)
        while self.output_size > _MAX_OUTPUT and len(self.output) > 1:
            self.output_size -= len(self.output.popleft())

    def output_text(self) -> str:
        return "".join(self.output)


class Producers:
    """The code calls of one response so far, and which of them made a file."""

    def __init__(self) -> None:
        self._calls: dict[str, _Call] = {}

    def see(self, event: ev.Event) -> None:
        """Take in one event of the response, in order."""
        if type(event) not in _CALL_EVENTS:  # most are text and code deltas: one look
            return
        match event:
            case ev.CodeStarted(item_id=item_id, container_id=cid):
                self._call(item_id, cid)
            case ev.CodeDone(item_id=item_id, code=code):
                self._call(item_id, None).code = code
            case ev.CodeCompleted(item_id=item_id, code=code, container_id=cid):
                self._call(item_id, cid).code = code
            case (
                ev.CodeLogs(item_id=item_id, logs=text) | ev.CodeOutput(item_id=item_id, delta=text)
            ):
                self._call(item_id, None).add_output(text)
            case ev.CodeImage(item_id=item_id):
                self._call(item_id, None).images += 1
            case _:
                pass

    def _call(self, item_id: str, container_id: str | None) -> _Call:
        call = self._calls.get(item_id)
        if call is None:
            call = self._calls[item_id] = _Call(item_id, container_id)
        elif container_id and not call.container_id:
            call.container_id = container_id
        return call

    def producer(
        self,
        container_id: str | None,
        *,
        path: str | None = None,
        filename: str | None = None,
        file_id: str | None = None,
    ) -> Origin:
        """The call that made the file at container ``path`` (or named ``filename``, when
        the path is not known) in ``container_id``, among the calls seen so far.

        ``file_id`` tells an image cited under its own id (``cfile_...png``), which no
        code names, from a file the model named.
        """
        calls = [c for c in self._calls.values() if _same_container(c, container_id)]
        if not calls:
            return Origin(None, UNKNOWN)
        wanted = path or filename or ""
        if wanted:
            by_code = [c for c in calls if names_path(c.code, wanted)]
            writers = [c for c in by_code if _writes(c.code, wanted)]
            if writers or by_code:
                return Origin((writers or by_code)[-1].item_id, CODE_NAMES_PATH)
            for call in reversed(calls):
                if names_path(call.output_text(), wanted):
                    return Origin(call.item_id, OUTPUT_NAMES_PATH)
        if _named_by_id(filename, file_id):
            shown = [c for c in calls if c.images]
            if shown:
                return Origin(shown[-1].item_id, IMAGE_OUTPUT)
        return Origin(calls[-1].item_id, LAST_CALL)


def _same_container(call: _Call, container_id: str | None) -> bool:
    return container_id is None or call.container_id in (container_id, None)


def _named_by_id(filename: str | None, file_id: str | None) -> bool:
    """A citation of a file the model never named: its filename is its id."""
    return bool(filename and file_id and filename.startswith(file_id))


def names_path(text: str, wanted: str) -> bool:
    """Whether ``text`` names ``wanted`` as a whole token: an absolute container path
    (``/mnt/data/x.png``) or, when only that is known, a bare file name (``x.png``)."""
    return any(True for _ in _mentions(text, wanted))


def _writes(code: str, wanted: str) -> bool:
    """Whether a line of ``code`` that names ``wanted`` looks like it writes a file."""
    for start, end in _mentions(code, wanted):
        line_start = code.rfind("\n", 0, start) + 1
        line_end = code.find("\n", end)
        if _WRITES.search(code, line_start, len(code) if line_end < 0 else line_end):
            return True
    return False


def _mentions(text: str, wanted: str) -> list[tuple[int, int]]:
    """Where ``text`` names ``wanted``: the spans of the tokens that do."""
    name = posixpath.basename(wanted)
    if not name:
        return []
    target = _resolved(wanted) if wanted.startswith("/") else None
    found = []
    at = text.find(name)
    while at >= 0:
        end = at + len(name)
        if _whole(text, at, end):
            start = _token_start(text, at)
            if target is None or _resolved(text[start:end]) == target:
                found.append((start, end))
        at = text.find(name, at + 1)
    return found


def _whole(text: str, start: int, end: int) -> bool:
    """Whether ``text[start:end]`` is a whole last path component, not part of a name."""
    before = text[start - 1] if start else ""
    after = text[end] if end < len(text) else ""
    return (before == "/" or not _continues_name(before)) and not (
        after == "/" or _continues_name(after)
    )


def _continues_name(ch: str) -> bool:
    return bool(ch) and (ch.isalnum() or ch in _NAME_PUNCTUATION)


def _token_start(text: str, name_start: int) -> int:
    """Where the token ending in the name at ``name_start`` begins: its folders too."""
    start = name_start
    floor = max(0, name_start - _MAX_TOKEN)
    while start > floor and (text[start - 1] == "/" or _continues_name(text[start - 1])):
        start -= 1
    return start


def _resolved(token: str) -> str:
    """A token as the absolute path it names in the sandbox, whose working folder is
    ``/mnt/data``."""
    absolute = token if token.startswith("/") else f"{_SANDBOX}/{token}"
    return posixpath.normpath(absolute)
