"""Rewriting ``sandbox:/mnt/data/...`` links in the answer to where the files are served.

A sans-I/O processor, like the Assembler: :meth:`LinkRewriter.feed` takes an event and
returns the events to pass on. Text deltas are rewritten as they stream; a delta may end
in the middle of a link, so the rewriter holds back only a suffix that could still become
one, never more than ``max_hold`` characters, and flushes it by ``text.done`` (or, if the
stream stops first, by the response's end or :meth:`LinkRewriter.close`, as text). A link
longer than ``max_hold`` (counted up to the character that ends it) is left as it is everywhere:
in the deltas, in ``text.done`` and in ``message.completed``. So the deltas of a part
always add up to the rewritten ``text.done`` text, wherever the stream was cut.

The work is linear: a delta costs its own length plus what is held back, and the rewriter
remembers where each link it let out went, so moving an annotation's span is a binary
search, never a second rewrite of the text.

The link target is known while the text streams, before any file is saved: a URL
template over the response id and the name the file will be stored under, which
:class:`respflow._files.names.FileNames` makes from what identifies the file at that moment
(the container of the response's latest code call, and the sandbox path). The file fetcher
names the file by the same rule, so the link and the file meet, and two files of one name
(two containers' ``report.csv``, or ``a/report.csv`` and ``b/report.csv``) get two links.
``message.completed`` is held until the response ends: by then the file fetcher (placed
before this processor) has said which files failed, and their links get a clear marker
instead of a dead sandbox URL. Annotation spans in ``message.completed``, ``file.cited``
and ``file.link`` are moved to match the rewritten text.
"""

from __future__ import annotations

import posixpath
import re
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import msgspec

from .. import _events as ev
from .._core.links import SandboxLink, find_links
from .._core.stamp import Stamper
from .._exceptions import UsageError
from .names import FileNames, stored_name

__all__ = ["LinkRewriter"]

_LEADS = ("sandbox:/mnt/data/", "/mnt/data/")
# The characters no link target contains (the set find_links stops at).
_ENDER = re.compile(r"[\s)\]\"'<>`]")


def _lead_or_its_start(lead: str) -> str:
    """A pattern for ``lead``, or for as much of it as there is before the text ends: each
    character is followed by the rest or by the end, so a place that fails costs a step or
    two, not a try of every start of the lead."""
    pattern = ""
    for ch in reversed(lead):
        pattern = re.escape(ch) + (f"(?:{pattern}|\\Z)" if pattern else "")
    return pattern


# Where a link may begin: a lead, or the start of one at the very end of the text; never
# right after a letter, digit, "_", "/" or "." (find_links judges a link's start the same).
_MAY_START = re.compile(r"(?<![\w/.])(?:" + "|".join(map(_lead_or_its_start, _LEADS)) + ")")


@dataclass(slots=True)
class _Edit:
    """One link rewritten: its span in the original text and in the rewritten one."""

    start: int
    end: int
    new_start: int
    new_end: int
    name: str
    """The name of the file the link points at."""


class _Moves:
    """Where the links of a text went in its rewrite; a position maps in log time."""

    __slots__ = ("edits", "shift", "starts")

    def __init__(self, edits: Iterable[_Edit] = (), shift: int = 0) -> None:
        self.edits: list[_Edit] = []
        self.starts: list[int] = []
        self.shift = shift
        """How far text before the first edit moved."""
        for edit in edits:
            self.add(edit)

    def add(self, edit: _Edit) -> None:
        self.edits.append(edit)
        self.starts.append(edit.start)

    def position(self, i: int) -> int:
        """Where index ``i`` of the original text is in the rewritten one."""
        k = bisect_right(self.starts, i) - 1
        if k < 0:
            return i + self.shift
        edit = self.edits[k]
        if i == edit.start:
            return edit.new_start
        if i < edit.end:
            return edit.new_end
        return i + edit.new_end - edit.end

    def within(self, start: int, end: int) -> list[_Edit]:
        """The links wholly inside ``[start, end)``."""
        found = []
        for k in range(bisect_left(self.starts, start), len(self.edits)):
            if self.edits[k].end > end:
                break
            found.append(self.edits[k])
        return found


