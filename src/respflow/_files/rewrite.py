"""Rewriting ``sandbox:/mnt/data/...`` links in the answer to where the files are served.

A sans-I/O processor, like the Assembler: :meth:`LinkRewriter.feed` takes an event and
returns the events to pass on. Text deltas are rewritten as they stream; a delta may end
in the middle of a link, so the rewriter holds back only a suffix that could still become
one, never more than ``max_hold`` characters, and flushes it by ``text.done``. The
deltas of a part always add up to the rewritten ``text.done`` text.

The link target is a function of the link alone (a URL template over the response id and
the file's name), so it is known while the text streams, before any file is saved.
``message.completed`` is held until the response ends: by then the file fetcher (placed
before this processor) has said which files failed, and their links get a clear marker
instead of a dead sandbox URL. Annotation spans in ``message.completed``, ``file.cited``
and ``file.link`` are moved to match the rewritten text.
"""

from __future__ import annotations

import posixpath
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import msgspec

from .. import _events as ev
from .._core.links import find_links
from .._core.stamp import Stamper
from .names import safe_filename

__all__ = ["LinkRewriter"]

_LEADS = ("sandbox:/mnt/data/", "/mnt/data/")
_CLOSERS = frozenset(")]\"'<>`")


def _ends_links(ch: str) -> bool:
    """A character no link target contains (the set ``find_links`` stops at)."""
    return ch.isspace() or ch in _CLOSERS


def _blocks_link(ch: str) -> bool:
    """A character that keeps a link from starting right after it (``foo/mnt/data``)."""
    return ch.isalnum() or ch in "_/."


@dataclass(slots=True)
class _Edit:
    start: int
    end: int
    new_start: int
    new_end: int


@dataclass(slots=True)
class _Rewritten:
    text: str
    edits: list[_Edit]

    def position(self, i: int) -> int:
        """Where index ``i`` of the original text is in the rewritten one."""
        k = bisect_right([e.start for e in self.edits], i) - 1
        if k < 0:
            return i
        edit = self.edits[k]
        if i == edit.start:
            return edit.new_start
        if i < edit.end:
            return edit.new_end
        return i + edit.new_end - edit.end


@dataclass(slots=True)
class _Part:
    chunks: list[str] = field(default_factory=list)
    """The part's deltas, joined only when an annotation needs the whole text."""
    final: str | None = None
    """The part's text from ``text.done``."""
    window: str = ""
    """The text not yet let out, after the one character before it (which decides whether
    a link may start there): all the streaming rewrite looks at, so each delta costs its
    own length, not the text's."""
    emitted: int = 0
    """Where in ``window`` the text held back starts."""
    raw: bool = False
    """A link passed ``max_hold``: the rest of it goes out unrewritten."""
    rewritten: _Rewritten | None = None

    @property
    def original(self) -> str:
        """The part's whole text as it arrived."""
        return self.final if self.final is not None else "".join(self.chunks)


@dataclass(slots=True)
class _ResponseState:
    parts: dict[tuple[str, int], _Part] = field(default_factory=dict)
    held: list[ev.MessageCompleted] = field(default_factory=list)
    failed_paths: set[str] = field(default_factory=set)
    failed_files: set[tuple[str | None, str]] = field(default_factory=set)
    cited_paths: dict[tuple[str | None, str], str] = field(default_factory=dict)


