"""The records the assembler keeps for output items, and what every item family shares.

:class:`ItemState` holds one response's state and the plumbing that makes events from
it; the item families (:mod:`._code_items`, :mod:`._message_items`) build on it, and the
:class:`respflow.Assembler` puts them together.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

from .. import _events as ev
from . import wire

__all__ = [
    "ITEM_KINDS",
    "ItemState",
    "Json",
    "Part",
    "Record",
    "Streamed",
    "kind_of",
    "text_or_none",
    "type_of",
]

Json = dict[str, Any]

# Output item type -> the kind of record that follows it. Everything else is "other" and
# ends as item.completed with the raw item.
ITEM_KINDS = {
    "code_interpreter_call": "code",
    "message": "message",
    "shell_call": "shell",
    "shell_call_output": "shell_output",
}
_ITEM_TYPES = {kind: item_type for item_type, kind in ITEM_KINDS.items()}


JOIN_EVERY = 64
"""How many deltas (or joined runs of them) are kept apart before they are joined: a small
``str`` costs about 50 bytes besides its characters, so a long text in 8-character deltas
kept one by one takes several times its own size."""


class Streamed:
    """Text as it streamed, in deltas, held in about its own size.

    Every :data:`JOIN_EVERY` deltas are joined into a run, and every :data:`JOIN_EVERY`
    runs into a block, so each character is copied twice and each delta costs constant
    work. It is true exactly when a list of the deltas would be: something (even an
    empty delta) was added.
    """

    __slots__ = ("blocks", "recent", "runs")

    def __init__(self) -> None:
        self.blocks: list[str] = []
        self.runs: list[str] = []
        self.recent: list[str] = []

    def __bool__(self) -> bool:
        return bool(self.blocks or self.runs or self.recent)

    def add(self, delta: str) -> None:
        recent = self.recent
        recent.append(delta)
        if len(recent) >= JOIN_EVERY:
            self.join_recent()

    def join_recent(self) -> None:
        runs = self.runs
        runs.append("".join(self.recent))
        self.recent = []
        if len(runs) >= JOIN_EVERY:
            self.blocks.append("".join(runs))
            self.runs = []

    def joined(self) -> bool:
        """Whether it is held as one string (or nothing), so :meth:`text` copies nothing."""
        return len(self.blocks) <= 1 and not self.runs and not self.recent

    def text(self) -> str:
        """All of it, as one string; kept as that one string, so asking again is free."""
        if len(self.blocks) == 1 and not self.runs and not self.recent:
            return self.blocks[0]
        whole = "".join([*self.blocks, *self.runs, *self.recent])
        self.replace(whole)
        return whole

    def replace(self, text: str) -> None:
        self.blocks, self.runs, self.recent = [text], [], []

    def settle(self, final: str) -> None:
        """``final`` is the finished text: if it is what streamed, it is kept instead, so
        the text is held once, not twice. Compared in place, without joining."""
        if self.blocks and self.blocks[0] is final and self.joined():
            return  # already that very string (an event read from the text held)
        if not self or sum(map(len, self)) != len(final):
            return
        at = 0
        for piece in self:
            if not final.startswith(piece, at):
                return
            at += len(piece)
        self.replace(final)

    def drop(self) -> None:
        """Its item is finished and nothing reads what streamed any more."""
        self.blocks, self.runs, self.recent = [], [], []

    def __iter__(self) -> Iterator[str]:
        """The text, in pieces."""
        yield from self.blocks
        yield from self.runs
        yield from self.recent


class Part:
    """One content part of a message: its streamed text, final text, annotations."""

    __slots__ = ("annotations", "streamed", "text")

    def __init__(self) -> None:
        self.streamed = Streamed()
        self.text: str | None = None
        self.annotations: dict[int, Json] = {}


class Record:
    """One output item as the stream has built it so far (keyed by output_index)."""

    __slots__ = (
        "added",
        "arguments",
        "cited",
        "code",
        "container_id",
        "index",
        "item_id",
        "kind",
        "linked",
        "parts",
        "status",
        "tool",
    )

    def __init__(self, index: int, kind: str, item_id: str, added: Json) -> None:
        self.index = index
        self.kind = kind
        self.item_id = item_id
        self.added = added
        self.status: str | None = None
        self.container_id = text_or_none(added.get("container_id"))
        self.tool: ev.Tool = "shell" if kind == "shell" else "code_interpreter"
        if kind == "shell":
            environment = added.get("environment")
            if isinstance(environment, dict):
                self.container_id = text_or_none(environment.get("container_id")) or None
        self.code = Streamed()
        self.parts: dict[int, Part] = {}
        self.arguments: dict[str, Streamed] = {}
        self.cited: set[tuple[int, int]] = set()
        self.linked: set[int] = set()

    def part(self, content_index: int) -> Part:
        part = self.parts.get(content_index)
        if part is None:
            part = self.parts[content_index] = Part()
        return part


class ItemState:
    """One response's items and the emitting of events; set up by the Assembler."""

    _out: list[ev.Event]
    _rid: str
    _seq: int
    _k: int
    _background: bool
    _resumed: bool
    _items: dict[int, Record]
    _next_index: int
    """One past the highest output_index seen: where an item the stream did not place goes."""
    _by_id: dict[str, Record]
    _final: dict[int, Json]
    _container_id: str | None

    def _cursor(self) -> str:
        k = self._k
        self._k = k + 1
        return f"{self._seq}-{k}"

    def _emit(self, cls: type[ev.EventBase], /, **fields: Any) -> None:
        event = cls(
            response_id=self._rid, sequence_number=self._seq, cursor=self._cursor(), **fields
        )
        self._out.append(cast(ev.Event, event))

    def _error(self, code: str, message: str, *, fatal: bool = False) -> None:
        self._emit(
            ev.StreamError,
            code=code,
            message=message,
            fatal=fatal,
        )

    def _new_item(self, index: int, added: Json) -> Record:
        item = Record(index, kind_of(added), str(added.get("id") or ""), added)
        self._items[index] = item
        if index >= self._next_index:
            self._next_index = index + 1
        if item.item_id:
            self._by_id[item.item_id] = item
        if item.container_id:
            self._container_id = item.container_id
        return item

    def _item(self, event: wire._ItemEvent, kind: str) -> Record | None:
        """The open record an item event belongs to, made up if the stream never added it."""
        index = event.output_index
        item = self._items.get(index) if index is not None else None
        if item is None and event.item_id:
            item = self._by_id.get(event.item_id)
        if item is None:
            if index is None:
                index = self._next_index
            if not self._resumed:  # in a resumed stream, the item was added before the cursor
                self._error(
                    "unexpected_event",
                    f"{type_of(event)} arrived for an item that was never added "
                    f"(output_index={index}); the item was rebuilt from the events that "
                    "followed",
                )
            added_type = _ITEM_TYPES.get(kind, kind)
            item = self._new_item(index, {"id": event.item_id or "", "type": added_type})
            if kind in ("code", "shell"):
                self._emit_code_started(item)
        if item.index in self._final:
            return None  # late events for a finished item change nothing
        return item

    def _emit_code_started(self, item: Record) -> None:
        self._emit(
            ev.CodeStarted,
            item_id=item.item_id,
            output_index=item.index,
            container_id=item.container_id,
            tool=item.tool,
        )


def kind_of(item: Json) -> str:
    """The kind of record an output item makes: "other" for a type that is not a known
    string (a list or an object there is unhashable, and was an error inside respflow)."""
    item_type = item.get("type")
    return ITEM_KINDS.get(item_type, "other") if isinstance(item_type, str) else "other"


def text_or_none(value: object) -> str | None:
    """``value`` if it is a string, else None.

    An item's fields are whatever JSON the server sent, and the events made from them are
    typed: an event holding a number where a string belongs encodes, but ``decode_event``
    refuses it, so a broker's readers and ``respflow replay`` would lose the whole event.
    """
    return value if isinstance(value, str) else None


def type_of(event: object) -> str:
    config = getattr(type(event), "__struct_config__", None)
    tag = getattr(config, "tag", None)
    return tag if isinstance(tag, str) else getattr(event, "type", type(event).__name__)
