"""The records the assembler keeps for output items, and what every item family shares.

:class:`ItemState` holds one response's state and the plumbing that makes events from
it; the item families (:mod:`._code_items`, :mod:`._message_items`) build on it, and the
:class:`respflow.Assembler` puts them together.
"""

from __future__ import annotations

from typing import Any, cast

from .. import _events as ev
from . import wire

__all__ = ["ITEM_KINDS", "ItemState", "Json", "Part", "Record", "type_of"]

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


class Part:
    """One content part of a message: its streamed chunks, final text, annotations."""

    __slots__ = ("annotations", "chunks", "text")

    def __init__(self) -> None:
        self.chunks: list[str] = []
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
        self.container_id: str | None = added.get("container_id")
        self.tool: ev.Tool = "shell" if kind == "shell" else "code_interpreter"
        if kind == "shell":
            environment = added.get("environment")
            if isinstance(environment, dict):
                self.container_id = environment.get("container_id") or None
        self.code: list[str] = []
        self.parts: dict[int, Part] = {}
        self.arguments: dict[str, list[str]] = {}
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
        kind = ITEM_KINDS.get(added.get("type", ""), "other")
        item = Record(index, kind, str(added.get("id") or ""), added)
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


def type_of(event: object) -> str:
    config = getattr(type(event), "__struct_config__", None)
    tag = getattr(config, "tag", None)
    return tag if isinstance(tag, str) else getattr(event, "type", type(event).__name__)