class LinkRewriter:
    """Rewrites sandbox links in the stream to ``url`` (see the module docstring).

    Args:
        url: the template of a link's new target. ``{response_id}``, ``{filename}`` (the
            file's name as respflow stores it) and ``{path}`` (its path under /mnt/data)
            are filled in, URL-quoted; or a function ``(response_id, path) -> str``.
        unavailable: the target for a link whose file could not be saved.
        max_hold: the most characters held back while a link may be forming.
    """

    def __init__(
        self,
        url: str | Callable[[str, str], str] = "/files/{response_id}/{filename}",
        *,
        unavailable: str = "#respflow-unavailable/{filename}",
        max_hold: int = 1024,
    ) -> None:
        self.url = url
        self.unavailable = unavailable
        self.max_hold = max_hold
        self._stamper = Stamper()
        self._rid = ""
        self._state = _ResponseState()

    # -- the pure rewrite -----------------------------------------------------------------

    def target(self, response_id: str, path: str, *, failed: bool = False) -> str:
        if callable(self.url) and not failed:
            return self.url(response_id, path)
        template = self.unavailable if failed else str(self.url)
        name = safe_filename(posixpath.basename(path))
        return template.format(
            response_id=quote(response_id, safe=""),
            filename=quote(name, safe=""),
            path=quote(path.removeprefix("/mnt/data/"), safe="/"),
        )

    def rewrite(self, text: str, response_id: str, failed: frozenset[str] = frozenset()) -> str:
        """``text`` with every sandbox link pointing at its new target."""
        return self._rewrite(text, response_id, failed).text

    def _rewrite(
        self,
        text: str,
        response_id: str,
        failed: frozenset[str],
        start: int = 0,
        end: int | None = None,
    ) -> _Rewritten:
        """``text[start:end]`` rewritten; edit positions are relative to ``start``."""
        end = len(text) if end is None else end
        out: list[str] = []
        edits: list[_Edit] = []
        at = start
        length = 0
        for link in find_links(text, start, end):
            out.append(text[at : link.start])
            length += link.start - at
            new = self.target(response_id, link.path, failed=link.path in failed)
            edits.append(_Edit(link.start - start, link.end - start, length, length + len(new)))
            out.append(new)
            length += len(new)
            at = link.end
        out.append(text[at:end])
        return _Rewritten("".join(out), edits)

    # -- the stream -----------------------------------------------------------------------

    def feed(self, event: ev.Event) -> list[ev.Event]:
        """The events to pass on for ``event``, in order."""
        if event.response_id != self._rid:
            self._rid, self._state = event.response_id, _ResponseState()
        state = self._state
        match event:
            case ev.TextDelta(item_id=item_id, content_index=ci, delta=delta):
                out = self._push(state.parts.setdefault((item_id, ci), _Part()), delta)
                return [self._stamper.passed(msgspec.structs.replace(event, delta=out))]
            case ev.TextDone(item_id=item_id, content_index=ci, text=text):
                return self._text_done(event, state.parts.setdefault((item_id, ci), _Part()), text)
            case ev.FileCited() | ev.FileLink():
                return [self._stamper.passed(self._moved(event, state))]
            case ev.FileFailed(container_id=cid, file_id=fid, path=path):
                if path:
                    state.failed_paths.add(path)
                if fid:
                    state.failed_files.add((cid, fid))
                return [self._stamper.passed(event)]
            case ev.MessageCompleted():
                state.held.append(event)
                return []
            case _ if isinstance(event, ev.END_TYPES):
                released = [self._stamper.made(self._final(m, state)) for m in state.held]
                state.held.clear()
                return [*released, self._stamper.passed(event)]
            case _:
                return [self._stamper.passed(event)]

    def _text_done(self, event: ev.TextDone, part: _Part, text: str) -> list[ev.Event]:
        rest = self._release(part, len(part.window))
        part.final, part.window, part.emitted = text, "", 0
        part.rewritten = self._rewrite(text, self._rid, frozenset())
        out: list[ev.Event] = []
        if rest:
            flushed = ev.TextDelta(
                response_id=event.response_id,
                sequence_number=event.sequence_number,
                cursor=event.cursor,
                item_id=event.item_id,
                output_index=event.output_index,
                content_index=event.content_index,
                delta=rest,
            )
            out.append(self._stamper.made(flushed))
        done = msgspec.structs.replace(event, text=part.rewritten.text)
        out.append(self._stamper.passed(done))
        return out

    def _push(self, part: _Part, delta: str) -> str:
        part.chunks.append(delta)
        out = self._let_out(part, delta)
        keep = part.emitted - 1  # one character of context before what is held
        if keep > 0:
            part.window, part.emitted = part.window[keep:], 1
        return out

    def _let_out(self, part: _Part, delta: str) -> str:
        part.window += delta
        text = part.window
        # Up to the last character no link contains, the text is final.
        cut = len(text)
        while cut > part.emitted and not _ends_links(text[cut - 1]):
            cut -= 1
        out = self._release(part, cut)
        if part.raw:
            return out + self._release(part, len(text))
        start = _link_start(text, part.emitted)
        if start is None:
            return out + self._release(part, len(text))
        out += self._release(part, start)
        if len(text) - part.emitted > self.max_hold:
            part.raw = True
            out += self._release(part, len(text))
        return out

    def _release(self, part: _Part, end: int) -> str:
        """Let ``window[emitted:end]`` out, rewritten unless a too-long link is running."""
        text, start = part.window, part.emitted
        if end <= start:
            return ""
        part.emitted = end
        if part.raw:
            stop = next((i + 1 for i in range(start, end) if _ends_links(text[i])), None)
            if stop is None:
                return text[start:end]
            part.raw = False
            return text[start:stop] + self._rewrite(text, self._rid, frozenset(), stop, end).text
        return self._rewrite(text, self._rid, frozenset(), start, end).text

    def _moved(self, event: ev.FileCited | ev.FileLink, state: _ResponseState) -> ev.Event:
        part = state.parts.get((event.item_id, event.content_index))
        if part is None:
            return event
        if isinstance(event, ev.FileCited):
            span = part.original[event.start_index : event.end_index]
            for link in find_links(span):
                state.cited_paths[(event.container_id, event.file_id)] = link.path
        # Annotations arrive after the part's last delta, so its text is whole by now.
        moved = part.rewritten or self._rewrite(part.original, self._rid, frozenset())
        return msgspec.structs.replace(
            event,
            start_index=moved.position(event.start_index),
            end_index=moved.position(event.end_index),
        )

    def _final(self, message: ev.MessageCompleted, state: _ResponseState) -> ev.MessageCompleted:
        failed = set(state.failed_paths)
        for key, path in state.cited_paths.items():
            if key in state.failed_files:
                failed.add(path)
        rewritten = self._rewrite(message.text, self._rid, frozenset(failed))
        annotations: list[Any] = []
        for annotation in message.annotations:
            start, end = annotation.get("start_index"), annotation.get("end_index")
            if isinstance(start, int) and isinstance(end, int):
                annotation = {
                    **annotation,
                    "start_index": rewritten.position(start),
                    "end_index": rewritten.position(end),
                }
            annotations.append(annotation)
        return msgspec.structs.replace(message, text=rewritten.text, annotations=annotations)


def _link_start(text: str, start: int) -> int | None:
    """Where in ``text[start:]`` (a run with no link-ending character) a link could begin:
    the first place whose rest is a link's start or could still grow into one."""
    word = text[start:]
    if "s" not in word and "/" not in word:
        return None
    for p in range(start, len(text)):
        if text[p] not in "s/" or (p and _blocks_link(text[p - 1])):
            continue
        rest = text[p:]
        for lead in _LEADS:
            if lead.startswith(rest) or rest.startswith(lead):
                return p
    return None