@dataclass(slots=True)
class _Part:
    container: str | None
    """The container of the response's latest code call when the part began: where its
    links' files are taken to live."""
    output_index: int = 0
    """The message's place in the response's output, for a delta let out at the end."""
    window: str = ""
    """The text not yet let out, after the one character before it (which decides whether
    a link may start there): all the streaming rewrite looks at, so each delta costs its
    own length plus what is held, not the text's."""
    emitted: int = 0
    """Where in ``window`` the text held back starts."""
    at: int = 0
    """Where ``window`` starts in the part's text."""
    out: int = 0
    """How much rewritten text was let out."""
    raw: bool = False
    """A link passed ``max_hold``: the rest of it goes out unrewritten."""
    moves: _Moves = field(default_factory=_Moves)
    """Where the links let out so far went."""
    held: _Moves | None = None
    """Where the links held back will go when they are let out (kept until the next delta)."""
    whole: _Moves | None = None
    """Where the links of the ``text.done`` text went."""
    passed: int = 0
    """Characters let out whole (see _without_links: a delta as it came, or what was held
    with the delta that showed it is no link) that the fields above do not count yet:
    they are brought up to date by :meth:`settle`, before anything reads them."""
    last: str = ""
    """The last delta so let out: its last character is the context of what follows."""

    def settle(self) -> None:
        """Count what went out as it came: the window is its last character."""
        if self.passed:
            self.at += self.emitted + self.passed - 1
            self.out += self.passed
            self.window, self.emitted, self.held, self.passed = self.last[-1], 1, None, 0


@dataclass(slots=True)
class _ResponseState:
    names: FileNames = field(default_factory=FileNames)
    container: str | None = None
    """The container of the latest code call, as the Assembler gives ``file.link``."""
    parts: dict[tuple[str, int], _Part] = field(default_factory=dict)
    item_containers: dict[str, str | None] = field(default_factory=dict)
    """The container each message's links were named in as it streamed, so that
    ``message.completed`` names them alike."""
    held: list[ev.MessageCompleted] = field(default_factory=list)
    failed_names: set[str] = field(default_factory=set)
    failed_files: set[tuple[str | None, str]] = field(default_factory=set)
    cited_names: dict[tuple[str | None, str], list[str]] = field(default_factory=dict)

    def part(self, item_id: str, content_index: int, output_index: int) -> _Part:
        """The part, up to date (see _Part.settle); made if it is new."""
        part = self.parts.get((item_id, content_index))
        if part is None:
            part = self.parts[(item_id, content_index)] = _Part(self.container, output_index)
            self.item_containers.setdefault(item_id, self.container)
        part.settle()
        return part

    def names_in(self, container_id: str | None) -> Callable[[str], str]:
        """The names of the files at sandbox paths in ``container_id``."""
        return lambda path: self.names.name(container_id, path)


def _check_template(name: str, template: str) -> None:
    """Refuse a template the rewriter could not fill in now, rather than with a KeyError
    at the first link, once events flow."""
    try:
        template.format(response_id="r", filename="f", path="p")
    except (KeyError, IndexError, ValueError, AttributeError) as exc:
        raise UsageError(
            f"{name}={template!r} cannot be filled in ({type(exc).__name__}: {exc}): a "
            "template may use {response_id}, {filename} and {path}; write a literal brace "
            "twice ({{ or }})"
        ) from None


class LinkRewriter:
    """Rewrites sandbox links in the stream to ``url``; how, and what it holds back, is in
    its module's docstring, ``help(respflow._files.rewrite)``.

    Args:
        url: the template of a link's new target. ``{response_id}``, ``{filename}`` (the
            file's name as respflow stores it: the same for the link and the file, and
            different for different files) and ``{path}`` (its path under /mnt/data) are
            filled in, URL-quoted; or a function ``(response_id, path) -> str``.
        file_url: instead of ``url``, a function ``(response_id, filename) -> str`` given
            the name the file is stored under (``respflow.app`` signs its URLs this way).
        unavailable: the target for a link whose file could not be saved.
        max_hold: the most characters held back while a link may be forming; a longer
            link is left as it is. At least 18, the length of ``sandbox:/mnt/data/``.
        markdown: a bare link (not the target of a Markdown link, not in ``<>``, code or
            quotes) becomes a Markdown link ``[report.csv](target)``, so a Markdown
            renderer shows it as one. Decided by the one character before the link, so
            streamed deltas and the whole text agree.
    """

    def __init__(
        self,
        url: str | Callable[[str, str], str] = "/files/{response_id}/{filename}",
        *,
        file_url: Callable[[str, str], str] | None = None,
        unavailable: str = "#respflow-unavailable/{filename}",
        max_hold: int = 1024,
        markdown: bool = False,
    ) -> None:
        if max_hold < len(_LEADS[0]):
            raise UsageError(
                f"max_hold={max_hold} cannot hold the start of a link: it must be at least "
                f"{len(_LEADS[0])}, the length of {_LEADS[0]!r}"
            )
        for name, template in (("url", url), ("unavailable", unavailable)):
            if isinstance(template, str):
                _check_template(name, template)
        self.url = url
        self.file_url = file_url
        self.markdown = markdown
        self.unavailable = unavailable
        self.max_hold = max_hold
        self._stamper = Stamper()
        self._rid = ""
        self._state = _ResponseState()
        self._recent: _Part | None = None
        """The part the last text delta went to: the next one very likely goes there too."""
        self._recent_item = ""
        self._recent_index = 0
        self._last_in: int | None = None
        """The number of the last event _feed_all_numbered took (None: not numbered)."""
        self._own_way = (
            type(self).feed_all is not LinkRewriter.feed_all
            or type(self).feed is not LinkRewriter.feed
        )
        """A subclass feeds its own way: :meth:`_feed_all_numbered` leaves it to it."""

    # -- the pure rewrite -----------------------------------------------------------------

    def target(
        self, response_id: str, path: str, *, failed: bool = False, filename: str | None = None
    ) -> str:
        """Where a link to ``path`` points; ``filename`` is the name its file is stored
        under (by default, that of a file in the response's first container)."""
        if self.file_url is not None and not failed:
            return self.file_url(response_id, filename or stored_name(path))
        if callable(self.url) and not failed:
            return self.url(response_id, path)
        template = self.unavailable if failed else str(self.url)
        return template.format(
            response_id=quote(response_id, safe=""),
            filename=quote(filename or stored_name(path), safe=""),
            path=quote(path.removeprefix("/mnt/data/"), safe="/"),
        )

    def rewrite(self, text: str, response_id: str, failed: frozenset[str] = frozenset()) -> str:
        """``text`` with every sandbox link pointing at its new target; links to the sandbox
        paths in ``failed`` get the ``unavailable`` one. Files are named as in the response
        this rewriter is following, if it is ``response_id``."""
        state = self._state if response_id == self._rid else _ResponseState()
        names = state.names_in(state.container)
        return self._rewrite(text, response_id, names, frozenset(map(names, failed)))[0]

    def _rewrite(
        self,
        text: str,
        response_id: str,
        names: Callable[[str], str],
        failed: frozenset[str] = frozenset(),
        start: int = 0,
        end: int | None = None,
        *,
        at: int = 0,
        new_at: int = 0,
    ) -> tuple[str, list[_Edit]]:
        """``text[start:end]`` rewritten, and its edits, placed as if ``text[start]`` were
        at ``at`` of the original and at ``new_at`` of the rewritten text. ``names`` names
        the file at a sandbox path; links to the names in ``failed`` are marked so."""
        end = len(text) if end is None else end
        out: list[str] = []
        edits: list[_Edit] = []
        done = start
        length = new_at
        for link in find_links(text, start, end):
            if self._too_long(text, link, end):
                continue
            out.append(text[done : link.start])
            length += link.start - done
            name = names(link.path)
            new = self.target(response_id, link.path, failed=name in failed, filename=name)
            if self.markdown and (link.start == 0 or text[link.start - 1] not in _NOT_BARE):
                new = f"[{_label(link.path)}]({new})"
            place = at - start
            edits.append(
                _Edit(link.start + place, link.end + place, length, length + len(new), name)
            )
            out.append(new)
            length += len(new)
            done = link.end
        out.append(text[done:end])
        return "".join(out), edits

    def _too_long(self, text: str, link: SandboxLink, end: int) -> bool:
        """Whether the run ``link`` starts (up to the character that ends it: trailing
        punctuation counts) is longer than the stream may hold back; such a link goes out
        unrewritten in the deltas, so it stays so everywhere."""
        stop = _ENDER.search(text, link.end, end)
        return (stop.start() if stop else end) - link.start > self.max_hold

    # -- the stream -----------------------------------------------------------------------

    def feed(self, event: ev.Event) -> list[ev.Event]:
        """The events to pass on for ``event``, in order."""
        if type(event) is ev.TextDelta:
            # Nearly every delta of a long answer goes to the part the last one went to,
            # which holds nothing back, and has no "/" and no start of "sandbox:" at its
            # end: it goes out as it came, only counted (see _Part.settle). Checked here
            # in line: a call or two more per delta was a third of the rewriter's cost.
            part = self._recent
            delta = event.delta
            if (
                part is not None
                and event.item_id == self._recent_item
                and event.content_index == self._recent_index
                and event.response_id == self._rid
                and delta
                and "/" not in delta
            ):
                if not (part.passed or (part.emitted == len(part.window) and not part.raw)):
                    passed: ev.TextDelta | None = self._held_then(part, event)
                elif delta[-1] in _SANDBOX and delta.endswith(_SANDBOX_STARTS):  # a link's start?
                    passed = self._hold_end(part, event, delta)
                else:
                    part.passed += len(delta)
                    part.last = delta
                    passed = event
            else:
                passed = self._without_links(event)
            if passed is None:
                return self._feed(event)
            event = passed
        elif (
            not (type(event) is ev.CodeDelta or type(event) in _PASSED)
            or event.response_id != self._rid
        ):
            return self._feed(event)
        # Stamper.passed in line for the first event of a wire event: the core numbers it
        # "<seq>-0", and so does the Stamper, so it keeps the cursor it came with. (Only
        # the suffix is looked at: formatting the sequence number to compare it was a
        # tenth of the rewriter's cost.)
        stamper, seq = self._stamper, event.sequence_number
        if seq != stamper.seq and event.cursor[-2:] == "-0":
            stamper.seq, stamper.k = seq, 1
            return [event]
        return [stamper.passed(event)]

    def feed_all(self, events: Iterable[ev.Event]) -> list[ev.Event]:
        """The events to pass on for each of ``events``, in order: what :meth:`feed` gives
        for each in turn, in one call (for what one ``Assembler.feed`` returns, say).

        Most events of a long answer go out as they came; here that costs a few checks in
        one loop, not a call and a list each.
        """
        if type(self).feed is not LinkRewriter.feed:  # a subclass's own feed sees each
            return [out for event in events for out in self.feed(event)]
        return self._feed_all(events, False)

    def _feed_all_numbered(self, events: Iterable[ev.Event]) -> list[ev.Event]:
        """:meth:`feed_all` for events numbered as an Assembler numbers them, and all of
        that assembler's events since it was made (``aiter_events`` gives its first
        processor these when it makes the assembler): each cursor is
        ``<sequence_number>-<k>``, ``k`` counting from 0 again whenever the sequence
        number changes. Then an event whose number differs from the
        one before it has ``k`` 0, and its cursor need not be read: reading it was a
        fifth of what the rewriter cost on a long answer.
        """
        if self._own_way:
            return self.feed_all(events)
        return self._feed_all(events, True)

    def _feed_all(self, events: Iterable[ev.Event], numbered: bool) -> list[ev.Event]:
        out: list[ev.Event] = []
        keep = out.append
        stamper = self._stamper
        text_delta, code_delta, passed = ev.TextDelta, ev.CodeDelta, _PASSED
        sandbox, sandbox_starts = _SANDBOX, _SANDBOX_STARTS
        # What feed reads of self on every event, in locals: read again after each call
        # that may change it (the long way), and the stamper's number written back
        # before each call that reads it. With no recent part, no item id is recent, so
        # part is a _Part wherever it is read.
        rid = self._rid
        part: Any = self._recent
        recent_item = self._recent_item if part is not None else None
        recent_index = self._recent_index
        last = stamper.seq
        last_in = self._last_in  # the number of the last event in
        # Numbered, and each event in so far went out once and in its place: then the
        # last number in is the last out, and an event is the first of its wire event
        # exactly when its number differs from that one. (The long way may hold an
        # event back or add some; the next event out brings the two together again.)
        synced = numbered and last == last_in
        # Text the recent part let out as it came, and the last delta of it, not yet
        # added to part.passed and part.last: they are written back before anything
        # else reads the part.
        gone, tail = 0, ""
        event: Any  # told apart by type(event) is ..., which mypy does not narrow by
        try:
            for event in events:
                kind = type(event)
                if kind is code_delta and event.response_id == rid:
                    pass  # code goes out as it came, only numbered (below)
                elif kind is text_delta:
                    # feed in line, but for a delta it sends the long way.
                    delta = event.delta
                    if (
                        event.item_id != recent_item
                        or event.content_index != recent_index
                        or event.response_id != rid
                        or not delta
                        or "/" in delta
                    ):
                        if gone:
                            part.passed += gone
                            part.last, gone = tail, 0
                        stamper.seq = last
                        out += self.feed(event)
                        rid, part, last = self._rid, self._recent, stamper.seq
                        recent_item = self._recent_item if part is not None else None
                        recent_index = self._recent_index
                        last_in = event.sequence_number
                        synced = numbered and last == last_in
                        continue
                    if gone or part.passed:  # nothing held back
                        if delta[-1] in sandbox and delta.endswith(sandbox_starts):
                            if gone:
                                part.passed += gone
                                part.last, gone = tail, 0
                            event = self._hold_end(part, event, delta)
                        else:
                            gone += len(delta)
                            tail = delta
                    elif part.emitted == len(part.window) and not part.raw:
                        event = self._pass_or_hold(part, event, delta)
                    else:
                        held_then = self._held_then(part, event)
                        if held_then is None:
                            stamper.seq = last
                            out += self._feed(event)
                            rid, part, last = self._rid, self._recent, stamper.seq
                            recent_item = self._recent_item if part is not None else None
                            recent_index = self._recent_index
                            last_in = event.sequence_number
                            synced = numbered and last == last_in
                            continue
                        event = held_then
                elif kind not in passed or event.response_id != rid:
                    if gone:
                        part.passed += gone
                        part.last, gone = tail, 0
                    stamper.seq = last
                    out += self._feed(event)
                    rid, part, last = self._rid, self._recent, stamper.seq
                    recent_item = self._recent_item if part is not None else None
                    recent_index = self._recent_index
                    last_in = event.sequence_number
                    synced = numbered and last == last_in
                    continue
                # Stamper.passed in line for the first event of a wire event (see feed).
                seq = event.sequence_number
                if synced:
                    if seq != last:
                        last = seq
                        stamper.k = 1
                        keep(event)
                    else:
                        stamper.seq = last
                        keep(stamper.passed(event))
                    continue
                if seq != last and (seq != last_in if numbered else event.cursor[-2:] == "-0"):
                    last = seq
                    stamper.k = 1
                    keep(event)
                else:
                    stamper.seq = last
                    keep(stamper.passed(event))
                    last = stamper.seq
                last_in = seq
                synced = numbered and last == last_in
        finally:
            if gone:
                part.passed += gone
                part.last = tail
            stamper.seq = last
            self._last_in = (last if synced else last_in) if numbered else None
        return out

    def close(self) -> list[ev.Event]:
        """The events for all it still holds, when the stream stops before the response's
        end (``Pipeline`` and ``aiter_events`` call it then): the text held back of each
        part not yet done, as a ``text.delta`` of the text as it came (a link it held
        never completed, so it is not rewritten), then the ``message.completed`` held for
        the end, rewritten. Numbered after the last event it passed; [] when it holds
        nothing, as after a response's end, or when asked again. It is for a stream that
        stopped (as the Assembler it follows is then closed): fed more of the same
        response afterwards, it rewrites the ``text.done`` of a part whose held start of a
        link it let out as it came, and the deltas no longer add up to that text.
        """
        return self._let_go(self._state)

    def _let_go(self, state: _ResponseState) -> list[ev.Event]:
        out: list[ev.Event] = []
        for (item_id, content_index), part in state.parts.items():
            part.settle()
            held = part.window[part.emitted :]
            if not held:
                continue
            part.emitted, part.out, part.held = len(part.window), part.out + len(held), None
            delta = ev.TextDelta(
                response_id=self._rid,
                sequence_number=self._stamper.seq,
                cursor="",
                item_id=item_id,
                output_index=part.output_index,
                content_index=content_index,
                delta=held,
            )
            out.append(self._stamper.made(delta))
        out += [self._stamper.made(self._final(m, state)) for m in state.held]
        state.held.clear()
        return out

    def _feed(self, event: ev.Event) -> list[ev.Event]:
        """:meth:`feed` the long way: every event it does not pass on at once."""
        if event.response_id != self._rid:
            # Another response's event (several in one stream, interleaved): what the one
            # followed until now still holds goes first, as at a stop; it was dropped.
            left = self._let_go(self._state)
            self._rid, self._state = event.response_id, _ResponseState()
            self._recent = None
            if left:
                return [*left, *self._feed(event)]
        state = self._state
        state.names.see(event)
        match event:
            case ev.CodeStarted(container_id=cid) | ev.CodeCompleted(container_id=cid) if cid:
                state.container = cid
                return [self._stamper.passed(event)]
            case ev.TextDelta(item_id=item_id, content_index=ci, delta=delta):
                out = self._push(state, state.part(item_id, ci, event.output_index), delta)
                return [self._stamper.passed(msgspec.structs.replace(event, delta=out))]
            case ev.TextDone(item_id=item_id, content_index=ci, text=text):
                part = state.part(item_id, ci, event.output_index)
                return self._text_done(event, state, part, text)
            case ev.FileCited() | ev.FileLink():
                return [self._stamper.passed(self._moved(event, state))]
            case ev.FileFailed(container_id=cid, file_id=fid, path=path):
                if path:
                    state.failed_names.add(state.names.name(cid, path))
                if fid:
                    state.failed_files.add((cid, fid))
                return [self._stamper.passed(event)]
            case ev.MessageCompleted():
                state.held.append(event)
                return []
            case _ if isinstance(event, ev.END_TYPES):
                # An end with a part still open (a failure mid-answer) lets it out too.
                return [*self._let_go(state), self._stamper.passed(event)]
            case _:
                return [self._stamper.passed(event)]

    def _without_links(self, event: ev.TextDelta) -> ev.TextDelta | None:
        """``event`` as :meth:`_push` lets it out if neither its delta nor what its part
        holds has a "/" in it, the part moved on as _push would; else None.

        Without "/" no link can be let out: only a start of "sandbox:" that ends the
        text can be held, and only where a link may begin (see _MAY_START). So nearly
        every delta costs a few string operations instead of the link scan, and when
        nothing is held it goes out as it came, only counted (see _Part.settle).
        """
        if event.response_id != self._rid:
            return None
        item_id, index = event.item_id, event.content_index
        part = self._recent
        if part is None or item_id != self._recent_item or index != self._recent_index:
            found = self._state.parts.get((item_id, index))
            if found is None:
                return None
            part = self._recent = found
            self._recent_item, self._recent_index = item_id, index
        delta = event.delta
        if not delta or "/" in delta:
            return None
        return self._through(part, event, delta)

    def _through(self, part: _Part, event: ev.TextDelta, delta: str) -> ev.TextDelta | None:
        """_without_links once the part is found and ``delta`` has no "/"."""
        if part.passed or (part.emitted == len(part.window) and not part.raw):
            return self._pass_or_hold(part, event, delta)
        return self._held_then(part, event)

    def _pass_or_hold(self, part: _Part, event: ev.TextDelta, delta: str) -> ev.TextDelta:
        """_without_links for a part that holds nothing back."""
        if delta[-1] in _SANDBOX and delta.endswith(_SANDBOX_STARTS):  # a link's start?
            return self._hold_end(part, event, delta)
        part.passed += len(delta)
        part.last = delta
        return event

    def _hold_end(self, part: _Part, event: ev.TextDelta, delta: str) -> ev.TextDelta:
        """_pass_or_hold for a delta that ends with a start of "sandbox:" (which begins at
        its last "s"): held back from there if a link may begin there. (_no_link_after is
        in line, and the event is replaced at once: what is held is never the whole delta.)"""
        hold = delta.rfind("s")
        before = delta[hold - 1] if hold else (part.last if part.passed else part.window)[-1:]
        if before and (before.isalnum() or before in "_/."):
            part.passed += len(delta)
            part.last = delta
            return event
        if not part.passed:
            return msgspec.structs.replace(event, delta=self._hold_from(part, delta, delta, hold))
        # settle and _hold_from in one step, for the usual case: what went out as it came
        # is counted, and the window is the held start of "sandbox:" after one character
        # of context.
        part.at += part.emitted + part.passed - 1 + hold
        part.out += part.passed + hold
        part.window = delta[hold - 1 :] if hold else part.last[-1] + delta
        part.emitted, part.held, part.passed = 1, None, 0
        return msgspec.structs.replace(event, delta=delta[:hold])

    def _held_then(self, part: _Part, event: ev.TextDelta) -> ev.TextDelta | None:
        """_without_links for a part that holds something back."""
        delta = event.delta
        window, emitted = part.window, part.emitted
        held = window[emitted:]
        if part.raw or "/" in held:
            return None
        rest = held + delta
        if rest[-1] in _SANDBOX and rest.endswith(_SANDBOX_STARTS):  # a link's start?
            hold = rest.rfind("s")
            if not _no_link_after(rest[hold - 1] if hold else window[emitted - 1 : emitted]):
                return _with_delta(event, self._hold_from(part, delta, rest, hold))
        # All of it goes (rest starts with what was held), counted as text let out as it
        # came: settle moves the window past it, to its last character.
        part.passed, part.last = len(rest), delta
        return msgspec.structs.replace(event, delta=rest)

    def _hold_from(self, part: _Part, delta: str, rest: str, hold: int) -> str:
        """_without_links when ``rest[hold:]`` may begin a link: the text before it goes."""
        out = rest[:hold]
        part.held = None
        part.out += len(out)
        keep = part.emitted + len(out) - 1  # one character of context before what is held
        text = part.window + delta
        if keep > 0:
            part.window, part.emitted, part.at = text[keep:], 1, part.at + keep
        else:
            part.window, part.emitted = text, part.emitted + len(out)
        return out

    def _text_done(
        self, event: ev.TextDone, state: _ResponseState, part: _Part, text: str
    ) -> list[ev.Event]:
        rest = self._release(state, part, len(part.window))
        part.window, part.emitted, part.raw, part.held = "", 0, False, None
        rewritten, edits = self._rewrite(text, self._rid, state.names_in(part.container))
        part.whole, part.moves = _Moves(edits), _Moves()  # the text.done text decides now
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
        done = msgspec.structs.replace(event, text=rewritten)
        out.append(self._stamper.passed(done))
        return out

    def _push(self, state: _ResponseState, part: _Part, delta: str) -> str:
        part.held = None
        out = self._let_out(state, part, delta)
        keep = part.emitted - 1  # one character of context before what is held
        if keep > 0:
            part.window, part.emitted, part.at = part.window[keep:], 1, part.at + keep
        return out

    def _let_out(self, state: _ResponseState, part: _Part, delta: str) -> str:
        part.window += delta
        text = part.window
        # Up to the last character no link contains, the text is final. What was held
        # has none, so only the delta needs looking at.
        cut = _after_last_ender(text, max(part.emitted, len(text) - len(delta)))
        out = self._release(state, part, part.emitted if cut is None else cut)
        if part.raw:
            return out + self._release(state, part, len(text))
        start = _link_start(text, part.emitted)
        if start is None:
            return out + self._release(state, part, len(text))
        out += self._release(state, part, start)
        if len(text) - part.emitted > self.max_hold:
            part.raw = True
            out += self._release(state, part, len(text))
        return out

    def _release(self, state: _ResponseState, part: _Part, end: int) -> str:
        """Let ``window[emitted:end]`` out, rewritten unless a too-long link is running."""
        text, start = part.window, part.emitted
        if end <= start:
            return ""
        part.emitted = end
        raw = ""
        if part.raw:
            stop = _ENDER.search(text, start, end)
            raw = text[start : stop.end() if stop else end]
            part.out += len(raw)
            if stop is None:
                return raw
            part.raw, start = False, stop.end()
        names = state.names_in(part.container)
        rewritten, edits = self._rewrite(
            text, self._rid, names, frozenset(), start, end, at=part.at + start, new_at=part.out
        )
        for edit in edits:
            part.moves.add(edit)
        part.out += len(rewritten)
        return raw + rewritten

    def _held(self, state: _ResponseState, part: _Part) -> _Moves:
        """Where the links held back will go when ``text.done`` lets them out."""
        if part.held is None:
            held_at = part.at + part.emitted
            names = state.names_in(part.container)
            _, edits = self._rewrite(
                part.window, self._rid, names, start=part.emitted, at=held_at, new_at=part.out
            )
            part.held = _Moves(edits, shift=part.out - held_at)
        return part.held

    def _position(self, state: _ResponseState, part: _Part, i: int) -> int:
        if part.whole is not None:
            return part.whole.position(i)
        if part.emitted < len(part.window) and i >= part.at + part.emitted:
            return self._held(state, part).position(i)
        return part.moves.position(i)

    def _links_in(self, state: _ResponseState, part: _Part, start: int, end: int) -> list[_Edit]:
        if part.whole is not None:
            return part.whole.within(start, end)
        found = part.moves.within(start, end)
        if part.emitted < len(part.window):
            found += self._held(state, part).within(start, end)
        return found

    def _moved(self, event: ev.FileCited | ev.FileLink, state: _ResponseState) -> ev.Event:
        part = state.parts.get((event.item_id, event.content_index))
        if part is None:
            return event
        part.settle()
        if isinstance(event, ev.FileCited):
            cited = self._links_in(state, part, event.start_index, event.end_index)
            key = (event.container_id, event.file_id)
            state.cited_names.setdefault(key, []).extend(edit.name for edit in cited)
        return msgspec.structs.replace(
            event,
            start_index=self._position(state, part, event.start_index),
            end_index=self._position(state, part, event.end_index),
        )

    def _final(self, message: ev.MessageCompleted, state: _ResponseState) -> ev.MessageCompleted:
        failed = set(state.failed_names)
        for key, cited in state.cited_names.items():
            if key in state.failed_files:
                failed.update(cited)
        container = state.item_containers.get(message.item_id, state.container)
        names = state.names_in(container)
        text, edits = self._rewrite(message.text, self._rid, names, frozenset(failed))
        moves = _Moves(edits)
        annotations: list[Any] = []
        for annotation in message.annotations:
            start, end = annotation.get("start_index"), annotation.get("end_index")
            if isinstance(start, int) and isinstance(end, int):
                annotation = {
                    **annotation,
                    "start_index": moves.position(start),
                    "end_index": moves.position(end),
                }
            annotations.append(annotation)
        return msgspec.structs.replace(message, text=text, annotations=annotations)


_SANDBOX = "sandbox:"
_SANDBOX_LENGTH = len(_SANDBOX)
# What a delta ends with when its end may begin a link: "s", "sa", ... "sandbox:". (Only
# the first character of these is an "s", so it is the delta's last "s".)
_SANDBOX_STARTS = tuple(_SANDBOX[:n] for n in range(1, _SANDBOX_LENGTH + 1))
# Events the rewriter passes on unchanged whatever its state: neither text, nor what names
# files, nor what it holds back or releases.
_PASSED = frozenset(
    {
        ev.ResponseStarted,
        ev.CodeDelta,
        ev.CodeDone,
        ev.CodeInterpreting,
        ev.CodeOutput,
        ev.CodeLogs,
        ev.CodeImage,
        ev.CodeOutputsMissing,
        ev.FileSaved,
        ev.ReasoningDelta,
        ev.ReasoningDone,
        ev.ItemCompleted,
        ev.StreamError,
        ev.StreamGap,
        ev.StreamDropped,
        ev.Unknown,
    }
)

# A link right after one of these is a Markdown link's target, an autolink, code or a
# quoted string: it stays a plain URL.
_NOT_BARE = frozenset("(<`\"'[=")


def _no_link_after(before: str) -> bool:
    """Whether a link cannot begin right after ``before`` (a character, or "" at the
    start of the text): find_links' look-behind."""
    return bool(before) and (before.isalnum() or before in "_/.")


def _with_delta(event: ev.TextDelta, delta: str) -> ev.TextDelta:
    return event if delta == event.delta else msgspec.structs.replace(event, delta=delta)


def _label(path: str) -> str:
    """The file's name as a Markdown link's text, its brackets escaped."""
    name = posixpath.basename(path.rstrip("/")) or path
    return name.replace("\\", "\\\\").replace("[", "\\[").replace("]", "\\]")


def _after_last_ender(text: str, start: int) -> int | None:
    """Just after the last link-ending character of ``text[start:]``, if it has one."""
    found = _ENDER.search(text[start:][::-1])
    return None if found is None else len(text) - found.start()


def _link_start(text: str, start: int) -> int | None:
    """Where in ``text[start:]`` (a run with no link-ending character) a link could begin:
    the first place whose rest is a link's start or could still grow into one."""
    found = _MAY_START.search(text, start)
    return None if found is None else found.start()
